import FieldBus
import Logging
import QuantracConfig
import QuantracCore
import ServiceLifecycle
import Storage

/// Which poll ticks each bus has stored: lets the record builder know when an interval is complete.
public actor AcquisitionProgress {
    private var stored: [String: Timestamp] = [:]
    public init() {}

    /// Notes that `bus` has durably stored its tick at `time` (and, ticks being sequential, all before it).
    public func markStored(bus: String, time: Timestamp) { stored[bus] = max(stored[bus] ?? time, time) }

    /// The latest tick time every one of `buses` has stored, or nil if one has stored nothing yet.
    public func lowWatermark(buses: [String]) -> Timestamp? {
        var low: Timestamp?
        for b in buses {
            guard let t = stored[b] else { return nil }
            low = min(low ?? t, t)
        }
        return low
    }
}

/// Polls one bus on the poll grid (aligned to local midnight, recomputed from the wall clock every tick so
/// clock steps are survived) and stores its ticks, waiting for each commit (back-pressure).
///
/// Ticks are committed together once per `commitWindow` (`[station] commit_window`): a reading is held in
/// memory at most that long before it is durable. Held readings are shown live (status board) but are not
/// *acknowledged*: the bus reports a tick stored (`AcquisitionProgress`, which gates record building) only
/// once its commit returned. Held ticks are committed at once when the poll crosses a record-interval
/// boundary (so files are not delayed by the window), while storage is failing (retried every tick), and
/// when the service stops (SIGTERM); the first tick after start is committed at once. A window of zero
/// commits every tick.
public struct BusPoller: Service {
    let bus: any FieldDriver
    let channels: [ChannelConfig]
    let pollInterval: Duration
    let offset: UTCOffset
    let store: Store
    let progress: AcquisitionProgress
    let wallClock: any WallClock
    let logger: Logger
    let board: StatusBoard?
    let calibration: CalibrationGate?
    let commitWindow: Duration
    let recordGrid: IntervalGrid?

    /// `commitWindow` is the longest a reading waits in memory for its commit (zero: every tick);
    /// `recordGrid` the record intervals whose boundaries force a commit.
    public init(bus: any FieldDriver, channels: [ChannelConfig], pollInterval: Duration, offset: UTCOffset, store: Store,
                progress: AcquisitionProgress, wallClock: any WallClock, logger: Logger, board: StatusBoard? = nil,
                calibration: CalibrationGate? = nil, commitWindow: Duration = .zero, recordGrid: IntervalGrid? = nil) {
        self.commitWindow = commitWindow
        self.recordGrid = recordGrid
        self.board = board
        self.calibration = calibration
        self.bus = bus
        self.channels = channels
        self.pollInterval = pollInterval
        self.offset = offset
        self.store = store
        self.progress = progress
        self.wallClock = wallClock
        var logger = logger
        logger[metadataKey: "bus"] = "\(bus.busName)"
        self.logger = logger
    }

    /// The next tick time strictly after `now` on the poll grid.
    public static func nextTick(after now: Timestamp, every interval: Duration, offset: UTCOffset) -> Timestamp {
        let p = interval.wholeMilliseconds
        let local = now.milliseconds + Int64(offset.seconds) * 1000
        let next = (local / p + 1) * p
        return Timestamp(milliseconds: next - Int64(offset.seconds) * 1000)
    }

    public func run() async throws {
        defer { bus.shutdown() }
        // On the bus thread when the bus offers it: polls are then direct calls (see `FieldDriver.taskExecutor`).
        if let executor = bus.taskExecutor {
            await withTaskExecutorPreference(executor) { await pollLoop() }
        } else {
            await pollLoop()
        }
    }

