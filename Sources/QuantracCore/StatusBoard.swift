import Synchronization

/// The daemon's live state, written by its services and read by the control API (`quantrac status`).
/// Updates are short critical sections under a mutex, so a blocking server thread can read it too.
public final class StatusBoard: Sendable {
    public struct ChannelState: Sendable, Codable, Hashable {
        public var code: String
        public var unit: String
        public var bus: String
        public var value: Double?
        public var status: String
        public var statusCode: String
        public var reason: String?
        public var timeMs: Int64?
    }

    public struct BusState: Sendable, Codable, Hashable {
        public var name: String
        public var lastTickMs: Int64?
        public var faultChannels: Int
        /// Health per device (slave id → online, suspect, offline, recovering).
        public var devices: [String: String] = [:]
        /// How long each device's requests took in its last poll, seconds (slave id → time).
        public var deviceResponseSeconds: [String: Double] = [:]
        /// Poll counters per device (slave id), since the daemon started.
        public var deviceCounters: [String: DeviceCounters] = [:]
        /// Time from the last tick's scheduled instant until its values were in hand (the bus's poll latency), ms.
        public var lastPollMs: Int64?
        /// Sum of every tick's poll latency (ms) and the number of ticks, since the daemon started.
        public var pollMsSum: Int64 = 0
        public var pollCount: Int = 0
    }

    /// How often a device was polled and how often that failed.
    public struct DeviceCounters: Sendable, Codable, Hashable {
        /// Ticks in which the device's channels were polled.
        public var polls: Int = 0
        /// Ticks in which at least one channel of the device came back `02` (no answer, exception, analyzer fault).
        public var errors: Int = 0
    }

    public struct TargetState: Sendable, Codable, Hashable {
        public var name: String
        public var pending: Int
        public var oldestPending: String?
        public var lastSuccessMs: Int64?
        public var lastError: String?
        public var parked: String?
    }

    public struct Snapshot: Sendable, Codable, Hashable {
        public var station: String = ""
        public var startedMs: Int64 = 0
        public var channels: [ChannelState] = []
        public var buses: [BusState] = []
        public var targets: [TargetState] = []
        /// Set while readings cannot be stored (disk full, read-only): what failed and since when.
        public var storageError: String?
        public var storageErrorSinceMs: Int64?
        public var readingsHeldInMemory: Int = 0
        public var lastFile: String?
        public var fileError: String?
        public var diskUsedBytes: Int64?
        public var diskCapacityBytes: Int64?
        public var diskAlarm: String?
        /// The last wall-clock step seen by ClockWatch; every step set here is also counted and kept in
        /// `recentClockSteps` (the last 10).
        public var lastClockStep: String? {
            didSet {
                guard let step = lastClockStep, step != oldValue else { return }
                clockSteps += 1
                recentClockSteps = Array((recentClockSteps + [step]).suffix(10))
            }
        }
        public var clockSteps: Int = 0
        public var recentClockSteps: [String] = []
        /// Whether the system clock is synchronised (NTP), last checked by the clock monitor.
        public var clock: ClockState?
        /// Calibration windows in effect (running or recovering).
        public var calibrations: [String] = []
    }

    /// The system clock's synchronisation as the kernel (or the time service) reports it.
    public struct ClockState: Sendable, Codable, Hashable {
        /// nil: unknown (neither the kernel nor a time service could be asked).
        public var synchronized: Bool?
        /// Where the answer comes from: `adjtimex`, `timedatectl`, or `none`.
        public var source: String
        /// The kernel's maximum and estimated error of the clock (adjtimex), ms.
        public var maxErrorMs: Int64?
        public var estimatedErrorMs: Int64?
        /// One line for people: "synchronised (max error 12 ms)", "NOT synchronised: …".
        public var detail: String
        public var checkedMs: Int64

        public init(synchronized: Bool?, source: String, maxErrorMs: Int64? = nil, estimatedErrorMs: Int64? = nil, detail: String, checkedMs: Int64) {
            self.synchronized = synchronized
            self.source = source
            self.maxErrorMs = maxErrorMs
            self.estimatedErrorMs = estimatedErrorMs
            self.detail = detail
            self.checkedMs = checkedMs
        }
    }

