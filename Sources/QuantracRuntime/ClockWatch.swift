import Logging
import QuantracCore
import ServiceLifecycle
import Storage

/// Detects steps of the wall clock (NTP, RTC, a technician) by comparing it with the monotonic clock
/// once a second, and journals each step. Files are never re-timed: a backward step only delays the
/// next file until the clock passes the last built interval again; a forward step skips intervals
/// that then have no readings (they are not invented).
public struct ClockWatch: Service {
    let wallClock: any WallClock
    let store: Store
    let logger: Logger
    /// Smallest difference reported as a step.
    let threshold: Duration
    let board: StatusBoard?

    public init(wallClock: any WallClock, store: Store, logger: Logger, threshold: Duration = .seconds(2), board: StatusBoard? = nil) {
        self.board = board
        self.wallClock = wallClock
        self.store = store
        self.logger = logger
        self.threshold = threshold
    }

    public func run() async throws {
        var lastWall = wallClock.now()
        var lastMono = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            let wall = wallClock.now(), mono = ContinuousClock.now
            // Under an accelerated test clock (`rate` > 1) the wall clock is expected to run `rate` times faster.
            let step = (wall - lastWall) - (mono - lastMono) * wallClock.rate
            let limit = threshold * wallClock.rate
            if step > limit || step < .zero - limit {
                let text = "wall clock stepped by \(step.wholeMilliseconds) ms (from \(lastWall.milliseconds) to \(wall.milliseconds) ms since the epoch)"
                logger.warning("\(text)")
                board?.update { $0.lastClockStep = text }
                try? await store.journal("clock.step", text, at: wall)
            }
            lastWall = wall
            lastMono = mono
        }
    }
}
