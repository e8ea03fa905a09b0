import Foundation
import QuantracCore
import TOMLKit

/// A `quantrac-sim` scenario: the station configuration whose analyzers the simulator serves, how each
/// bus is served, and how each device (analyzer) behaves over time — waveforms, status words and a
/// timeline of faults. Validated against the station: every name, slave and code must exist there.
///
/// Times in a scenario are durations since the simulator started serving (its `READY` lines).
public struct Scenario: Sendable {
    /// The scenario file (for messages).
    public var file: String
    /// The station configuration file, resolved against the scenario's directory.
    public var stationFile: String
    public var station: StationConfig
    /// How each bus of the station is served, by bus name (every bus of the station has an entry).
    public var endpoints: [String: SimEndpoint]
    /// Every device of the station (listed in the scenario or not), in order of first use by a channel.
    public var devices: [SimDevice]
    /// How each channel's value moves, by channel code (every channel of the station has an entry).
    public var channels: [String: SimChannel]

    /// The devices of one bus.
    public func devices(onBus bus: String) -> [SimDevice] { devices.filter { $0.bus == bus } }
}

/// Where and how the simulator serves one bus.
public enum SimEndpoint: Sendable, Hashable {
    /// Modbus TCP: listen on the station's host at this port (0: a free port, printed on `READY`).
    case tcp(port: Int)
    /// A serial bus on a new pseudo-terminal pair; the daemon opens the other end (`/dev/pts/N`, printed on
    /// `READY`), also reachable through the symbolic link `link` when given.
    case pty(link: String?)
    /// A serial bus on an existing serial device (a real port, or one end of a socat pair).
    case device(String)
    /// Not served (`serve = false`), or a transport the simulator does not serve (RTU over TCP).
    case off
}

/// One scripted fault of a device: active from `at` for `duration`, again every `every` when given.
public struct SimFault: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        /// No reply at all: the master times out.
        case timeout
        /// A Modbus exception reply (`code`).
        case exception
        /// Random bytes instead of the reply.
        case garbage
        /// TCP: the listening socket and its connections close, and open again after the fault. Serial: the
        /// analyzer is silent and drops what it receives (the line itself belongs to the gateway).
        case powerCycle = "power_cycle"
        /// The analyzer's status shows calibrating and its values go to their span value.
        case calibrating
        /// The analyzer's status shows a fault; its values go on.
        case alarm
    }

    public var kind: Kind
    public var at: Duration
    public var duration: Duration
    public var every: Duration?
    /// The exception code of an `exception` fault.
    public var exceptionCode: UInt8

    public init(kind: Kind, at: Duration, duration: Duration, every: Duration? = nil, exceptionCode: UInt8 = 4) {
        self.kind = kind
        self.at = at
        self.duration = duration
        self.every = every
        self.exceptionCode = exceptionCode
    }

    /// Whether the fault is in effect `t` after the start: `at ≤ t < at + duration`, repeated every `every`.
    public func isActive(at t: Duration) -> Bool {
        guard t >= at else { return false }
        let since = t - at
        guard let every else { return since < duration }
        let ms = since.wholeMilliseconds, period = every.wholeMilliseconds
        return Duration.milliseconds(ms % period) < duration
    }

    /// `timeout for 20s at 1m every 5m`: for logs.
    public var summary: String {
        var s = kind.rawValue
        if kind == .exception { s += " \(exceptionCode)" }
        s += " for \(Self.text(duration)) at \(Self.text(at))"
        if let every { s += " every \(Self.text(every))" }
        return s
    }

    static func text(_ d: Duration) -> String {
        let ms = d.wholeMilliseconds
        if ms % 1000 != 0 { return "\(ms)ms" }
        let s = ms / 1000
        if s % 3600 == 0, s > 0 { return "\(s / 3600)h" }
        if s % 60 == 0, s > 0 { return "\(s / 60)m" }
        return "\(s)s"
    }
}

/// One simulated device: a Modbus slave, a Bayern-Hessen analyzer address, or the analyzer behind a
/// `line` protocol bus (device 1).
public struct SimDevice: Sendable {
    public var bus: String
    /// Modbus unit id, Bayern-Hessen address, or 1 on a `line` bus.
    public var slave: Int
    /// Never answers (an analyzer that is off or not connected).
    public var absent: Bool
    /// The status register word (Modbus) or status byte (Bayern-Hessen) shown for each state, consistent
    /// with the station's `status_*` / `bh_*_mask` keys; a state missing here cannot be shown.
    public var statusCodes: [InstrumentStatus: Int]
    /// The status text (`line` protocol, from the channels' `status_map`) shown for each state.
    public var statusTexts: [InstrumentStatus: String]
    public var faults: [SimFault]
    /// `line` protocol: the answer template per request (bytes as sent by the daemon).
    public var answers: [[UInt8]: String]
}

