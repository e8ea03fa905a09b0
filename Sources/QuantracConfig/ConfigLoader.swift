import Foundation
import QuantracCore
import TOMLKit

/// Loads and validates a station configuration (TOML). Every problem is reported with its key path.
public enum ConfigLoader {
    /// Default pattern of the file-name prefix `<province>_<facility>_<station>` (circular §3.2).
    public static let defaultPrefixPattern = "^[A-Za-z0-9]+(_[A-Za-z0-9]+){2}$"

    /// Reads and validates the file at `path`.
    public static func load(path: String) throws(ConfigError) -> StationConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, issues: [ConfigIssue(path: "", message: "cannot read \(path): no such file or permission denied")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, issues: [ConfigIssue(path: "", message: "\(path) is not UTF-8 text")])
        }
        return try parse(text, file: path)
    }

    /// Validates TOML text. `file` only names the source in messages.
    public static func parse(_ text: String, file: String = "<config>") throws(ConfigError) -> StationConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let line = error.source.begin.line
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "line \(line): TOML syntax error: \(error.description)")])
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "TOML syntax error: \(error)")])
        }
        let issues = IssueCollector()
        let result = Parser(issues: issues).parse(root)
        if let result, issues.issues.isEmpty { return result }
        throw ConfigError(file: file, issues: issues.issues)
    }
}

private struct Parser {
    let issues: IssueCollector

