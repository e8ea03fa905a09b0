import Foundation
import Logging
import QuantracConfig
import QuantracCore
import SerialPort

/// A byte pipe to the devices of one serial line. Used only on the bus lane thread that owns it.
/// `SerialPort` is the real one; tests pass scripted fakes.
public protocol ByteLink: AnyObject {
    /// Writes all of `bytes` within `timeout`.
    func send(_ bytes: [UInt8], timeout: Duration) throws(SerialPortError)
    /// Returns as soon as some bytes are there (at most `maxCount`); empty when `timeout` passed first.
    func receive(maxCount: Int, timeout: Duration) throws(SerialPortError) -> [UInt8]
    /// Drops whatever has arrived and was not read (late answers, noise).
    func discardInput() throws(SerialPortError)
}

extension SerialPort: ByteLink {
    public func send(_ bytes: [UInt8], timeout: Duration) throws(SerialPortError) { try write(bytes, timeout: timeout) }
    public func receive(maxCount: Int, timeout: Duration) throws(SerialPortError) -> [UInt8] {
        try readAvailable(maxCount: maxCount, timeout: timeout)
    }
    public func discardInput() throws(SerialPortError) { try flushInput() }
}

/// One channel's part of an exchange: where its value is in the answer.
public struct TextField: Sendable {
    public enum Reader: Sendable {
        /// Regular expression and status texts (line protocol).
        case line(pattern: String, statusMap: [String: InstrumentStatus])
        /// Component and status masks (Bayern-Hessen).
        case bayernHessen(BayernHessenChannel)
    }

    /// Index of the channel in `StationConfig.channels`.
    public let channelIndex: Int
    public let code: String
    public let reader: Reader
    let scale: Double
    let valueOffset: Double
}

/// One request on the line and the channels its answer feeds.
public struct TextExchange: Sendable {
    public enum Framing: Sendable, Hashable {
        /// Answer ends with `terminator`; optional checksum before it.
        case line(terminator: [UInt8], checksum: LineChecksum)
        /// `STX … ETX bcc1 bcc2`.
        case bayernHessen
    }

    public let request: [UInt8]
    public let framing: Framing
    public let fields: [TextField]
    /// The analyzer asked: its Bayern-Hessen address, or 1 for the one analyzer of a `line` bus.
    public let device: Int
}

/// The compiled polling plan of an `ascii-serial` bus: one exchange per distinct request (a line
/// request, or a Bayern-Hessen `DA` per analyzer address), in order of first use by the channels.
public struct TextPlan: Sendable {
    public let bus: BusConfig
    public let exchanges: [TextExchange]

    public init(bus: BusConfig, channels: [ChannelConfig]) {
        self.bus = bus
        var keys: [String] = []
        var grouped: [String: (request: [UInt8], framing: TextExchange.Framing, fields: [TextField], device: Int)] = [:]
        for (index, ch) in channels.enumerated() where ch.bus == bus.name {
            guard let text = ch.text else { continue }
            let request: [UInt8], framing: TextExchange.Framing, reader: TextField.Reader
            switch text {
            case .line(let l):
                request = l.request
                framing = .line(terminator: l.terminator, checksum: l.checksum)
                reader = .line(pattern: l.response, statusMap: l.statusMap)
            case .bayernHessen(let bh):
                request = BayernHessen.dataRequest(address: bh.address)
                framing = .bayernHessen
                reader = .bayernHessen(bh)
            }
            let key = "\(request)|\(framing)"
            let field = TextField(channelIndex: index, code: ch.code, reader: reader, scale: ch.scale, valueOffset: ch.offset)
            if grouped[key] == nil {
                keys.append(key)
                grouped[key] = (request, framing, [], ch.slave)
            }
            grouped[key]!.fields.append(field)
        }
        exchanges = keys.map {
            TextExchange(request: grouped[$0]!.request, framing: grouped[$0]!.framing, fields: grouped[$0]!.fields, device: grouped[$0]!.device)
        }
    }
}