/// How one channel's value moves (engineering units, after scale and offset).
public struct SimChannel: Sendable {
    public enum Waveform: String, Sendable, CaseIterable {
        /// The symbol's typical level with a slow swing and a little noise (the default).
        case typical
        /// Always `base`.
        case constant
        /// `base + amplitude · sin(2π t / period)`.
        case sine
        /// From `base` up to `base + amplitude`, then back to `base`, every `period`.
        case ramp
    }

    public var code: String
    public var waveform: Waveform
    public var base: Double
    public var amplitude: Double
    public var period: Duration
    /// The value while the device calibrates (the span gas or standard).
    public var span: Double
    /// Waveform `typical`: the channel's position in the station file, to spread phases.
    public var seed: Int
}

/// A scenario that failed to load: every problem with its key path (`device[1].fault[0].for`).
public typealias ScenarioError = ConfigError

public enum ScenarioLoader {
    /// Loads the scenario at `path` and the station configuration it names.
    public static func load(path: String) throws(ScenarioError) -> Scenario {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, issues: [ConfigIssue(path: "", message: "cannot read \(path): no such file, permission denied or not UTF-8")])
        }
        return try parse(text, file: path)
    }

    /// Validates scenario text; `station` paths are relative to the directory of `file`.
    public static func parse(_ text: String, file: String) throws(ScenarioError) -> Scenario {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "line \(error.source.begin.line): TOML syntax error: \(error.description)")])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "TOML syntax error: \(error)")])
        }
        let issues = IssueCollector()
        let top = TableReader(root, path: "", issues: issues)
        guard let stationName = top.string("station", required: true) else {
            throw ConfigError(file: file, issues: issues.issues)
        }
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        let stationFile = stationName.hasPrefix("/") ? stationName : base.appendingPathComponent(stationName).standardizedFileURL.path
        let station: StationConfig
        do {
            station = try ConfigLoader.load(path: stationFile)
        } catch {
            var all = issues.issues
            all.append(ConfigIssue(path: "station", message: "\(stationFile) is not a valid station configuration:\n"
                                   + error.issues.map { "  \($0)" }.joined(separator: "\n")))
            throw ConfigError(file: file, issues: all)
        }
        let scenario = ScenarioParser(issues: issues, station: station).parse(top, file: file, stationFile: stationFile)
        if issues.issues.isEmpty { return scenario }
        throw ConfigError(file: file, issues: issues.issues)
    }

    /// The scenario of `quantrac-sim --config`: every bus served where the station says (TCP) or not at all
    /// (serial, unless `serial` names a device), every device present, typical waveforms, no faults.
    public static func defaults(for station: StationConfig, file: String, serial: [String: String] = [:],
                                ports: [String: Int] = [:], absent: Set<Int> = []) -> Scenario {
        let issues = IssueCollector()
        var scenario = ScenarioParser(issues: issues, station: station).parse(nil, file: file, stationFile: file)
        for bus in station.buses {
            switch bus.transport {
            case .modbusTCP(_, let port): scenario.endpoints[bus.name] = .tcp(port: ports[bus.name] ?? port)
            case .modbusRTU, .asciiSerial: scenario.endpoints[bus.name] = serial[bus.name].map { .device($0) } ?? .off
            case .modbusRTUOverTCP: scenario.endpoints[bus.name] = .off
            }
        }
        for i in scenario.devices.indices where absent.contains(scenario.devices[i].slave) { scenario.devices[i].absent = true }
        return scenario
    }
}

/// Reads the tables of a scenario against its station. One use only.
private final class ScenarioParser {
    let issues: IssueCollector
    let station: StationConfig
    /// Answer templates of line-protocol channels by code, with their key paths.
    private var answers: [String: (template: String, path: String)] = [:]

    init(issues: IssueCollector, station: StationConfig) {
        self.issues = issues
        self.station = station
    }

