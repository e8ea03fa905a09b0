import FieldBus
import Foundation
import Modbus
import QuantracConfig
import QuantracCore

/// One bus the simulator serves, driven by its own thread: every `step` re-evaluates the devices at
/// scenario time `t`, then answers requests for a short while (up to 50 ms).
protocol ServedBus: AnyObject {
    var name: String { get }
    /// The TCP port or serial device path the daemon must use (the `READY` line).
    var address: String { get }
    var models: [DeviceModel] { get }
    func step(at t: Duration, wall: Double)
    /// Called once when the simulator stops.
    func stop()
}

extension ServedBus {
    func stop() {}
}

/// `--trace`: one stderr line per request, with what the device did about it.
struct RequestTrace {
    let enabled: Bool

    func log(bus: String, slave: Int, request: String, reply: DeviceMoment.Reply) {
        guard enabled else { return }
        let kind: String
        switch reply {
        case .normal: kind = "normal"
        case .silent: kind = "silent"
        case .exception(let c): kind = "exception-\(c)"
        case .garbage: kind = "garbage"
        case .powerOff: kind = "off"
        }
        SimLog.event("request bus=\(bus) slave=\(slave) \(request) reply=\(kind) ms=\(SimLog.unixMilliseconds)")
    }
}

/// Modbus TCP: the libmodbus server, one register map per unit, answers decided per device.
final class ModbusTCPBus: ServedBus {
    let name: String
    let models: [DeviceModel]
    private let server: ModbusServer
    private var images: [UInt8: RegisterImage] = [:]
    private var byUnit: [UInt8: DeviceModel] = [:]

    init(name: String, host: String, port: Int, models: [DeviceModel], trace: RequestTrace) throws(ModbusError) {
        self.name = name
        self.models = models
        server = try ModbusServer(tcpHost: host, port: port)
        for model in models {
            let unit = UInt8(truncatingIfNeeded: model.slave)
            let image = RegisterImage(channels: model.channels)
            images[unit] = image
            byUnit[unit] = model
            server.define(unit: unit, holdingCount: image.holding.count, inputCount: image.input.count)
        }
        server.decide = { [unowned self] request in
            guard let model = self.byUnit[request.unit] else { return .registers }
            trace.log(bus: name, slave: model.slave, request: "function=\(request.function) address=\(request.address) count=\(request.count)",
                      reply: model.moment.reply)
            switch model.moment.reply {
            case .normal: return .registers
            case .silent, .powerOff: return .silence
            case .garbage: return .garbage(Garbage.bytes())
            case .exception(let code): return .exception(ModbusException(rawValue: code) ?? .serverDeviceFailure)
            }
        }
    }

    var address: String { String(server.boundPort) }

    func step(at t: Duration, wall: Double) {
        for model in models { model.update(at: t) }
        let powerOff = models.contains { $0.moment.reply == .powerOff }
        if powerOff, server.isOpen {
            server.close()
        } else if !powerOff, !server.isOpen {
            do throws(ModbusError) { try server.reopen() } catch { SimLog.event("bus=\(name): cannot listen again: \(error)") }
        }
        for model in models {
            let unit = UInt8(truncatingIfNeeded: model.slave)
            images[unit]?.refresh(model, at: t, wall: wall)
            if let image = images[unit] {
                server.set(unit: unit, holding: image.holding, at: 0)
                server.set(unit: unit, input: image.input, at: 0)
            }
        }
        server.serve(for: .milliseconds(50))
    }
}

/// Modbus RTU on a serial line: any number of slaves share it; a request for a slave nobody simulates,
/// or for a silent one, gets no answer (the master times out).
final class RTUBus: ServedBus {
    let name: String
    let models: [DeviceModel]
    let line: SerialLine
    private var images: [Int: RegisterImage] = [:]
    private var byUnit: [Int: DeviceModel] = [:]
    private var buffer: [UInt8] = []
    private var lastInput = ContinuousClock.now

    private let trace: RequestTrace