/// Polls an `ascii-serial` bus (line or Bayern-Hessen protocol) through libserialport, on its own thread.
///
/// Every poll sends each exchange's request once, after discarding whatever is waiting in the input
/// buffer, and waits up to the bus `timeout` for the answer. A timeout, noise, a bad checksum or block
/// check, or an answer that does not parse faults only the channels of that exchange, with the reason;
/// the next exchange and the next poll go on. Each analyzer (a Bayern-Hessen address; the one analyzer of
/// a `line` bus) has a `DeviceHealth`, as a Modbus slave does: one that timed out is not asked again in
/// the same poll, and an offline one only after its backoff, so a dead analyzer costs at most one timeout
/// per poll and comes back by itself. A port that cannot be opened (or disappears, like an unplugged USB
/// adapter) is re-opened with exponential backoff from the poll interval up to `reconnect_max`.
public final class AsciiSerialBus: FieldDriver {
    public let plan: TextPlan
    public var busName: String { plan.bus.name }
    private let lane: BlockingLane<TextLink>
    private let logger: Logger

    public init(plan: TextPlan, pollInterval: Duration, logger: Logger) {
        self.plan = plan
        var logger = logger
        logger[metadataKey: "bus"] = "\(plan.bus.name)"
        self.logger = logger
        let bus = plan.bus
        var path = "", settings = SerialSettings(baud: 9600)
        if case .asciiSerial(let device, let baud, let parity, let dataBits, let stopBits, _) = bus.transport {
            path = device
            settings = SerialSettings(baud: baud, parity: parity == .even ? .even : parity == .odd ? .odd : .none,
                                      dataBits: dataBits, stopBits: stopBits)
        }
        let plan = self.plan, device = path, lineSettings = settings
        lane = BlockingLane(name: "bus-\(bus.name)") {
            TextLink(plan: plan, endpoint: "\(device) \(lineSettings)", backoffMin: pollInterval) { () throws(SerialPortError) -> any ByteLink in
                try SerialPort(path: device, settings: lineSettings)
            }
        }
    }

    /// Polls every channel of the bus once; one sample per channel. Never throws: failures become fault samples.
    public func poll() async -> [FieldSample] {
        let logger = self.logger
        do {
            return try await lane.run { link in link.poll(logger: logger) }
        } catch {
            return plan.exchanges.flatMap { $0.fields.map { FieldSample(channelIndex: $0.channelIndex, value: nil, status: .fault, reason: "bus stopped") } }
        }
    }

    /// Closes the port and ends the bus thread.
    public func shutdown() { lane.shutdown() }

    public func deviceHealth() async -> [Int: DeviceHealth] {
        (try? await lane.run { link in link.health }) ?? [:]
    }
}

/// The port and the exchange logic of one text bus; lives on the bus lane thread only.
public final class TextLink {
    public let plan: TextPlan
    let endpoint: String
    let open: () throws(SerialPortError) -> any ByteLink
    let backoffMin: Duration
    private var link: (any ByteLink)?
    private var backoff: Duration
    private var nextAttempt: ContinuousClock.Instant?
    private var linkError: String?
    /// Regular expressions per exchange and field, compiled once on this thread (nil: invalid, cannot
    /// happen after config validation).
    private let matchers: [[LineMatcher?]]
    /// Last fault reason per exchange, to log transitions only.
    private var exchangeFaults: [Int: String] = [:]
    /// Health of each analyzer on the line, by device (Bayern-Hessen address, or 1).
    public private(set) var health: [Int: DeviceHealth] = [:]

    /// - Parameters:
    ///   - endpoint: the device and settings, for messages.
    ///   - backoffMin: first wait before re-opening a port that failed (the poll interval).
    ///   - open: opens the port; called on this thread.
    public init(plan: TextPlan, endpoint: String, backoffMin: Duration,
                open: @escaping () throws(SerialPortError) -> any ByteLink) {
        self.plan = plan
        self.endpoint = endpoint
        self.open = open
        self.backoffMin = backoffMin
        backoff = backoffMin
        matchers = plan.exchanges.map { exchange in
            exchange.fields.map { field in
                if case .line(let pattern, let statusMap) = field.reader { return try? LineMatcher(pattern: pattern, statusMap: statusMap) }
                return nil
            }
        }
    }