    /// `top` nil: defaults only (no scenario file).
    func parse(_ top: TableReader?, file: String, stationFile: String) -> Scenario {
        var endpoints: [String: SimEndpoint] = [:]
        for bus in station.buses {
            switch bus.transport {
            case .modbusTCP(_, let port): endpoints[bus.name] = .tcp(port: port)
            case .modbusRTU, .asciiSerial: endpoints[bus.name] = .pty(link: nil)
            case .modbusRTUOverTCP: endpoints[bus.name] = .off
            }
        }
        var channels: [String: SimChannel] = [:]
        for (i, ch) in station.channels.enumerated() { channels[ch.code] = Self.typical(ch, seed: i) }
        var devices = defaultDevices()
        if let top {
            for t in arrayOfTables(top, "bus") { parseBus(t, into: &endpoints) }
            // Channels before devices: status checks and answers use the channels' settings.
            for t in arrayOfTables(top, "channel") { parseChannel(t, into: &channels) }
            var seen: [String: String] = [:]
            for t in arrayOfTables(top, "device") { parseDevice(t, into: &devices, seen: &seen) }
            top.rejectUnknownKeys()
            attachAnswers(to: &devices, required: true)
        }
        return Scenario(file: file, stationFile: stationFile, station: station, endpoints: endpoints, devices: devices, channels: channels)
    }

    func arrayOfTables(_ parent: TableReader, _ key: String) -> [TableReader] {
        guard let v = parent.table[key] else { return [] }
        parent.markUsed(key)
        guard let array = v.array else {
            parent.error(key, "must be an array of tables ([[\(parent.keyPath(key))]])")
            return []
        }
        var readers: [TableReader] = []
        for (i, element) in array.enumerated() {
            guard let t = element.table else {
                issues.add("\(parent.keyPath(key))[\(i)]", "must be a table ([[\(parent.keyPath(key))]])")
                continue
            }
            readers.append(TableReader(t, path: "\(parent.keyPath(key))[\(i)]", issues: issues))
        }
        return readers
    }

    func knownBuses() -> String { station.buses.map(\.name).joined(separator: ", ") }

    // MARK: buses

    func parseBus(_ t: TableReader, into endpoints: inout [String: SimEndpoint]) {
        defer { t.rejectUnknownKeys() }
        guard let name = t.string("name", required: true) else { return }
        guard let bus = station.bus(named: name) else {
            t.error("name", "\"\(name)\" is not a [[bus]] of the station (known: \(knownBuses()))")
            return
        }
        let serve = t.bool("serve", default: true)
        switch bus.transport {
        case .modbusTCP(_, let stationPort):
            for key in ["link", "device"] where t.has(key) {
                t.markUsed(key)
                t.error(key, "only applies to serial buses (modbus-rtu, ascii-serial); \(name) is modbus-tcp")
            }
            let port = t.int("port", default: stationPort, range: 0...65535)!
            endpoints[name] = serve ? .tcp(port: port) : .off
        case .modbusRTU, .asciiSerial:
            if t.has("port") {
                t.markUsed("port")
                t.error("port", "only applies to modbus-tcp buses; \(name) is \(bus.transport.name)")
            }
            let link = t.string("link"), device = t.string("device")
            if link != nil, device != nil { t.error("device", "give either link (a new pseudo-terminal) or device (an existing port), not both") }
            if link?.isEmpty == true { t.error("link", "must not be empty") }
            if device?.isEmpty == true { t.error("device", "must not be empty") }
            endpoints[name] = !serve ? .off : device.map { .device($0) } ?? .pty(link: link)
        case .modbusRTUOverTCP:
            t.error("name", "\(name) is modbus-rtu-over-tcp, which the simulator does not serve")
        }
    }

    // MARK: channels

    static func typical(_ ch: ChannelConfig, seed: Int) -> SimChannel {
        let (level, swing) = TypicalLevels.level(of: ch.code)
        return SimChannel(code: ch.code, waveform: .typical, base: level, amplitude: swing, period: .seconds(600),
                          span: level + 2 * swing, seed: seed)
    }