    init(name: String, line: SerialLine, models: [DeviceModel], trace: RequestTrace) {
        self.name = name
        self.trace = trace
        self.line = line
        self.models = models
        for model in models {
            images[model.slave] = RegisterImage(channels: model.channels)
            byUnit[model.slave] = model
        }
    }

    var address: String { line.path }

    func step(at t: Duration, wall: Double) {
        for model in models {
            model.update(at: t)
            images[model.slave]?.refresh(model, at: t, wall: wall)
        }
        let bytes = line.read(timeoutMs: 50)
        let now = ContinuousClock.now
        if bytes.isEmpty {
            // A partial frame that never completed is noise: forget it.
            if !buffer.isEmpty, now - lastInput > .milliseconds(200) { buffer.removeAll() }
            return
        }
        lastInput = now
        buffer += bytes
        // Requests Quantrac sends (functions 1 to 6) are 8 bytes; find them by their CRC.
        while buffer.count >= 8 {
            let frame = Array(buffer[0..<8])
            guard RTUFrame.crc16(frame[0..<6]) == UInt16(frame[6]) | UInt16(frame[7]) << 8 else {
                buffer.removeFirst()
                continue
            }
            buffer.removeFirst(8)
            answer(frame)
        }
    }

    private func answer(_ frame: [UInt8]) {
        let unit = frame[0], function = frame[1]
        guard let model = byUnit[Int(unit)] else { return }
        let address = Int(frame[2]) << 8 | Int(frame[3]), count = Int(frame[4]) << 8 | Int(frame[5])
        trace.log(bus: name, slave: model.slave, request: "function=\(function) address=\(address) count=\(count)", reply: model.moment.reply)
        switch model.moment.reply {
        case .silent, .powerOff:
            return
        case .garbage:
            line.write(Garbage.bytes())
        case .exception(let code):
            line.write(RTUFrame.withCRC([unit, function | 0x80, code]))
        case .normal:
            guard function == 3 || function == 4 else {
                line.write(RTUFrame.withCRC([unit, function | 0x80, ModbusException.illegalFunction.rawValue]))
                return
            }
            guard (1...125).contains(count), let regs = images[Int(unit)]?.read(function == 3 ? .holding : .input, address: address, count: count) else {
                line.write(RTUFrame.withCRC([unit, function | 0x80, ModbusException.illegalDataAddress.rawValue]))
                return
            }
            line.write(RTUFrame.withCRC([unit, function, UInt8(2 * count)] + regs.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }))
        }
    }

    func stop() { line.removeLink() }
}

/// An `ascii-serial` bus: the line protocol (the analyzer answers each known request with its template)
/// or Bayern-Hessen (`DA` requests, `MD` answers, one analyzer per address on the line).
final class TextBus: ServedBus {
    let name: String
    let models: [DeviceModel]
    let line: SerialLine
    let proto: TextProtocol
    /// Line protocol: the framing of each request's answer (from the first channel sending it).
    private let framing: [[UInt8]: (terminator: [UInt8], checksum: LineChecksum)]
    private var buffer: [UInt8] = []
    private var lastInput = ContinuousClock.now
    private var t: Duration = .zero, wall = 0.0
    private let trace: RequestTrace

    init(name: String, proto: TextProtocol, line: SerialLine, models: [DeviceModel], channels: [ChannelConfig], trace: RequestTrace) {
        self.name = name
        self.trace = trace
        self.proto = proto
        self.line = line
        self.models = models
        var framing: [[UInt8]: (terminator: [UInt8], checksum: LineChecksum)] = [:]
        for ch in channels where ch.bus == name {
            if case .line(let l)? = ch.text, framing[l.request] == nil { framing[l.request] = (l.terminator, l.checksum) }
        }
        self.framing = framing
    }

    var address: String { line.path }

