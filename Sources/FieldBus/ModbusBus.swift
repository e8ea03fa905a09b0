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

/// Polls one Modbus bus (TCP or RTU) on its own thread, which owns the libmodbus context.
///
/// A failed request faults only the channels it carried; the rest of the bus goes on. A device that
/// timed out is skipped for the rest of the tick (one timeout per device per tick at most). A lost or
/// refused connection is re-opened with exponential backoff, from the poll interval up to `reconnect_max`.
public final class ModbusBus: FieldDriver {
    public let plan: ReadPlan
    public var busName: String { plan.bus.name }
    private let lane: BlockingLane<LinkState>
    private let logger: Logger

    public init(plan: ReadPlan, pollInterval: Duration, logger: Logger) {
        self.plan = plan
        var logger = logger
        logger[metadataKey: "bus"] = "\(plan.bus.name)"
        self.logger = logger
        let bus = plan.bus
        let endpoint: ModbusEndpoint
        switch bus.transport {
        case .modbusTCP(let host, let port):
            endpoint = .tcp(host: host, port: port)
        case .modbusRTU(let device, let baud, let parity, let dataBits, let stopBits):
            let p: SerialParity = parity == .even ? .even : parity == .odd ? .odd : .none
            endpoint = .rtu(device: device, baud: baud, parity: p, dataBits: dataBits, stopBits: stopBits)
        }
        lane = BlockingLane(name: "bus-\(bus.name)") {
            LinkState(endpoint: endpoint, timeout: bus.timeout, backoffMin: pollInterval, backoffMax: bus.reconnectMax)
        }
    }

    /// Polls every channel of the bus once; one sample per channel, in plan order. Never throws:
    /// failures become fault samples.
    public func poll() async -> [FieldSample] {
        let plan = self.plan, logger = self.logger
        do {
            return try await lane.run { state in state.poll(plan: plan, logger: logger) }
        } catch {
            return plan.reads.flatMap { read in
                read.fields.map { FieldSample(channelIndex: $0.channelIndex, value: nil, status: .fault, reason: "bus stopped") }
            }
        }
    }

    /// Closes the connection and ends the bus thread.
    public func shutdown() { lane.shutdown() }
}

/// Connection state; lives on the bus thread only.
final class LinkState {
    let endpoint: ModbusEndpoint
    let timeout: Duration
    let backoffMin: Duration
    let backoffMax: Duration
    private var client: ModbusClient?
    private var backoff: Duration
    private var nextAttempt: ContinuousClock.Instant?
    private var linkError: String?
    /// Last fault reason per request (index in plan.reads), to log transitions only.
    private var readFaults: [Int: String] = [:]

    init(endpoint: ModbusEndpoint, timeout: Duration, backoffMin: Duration, backoffMax: Duration) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.backoffMin = backoffMin
        self.backoffMax = backoffMax
        self.backoff = backoffMin
    }

    func poll(plan: ReadPlan, logger: Logger) -> [FieldSample] {
        guard let client = connectedClient(logger: logger) else {
            let reason = linkError ?? "not connected"
            return plan.reads.flatMap { fault($0.fields, reason) }
        }
        var samples: [FieldSample] = []
        var deadSlaves: [Int: String] = [:]
        var linkLost: String?
        var timeouts = 0
        for (i, read) in plan.reads.enumerated() {
            if let reason = linkLost ?? deadSlaves[read.slave] {
                samples += fault(read.fields, reason)
                continue
            }
            do {
                samples += try perform(read, client: client)
                if readFaults.removeValue(forKey: i) != nil {
                    logger.notice("requests answered again", metadata: meta(read))
                }
            } catch {
                let reason = error.code.description
                if readFaults[i] != reason {
                    logger.warning("request failed: \(error)", metadata: meta(read))
                    readFaults[i] = reason
                }
                if error.code.needsReconnect {
                    linkLost = "connection lost"
                    dropLink(reason: error.description, logger: logger)
                } else if error.code == .timeout {
                    timeouts += 1
                    deadSlaves[read.slave] = "timeout"
                }
                samples += fault(read.fields, reason)
            }
        }
        // Over TCP, a tick in which nothing answered usually means a half-open connection: start afresh.
        if case .tcp = endpoint, timeouts > 0, timeouts == plan.reads.count, linkLost == nil {
            dropLink(reason: "no device answered", logger: logger)
        }
        return samples
    }

    /// Reads a group; when a multi-field group is refused with an exception, falls back to one request
    /// per field so only the channels at the refused addresses fault.
    private func perform(_ read: RegisterRead, client: ModbusClient) throws(ModbusError) -> [FieldSample] {
        do {
            let regs = try request(client, slave: read.slave, kind: read.register, address: read.address, count: read.count)
            return read.fields.map { FieldSample(channelIndex: $0.channelIndex, value: $0.value(from: regs), status: .measuring, reason: nil) }
        } catch where error.code.exception != nil && read.fields.count > 1 {
            return read.fields.map { field in
                do throws(ModbusError) {
                    let regs = try request(client, slave: read.slave, kind: read.register,
                                           address: read.address + field.offset, count: field.count)
                    let single = [UInt16](repeating: 0, count: field.offset) + regs
                    return FieldSample(channelIndex: field.channelIndex, value: field.value(from: single), status: .measuring, reason: nil)
                } catch {
                    return FieldSample(channelIndex: field.channelIndex, value: nil, status: .fault, reason: error.code.description)
                }
            }
        }
    }

    private func request(_ client: ModbusClient, slave: Int, kind: RegisterKind, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        switch kind {
        case .holding: return try client.readHoldingRegisters(slave: slave, address: address, count: count)
        case .input: return try client.readInputRegisters(slave: slave, address: address, count: count)
        }
    }

    private func connectedClient(logger: Logger) -> ModbusClient? {
        if let client, client.isConnected { return client }
        let now = ContinuousClock.now
        if let nextAttempt, now < nextAttempt { return nil }
        do throws(ModbusError) {
            let c: ModbusClient
            if let existing = client { c = existing } else { c = try ModbusClient(endpoint: endpoint) }
            c.setResponseTimeout(timeout)
            try c.connect()
            client = c
            if linkError != nil { logger.notice("connected to \(endpoint)") }
            linkError = nil
            backoff = backoffMin
            nextAttempt = nil
            return c
        } catch {
            let reason = error.code == .connection ? "connection failed" : error.code.description
            if linkError != reason { logger.warning("cannot connect to \(endpoint): \(error); retrying with backoff up to \(backoffMax)") }
            linkError = reason
            nextAttempt = now + backoff
            backoff = min(backoff * 2, backoffMax)
            return nil
        }
    }

    private func dropLink(reason: String, logger: Logger) {
        client?.close()
        if linkError == nil { logger.warning("dropping connection to \(endpoint): \(reason)") }
        linkError = "connection lost"
        nextAttempt = nil  // first reconnect on the next tick, then backoff
    }

    private func fault(_ fields: [FieldDecoder], _ reason: String) -> [FieldSample] {
        fields.map { FieldSample(channelIndex: $0.channelIndex, value: nil, status: .fault, reason: reason) }
    }

    private func meta(_ read: RegisterRead) -> Logger.Metadata {
        ["slave": "\(read.slave)", "address": "\(read.address)", "count": "\(read.count)",
         "channels": "\(read.fields.map(\.code).joined(separator: ","))"]
    }
}
