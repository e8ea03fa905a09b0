import Foundation
import Logging
import Modbus
import QuantracConfig
import QuantracCore

/// The outcome of polling one channel once.
public struct FieldSample: Sendable, Hashable {
    /// Index in `StationConfig.channels`.
    public let channelIndex: Int
    public let value: Double?
    public let status: InstrumentStatus
    /// Why the value is missing (`timeout`, `exception illegal data address`, `connection refused` …).
    public let reason: String?

    public init(channelIndex: Int, value: Double?, status: InstrumentStatus, reason: String?) {
        self.channelIndex = channelIndex
        self.value = value
        self.status = status
        self.reason = reason
    }
}

/// Polls one Modbus bus — TCP, RTU, or RTU frames over TCP — on its own thread, which owns the
/// libmodbus context (or the RTU-over-TCP socket).
///
/// A failed request faults only the channels it carried; the rest of the bus goes on. A device that
/// timed out is skipped for the rest of the tick (one timeout per device per tick at most). A lost or
/// refused connection is re-opened with exponential backoff, from the poll interval up to `reconnect_max`.
public final class ModbusBus: FieldDriver {
    public let plan: ReadPlan
    public var busName: String { plan.bus.name }
    private let lane: BlockingLane<RegisterLinkState>
    private let logger: Logger

    public init(plan: ReadPlan, pollInterval: Duration, logger: Logger) {
        self.plan = plan
        var logger = logger
        logger[metadataKey: "bus"] = "\(plan.bus.name)"
        self.logger = logger
        let bus = plan.bus
        let makeLink: @Sendable () -> RegisterLinkState
        switch bus.transport {
        case .modbusTCP, .modbusRTU:
            let endpoint: ModbusEndpoint
            switch bus.transport {
            case .modbusRTU(let device, let baud, let parity, let dataBits, let stopBits):
                let p: SerialParity = parity == .even ? .even : parity == .odd ? .odd : .none
                endpoint = .rtu(device: device, baud: baud, parity: p, dataBits: dataBits, stopBits: stopBits)
            case .modbusTCP(let host, let port): endpoint = .tcp(host: host, port: port)
            default: preconditionFailure("unreachable")
            }
            makeLink = {
                let client: any RegisterClient
                do throws(ModbusError) { client = try ModbusClient(endpoint: endpoint) } catch { client = UnavailableClient(error: error) }
                var tcp = false
                if case .tcp = endpoint { tcp = true }
                return RegisterLinkState(client: client, endpoint: endpoint.description, bus: bus, backoffMin: pollInterval, dropWhenSilent: tcp)
            }
        case .modbusRTUOverTCP(let host, let port):
            // RTU frames over a TCP socket (serial device servers, cellular DTUs): a half-open link is common.
            makeLink = {
                RegisterLinkState(client: RTUOverTCPClient(host: host, port: port), endpoint: "rtu-over-tcp://\(host):\(port)",
                                  bus: bus, backoffMin: pollInterval, dropWhenSilent: true)
            }
        case .asciiSerial:
            preconditionFailure("ModbusBus drives Modbus buses; FieldDrivers.make routes ascii-serial to AsciiSerialBus")
        }
        lane = BlockingLane(name: "bus-\(bus.name)", makeState: makeLink)
    }

    /// Polls every channel of the bus once; one sample per channel, in plan order. Never throws:
    /// failures become fault samples.
    public func poll() async -> [FieldSample] {
        let plan = self.plan, logger = self.logger
        do {
            return try await lane.run { state in state.poll(plan: plan, logger: logger) }
        } catch {
            return Array(Set(plan.reads.flatMap { $0.fields.map(\.channelIndex) })).sorted().map {
                FieldSample(channelIndex: $0, value: nil, status: .fault, reason: "bus stopped")
            }
        }
    }

    /// Closes the connection and ends the bus thread.
    public func shutdown() { lane.shutdown() }

    /// The bus thread: the poller runs on it, so a poll is a direct call, not two thread wake-ups.
    public var taskExecutor: (any TaskExecutor)? { lane }

    public func deviceHealth() async -> [Int: DeviceHealth] {
        (try? await lane.run { state in state.health }) ?? [:]
    }
}

/// Stands in for a libmodbus context that could not even be created (bad settings): every connection
/// attempt fails with the creation error, so the channels fault with a clear reason.
final class UnavailableClient: RegisterClient {
    let error: ModbusError
    init(error: ModbusError) { self.error = error }
    var isConnected: Bool { false }
    func connect() throws(ModbusError) { throw error }
    func close() {}
    func setResponseTimeout(_ timeout: Duration) {}
    func readHoldingRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] { throw error }
    func readInputRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] { throw error }
}
