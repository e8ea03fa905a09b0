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
        public var lastClockStep: String?
        /// Calibration windows in effect (running or recovering).
        public var calibrations: [String] = []
    }

    private let state: Mutex<Snapshot>

    public init(station: String, startedMs: Int64, channels: [(code: String, unit: String, bus: String)], buses: [String], targets: [String]) {
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

    /// Records one stored (or held) tick of a bus.
    public func record(bus: String, readings: [Reading]) {
        state.withLock { s in
            for r in readings {
                guard let i = s.channels.firstIndex(where: { $0.code == r.channel }) else { continue }
                s.channels[i].value = r.value
                s.channels[i].status = r.status.description
                s.channels[i].statusCode = r.status.fileCode
                s.channels[i].reason = r.reason
                s.channels[i].timeMs = r.time.milliseconds
            }
            if let b = s.buses.firstIndex(where: { $0.name == bus }) {
                s.buses[b].lastTickMs = readings.map(\.time.milliseconds).max() ?? s.buses[b].lastTickMs
                s.buses[b].faultChannels = readings.filter { $0.status == .fault }.count
            }
        }
    }

    public func devices(bus: String, _ states: [Int: String]) {
        state.withLock { s in
            if let b = s.buses.firstIndex(where: { $0.name == bus }) {
                s.buses[b].devices = Dictionary(uniqueKeysWithValues: states.map { (String($0.key), $0.value) })
            }
        }
    }

    public func target(_ name: String, _ body: (inout TargetState) -> Void) {
        state.withLock { s in
            if let i = s.targets.firstIndex(where: { $0.name == name }) { body(&s.targets[i]) }
        }
    }
}
