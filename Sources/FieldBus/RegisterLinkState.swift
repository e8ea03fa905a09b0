import Foundation
import Logging
import Modbus
import QuantracConfig
import QuantracCore

/// Connection and device state of a register bus driven through any `RegisterClient`; lives on the bus
/// thread only.
final class RegisterLinkState {
    /// What one field of a request gave.
    enum Outcome {
        case value(Double)
        case status(InstrumentStatus, word: UInt16)
        case failed(String)
    }

    let client: any RegisterClient
    let endpoint: String
    let bus: BusConfig
    let backoffMin: Duration
    private var backoff: Duration
    private var nextAttempt: ContinuousClock.Instant?
    private var linkError: String?
    private var readFaults: [Int: String] = [:]
    var health: [Int: DeviceHealth] = [:]

    /// Whether a tick in which nothing answered drops the connection (TCP links that may be half-open).
    let dropWhenSilent: Bool

    init(client: any RegisterClient, endpoint: String, bus: BusConfig, backoffMin: Duration, dropWhenSilent: Bool) {
        self.client = client
        self.dropWhenSilent = dropWhenSilent
        self.endpoint = endpoint
        self.bus = bus
        self.backoffMin = backoffMin
        backoff = backoffMin
    }

    func poll(plan: ReadPlan, logger: Logger) -> [FieldSample] {
        guard connect(logger: logger) else {
            let reason = linkError ?? "not connected"
            return combine(plan.reads.flatMap { read in read.fields.map { ($0, Outcome.failed(reason)) } })
        }
        let now = ContinuousClock.now
        var outcomes: [(FieldDecoder, Outcome)] = []
        var deadSlaves: [Int: String] = [:]
        var polled: Set<Int> = []
        var spent: [Int: Duration] = [:]
        var linkLost: String?
        var timeouts = 0, requests = 0
        for (i, read) in plan.reads.enumerated() {
            let device = health[read.slave] ?? DeviceHealth(offlineAfter: bus.offlineAfter, backoffMin: backoffMin, backoffMax: bus.reconnectMax)
            if linkLost == nil, deadSlaves[read.slave] == nil, !polled.contains(read.slave), !device.shouldPoll(at: now), let retry = device.nextRetry {
                deadSlaves[read.slave] = "device offline, next try in \(max(0, (retry - now).components.seconds)) s"
            }
            health[read.slave] = device
            if let reason = linkLost ?? deadSlaves[read.slave] {
                outcomes += read.fields.map { ($0, .failed(reason)) }
                continue
            }
            polled.insert(read.slave)
            if requests > 0, bus.pauseBetweenRequests > .zero { Thread.sleep(forTimeInterval: bus.pauseBetweenRequests.inSeconds) }
            requests += 1
            let started = ContinuousClock.now
            defer { spent[read.slave, default: .zero] += ContinuousClock.now - started }
            do {
                outcomes += try perform(read)
                if readFaults.removeValue(forKey: i) != nil { logger.notice("requests answered again", metadata: meta(read)) }
            } catch {
                let reason = error.code.description
                if readFaults[i] != reason {
                    logger.warning("request failed: \(error)", metadata: meta(read))
                    readFaults[i] = reason
                }
                if error.code.needsReconnect {
                    linkLost = "connection lost"
                    drop(reason: error.description, logger: logger)
                } else if error.code == .timeout {
                    timeouts += 1
                    deadSlaves[read.slave] = "timeout"
                }
                outcomes += read.fields.map { ($0, .failed(reason)) }
            }
        }
        for slave in polled {
            let answered = deadSlaves[slave] == nil && linkLost == nil
            if let changed = health[slave]?.record(answered: answered, at: now, took: spent[slave]) {
                let text = "device \(slave) is \(changed.rawValue)"
                if changed == .online { logger.notice("\(text)", metadata: ["slave": "\(slave)"]) } else {
                    logger.warning("\(text)", metadata: ["slave": "\(slave)"])
                }
            }
        }
        // Nothing answered over TCP: most likely a half-open connection (a DTU that lost its cell). Start afresh.
        if dropWhenSilent, timeouts > 0, timeouts == requests, linkLost == nil {
            drop(reason: "no device answered", logger: logger)
        }
        return combine(outcomes)
    }

    /// Reads a group; a multi-field group refused with an exception is retried field by field, so only
    /// the channels at the refused addresses fault.
    private func perform(_ read: RegisterRead) throws(ModbusError) -> [(FieldDecoder, Outcome)] {
        do {
            let regs = try request(slave: read.slave, kind: read.register, address: read.address, count: read.count)
            return read.fields.map { ($0, outcome($0, regs)) }
        } catch where error.code.exception != nil && read.fields.count > 1 {
            return read.fields.map { field in
                do throws(ModbusError) {
                    let regs = try request(slave: read.slave, kind: read.register, address: read.address + field.offset, count: field.count)
                    return (field, outcome(field, [UInt16](repeating: 0, count: field.offset) + regs))
                } catch {
                    return (field, .failed(error.code.description))
                }
            }
        }
    }

    private func request(slave: Int, kind: RegisterKind, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        switch kind {
        case .holding: return try client.readHoldingRegisters(slave: slave, address: address, count: count)
        case .input: return try client.readInputRegisters(slave: slave, address: address, count: count)
        }
    }

    private func outcome(_ field: FieldDecoder, _ regs: [UInt16]) -> Outcome {
        switch field.role {
        case .value: return .value(field.value(from: regs))
        case .status(let st):
            let word = regs[field.offset]
            return .status(st.status(of: word), word: word)
        }
    }

    /// One sample per channel from its value and, when it has one, its status word: fault wins, then
    /// calibrating; a failed status read faults the channel too.
    private func combine(_ outcomes: [(FieldDecoder, Outcome)]) -> [FieldSample] {
        var value: [Int: Outcome] = [:], status: [Int: Outcome] = [:]
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
                return FieldSample(channelIndex: index, value: v, status: st,
                                   reason: st == .fault ? "analyzer reports fault (status 0x\(String(word, radix: 16, uppercase: true)))" : nil)
            default:
                return FieldSample(channelIndex: index, value: v, status: .measuring, reason: nil)
            }
        }
    }

    private func connect(logger: Logger) -> Bool {
        if client.isConnected { return true }
        let now = ContinuousClock.now
        if let nextAttempt, now < nextAttempt { return false }
        do throws(ModbusError) {
            client.setResponseTimeout(bus.timeout)
            try client.connect()
            if bus.pauseAfterConnect > .zero { Thread.sleep(forTimeInterval: bus.pauseAfterConnect.inSeconds) }
            if linkError != nil { logger.notice("connected to \(endpoint)") }
            linkError = nil
            backoff = backoffMin
            nextAttempt = nil
            return true
        } catch {
            let reason = error.code == .connection ? "connection failed" : error.code.description
            if linkError != reason { logger.warning("cannot connect to \(endpoint): \(error); retrying with backoff up to \(bus.reconnectMax)") }
            linkError = reason
            nextAttempt = now + backoff
            backoff = min(backoff * 2, bus.reconnectMax)
            return false
        }
    }

    private func drop(reason: String, logger: Logger) {
        client.close()
        if linkError == nil { logger.warning("dropping connection to \(endpoint): \(reason)") }
        linkError = "connection lost"
        nextAttempt = nil
    }

    private func meta(_ read: RegisterRead) -> Logger.Metadata {
        ["slave": "\(read.slave)", "address": "\(read.address)", "count": "\(read.count)",
         "channels": "\(read.fields.map(\.code).joined(separator: ","))"]
    }
}