    /// Polls on the grid until the service stops, then commits what the commit window holds.
    func pollLoop() async {
        var buffer = UnsavedTicks(capacity: max(1, Int(3600_000 / max(1, pollInterval.wholeMilliseconds))))
        var tick = Self.nextTick(after: wallClock.now(), every: pollInterval, offset: offset)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait = tick - wallClock.now()
            if wait > .zero {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wallClock.realDuration(of: wait)) }
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
            }
            await pollOnce(at: tick, buffer: &buffer)
            // Skip ticks missed by an overrunning poll or a forward clock step; never poll twice for one tick.
            tick = Self.nextTick(after: max(tick, wallClock.now()), every: pollInterval, offset: offset)
        }
        // Stopping (SIGTERM): what the commit window still holds is stored before the bus closes.
        await commit(&buffer)
    }

    /// True when ticks held since `oldest` must be committed after polling `tick`: waiting for the next
    /// tick would hold the oldest reading longer than `window`, or `tick` is in a later record interval.
    public static func mustCommit(oldest: Timestamp, tick: Timestamp, pollInterval: Duration, window: Duration,
                                  grid: IntervalGrid?) -> Bool {
        if tick + pollInterval - oldest > window { return true }
        guard let grid else { return false }
        return grid.interval(containing: tick) != grid.interval(containing: oldest)
    }

    /// Polls every channel of the bus once, stamps the readings with `tick` and holds them in `buffer`;
    /// commits what the buffer holds when the commit window says so (`mustCommit`), or at every tick while
    /// the database cannot be written (disk full, read-only).
    public func pollOnce(at tick: Timestamp, buffer: inout UnsavedTicks) async {
        let samples = await bus.poll()
        var readings = samples.map { s in
            Reading(channel: channels[s.channelIndex].code, time: tick, value: s.value, status: s.status, reason: s.reason)
        }
        if let calibration { readings = calibration.apply(readings) }
        buffer.append(readings, at: tick)
        logger.debug("tick polled", metadata: ["time": "\(tick.milliseconds)", "readings": "\(readings.count)", "held": "\(buffer.count)"])
        board?.record(bus: bus.busName, readings: readings)
        // Device health changes only through faults and the polls after them; asking the bus thread for it
        // is a second thread hand-off per poll, so it is refreshed on a fault and at most once a second otherwise.
        if let board, readings.contains(where: { $0.status == .fault }) || buffer.healthShownAt.map({ tick - $0 >= .seconds(1) || tick < $0 }) ?? true {
            let health = await bus.deviceHealth()
            board.devices(bus: bus.busName, health.mapValues(\.state.rawValue), responseSeconds: health.compactMapValues { $0.lastResponse?.inSeconds })
            buffer.healthShownAt = tick
        }
        // The first tick is committed at once: start-up (READY to systemd) waits for a stored poll, not the window.
        guard let oldest = buffer.oldest, buffer.failingSince != nil || !buffer.committedOnce
                || Self.mustCommit(oldest: oldest, tick: tick, pollInterval: pollInterval, window: commitWindow, grid: recordGrid) else { return }
        await commit(&buffer)
    }

    /// Stores every tick the buffer holds in one transaction; on success reports the newest one stored.
    public func commit(_ buffer: inout UnsavedTicks) async {
        guard let tick = buffer.newest else { return }
        do {
            try await store.append(buffer.ticks.flatMap { $0 })
            if let since = buffer.failingSince {
                let held = buffer.ticks.count, dropped = buffer.dropped
                logger.notice("readings are stored again", metadata: ["held": "\(held)", "dropped": "\(dropped)"])
                try? await store.journal("storage.recovered",
                                         "bus \(bus.busName): storage failed from \(since.milliseconds) ms; \(held) ticks held in memory and stored, \(dropped) dropped",
                                         at: wallClock.now())
            }
            let stored = buffer.ticks.count
            buffer.clear()
            buffer.committedOnce = true
            board?.update { $0.storageError = nil; $0.storageErrorSinceMs = nil; $0.readingsHeldInMemory = 0 }
            await progress.markStored(bus: bus.busName, time: tick)
            logger.debug("ticks stored", metadata: ["time": "\(tick.milliseconds)", "ticks": "\(stored)"])
        } catch {
            if buffer.failingSince == nil {
                logger.error("cannot store readings, holding up to \(buffer.capacity) ticks in memory: \(error)")
                buffer.failingSince = tick
            }
            let held = buffer.ticks.map(\.count).reduce(0, +)
            board?.update { $0.storageError = "\(error)"; $0.storageErrorSinceMs = $0.storageErrorSinceMs ?? tick.milliseconds; $0.readingsHeldInMemory = held }
        }
    }
}

/// Ticks polled but not yet stored (the commit window, or a storage failure), bounded: beyond `capacity`
/// the oldest are dropped (and counted).
public struct UnsavedTicks: Sendable {
    public let capacity: Int
    private(set) var ticks: [[Reading]] = []
    private var times: [Timestamp] = []
    private(set) var dropped = 0
    var failingSince: Timestamp?
    /// Tick at which device health was last copied to the status board.
    var healthShownAt: Timestamp?
    /// Whether a commit has succeeded since the poller started.
    var committedOnce = false

    public init(capacity: Int) { self.capacity = capacity }

    /// Time of the oldest and newest tick held.
    public var oldest: Timestamp? { times.first }
    public var newest: Timestamp? { times.last }
    /// Number of ticks held.
    public var count: Int { ticks.count }

    mutating func append(_ readings: [Reading], at time: Timestamp) {
        ticks.append(readings)
        times.append(time)
        if ticks.count > capacity {
            ticks.removeFirst(ticks.count - capacity)
            times.removeFirst(times.count - capacity)
            dropped += 1
        }
    }

    mutating func clear() {
        ticks.removeAll(keepingCapacity: true)
        times.removeAll(keepingCapacity: true)
        dropped = 0
        failingSince = nil
    }
}
