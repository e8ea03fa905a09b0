import Logging
import QuantracCore
import ServiceLifecycle
import Storage
import Synchronization

/// The calibration windows in effect, as the bus pollers see them: a reading of a channel in
/// calibration (or within the recovery window after it) carries status `01`, whatever the analyzer says.
public final class CalibrationGate: Sendable {
    private let windows = Mutex<[Calibration]>([])
    public let recovery: Duration

    public init(recovery: Duration) { self.recovery = recovery }

    public func replace(_ calibrations: [Calibration]) { windows.withLock { $0 = calibrations } }

    public var current: [Calibration] { windows.withLock { $0 } }

    /// True when `channel` is in calibration (or recovering from it) at `time`.
    public func isCalibrating(_ channel: String, at time: Timestamp) -> Bool {
        windows.withLock { $0.contains { $0.applies(to: channel) && $0.covers(time, recovery: recovery) } }
    }

    /// The readings with status `01` where a calibration covers them.
    public func apply(_ readings: [Reading]) -> [Reading] {
        let active = current
        guard !active.isEmpty else { return readings }
        return readings.map { r in
            guard active.contains(where: { $0.applies(to: r.channel) && $0.covers(r.time, recovery: recovery) }) else { return r }
            var c = r
            c.status = .calibrating
            return c
        }
    }
}

/// Reloads the calibration windows from the database every `every` (the daemon passes the poll interval,
/// at most a second), so a `quantrac calibrate` command takes effect within one poll (and survives
/// restarts: the windows live in the database).
public struct CalibrationWatcher: Service {
    let gate: CalibrationGate
    let store: Store
    let wallClock: any WallClock
    let logger: Logger
    let board: StatusBoard?
    let every: Duration

    public init(gate: CalibrationGate, store: Store, wallClock: any WallClock, logger: Logger, board: StatusBoard? = nil,
                every: Duration = .seconds(1)) {
        self.gate = gate
        self.store = store
        self.wallClock = wallClock
        self.logger = logger
        self.board = board
        self.every = every
    }

    public func run() async throws {
        var last: [Calibration] = []
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if let windows = try? await store.calibrations(coveringFrom: wallClock.now(), recovery: gate.recovery) {
                gate.replace(windows)
                if windows != last {
                    logger.notice("calibration windows: \(windows.isEmpty ? "none" : windows.map { $0.channel ?? "station" }.joined(separator: ", "))")
                    board?.update { s in
                        s.calibrations = windows.map { c in "\(c.channel ?? "station"): \(c.reason)" + (c.user.map { " (\($0))" } ?? "") }
                    }
                    last = windows
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wallClock.realDuration(of: every, atLeast: .milliseconds(20))) }
        }
    }
}
