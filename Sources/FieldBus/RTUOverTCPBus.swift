import Foundation
import Logging
import Modbus
import QuantracConfig
import QuantracCore

/// Polls a `modbus-rtu-over-tcp` bus (a serial device server or a cellular DTU in front of an RS-485
/// line) on its own thread, which owns the TCP connection.
///
/// Same plan and semantics as `ModbusBus`: grouped reads from `ReadPlan`, the same decoding and status
/// words; a failed request faults only the channels it carried (a group refused with an exception is
/// retried field by field); a device that timed out is skipped for the rest of the tick; devices have
/// the same health state machine (offline devices retried with backoff); a lost or refused connection is
/// re-opened with exponential backoff from the poll interval up to `reconnect_max`, and a tick in which
/// nothing answered drops the connection (a half-open link, common over cellular networks).
public final class RTUOverTCPBus: FieldDriver {
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
        var address = ("", 0)
        if case .modbusRTUOverTCP(let h, let p) = bus.transport { address = (h, p) }
        let (host, port) = address
        lane = BlockingLane(name: "bus-\(bus.name)") {
            RegisterLinkState(client: RTUOverTCPClient(host: host, port: port), endpoint: "rtu-over-tcp://\(host):\(port)",
                              bus: bus, backoffMin: pollInterval, dropWhenSilent: true)
        }
    }

    /// Polls every channel of the bus once; one sample per channel. Never throws: failures become fault samples.
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

    public func deviceHealth() async -> [Int: DeviceHealth.State] {
        (try? await lane.run { state in state.health.mapValues(\.state) }) ?? [:]
    }
}

