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
        case .modbusRTUOverTCP, .asciiSerial:
            preconditionFailure("ModbusBus drives modbus-tcp and modbus-rtu buses; FieldDrivers.make routes \(bus.transport.name) elsewhere")
        }
        lane = BlockingLane(name: "bus-\(bus.name)") {
            LinkState(endpoint: endpoint, bus: bus, backoffMin: pollInterval)
        }
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

    public func deviceHealth() async -> [Int: DeviceHealth.State] {
        (try? await lane.run { state in state.health.mapValues(\.state) }) ?? [:]
    }
}

/// What one field of a request gave.
enum FieldOutcome {
    case value(Double)
    case status(InstrumentStatus, word: UInt16)
    case failed(String)
}

/// Connection and device state; lives on the bus thread only.
final class LinkState {
    let endpoint: ModbusEndpoint
    let bus: BusConfig
    let backoffMin: Duration
    private var client: ModbusClient?
    private var backoff: Duration
    private var nextAttempt: ContinuousClock.Instant?
    private var linkError: String?
    /// Last fault reason per request (index in plan.reads), to log transitions only.
    private var readFaults: [Int: String] = [:]
    /// Health of each slave on the bus.
    var health: [Int: DeviceHealth] = [:]

    init(endpoint: ModbusEndpoint, bus: BusConfig, backoffMin: Duration) {
        self.endpoint = endpoint
        self.bus = bus
        self.backoffMin = backoffMin
        self.backoff = backoffMin
    }

    func poll(plan: ReadPlan, logger: Logger) -> [FieldSample] {
        guard let client = connectedClient(logger: logger) else {
            let reason = linkError ?? "not connected"
            return combine(plan.reads.flatMap { read in read.fields.map { ($0, FieldOutcome.failed(reason)) } })
        }
        let now = ContinuousClock.now
        var outcomes: [(FieldDecoder, FieldOutcome)] = []
        var deadSlaves: [Int: String] = [:]
        var polled: Set<Int> = []
        var linkLost: String?
        var timeouts = 0, requests = 0
        for (i, read) in plan.reads.enumerated() {
            let device = health[read.slave] ?? DeviceHealth(offlineAfter: bus.offlineAfter, backoffMin: backoffMin, backoffMax: bus.reconnectMax)
            if linkLost == nil, deadSlaves[read.slave] == nil, !polled.contains(read.slave), !device.shouldPoll(at: now) {
                deadSlaves[read.slave] = "device offline, next try in \(max(0, (device.nextRetry! - now).components.seconds)) s"
            }
            health[read.slave] = device
            if let reason = linkLost ?? deadSlaves[read.slave] {
                outcomes += read.fields.map { ($0, .failed(reason)) }
                continue
            }
            polled.insert(read.slave)
            if requests > 0, bus.pauseBetweenRequests > .zero { Thread.sleep(forTimeInterval: bus.pauseBetweenRequests.inSeconds) }
            requests += 1
            do {
                outcomes += try perform(read, client: client)
                if readFaults.removeValue(forKey: i) != nil {
                    logger.notice("requests answered again", metadata: meta(read))
                }
            } catch {
                let reason = error.code.description
                if readFaults[i] != reason {
                    logger.warning("request failed: \(error)", metadata: meta(read))
                    readFaults[i] = reason
                } else {
                    logger.debug("request failed again: \(reason)", metadata: meta(read))
                }
                if error.code.needsReconnect {
                    linkLost = "connection lost"
                    dropLink(reason: error.description, logger: logger)
                } else if error.code == .timeout {
                    timeouts += 1
                    deadSlaves[read.slave] = "timeout"
                }
                outcomes += read.fields.map { ($0, .failed(reason)) }
            }
        }
        // Device health: a device that was asked and timed out failed this tick; one that answered (even
        // with an exception) is alive.
        for slave in polled {
            let answered = deadSlaves[slave] == nil && linkLost == nil
            if let changed = health[slave]?.record(answered: answered, at: now) {
                let text = "device \(slave) is \(changed.rawValue)"
                if changed == .online { logger.notice("\(text)", metadata: ["slave": "\(slave)"]) } else {
                    logger.warning("\(text)", metadata: ["slave": "\(slave)"])
                }
            }
        }
        // Over TCP, a tick in which nothing answered usually means a half-open connection: start afresh.
        if case .tcp = endpoint, timeouts > 0, timeouts == requests, linkLost == nil {
            dropLink(reason: "no device answered", logger: logger)
        }
        return combine(outcomes)
    }