    /// Runs every exchange once and returns one sample per channel, exchange by exchange.
    public func poll(logger: Logger) -> [FieldSample] {
        guard let link = openedLink(logger: logger) else {
            let reason = linkError ?? "not connected"
            return plan.exchanges.flatMap { fault($0.fields, reason) }
        }
        var samples: [FieldSample] = []
        var lost: String?
        let now = ContinuousClock.now
        /// Analyzers not to ask again in this poll (timed out, or offline and not due), with the reason.
        var skipped: [Int: String] = [:]
        var polled: Set<Int> = []
        var spent: [Int: Duration] = [:]
        var requests = 0
        for (i, exchange) in plan.exchanges.enumerated() {
            if let lost {
                samples += fault(exchange.fields, lost)
                continue
            }
            let device = exchange.device
            let state = health[device] ?? DeviceHealth(offlineAfter: plan.bus.offlineAfter, backoffMin: backoffMin, backoffMax: plan.bus.reconnectMax)
            health[device] = state
            if skipped[device] == nil, !polled.contains(device), !state.shouldPoll(at: now), let retry = state.nextRetry {
                skipped[device] = "device offline, next try in \(max(0, (retry - now).components.seconds)) s"
            }
            if let reason = skipped[device] {
                samples += fault(exchange.fields, reason)
                continue
            }
            polled.insert(device)
            if requests > 0, plan.bus.pauseBetweenRequests > .zero { Thread.sleep(forTimeInterval: plan.bus.pauseBetweenRequests.inSeconds) }
            requests += 1
            let started = ContinuousClock.now
            let result = transact(exchange, on: link)
            spent[device, default: .zero] += ContinuousClock.now - started
            let produced: [FieldSample]
            switch result {
            case .success(let frame):
                produced = decode(frame, exchange: exchange, matchers: matchers[i])
            case .failure(.port(let error)):
                lost = error.code.needsReopen ? "serial port lost: \(error.code)" : nil
                if error.code.needsReopen { drop(reason: error.description, logger: logger) }
                produced = fault(exchange.fields, lost ?? "serial port: \(error.code)")
            case .failure(.timeout):
                skipped[device] = "timeout"
                produced = fault(exchange.fields, ExchangeFailure.timeout.description)
            case .failure(let failure):
                produced = fault(exchange.fields, failure.description)
            }
            let firstFault = produced.first { $0.status == .fault }?.reason
            note(exchange: i, fault: firstFault, logger: logger)
            samples += produced
        }
        // An analyzer answered when it sent anything (even noise) and the port stayed.
        for device in polled.sorted() {
            let answered = skipped[device] == nil && lost == nil
            if let changed = health[device]?.record(answered: answered, at: now, took: spent[device]) {
                let text = "device \(device) is \(changed.rawValue)"
                if changed == .online { logger.notice("\(text)", metadata: ["slave": "\(device)"]) } else {
                    logger.warning("\(text)", metadata: ["slave": "\(device)"])
                }
            }
        }
        return samples
    }

    /// Why an exchange gave no usable answer.
    enum ExchangeFailure: Error, CustomStringConvertible {
        case port(SerialPortError)
        case timeout
        case incomplete(Int, [UInt8])
        case overflow
        case line(LineFraming.LineError)
        case frame(BayernHessen.FrameError)

        var description: String {
            switch self {
            case .port(let e): return "serial port: \(e.code)"
            case .timeout: return "timeout"
            case .incomplete(let n, let bytes): return "incomplete answer (\(n) bytes, no end of frame): \"\(printable(bytes))\""
            case .overflow: return "answer too long (no end of frame in \(TextLink.maxAnswer) bytes)"
            case .line(let e): return e.description
            case .frame(let e): return e.description
            }
        }
    }

    static let maxAnswer = 4096

    /// Discards pending input, sends the request and reads until a complete frame or the timeout.
    /// Returns the frame: the answer line (no terminator) or the Bayern-Hessen frame (STX … BCC).
    func transact(_ exchange: TextExchange, on link: any ByteLink) -> Result<[UInt8], ExchangeFailure> {
        let timeout = plan.bus.timeout
        do throws(SerialPortError) {
            try link.discardInput()
            try link.send(exchange.request, timeout: timeout)
            let deadline = ContinuousClock.now + timeout
            var buffer: [UInt8] = []
            while true {
                switch exchange.framing {
                case .line(let terminator, _):
                    while let found = LineFraming.firstLine(in: buffer, terminator: terminator) {
                        if !found.line.isEmpty { return .success(found.line) }
                        buffer.removeFirst(found.consumed)
                    }
                case .bayernHessen:
                    if let range = BayernHessen.completeFrame(in: buffer) { return .success(Array(buffer[range])) }
                }
                if buffer.count > Self.maxAnswer { return .failure(.overflow) }
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero { return .failure(buffer.isEmpty ? .timeout : .incomplete(buffer.count, buffer)) }
                buffer += try link.receive(maxCount: 512, timeout: remaining)
            }
        } catch {
            return .failure(.port(error))
        }
    }