    func parseChannel(_ t: TableReader, into channels: inout [String: SimChannel]) {
        defer { t.rejectUnknownKeys() }
        guard let code = t.string("code", required: true) else { return }
        guard let index = station.channels.firstIndex(where: { $0.code == code }) else {
            t.error("code", "\"\(code)\" is not the code of a [[channel]] of the station")
            return
        }
        let config = station.channels[index]
        var ch = Self.typical(config, seed: index)
        let waveform: SimChannel.Waveform = t.choice("waveform", default: t.has("base") ? .constant : .typical)!
        if waveform != .typical, !t.has("base") { t.error("base", "missing; waveform \"\(waveform.rawValue)\" needs base = <value>") }
        ch.waveform = waveform
        ch.base = t.double("base", default: ch.base)
        if waveform == .constant || waveform == .typical {
            for key in ["amplitude", "period"] where t.has(key) {
                t.markUsed(key)
                t.error(key, "does not apply to waveform \"\(waveform.rawValue)\" (sine and ramp have \(key))")
            }
            if waveform == .constant { ch.amplitude = 0 }
        } else {
            ch.amplitude = t.double("amplitude", default: 0)
            ch.period = t.duration("period", default: .seconds(600))
        }
        ch.span = t.double("span", default: ch.base + 2 * ch.amplitude)
        if let answer = t.string("answer") {
            if case .line? = config.text { answers[code] = (answer, t.keyPath("answer")) } else {
                t.error("answer", "only applies to channels of a line-protocol (ascii-serial) bus; \(code) is not one")
            }
        }
        channels[code] = ch
    }

    // MARK: devices

    /// One device per distinct (bus, slave) of the station's channels, in order of first use.
    func defaultDevices() -> [SimDevice] {
        var out: [SimDevice] = []
        for ch in station.channels where !out.contains(where: { $0.bus == ch.bus && $0.slave == ch.slave }) {
            let mine = station.channels.filter { $0.bus == ch.bus && $0.slave == ch.slave }
            out.append(SimDevice(bus: ch.bus, slave: ch.slave, absent: false, statusCodes: Self.statusCodes(for: mine),
                                 statusTexts: Self.statusTexts(for: mine), faults: [], answers: [:]))
        }
        return out
    }

    /// For each state, the smallest status word (Modbus) or status byte (Bayern-Hessen) that every status
    /// mapping of `channels` reads as that state; none when the channels have no status mapping.
    static func statusCodes(for channels: [ChannelConfig]) -> [InstrumentStatus: Int] {
        var out: [InstrumentStatus: Int] = [:]
        let registers = channels.compactMap(\.statusRegister)
        let bh = channels.compactMap { ch -> BayernHessenChannel? in
            if case .bayernHessen(let b)? = ch.text { return b }
            return nil
        }
        for status in InstrumentStatus.allCases {
            if !registers.isEmpty {
                out[status] = (0...0xFFFF).first { w in registers.allSatisfy { $0.status(of: UInt16(w)) == status } }
            } else if !bh.isEmpty {
                out[status] = (0...0xFF).first { b in bh.allSatisfy { bhStatus(UInt8(b), $0) == status } }
            }
        }
        return out
    }

    /// What the daemon makes of a Bayern-Hessen status byte (error byte 0) under a channel's masks.
    static func bhStatus(_ b: UInt8, _ ch: BayernHessenChannel) -> InstrumentStatus {
        if b & ch.faultMask != 0 { return .fault }
        if b & ch.calibrationMask != 0 { return .calibrating }
        return .measuring
    }

    /// For each state, the first status text (in sorted order) that the channels' `status_map` maps to it.
    static func statusTexts(for channels: [ChannelConfig]) -> [InstrumentStatus: String] {
        var out: [InstrumentStatus: String] = [:]
        for ch in channels {
            guard case .line(let l)? = ch.text else { continue }
            for (text, status) in l.statusMap.sorted(by: { $0.key < $1.key }) where out[status] == nil { out[status] = text }
        }
        return out
    }