    /// One sample per channel from its value and, when it has one, its status word: fault wins, then
    /// calibrating; a failed status read faults the channel too.
    func combine(_ outcomes: [(FieldDecoder, FieldOutcome)]) -> [FieldSample] {
        var value: [Int: FieldOutcome] = [:], status: [Int: FieldOutcome] = [:]
        var order: [Int] = []
        for (field, outcome) in outcomes {
            if case .status = field.role { status[field.channelIndex] = outcome } else {
                if value[field.channelIndex] == nil { order.append(field.channelIndex) }
                value[field.channelIndex] = outcome
            }
        }
        return order.map { index in
            var v: Double?
            switch value[index] {
            case .value(let x)?: v = x
            case .failed(let reason)?: return FieldSample(channelIndex: index, value: nil, status: .fault, reason: reason)
            default: break
            }
            switch status[index] {
            case .failed(let reason)?:
                return FieldSample(channelIndex: index, value: v, status: .fault, reason: "status register: \(reason)")
            case .status(let st, let word)?:
                let hex = String(word, radix: 16, uppercase: true)
                return FieldSample(channelIndex: index, value: v, status: st,
                                   reason: st == .fault ? "analyzer reports fault (status 0x\(hex))" : nil)
            default:
                return FieldSample(channelIndex: index, value: v, status: .measuring, reason: nil)
            }
        }
    }

    func outcome(_ field: FieldDecoder, _ regs: [UInt16]) -> FieldOutcome {
        switch field.role {
        case .value: return .value(field.value(from: regs))
        case .status(let st):
            let word = regs[field.offset]
            return .status(st.status(of: word), word: word)
        }
    }

    /// Reads a group; when a multi-field group is refused with an exception, falls back to one request
    /// per field so only the channels at the refused addresses fault.
    private func perform(_ read: RegisterRead, client: ModbusClient) throws(ModbusError) -> [(FieldDecoder, FieldOutcome)] {
        do {
            let regs = try request(client, slave: read.slave, kind: read.register, address: read.address, count: read.count)
            return read.fields.map { ($0, outcome($0, regs)) }
        } catch where error.code.exception != nil && read.fields.count > 1 {
            return read.fields.map { field in
                do throws(ModbusError) {
                    let regs = try request(client, slave: read.slave, kind: read.register,
                                           address: read.address + field.offset, count: field.count)
                    return (field, outcome(field, [UInt16](repeating: 0, count: field.offset) + regs))
                } catch {
                    return (field, .failed(error.code.description))
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
            c.setResponseTimeout(bus.timeout)
            try c.connect()
            if bus.pauseAfterConnect > .zero { Thread.sleep(forTimeInterval: bus.pauseAfterConnect.inSeconds) }
            client = c
            if linkError != nil { logger.notice("connected to \(endpoint)") }
            linkError = nil
            backoff = backoffMin
            nextAttempt = nil
            return c
        } catch {
            let reason = error.code == .connection ? "connection failed" : error.code.description
            if linkError != reason { logger.warning("cannot connect to \(endpoint): \(error); retrying with backoff up to \(bus.reconnectMax)") }
            linkError = reason
            nextAttempt = now + backoff
            backoff = min(backoff * 2, bus.reconnectMax)
            return nil
        }
    }

    private func dropLink(reason: String, logger: Logger) {
        client?.close()
        if linkError == nil { logger.warning("dropping connection to \(endpoint): \(reason)") }
        linkError = "connection lost"
        nextAttempt = nil  // first reconnect on the next tick, then backoff
    }

    private func meta(_ read: RegisterRead) -> Logger.Metadata {
        ["slave": "\(read.slave)", "address": "\(read.address)", "count": "\(read.count)",
         "channels": "\(read.fields.map(\.code).joined(separator: ","))"]
    }
}