    func parse(_ root: TOMLTable) -> StationConfig? {
        let top = TableReader(root, path: "", issues: issues)
        let station = table(top, "station").flatMap(parseStation)
        let busTables = arrayOfTables(top, "bus", required: true)
        // Channels are checked against every bus *named*, even one with other problems, so one typo in a
        // bus does not also flag each of its channels.
        let namedBuses = Set(busTables.compactMap { $0.table["name"]?.string })
        let buses = busTables.map { parseBus($0, station: station) }
        let busByName = Dictionary(buses.compactMap { $0 }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let channels = arrayOfTables(top, "channel", required: true).map { parseChannel($0, namedBuses: namedBuses, buses: busByName) }
        let targets = arrayOfTables(top, "target", required: false).map { parseTarget($0) }
        var retention = Retention()
        if top.has("retention"), let t = table(top, "retention") { retention = parseRetention(t) }
        top.rejectUnknownKeys()
        checkUnique(buses.map { $0?.name }, section: "bus", key: "name")
        checkUnique(channels.map { $0?.code }, section: "channel", key: "code")
        checkUnique(targets.map { $0?.name }, section: "target", key: "name")
        checkOverlaps(channels)
        guard let station else { return nil }
        return StationConfig(station: station, buses: buses.compactMap { $0 }, channels: channels.compactMap { $0 },
                             targets: targets.compactMap { $0 }, retention: retention)
    }

    // MARK: sections

    func table(_ parent: TableReader, _ key: String) -> TableReader? {
        guard let v = parent.table[key] else {
            parent.error(key, "missing; add a [\(key)] table")
            return nil
        }
        guard let t = v.table else {
            parent.error(key, "must be a table ([\(key)])")
            return nil
        }
        parent.markUsed(key)
        return TableReader(t, path: parent.keyPath(key), issues: issues)
    }

    func arrayOfTables(_ parent: TableReader, _ key: String, required: Bool) -> [TableReader] {
        guard let v = parent.table[key] else {
            if required { parent.error(key, "missing; add at least one [[\(key)]] table") }
            return []
        }
        parent.markUsed(key)
        guard let array = v.array else {
            parent.error(key, "must be an array of tables ([[\(key)]])")
            return []
        }
        var readers: [TableReader] = []
        for (i, element) in array.enumerated() {
            guard let t = element.table else {
                issues.add("\(key)[\(i)]", "must be a table ([[\(key)]])")
                continue
            }
            readers.append(TableReader(t, path: "\(key)[\(i)]", issues: issues))
        }
        if required && readers.isEmpty { parent.error(key, "must have at least one [[\(key)]] table") }
        return readers
    }

    func parseStation(_ t: TableReader) -> Station? {
        defer { t.rejectUnknownKeys() }
        let pattern = t.string("prefix_pattern", default: ConfigLoader.defaultPrefixPattern)!
        let prefix = t.string("prefix", required: true)
        if let prefix {
            if let regex = try? Regex(pattern) {
                if (try? regex.wholeMatch(in: prefix)) == nil {
                    t.error("prefix", "\"\(prefix)\" does not match \(pattern) (<province>_<facility>_<station>, e.g. HN_ABCD_NUO001)")
                }
            } else {
                t.error("prefix_pattern", "\"\(pattern)\" is not a valid regular expression")
            }
            if prefix.contains("/") || prefix.contains(" ") { t.error("prefix", "must not contain '/' or spaces") }
        }
        let kind: StationKind? = t.choice("kind", required: true)
        var offset = UTCOffset(seconds: 7 * 3600)
        if let raw = t.string("utc_offset") {
            if let parsed = UTCOffset(parsing: raw) { offset = parsed } else {
                t.error("utc_offset", "\"\(raw)\" is not an offset like \"+07:00\"")
            }
        }
        let dataDir = t.string("data_dir", required: true)
        if let dataDir, dataDir.isEmpty { t.error("data_dir", "must not be empty") }
        let record = t.duration("record_interval", default: .seconds(300))
        let recordMs = record.wholeMilliseconds
        var recordSeconds: Int64 = 300
        if recordMs % 1000 != 0 || 86_400_000 % recordMs != 0 {
            // Reported once here; poll_interval is checked against it only when it is valid.
            t.error("record_interval", "must be a whole number of seconds that divides a day (e.g. \"5m\", \"1m\", \"10s\")")
        } else {
            recordSeconds = recordMs / 1000
        }
        let poll = t.duration("poll_interval", default: .seconds(10))
        let recordValid = recordMs % 1000 == 0 && 86_400_000 % recordMs == 0
        if recordValid, recordMs % max(1, poll.wholeMilliseconds) != 0 || poll > record {
            t.error("poll_interval", "must divide record_interval (\(recordMs / 1000)s) so every interval has the same number of polls")
        }
        let recordDelay = t.duration("record_delay", default: .seconds(30))
        let missing: MissingValue = t.choice("missing_value", default: .zero)!
        let lineEnding: LineEnding = t.choice("line_ending", default: .crlf)!
        guard let prefix, let kind, let dataDir else { return nil }
        return Station(prefix: prefix, kind: kind, utcOffset: offset, dataDir: dataDir, recordIntervalSeconds: recordSeconds,
                       pollInterval: poll, recordDelay: recordDelay, missingValue: missing, lineEnding: lineEnding)
    }

    func parseBus(_ t: TableReader, station: Station?) -> BusConfig? {
        defer { t.rejectUnknownKeys() }
        let name = t.string("name", required: true)
        if let name, name.isEmpty || name.contains(where: { $0.isWhitespace }) { t.error("name", "must be a non-empty word without spaces") }
        let transportName = t.string("transport", required: true)
        let tcpKeys = ["host", "port"], rtuKeys = ["device", "baud", "parity", "data_bits", "stop_bits"]
        var transport: Transport?
        switch transportName {
        case "modbus-tcp":
            let host = t.string("host", required: true)
            let port = t.int("port", default: 502, range: 1...65535)!
            for key in rtuKeys where t.has(key) { t.markUsed(key); t.error(key, "only applies to transport \"modbus-rtu\"") }
            if let host { transport = .modbusTCP(host: host, port: port) }
        case "modbus-rtu":
            let device = t.string("device", required: true)
            let baud = t.int("baud", default: 9600, range: 50...4_000_000)!
            let parity: Parity = t.choice("parity", default: Parity.none, caseInsensitive: true)!
            let dataBits = t.int("data_bits", default: 8, range: 5...8)!
            let stopBits = t.int("stop_bits", default: 1, range: 1...2)!
            for key in tcpKeys where t.has(key) { t.markUsed(key); t.error(key, "only applies to transport \"modbus-tcp\"") }
            if let device { transport = .modbusRTU(device: device, baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits) }
        case nil:
            break
        case let other?:
            t.error("transport", "\"\(other)\" is not one of modbus-tcp, modbus-rtu")
        }
        let timeout = t.duration("timeout", default: .seconds(1))
        if let station, timeout >= station.pollInterval {
            t.error("timeout", "must be shorter than station.poll_interval so one dead device cannot stall the bus")
        }
        let reconnectMax = t.duration("reconnect_max", default: .seconds(30))
        let maxRegs = t.int("max_registers_per_read", default: 125, range: 1...125)!
        guard let name, let transport else { return nil }
        return BusConfig(name: name, transport: transport, timeout: timeout, reconnectMax: reconnectMax, maxRegistersPerRead: maxRegs)
    }

    func parseChannel(_ t: TableReader, namedBuses: Set<String>, buses: [String: BusConfig]) -> ChannelConfig? {
        defer { t.rejectUnknownKeys() }
        let code = t.string("code", required: true)
        if let code, code.isEmpty || code.contains(where: { $0 == "\t" || $0 == "\r" || $0 == "\n" }) {
            t.error("code", "must be non-empty and contain no TAB or line break")
        }
        let unit = t.string("unit", required: true)
        if let unit, unit.contains(where: { $0 == "\t" || $0 == "\r" || $0 == "\n" }) { t.error("unit", "must contain no TAB or line break") }
        let busName = t.string("bus", required: true)
        if let busName, !namedBuses.contains(busName) {
            let known = namedBuses.sorted().joined(separator: ", ")
            t.error("bus", "\"\(busName)\" is not a [[bus]] name (known: \(known.isEmpty ? "none" : known))")
        }
        let slave = t.int("slave", default: 1, range: 0...255)!
        if let busName, case .modbusRTU? = buses[busName]?.transport, !(1...247).contains(slave) {
            t.error("slave", "\(slave) is out of range 1 to 247 for an RTU bus")
        }
        let register: RegisterKind = t.choice("register", default: .holding)!
        let address = t.int("address", required: true, range: 0...65535)
        let type: ValueType? = t.choice("type", required: true)
        let byteOrder: ByteOrder = t.choice("byte_order", default: .abcd)!
        if let type, type.registerCount == 1, byteOrder.wordsReversed {
            t.error("byte_order", "\"\(byteOrder.rawValue)\" swaps words but \(type.rawValue) is one register; use ABCD or BADC")
        }
        if let type, let address, address + type.registerCount > 65536 {
            t.error("address", "\(address) + \(type.registerCount) registers of \(type.rawValue) runs past 65535")
        }
        let scale = t.double("scale", default: 1)
        if scale == 0 { t.error("scale", "must not be 0") }
        let offset = t.double("offset", default: 0)
        let decimals = t.int("decimals", default: 2, range: 0...6)!
        guard let code, let unit, let busName, let address, let type else { return nil }
        return ChannelConfig(code: code, unit: unit, bus: busName, slave: slave, register: register, address: address,
                             type: type, byteOrder: byteOrder, scale: scale, offset: offset, decimals: decimals)
    }

    func parseTarget(_ t: TableReader) -> TargetConfig? {
        defer { t.rejectUnknownKeys() }
        let name = t.string("name", required: true)
        if let name, name.isEmpty || name.contains(where: { $0.isWhitespace || $0 == "/" }) {
            t.error("name", "must be a non-empty word without spaces or '/'")
        }
        let url = t.string("url", required: true)
        var parsed: (TargetScheme, String, String)?
        if let url {
            parsed = parseURL(url, t)
        }
        let user = t.string("user")
        let passwordFile = t.string("password_file")
        if let passwordFile, !FileManager.default.isReadableFile(atPath: passwordFile) {
            t.error("password_file", "cannot read \(passwordFile); create it with the account's password (mode 0600)")
        }
        if parsed?.0 == .file, user != nil || passwordFile != nil {
            t.error(user != nil ? "user" : "password_file", "does not apply to a file:// target")
        }
        let publish: PublishMode = t.choice("publish", default: .rename)!
        let connectTimeout = t.duration("connect_timeout", default: .seconds(10))
        let retryMax = t.duration("retry_max", default: .seconds(60))
        guard let name, let parsed else { return nil }
        return TargetConfig(name: name, scheme: parsed.0, authority: parsed.1, pathTemplate: parsed.2, user: user,
                            passwordFile: passwordFile, publish: publish, connectTimeout: connectTimeout, retryMax: retryMax)
    }

    private func parseURL(_ url: String, _ t: TableReader) -> (TargetScheme, String, String)? {
        guard let sep = url.range(of: "://") else {
            t.error("url", "\"\(url)\" is not a URL; use ftp://host[:port]/dir or file:///dir")
            return nil
        }
        let schemeText = String(url[..<sep.lowerBound]).lowercased()
        let rest = String(url[sep.upperBound...])
        guard let scheme = TargetScheme(rawValue: schemeText) else {
            t.error("url", "scheme \"\(schemeText)\" is not supported; use ftp:// or file://")
            return nil
        }
        var authority = "", path = rest
        if scheme == .ftp {
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            authority = String(rest[..<slash])
            path = String(rest[slash...])
            if authority.isEmpty { t.error("url", "\"\(url)\" has no host; use ftp://host[:port]/dir") }
            if authority.contains("@") { t.error("url", "must not contain credentials; use user and password_file") }
        } else if path.isEmpty {
            t.error("url", "\"\(url)\" has no directory; use file:///absolute/dir or file://relative/dir")
        }
        // Every {token} must be known.
        var scan = path[...]
        while let open = scan.firstIndex(of: "{") {
            guard let close = scan[open...].firstIndex(of: "}") else {
                t.error("url", "unclosed '{' in \"\(url)\"")
                break
            }
            let token = String(scan[scan.index(after: open)..<close])
            if !["prefix", "station", "yyyy", "MM", "dd"].contains(token) {
                t.error("url", "unknown token {\(token)}; use {prefix}, {station}, {yyyy}, {MM} or {dd}")
            }
            scan = scan[scan.index(after: close)...]
        }
        return (scheme, authority, path)
    }

    func parseRetention(_ t: TableReader) -> Retention {
        defer { t.rejectUnknownKeys() }
        var r = Retention()
        r.readingsDays = t.int("readings_days", default: r.readingsDays, range: 1...36_500)!
        for (key, keyPath) in [("records_days", \Retention.recordsDays), ("files_days", \Retention.filesDays)] {
            if let days = t.int(key, default: r[keyPath: keyPath], range: 1...36_500) {
                if days < 60 {
                    t.error(key, "\(days) is below the circular's minimum of 60 days on the logger; use 60 or more (default 400)")
                } else {
                    r[keyPath: keyPath] = days
                }
            }
        }
        if let raw = t.string("disk_budget") {
            if let bytes = Self.parseSize(raw), bytes > 0 { r.diskBudgetBytes = bytes } else {
                t.error("disk_budget", "\"\(raw)\" is not a size like \"500MB\", \"4GB\"")
            }
        }
        return r
    }

    /// `"500MB"`, `"4GB"`, `"1TB"`, `"800KB"` (powers of 1024).
    static func parseSize(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30), ("TB", 1 << 40)]
        for (suffix, factor) in units where text.uppercased().hasSuffix(suffix) {
            guard let n = Int64(text.dropLast(2)), n >= 0, n <= Int64.max / factor else { return nil }
            return n * factor
        }
        return nil
    }

    // MARK: cross checks

    /// `values` are indexed like the document's tables; nil for a table that failed to load.
    func checkUnique(_ values: [String?], section: String, key: String) {
        var seen: [String: Int] = [:]
        for (i, v) in values.enumerated() {
            guard let v else { continue }
            if let first = seen[v] {
                issues.add("\(section)[\(i)].\(key)", "\"\(v)\" is already used by \(section)[\(first)]")
            } else {
                seen[v] = i
            }
        }
    }

    /// Two channels that read overlapping registers of the same device with different layouts are
    /// almost always a mis-map; identical reads (same start and type) are allowed.
    func checkOverlaps(_ channels: [ChannelConfig?]) {
        for (i, a) in channels.enumerated() {
            guard let a else { continue }
            for (j, b) in channels.enumerated() where j > i {
                guard let b else { continue }
                guard a.bus == b.bus, a.slave == b.slave, a.register == b.register else { continue }
                let overlap = a.address < b.address + b.type.registerCount && b.address < a.address + a.type.registerCount
                if overlap && !(a.address == b.address && a.type == b.type) {
                    issues.add("channel[\(j)].address", "\(b.type.registerCount == 1 ? "register \(b.address)" : "registers \(b.address)-\(b.address + b.type.registerCount - 1)") overlap channel[\(i)] (\(a.code)) on the same device")
                }
            }
        }
    }
}
