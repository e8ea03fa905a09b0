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
/// clock steps are survived), stores each tick in one transaction and waits for it (back-pressure).
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

    public init(bus: any FieldDriver, channels: [ChannelConfig], pollInterval: Duration, offset: UTCOffset, store: Store,
                progress: AcquisitionProgress, wallClock: any WallClock, logger: Logger, board: StatusBoard? = nil,
                calibration: CalibrationGate? = nil) {
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
        var buffer = UnsavedTicks(capacity: max(1, Int(3600_000 / max(1, pollInterval.wholeMilliseconds))))
        var tick = Self.nextTick(after: wallClock.now(), every: pollInterval, offset: offset)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait = tick - wallClock.now()
            if wait > .zero {
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
            }
            await pollOnce(at: tick, buffer: &buffer)
            // Skip ticks missed by an overrunning poll or a forward clock step; never poll twice for one tick.
            tick = Self.nextTick(after: max(tick, wallClock.now()), every: pollInterval, offset: offset)
        }
    }

    /// Polls every channel of the bus once and stores the readings stamped with `tick`, together with any
    /// ticks held in memory while the database could not be written (disk full, read-only).
    func pollOnce(at tick: Timestamp, buffer: inout UnsavedTicks) async {
        let samples = await bus.poll()
        var readings = samples.map { s in
            Reading(channel: channels[s.channelIndex].code, time: tick, value: s.value, status: s.status, reason: s.reason)
        }
        if let calibration { readings = calibration.apply(readings) }
        buffer.append(readings)
        board?.record(bus: bus.busName, readings: readings)
        if let board { board.devices(bus: bus.busName, await bus.deviceHealth().mapValues(\.rawValue)) }
        do {
            try await store.append(buffer.ticks.flatMap { $0 })
            if let since = buffer.failingSince {
                let held = buffer.ticks.count, dropped = buffer.dropped
                logger.notice("readings are stored again", metadata: ["held": "\(held)", "dropped": "\(dropped)"])
                try? await store.journal("storage.recovered",
                                         "bus \(bus.busName): storage failed from \(since.milliseconds) ms; \(held) ticks held in memory and stored, \(dropped) dropped",
                                         at: wallClock.now())
            }
            buffer.clear()
            board?.update { $0.storageError = nil; $0.storageErrorSinceMs = nil; $0.readingsHeldInMemory = 0 }
            await progress.markStored(bus: bus.busName, time: tick)
            logger.debug("tick stored", metadata: ["time": "\(tick.milliseconds)", "readings": "\(readings.count)"])
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

/// Ticks polled but not yet stored, bounded: beyond `capacity` the oldest are dropped (and counted).
struct UnsavedTicks {
    let capacity: Int
    private(set) var ticks: [[Reading]] = []
    private(set) var dropped = 0
    var failingSince: Timestamp?

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ readings: [Reading]) {
        ticks.append(readings)
        if ticks.count > capacity {
            ticks.removeFirst(ticks.count - capacity)
            dropped += 1
        }
    }

    mutating func clear() {
        ticks.removeAll()
        dropped = 0
        failingSince = nil
    }
}
