import Logging
import QuantracConfig
import QuantracCore

/// One physical bus as the poller sees it: every call to `poll()` reads every channel of the bus once,
/// on the bus's own thread, and returns one sample per channel; failures become fault samples.
public protocol FieldDriver: Sendable {
    /// The `[[bus]]` name.
    var busName: String { get }
    /// Polls every channel once. Never throws and never blocks the caller's thread.
    func poll() async -> [FieldSample]
    /// Closes the link and ends the bus thread.
    func shutdown()
    /// Health (state and last response time) of each device on the bus after the last poll, by slave/unit id.
    func deviceHealth() async -> [Int: DeviceHealth]
    /// The bus thread as a task executor, when the poller's own code may run on it (saves the thread
    /// hand-offs of every poll); nil to stay on the cooperative pool.
    var taskExecutor: (any TaskExecutor)? { get }
}

extension FieldDriver {
    public func deviceHealth() async -> [Int: DeviceHealth] { [:] }
    public var taskExecutor: (any TaskExecutor)? { nil }
}

/// Builds the driver of each configured bus from its transport.
public enum FieldDrivers {
    public static func make(bus: BusConfig, config: StationConfig, logger: Logger) -> any FieldDriver {
        switch bus.transport {
        case .modbusTCP, .modbusRTU, .modbusRTUOverTCP:
            return ModbusBus(plan: ReadPlan(bus: bus, channels: config.channels), pollInterval: config.station.pollInterval, logger: logger)
        case .asciiSerial:
            return AsciiSerialBus(plan: TextPlan(bus: bus, channels: config.channels), pollInterval: config.station.pollInterval, logger: logger)
        }
    }

    /// One driver per configured bus, in configuration order.
    public static func make(for config: StationConfig, logger: Logger) -> [any FieldDriver] {
        config.buses.map { make(bus: $0, config: config, logger: logger) }
    }
}