    private let state: Mutex<Snapshot>
    /// Channel code → device (slave id), for the per-device counters.
    private let deviceOfChannel: [String: Int]
    /// Channel code → its position in `Snapshot.channels` (fixed at start), so a tick is recorded without a
    /// search per reading.
    private let channelIndex: [String: Int]
    private let wallClock: any WallClock

    /// - Parameters:
    ///   - devices: channel code → device (slave id) on its bus; channels not named here are not counted per device.
    ///   - wallClock: measures each tick's poll latency (from the tick's time to `record`).
    public init(station: String, startedMs: Int64, channels: [(code: String, unit: String, bus: String)], buses: [String], targets: [String],
                devices: [String: Int] = [:], wallClock: any WallClock = SystemWallClock()) {
        deviceOfChannel = devices
        channelIndex = Dictionary(channels.enumerated().map { ($0.element.code, $0.offset) }, uniquingKeysWith: { first, _ in first })
        self.wallClock = wallClock
        var s = Snapshot()
        s.station = station
        s.startedMs = startedMs
        s.channels = channels.map { ChannelState(code: $0.code, unit: $0.unit, bus: $0.bus, value: nil, status: "unknown", statusCode: "--") }
        s.buses = buses.map { BusState(name: $0, lastTickMs: nil, faultChannels: 0) }
        s.targets = targets.map { TargetState(name: $0, pending: 0) }
        state = Mutex(s)
    }

    public func snapshot() -> Snapshot { state.withLock { $0 } }

    public func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }

    /// Records one stored (or held) tick of a bus, counts it per device and notes its poll latency.
    public func record(bus: String, readings: [Reading]) {
        let now = wallClock.now()
        var polled: Set<Int> = [], failed: Set<Int> = []
        for r in readings {
            guard let device = deviceOfChannel[r.channel] else { continue }
            polled.insert(device)
            if r.status == .fault { failed.insert(device) }
        }
        state.withLock { s in
            for r in readings {
                guard let i = channelIndex[r.channel] else { continue }
                s.channels[i].value = r.value
                s.channels[i].status = r.status.description
                s.channels[i].statusCode = r.status.fileCode
                s.channels[i].reason = r.reason
                s.channels[i].timeMs = r.time.milliseconds
            }
            if let b = s.buses.firstIndex(where: { $0.name == bus }) {
                s.buses[b].lastTickMs = readings.map(\.time.milliseconds).max() ?? s.buses[b].lastTickMs
                s.buses[b].faultChannels = readings.filter { $0.status == .fault }.count
                for device in polled {
                    s.buses[b].deviceCounters[String(device), default: DeviceCounters()].polls += 1
                    if failed.contains(device) { s.buses[b].deviceCounters[String(device), default: DeviceCounters()].errors += 1 }
                }
                if let tick = readings.first?.time {
                    let ms = max(0, (now - tick).wholeMilliseconds)
                    s.buses[b].lastPollMs = ms
                    s.buses[b].pollMsSum += ms
                    s.buses[b].pollCount += 1
                }
            }
        }
    }

    /// The health of each device of a bus (slave id → state) and how long its last requests took.
    public func devices(bus: String, _ states: [Int: String], responseSeconds: [Int: Double] = [:]) {
        state.withLock { s in
            if let b = s.buses.firstIndex(where: { $0.name == bus }) {
                s.buses[b].devices = Dictionary(uniqueKeysWithValues: states.map { (String($0.key), $0.value) })
                s.buses[b].deviceResponseSeconds = Dictionary(uniqueKeysWithValues: responseSeconds.map { (String($0.key), $0.value) })
            }
        }
    }

    public func target(_ name: String, _ body: (inout TargetState) -> Void) {
        state.withLock { s in
            if let i = s.targets.firstIndex(where: { $0.name == name }) { body(&s.targets[i]) }
        }
    }
}

extension Dictionary where Key == String {
    /// The entries of a per-device map (slave id as text → value) in numeric device order.
    public func byDevice() -> [(key: String, value: Value)] {
        sorted { (Int($0.key) ?? 0, $0.key) < (Int($1.key) ?? 0, $1.key) }
    }
}