    func parseDevice(_ t: TableReader, into devices: inout [SimDevice], seen: inout [String: String]) {
        defer { t.rejectUnknownKeys() }
        guard let busName = t.string("bus", required: true) else { return }
        guard let bus = station.bus(named: busName) else {
            t.error("bus", "\"\(busName)\" is not a [[bus]] of the station (known: \(knownBuses()))")
            return
        }
        var isLine = false, isBH = false
        if case .asciiSerial(_, _, _, _, _, let p) = bus.transport {
            isLine = p == .line
            isBH = p == .bayernHessen
        }
        let slave: Int
        if isLine {
            if t.has("slave") {
                t.markUsed("slave")
                t.error("slave", "a line-protocol bus is one analyzer; leave slave out")
            }
            slave = 1
        } else {
            guard let s = t.int("slave", required: true, range: 0...999) else { return }
            slave = s
        }
        guard let index = devices.firstIndex(where: { $0.bus == busName && $0.slave == slave }) else {
            let known = devices.filter { $0.bus == busName }.map { String($0.slave) }.joined(separator: ", ")
            t.error("slave", "no [[channel]] of bus \(busName) reads \(isBH ? "address" : "slave") \(slave) (known: \(known.isEmpty ? "none" : known))")
            return
        }
        let key = "\(busName)/\(slave)"
        if let first = seen[key] { t.error("slave", "device \(slave) of bus \(busName) is already described by \(first)") }
        seen[key] = t.path
        var device = devices[index]
        device.absent = t.bool("absent", default: false)
        let channels = station.channels.filter { $0.bus == busName && $0.slave == slave }
        let hasStatus = isBH || channels.contains { $0.statusRegister != nil }
        for (status, key) in [(InstrumentStatus.measuring, "status_measuring"), (.calibrating, "status_calibrating"), (.fault, "status_fault")] {
            guard t.has(key) else { continue }
            guard hasStatus else {
                t.markUsed(key)
                t.error(key, isLine ? "a line-protocol analyzer shows its state with the status_map texts; leave \(key) out"
                                    : "device \(slave) has no status register: no channel of it has status_address")
                continue
            }
            guard let word = t.int(key, range: 0...(isBH ? 0xFF : 0xFFFF)) else { continue }
            let shown = isBH ? Self.bhReading(word, channels) : Self.registerReading(word, channels)
            if let shown, shown.status != status {
                t.error(key, "\(word) reads as \(shown.status) under channel \(shown.code)'s \(isBH ? "bh_*_mask" : "status_*") keys, not \(status)")
            } else {
                device.statusCodes[status] = word
            }
        }
        device.faults = arrayOfTables(t, "fault").compactMap { parseFault($0, device: device, bus: bus, isLine: isLine, isBH: isBH) }
        devices[index] = device
    }

    /// The common state every status register of `channels` reads `word` as, or the first channel that differs.
    static func registerReading(_ word: Int, _ channels: [ChannelConfig]) -> (status: InstrumentStatus, code: String)? {
        let read = channels.compactMap { ch in ch.statusRegister.map { ($0.status(of: UInt16(word)), ch.code) } }
        guard let first = read.first else { return nil }
        return read.first { $0.0 != first.0 } ?? first
    }

    static func bhReading(_ byte: Int, _ channels: [ChannelConfig]) -> (status: InstrumentStatus, code: String)? {
        let read = channels.compactMap { ch -> (InstrumentStatus, String)? in
            if case .bayernHessen(let b)? = ch.text { return (bhStatus(UInt8(byte), b), ch.code) }
            return nil
        }
        guard let first = read.first else { return nil }
        return read.first { $0.0 != first.0 } ?? first
    }

    func parseFault(_ t: TableReader, device: SimDevice, bus: BusConfig, isLine: Bool, isBH: Bool) -> SimFault? {
        defer { t.rejectUnknownKeys() }
        let kind: SimFault.Kind? = t.choice("kind", required: true)
        let at = t.duration("at", default: .zero, allowZero: true)
        if !t.has("for") { t.error("for", "missing; add for = \"30s\" (how long the fault lasts)") }
        let duration = t.duration("for", default: .seconds(1))
        var every: Duration?
        if t.has("every") {
            let e = t.duration("every", default: .zero)
            if e > .zero {
                if e <= duration { t.error("every", "must be longer than for (\(SimFault.text(duration))), so that the fault also ends") } else { every = e }
            }
        }
        var code = ModbusExceptionCodes.serverDeviceFailure
        if kind == .exception {
            if let c = t.int("code", default: Int(code), range: 1...255) {
                if ModbusExceptionCodes.known.contains(c) { code = UInt8(c) } else {
                    t.error("code", "\(c) is not a Modbus exception code (\(ModbusExceptionCodes.known.map(String.init).joined(separator: ", ")))")
                }
            }
        } else if t.has("code") {
            t.markUsed("code")
            t.error("code", "only applies to kind = \"exception\"")
        }
        guard let kind else { return nil }
        if kind == .exception, isLine || isBH {
            t.error("kind", "\"exception\" is a Modbus reply; bus \(bus.name) speaks \(isLine ? "the line protocol" : "Bayern-Hessen") (use timeout or garbage)")
        }
        if kind == .alarm, device.statusCodes[.fault] == nil, device.statusTexts[.fault] == nil {
            t.error("kind", "\"alarm\" needs a way to show a fault: device \(device.slave) of bus \(bus.name) has "
                    + (isLine ? "no status_map text for fault" : isBH ? "no status byte the bh_*_mask keys read as fault"
                                                                      : "no status register with status_fault or status_fault_mask"))
        }
        return SimFault(kind: kind, at: at, duration: duration, every: every, exceptionCode: code)
    }