    /// One sample per field of `exchange` from its answer frame.
    func decode(_ frame: [UInt8], exchange: TextExchange, matchers: [LineMatcher?]) -> [FieldSample] {
        switch exchange.framing {
        case .line(_, let checksum):
            let body: [UInt8]
            switch LineFraming.verify(frame, checksum: checksum) {
            case .success(let b): body = b
            case .failure(let e): return fault(exchange.fields, e.description)
            }
            let text = LineFraming.text(body)
            return zip(exchange.fields, matchers).map { field, matcher in
                guard let matcher else { return FieldSample(channelIndex: field.channelIndex, value: nil, status: .fault, reason: "invalid response pattern") }
                let r = matcher.read(text)
                return FieldSample(channelIndex: field.channelIndex, value: r.value.map { $0 * field.scale + field.valueOffset },
                                   status: r.status, reason: r.reason)
            }
        case .bayernHessen:
            let components: [BayernHessen.Component]
            switch BayernHessen.verify(frame).flatMap(BayernHessen.parseMD) {
            case .success(let c): components = c
            case .failure(let e): return fault(exchange.fields, e.description)
            }
            return exchange.fields.map { field in
                guard case .bayernHessen(let ch) = field.reader else {
                    return FieldSample(channelIndex: field.channelIndex, value: nil, status: .fault, reason: "not a Bayern-Hessen channel")
                }
                guard ch.component <= components.count else {
                    return FieldSample(channelIndex: field.channelIndex, value: nil, status: .fault,
                                       reason: "the MD answer has no component \(ch.component) (it carries \(components.count))")
                }
                let c = components[ch.component - 1]
                let (status, reason) = BayernHessen.status(of: c, ch)
                return FieldSample(channelIndex: field.channelIndex, value: c.value * field.scale + field.valueOffset, status: status, reason: reason)
            }
        }
    }

    private func openedLink(logger: Logger) -> (any ByteLink)? {
        if let link { return link }
        let now = ContinuousClock.now
        if let nextAttempt, now < nextAttempt { return nil }
        do throws(SerialPortError) {
            let opened = try open()
            link = opened
            if linkError != nil { logger.notice("opened \(endpoint)") }
            linkError = nil
            backoff = backoffMin
            nextAttempt = nil
            if plan.bus.pauseAfterConnect > .zero { Thread.sleep(forTimeInterval: plan.bus.pauseAfterConnect.inSeconds) }
            return opened
        } catch {
            let reason = "cannot open \(endpoint.split(separator: " ").first ?? ""): \(error.code)"
            if linkError != reason { logger.warning("cannot open \(endpoint): \(error); retrying with backoff up to \(plan.bus.reconnectMax)") }
            linkError = reason
            nextAttempt = now + backoff
            backoff = min(backoff * 2, plan.bus.reconnectMax)
            return nil
        }
    }

    private func drop(reason: String, logger: Logger) {
        link = nil  // SerialPort closes in deinit
        if linkError == nil { logger.warning("closing \(endpoint): \(reason)") }
        linkError = "serial port lost"
        nextAttempt = nil  // re-open on the next poll, then back off
    }

    private func note(exchange i: Int, fault: String?, logger: Logger) {
        let meta: Logger.Metadata = ["request": "\(printable(plan.exchanges[i].request))",
                                     "channels": "\(plan.exchanges[i].fields.map(\.code).joined(separator: ","))"]
        if let fault {
            if exchangeFaults[i] != fault { logger.warning("request failed: \(fault)", metadata: meta) }
            exchangeFaults[i] = fault
        } else if exchangeFaults.removeValue(forKey: i) != nil {
            logger.notice("requests answered again", metadata: meta)
        }
    }

    private func fault(_ fields: [TextField], _ reason: String) -> [FieldSample] {
        fields.map { FieldSample(channelIndex: $0.channelIndex, value: nil, status: .fault, reason: reason) }
    }
}