    func step(at t: Duration, wall: Double) {
        self.t = t
        self.wall = wall
        for model in models { model.update(at: t) }
        let bytes = line.read(timeoutMs: 50)
        let now = ContinuousClock.now
        if bytes.isEmpty {
            if !buffer.isEmpty, now - lastInput > .milliseconds(500) { buffer.removeAll() }
            return
        }
        lastInput = now
        buffer += bytes
        switch proto {
        case .line: serveLine()
        case .bayernHessen: serveBayernHessen()
        }
        if buffer.count > 4096 { buffer.removeFirst(buffer.count - 4096) }
    }

    // MARK: line protocol

    private func serveLine() {
        guard let model = models.first else {
            buffer.removeAll()
            return
        }
        while true {
            // The earliest known request in the buffer (the longest one when two start at the same byte).
            var best: (start: Int, request: [UInt8])?
            for request in model.device.answers.keys {
                guard let start = Self.find(request, in: buffer) else { continue }
                if let current = best, current.start < start || (current.start == start && current.request.count >= request.count) { continue }
                best = (start, request)
            }
            guard let best else { return }
            buffer.removeFirst(best.start + best.request.count)
            answerLine(best.request, model: model)
        }
    }

    private func answerLine(_ request: [UInt8], model: DeviceModel) {
        guard let template = model.device.answers[request], let (terminator, checksum) = framing[request] else { return }
        trace.log(bus: name, slave: model.slave, request: "request=\"\(printable(request))\"", reply: model.moment.reply)
        switch model.moment.reply {
        case .silent, .powerOff, .exception:
            return
        case .garbage:
            line.write(Garbage.bytes() + terminator)
        case .normal:
            let status = model.moment.status
            let text = SimAnswer.render(template) { name in
                if name == "status" { return model.statusText }
                guard let ch = model.channels.first(where: { $0.config.code == name }) else { return nil }
                return String(format: "%.\(ch.config.decimals)f", ch.raw(at: t, wall: wall, status: status))
            }
            var body = Array(text.utf8)
            if checksum != .none {
                body += Array(String(format: "%02X", LineFraming.checksum(checksum, of: body)).utf8)
            }
            line.write(body + terminator)
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    // MARK: Bayern-Hessen

    private func serveBayernHessen() {
        while let range = BayernHessen.completeFrame(in: buffer) {
            let frame = Array(buffer[range])
            buffer.removeFirst(range.upperBound)
            // Analyzers ignore frames with a wrong block check, and anything but DA.
            guard case .success(let textBytes) = BayernHessen.verify(frame) else { continue }
            let text = String(decoding: textBytes, as: UTF8.self)
            guard text.hasPrefix("DA"), let address = Int(text.dropFirst(2).trimmingCharacters(in: .whitespaces)),
                  let model = models.first(where: { $0.slave == address }) else { continue }
            trace.log(bus: name, slave: model.slave, request: "request=DA\(address)", reply: model.moment.reply)
            switch model.moment.reply {
            case .silent, .powerOff, .exception:
                continue
            case .garbage:
                line.write(Garbage.bytes())
            case .normal:
                line.write(mdAnswer(model))
            }
        }
        // Keep from the last STX on (a frame still arriving); drop noise before it.
        if let stx = buffer.lastIndex(of: BayernHessen.stx) { buffer.removeFirst(stx) } else { buffer.removeAll() }
    }

    /// `MD cc` with one component per position up to the highest `bh_component` (unused positions 0).
    private func mdAnswer(_ model: DeviceModel) -> [UInt8] {
        var byComponent: [Int: ChannelModel] = [:]
        for ch in model.channels {
            if case .bayernHessen(let bh)? = ch.config.text { byComponent[bh.component] = ch }
        }
        let count = byComponent.keys.max() ?? 0
        let status = String(format: "%02X", model.statusCode & 0xFF)
        let components = (1...max(1, count)).map { k -> String in
            let value = byComponent[k].map { BayernHessen.formatValue($0.raw(at: t, wall: wall, status: model.moment.status)) } ?? "+0000+00"
            return String(format: "%03d", k) + " \(value) \(status) 00 0000000000"
        }
        return BayernHessen.frame(String(format: "MD%02d ", count) + components.joined(separator: " ") + " ")
    }

    func stop() { line.removeLink() }
}