    // MARK: line-protocol answers

    /// Gives each line-protocol analyzer its answer templates, one per request. With `required`, a request
    /// no channel gives an answer for is an error. Placeholders must name channels of the same bus.
    func attachAnswers(to devices: inout [SimDevice], required: Bool) {
        var templates: [String: [[UInt8]: (template: String, path: String)]] = [:]  // bus → request → template
        for ch in station.channels {
            guard case .line(let l)? = ch.text, let (template, path) = answers[ch.code] else { continue }
            if let other = templates[ch.bus]?[l.request] {
                if other.template != template { issues.add(path, "differs from \(other.path), the answer to the same request") }
                continue
            }
            templates[ch.bus, default: [:]][l.request] = (template, path)
            let busCodes = Set(station.channels.filter { $0.bus == ch.bus }.map(\.code))
            for name in SimAnswer.placeholders(template) {
                if name == "status" {
                    if Self.statusTexts(for: station.channels.filter { $0.bus == ch.bus })[.measuring] == nil {
                        issues.add(path, "{status} needs a status_map text for measuring on bus \(ch.bus)")
                    }
                } else if !busCodes.contains(name) {
                    issues.add(path, "{\(name)} is not the code of a channel of bus \(ch.bus) (or {status})")
                }
            }
        }
        var reported: Set<[UInt8]> = []
        for (i, ch) in station.channels.enumerated() {
            guard case .line(let l)? = ch.text, templates[ch.bus]?[l.request] == nil, required, reported.insert(l.request).inserted else { continue }
            issues.add("", "no answer for the request that station channel[\(i)] \(ch.code) sends on bus \(ch.bus): "
                       + "add a [[channel]] with code = \"\(ch.code)\" and answer = \"…\"")
        }
        for i in devices.indices {
            devices[i].answers = (templates[devices[i].bus] ?? [:]).mapValues(\.template)
        }
    }
}

/// Line-protocol answer templates: `{CODE}` is the raw value (before scale and offset) of that channel
/// with its `decimals`, `{status}` the analyzer's status text.
public enum SimAnswer {
    /// The names between braces, in order.
    public static func placeholders(_ template: String) -> [String] {
        var out: [String] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return out
    }

    /// The template with every placeholder replaced by `value(name)` (unknown names stay as written).
    public static func render(_ template: String, _ value: (String) -> String?) -> String {
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            out += rest[..<open]
            let name = String(rest[rest.index(after: open)..<close])
            out += value(name) ?? "{\(name)}"
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }
}

/// Modbus exception codes a scenario may use (the Modbus application protocol's list).
enum ModbusExceptionCodes {
    static let serverDeviceFailure: UInt8 = 4
    static let known = [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
}

/// Typical levels of the circular's parameter symbols (level, swing), for simulated values that look
/// like a station's; unknown symbols get 10 ± 1.
public enum TypicalLevels {
    static let table: [String: (Double, Double)] = [
        "Flow": (150, 20), "Temp": (29, 1.5), "pH": (7.2, 0.3), "TSS": (20, 4), "COD": (40, 8), "NH4": (2, 0.5),
        "TP": (1, 0.2), "TN": (10, 2), "TOC": (15, 3), "Color": (30, 5), "Cl": (0.5, 0.1), "DO": (6, 1), "EC": (350, 30),
        "TUR": (12, 3), "NO3": (1.5, 0.3), "P": (101, 1), "O2": (10, 1), "NO": (90, 15), "NO2": (40, 8), "CO": (35, 6),
        "SO2": (200, 30), "PM": (12, 3), "H2S": (1, 0.3), "NH3": (2, 0.5), "PM10": (55, 12), "PM2,5": (30, 8),
        "PM1": (15, 4), "TSP": (80, 15), "O3": (60, 20), "NOx": (120, 20), "RH": (75, 10), "WS": (2.5, 1.5),
        "WD": (180, 90), "SR": (400, 300), "Rain": (0, 0), "PO4": (0.3, 0.1), "Sal": (0.5, 0.2), "VHg": (0.01, 0.003),
    ]

    /// The level and swing of a symbol.
    public static func level(of code: String) -> (level: Double, swing: Double) {
        let (l, s) = table[code] ?? (10, 1)
        return (l, s)
    }
}
