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
    /// Framing of each `line` request seen so far, per bus (channels sharing a request share one answer).
    let textRequests = TextRequestRegistry()

    func parse(_ root: TOMLTable) -> StationConfig? {
        let top = TableReader(root, path: "", issues: issues)
        let station = table(top, "station").flatMap(parseStation)
        let busTables = arrayOfTables(top, "bus", required: true)
        // Channels are checked against every bus *named*, even one with other problems, so one typo in a
        // bus does not also flag each of its channels.
        let namedBuses = Set(busTables.compactMap { $0.table["name"]?.string })
        let buses = busTables.map { parseBus($0, station: station) }
        let busByName = Dictionary(buses.compactMap { $0 }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let channels = arrayOfTables(top, "channel", required: true).map { parseChannel($0, namedBuses: namedBuses, buses: busByName, station: station) }
        let targets = arrayOfTables(top, "target", required: false).map { parseTarget($0) }
        var retention = Retention()
        if top.has("retention"), let t = table(top, "retention") { retention = parseRetention(t) }
        var statusPage = StatusPageConfig()
        if top.has("status_page"), let t = table(top, "status_page") { statusPage = parseStatusPage(t) }
        top.rejectUnknownKeys()
        checkUnique(buses.map { $0?.name }, section: "bus", key: "name")
        checkUnique(channels.map { $0?.code }, section: "channel", key: "code")
        checkUnique(targets.map { $0?.name }, section: "target", key: "name")
        checkOverlaps(channels)
        let codes = Set(channels.compactMap { $0?.code })
        for (i, ch) in channels.enumerated() {
            if let ch, let speed = ch.speedChannel, !codes.contains(speed) {
                issues.add("channel[\(i)].speed_channel", "\"\(speed)\" is not the code of a [[channel]]")
            }
        }
        guard let station else { return nil }
        var config = StationConfig(station: station, buses: buses.compactMap { $0 }, channels: channels.compactMap { $0 },
                                   targets: targets.compactMap { $0 }, retention: retention)
        config.statusPage = statusPage
        return config
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
        var hourFraction = t.double("hour_min_fraction", default: 0.75)
        if !(hourFraction > 0 && hourFraction <= 1) {
            t.error("hour_min_fraction", "\(hourFraction) must be above 0 and at most 1 (default 0.75)")
            hourFraction = 0.75
        }
        let dayHours = t.int("day_min_hours", default: 18, range: 1...24)!
        let recovery = t.duration("calibration_recovery", default: .seconds(300), allowZero: true)
        let commitWindow = t.duration("commit_window", default: Station.defaultCommitWindow, allowZero: true)
        if commitWindow > .seconds(60) {
            t.error("commit_window", "must be at most 60s (readings held in memory are lost on power loss; default 10s)")
        }
        let celsius = t.double("aqi_reference_celsius", default: 25)
        if !(-50...50).contains(celsius) { t.error("aqi_reference_celsius", "\(celsius) is out of range -50 to 50 (°C; default 25)") }
        guard let prefix, let kind, let dataDir else { return nil }
        var station = Station(prefix: prefix, kind: kind, utcOffset: offset, dataDir: dataDir, recordIntervalSeconds: recordSeconds,
                              pollInterval: poll, recordDelay: recordDelay, missingValue: missing, lineEnding: lineEnding)
        station.hourMinFraction = hourFraction
        station.dayMinHours = dayHours
        station.aqiReferenceCelsius = celsius
        station.calibrationRecovery = recovery
        station.commitWindow = min(commitWindow, .seconds(60))
        return station
    }

    func parseBus(_ t: TableReader, station: Station?) -> BusConfig? {
        defer { t.rejectUnknownKeys() }
        let name = t.string("name", required: true)
        if let name, name.isEmpty || name.contains(where: { $0.isWhitespace }) { t.error("name", "must be a non-empty word without spaces") }
        let transportName = t.string("transport", required: true)
        let networkKeys = ["host", "port"], serialKeys = ["device", "baud", "parity", "data_bits", "stop_bits"]
        let modbusOnlyKeys = ["max_registers_per_read", "one_request_per_field"]
        /// Keys of other transports are errors, naming the transports they belong to.
        func reject(_ keys: [String], _ owners: String) {
            for key in keys where t.has(key) { t.markUsed(key); t.error(key, "only applies to \(owners)") }
        }
        func network(defaultPort: Int?) -> (host: String, port: Int)? {
            let host = t.string("host", required: true)
            let port = defaultPort.map { t.int("port", default: $0, range: 1...65535)! } ?? t.int("port", required: true, range: 1...65535)
            guard let host, let port else { return nil }
            return (host, port)
        }
        func serial() -> (device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int)? {
            let device = t.string("device", required: true)
            let baud = t.int("baud", default: 9600, range: 50...4_000_000)!
            let parity: Parity = t.choice("parity", default: Parity.none, caseInsensitive: true)!
            let dataBits = t.int("data_bits", default: 8, range: 5...8)!
            let stopBits = t.int("stop_bits", default: 1, range: 1...2)!
            guard let device else { return nil }
            return (device, baud, parity, dataBits, stopBits)
        }
        let onSerial = "transports \"modbus-rtu\" and \"ascii-serial\"", onNetwork = "transports \"modbus-tcp\" and \"modbus-rtu-over-tcp\""
        let onText = "transport \"ascii-serial\""
        var transport: Transport?
        switch transportName {
        case "modbus-tcp":
            if let n = network(defaultPort: 502) { transport = .modbusTCP(host: n.host, port: n.port) }
            reject(serialKeys, onSerial)
            reject(["protocol"], onText)
        case "modbus-rtu":
            if let s = serial() { transport = .modbusRTU(device: s.device, baud: s.baud, parity: s.parity, dataBits: s.dataBits, stopBits: s.stopBits) }
            reject(networkKeys, onNetwork)
            reject(["protocol"], onText)
        case "ascii-serial":
            let s = serial()
            if !t.has("protocol") {
                t.error("protocol", "missing; add protocol = \"line\" (request and regular expression) or \"bayern-hessen\"")
            }
            let proto: TextProtocol? = t.choice("protocol")
            if let s, let proto {
                transport = .asciiSerial(device: s.device, baud: s.baud, parity: s.parity, dataBits: s.dataBits, stopBits: s.stopBits, protocol: proto)
            }
            reject(networkKeys, onNetwork)
            reject(modbusOnlyKeys, "Modbus buses")
        case "modbus-rtu-over-tcp":
            // Device servers and DTUs have no standard port (4001, 8899, 502 …): it must be given.
            if let n = network(defaultPort: nil) { transport = .modbusRTUOverTCP(host: n.host, port: n.port) }
            reject(serialKeys, onSerial)
            reject(["protocol"], onText)
        case nil:
            break
        case let other?:
            t.error("transport", "\"\(other)\" is not one of modbus-tcp, modbus-rtu, modbus-rtu-over-tcp, ascii-serial")
        }
        let timeout = t.duration("timeout", default: .seconds(1))
        if let station, timeout >= station.pollInterval {
            t.error("timeout", "must be shorter than station.poll_interval so one dead device cannot stall the bus")
        }
        let reconnectMax = t.duration("reconnect_max", default: .seconds(30))
        let maxRegs = t.int("max_registers_per_read", default: 125, range: 1...125)!
        var quirks = (pauseAfterConnect: t.duration("pause_after_connect", default: .zero, allowZero: true),
                      pauseBetweenRequests: t.duration("pause_between_requests", default: .zero, allowZero: true),
                      oneRequestPerField: t.bool("one_request_per_field", default: false),
                      offlineAfter: t.int("offline_after", default: 3, range: 1...100)!)
        if quirks.pauseBetweenRequests > .seconds(5) {
            t.error("pause_between_requests", "more than 5 s between requests would stall the bus; use at most \"5s\"")
            quirks.pauseBetweenRequests = .zero
        }
        guard let name, let transport else { return nil }
        var bus = BusConfig(name: name, transport: transport, timeout: timeout, reconnectMax: reconnectMax, maxRegistersPerRead: maxRegs)
        bus.pauseAfterConnect = quirks.pauseAfterConnect
        bus.pauseBetweenRequests = quirks.pauseBetweenRequests
        bus.oneRequestPerField = quirks.oneRequestPerField
        bus.offlineAfter = quirks.offlineAfter
        return bus
    }

    func parseChannel(_ t: TableReader, namedBuses: Set<String>, buses: [String: BusConfig], station: Station?) -> ChannelConfig? {
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
        if case .text(let channel) = parseTextChannel(t, code: code, unit: unit, busName: busName, buses: buses, station: station) { return channel }
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
        var channel = ChannelConfig(code: code, unit: unit, bus: busName, slave: slave, register: register, address: address,
                                    type: type, byteOrder: byteOrder, scale: scale, offset: offset, decimals: decimals)
        parseAveraging(t, into: &channel, station: station)
        channel.statusRegister = parseStatusRegister(t, register: register)
        return channel
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
        let scheme = parsed?.0

        /// Reports `key` when present on a target whose scheme it does not apply to; true when it applies.
        func applies(_ key: String, to schemes: [TargetScheme]) -> Bool {
            guard t.has(key), let scheme else { return true }
            if schemes.contains(scheme) { return true }
            t.markUsed(key)
            if scheme == .file {
                t.error(key, "does not apply to a file:// target")
            } else {
                t.error(key, "only applies to \(schemes.map { "\($0.rawValue)://" }.joined(separator: " and ")) targets")
            }
            return false
        }
        /// A secret file must exist and be closed to other users (mode & 0o007 == 0).
        func checkSecretFile(_ key: String, _ path: String, what: String) {
            var info = stat()
            guard stat(path, &info) == 0, FileManager.default.isReadableFile(atPath: path) else {
                t.error(key, "cannot read \(path); create it with \(what) (mode 0600)")
                return
            }
            let mode = info.st_mode & 0o777
            if mode & 0o007 != 0 {
                let octal = String(mode, radix: 8)
                t.error(key, "\(path) is open to other users (mode \(String(repeating: "0", count: max(0, 4 - octal.count)) + octal)); run chmod 600 \(path)")
            }
        }
        /// One secret from a file key or a systemd credential key, never both.
        func secret(fileKey: String, credentialKey: String, what: String, schemes: [TargetScheme]) -> TargetConfig.SecretSource? {
            let fileApplies = applies(fileKey, to: schemes), credentialApplies = applies(credentialKey, to: schemes)
            let file = fileApplies ? t.string(fileKey) : nil
            let credential = credentialApplies ? t.string(credentialKey) : nil
            if let file { checkSecretFile(fileKey, file, what: what) }
            if let credential, credential.isEmpty || credential.contains("/") || credential == "." || credential == ".." {
                t.error(credentialKey, "\"\(credential)\" is not a credential name (LoadCredential=NAME:/path in the systemd unit; no '/')")
            }
            if file != nil, credential != nil {
                t.error(credentialKey, "use either \(fileKey) or \(credentialKey), not both")
                return nil
            }
            if let file { return .file(file) }
            if let credential { return .credential(credential) }
            return nil
        }
        /// Standard base64 of a 32-byte SHA-256 digest (43 characters, optional `=` padding); nil when malformed.
        func sha256Base64(_ text: String) -> String? {
            var body = Substring(text)
            while body.hasSuffix("=") { body = body.dropLast() }
            let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            guard body.count == 43, body.allSatisfy({ alphabet.contains($0) }), text.count - body.count <= 1,
                  Data(base64Encoded: body + "=")?.count == 32 else { return nil }
            return String(body)
        }

        let user = applies("user", to: [.ftp, .ftps, .sftp]) ? t.string("user") : nil
        if scheme == .sftp, user == nil, !t.has("user") { t.error("user", "missing; add user = \"...\" (the SSH account)") }
        let password = secret(fileKey: "password_file", credentialKey: "password_credential", what: "the account's password",
                              schemes: [.ftp, .ftps, .sftp])
        let privateKey = secret(fileKey: "key_file", credentialKey: "key_credential",
                                what: "the private key (ssh-keygen -t ed25519 -N '' -f FILE)", schemes: [.sftp])
        if scheme == .sftp, password == nil, privateKey == nil,
           !["password_file", "password_credential", "key_file", "key_credential"].contains(where: t.has) {
            t.error("key_file", "missing; an sftp:// target needs key_file (or key_credential), or password_file (or password_credential)")
        }

        var caFile: String?
        if applies("ca_file", to: [.ftps]), let path = t.string("ca_file") {
            if FileManager.default.isReadableFile(atPath: path) { caFile = path } else {
                t.error("ca_file", "cannot read \(path); it must be the PEM certificate of the authority (or the self-signed certificate) of the server")
            }
        }
        var pinned: String?
        if applies("pinned_public_key", to: [.ftps]), let raw = t.string("pinned_public_key") {
            var pins: [String] = []
            for part in raw.split(separator: ";", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if part.hasPrefix("sha256//"), let digest = sha256Base64(String(part.dropFirst("sha256//".count))) {
                    pins.append("sha256//" + digest + "=")
                } else {
                    t.error("pinned_public_key", "\"\(part)\" is not sha256//BASE64 (44 characters of base64 after sha256//, several joined by ';')")
                    pins = []
                    break
                }
            }
            if !pins.isEmpty { pinned = pins.joined(separator: ";") }
        }
        let tls: TargetConfig.FTPSMode = applies("tls", to: [.ftps]) ? t.choice("tls", default: .explicit)! : .explicit

        let hostKeyType: TargetConfig.HostKeyType = applies("host_key_type", to: [.sftp])
            ? t.choice("host_key_type", default: .ed25519)! : .ed25519
        var hostKey: String?
        if applies("host_key_sha256", to: [.sftp]) {
            if let raw = t.string("host_key_sha256") {
                let body = raw.hasPrefix("SHA256:") ? String(raw.dropFirst("SHA256:".count)) : raw
                hostKey = sha256Base64(body)
                if hostKey == nil {
                    t.error("host_key_sha256", "\"\(raw)\" is not a SHA256 fingerprint (43 characters of base64, as ssh-keygen -lf prints after SHA256:)")
                }
            } else if scheme == .sftp, !t.has("host_key_sha256"), let parsed {
                let (host, _, portText) = TargetConfig.split(authority: parsed.1)
                let portOption = portText.map { "-p \($0) " } ?? ""
                t.error("host_key_sha256", "missing; unknown SSH servers are refused. Get the fingerprint with "
                        + "`ssh-keyscan \(portOption)-t \(hostKeyType.keyscanType) \(host) | ssh-keygen -lf -`, "
                        + "check it with the receiver, and set host_key_sha256 = \"SHA256:...\"")
            }
        }

        let publish: PublishMode = t.choice("publish", default: .rename)!
        let connectTimeout = t.duration("connect_timeout", default: .seconds(10))
        let retryMax = t.duration("retry_max", default: .seconds(60))
        let products = parseProducts(t, pathTemplate: parsed?.2)
        guard let name, let parsed else { return nil }
        var target = TargetConfig(name: name, scheme: parsed.0, authority: parsed.1, pathTemplate: parsed.2, user: user,
                                  password: password, privateKey: privateKey, caFile: caFile, pinnedPublicKey: pinned, tls: tls,
                                  hostKeySHA256: hostKey, hostKeyType: hostKeyType, publish: publish,
                                  connectTimeout: connectTimeout, retryMax: retryMax)
        target.products = products
        return target
    }

    /// `products = ["5m", "1h", "24h"]`: which files the target receives (default the 5-minute files).
    /// Files of different products share names (`…_20260315100000.txt` is both a 5-minute and an hourly
    /// file), so a target with several needs `{product}` in its path.
    func parseProducts(_ t: TableReader, pathTemplate: String?) -> [String] {
        guard let raw = t.table["products"] else { return ["5m"] }
        t.markUsed("products")
        guard let array = raw.array else {
            t.error("products", "must be an array like [\"5m\", \"1h\", \"24h\"]")
            return ["5m"]
        }
        var products: [String] = []
        for (i, v) in array.enumerated() {
            guard let p = v.string, ["5m", "1h", "24h"].contains(p) else {
                t.error("products", "element \(i) must be one of \"5m\", \"1h\", \"24h\"")
                continue
            }
            if products.contains(p) { t.error("products", "\"\(p)\" is listed twice") } else { products.append(p) }
        }
        if products.isEmpty { t.error("products", "must list at least one of \"5m\", \"1h\", \"24h\"") }
        if products.count > 1, let pathTemplate, !pathTemplate.contains("{product}") {
            t.error("products", "several products need {product} in the url path, or hourly files would overwrite 5-minute files of the same time")
        }
        return products.isEmpty ? ["5m"] : products
    }

    private func parseURL(_ url: String, _ t: TableReader) -> (TargetScheme, String, String)? {
        let forms = "ftp://host[:port]/dir, ftps://host[:port]/dir, sftp://host[:port]/dir or file:///dir"
        guard let sep = url.range(of: "://") else {
            t.error("url", "\"\(url)\" is not a URL; use \(forms)")
            return nil
        }
        let schemeText = String(url[..<sep.lowerBound]).lowercased()
        let rest = String(url[sep.upperBound...])
        guard let scheme = TargetScheme(rawValue: schemeText) else {
            t.error("url", "scheme \"\(schemeText)\" is not supported; use ftp://, ftps://, sftp:// or file://")
            return nil
        }
        var authority = "", path = rest
        if scheme != .file {
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            authority = String(rest[..<slash])
            path = String(rest[slash...])
            let (host, _, portText) = TargetConfig.split(authority: authority)
            if authority.contains("@") {
                t.error("url", "must not contain credentials; use user and password_file")
            } else if host.isEmpty {
                t.error("url", "\"\(url)\" has no host; use \(scheme.rawValue)://host[:port]/dir")
            } else if let portText, !(Int(portText).map { (1...65535).contains($0) } ?? false) {
                t.error("url", "port \"\(portText)\" is not a number from 1 to 65535")
            }
            if scheme == .sftp {
                if path.isEmpty {
                    t.error("url", "\"\(url)\" has no directory; use sftp://host[:port]/absolute/dir (or /~/dir under the account's home)")
                } else if path.contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" || $0 == "\\" }) {
                    t.error("url", "an sftp:// directory must not contain spaces, quotes or backslashes")
                }
            }
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
            if !["prefix", "station", "yyyy", "MM", "dd", "product"].contains(token) {
                t.error("url", "unknown token {\(token)}; use {prefix}, {station}, {yyyy}, {MM}, {dd} or {product}")
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

    func parseStatusPage(_ t: TableReader) -> StatusPageConfig {
        defer { t.rejectUnknownKeys() }
        var page = StatusPageConfig()
        page.enabled = t.bool("enabled", default: page.enabled)
        if let raw = t.string("listen") {
            if let (host, port) = StatusPageConfig.parseListen(raw) {
                page.host = host
                page.port = port
            } else {
                t.error("listen", "\"\(raw)\" is not an address like \"127.0.0.1:8080\" or \"[::1]:8080\" (an IP address and a port 0 to 65535)")
            }
        }
        page.refresh = t.duration("refresh", default: page.refresh)
        if page.refresh < .seconds(1) {
            t.error("refresh", "must be at least 1s (default 30s)")
            page.refresh = .seconds(30)
        }
        return page
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

    /// `status_address` with `status_calibrating[_mask]` / `status_fault[_mask]`: the analyzer's status word.
    func parseStatusRegister(_ t: TableReader, register: RegisterKind) -> StatusRegister? {
        let keys = ["status_register", "status_calibrating", "status_calibrating_mask", "status_fault", "status_fault_mask"]
        guard let address = t.int("status_address", range: 0...65535) else {
            for key in keys where t.has(key) {
                t.markUsed(key)
                t.error(key, "needs status_address = <zero-based address of the status register>")
            }
            return nil
        }
        let kind: RegisterKind = t.choice("status_register", default: register)!
        func matches(_ listKey: String, _ maskKey: String) -> [StatusRegister.Match] {
            var out: [StatusRegister.Match] = []
            if let raw = t.table[listKey] {
                t.markUsed(listKey)
                let values = raw.array.map { Array($0) } ?? []
                let words = values.compactMap { $0.int }.filter { (0...65535).contains($0) }.map { UInt16($0) }
                if raw.array == nil || words.count != values.count || words.isEmpty {
                    t.error(listKey, "must be a non-empty array of register values 0 to 65535, e.g. [2, 3]")
                } else {
                    out.append(.values(Set(words)))
                }
            }
            if let mask = t.int(maskKey, range: 1...65535) { out.append(.mask(UInt16(mask))) }
            return out
        }
        let calibrating = matches("status_calibrating", "status_calibrating_mask")
        let fault = matches("status_fault", "status_fault_mask")
        if calibrating.isEmpty && fault.isEmpty {
            t.error("status_address", "say which values mean what: status_calibrating / status_calibrating_mask and/or status_fault / status_fault_mask")
        }
        return StatusRegister(register: kind, address: address, calibrating: calibrating, fault: fault)
    }

    /// Averaging, validity, limits and AQI keys of a channel.
    func parseAveraging(_ t: TableReader, into ch: inout ChannelConfig, station: Station?) {
        var a = AveragePolicy()
        a.kind = t.choice("average", default: .mean)!
        a.hourMinFraction = t.double("hour_min_fraction", default: station?.hourMinFraction ?? 0.75)
        if !(a.hourMinFraction > 0 && a.hourMinFraction <= 1) { t.error("hour_min_fraction", "\(a.hourMinFraction) must be above 0 and at most 1") }
        a.dayMinHours = t.int("day_min_hours", default: station?.dayMinHours ?? 18, range: 1...24)!
        a.speedWeighted = t.bool("speed_weighted", default: false)
        a.limit1h = t.optionalDouble("limit_1h")
        a.limit24h = t.optionalDouble("limit_24h")
        a.limitMin = t.optionalDouble("limit_min")
        ch.speedChannel = t.string("speed_channel")
        if a.kind == .vector, ch.speedChannel == nil, a.speedWeighted {
            t.error("speed_weighted", "needs speed_channel = \"<code of the wind-speed channel>\"")
        }
        if a.kind != .vector, ch.speedChannel != nil { t.error("speed_channel", "only applies to average = \"vector\"") }
        ch.averaging = a

        var v = ValidityPolicy()
        v.validMin = t.optionalDouble("valid_min")
        v.validMax = t.optionalDouble("valid_max")
        if let lo = v.validMin, let hi = v.validMax, lo >= hi { t.error("valid_max", "\(hi) must be above valid_min (\(lo))") }
        v.stuckPolls = t.int("stuck_polls", range: 2...100_000)
        v.maxRatePerMinute = t.optionalDouble("max_rate")
        if let r = v.maxRatePerMinute, r <= 0 { t.error("max_rate", "must be above 0 (channel units per minute)") }
        ch.validity = v

        // VN_AQI: explicit `aqi = "PM2.5"` (or "none"), else inferred from the code at ambient-air stations.
        let aqiText = t.string("aqi")
        var pollutant: AQIPollutant?
        if let aqiText {
            if aqiText != "none" {
                pollutant = AQIPollutant(rawValue: aqiText)
                if pollutant == nil {
                    t.error("aqi", "\"\(aqiText)\" is not one of none, \(AQIPollutant.allCases.map(\.rawValue).joined(separator: ", "))")
                }
            }
        } else if station?.kind == .ambientAir {
            let key = ch.code.uppercased().filter { $0.isLetter || $0.isNumber }
            pollutant = ["PM10": .pm10, "PM25": .pm25, "O3": .o3, "CO": .co, "SO2": .so2, "NO2": .no2][key]
        }
        if let pollutant {
            if let factor = Self.microgramFactor(unit: ch.unit, pollutant: pollutant, celsius: station?.aqiReferenceCelsius ?? 25) {
                ch.aqiPollutant = pollutant
                ch.aqiFactor = factor
            } else {
                t.error(aqiText == nil ? "unit" : "aqi", "cannot convert \"\(ch.unit)\" to µg/m³ for the VN_AQI (\(pollutant.rawValue)); "
                        + "use µg/Nm3, mg/Nm3\(pollutant.molarMass != nil ? ", ppb or ppm" : ""), or set aqi = \"none\"")
            }
        }
        ch.rolling8h = t.bool("rolling_8h", default: ch.aqiPollutant == .o3 || ch.aqiPollutant == .co)
    }

    /// Factor from a channel unit to µg/m³ (ppb/ppm at `celsius` and 1 atm); nil when not convertible.
    static func microgramFactor(unit: String, pollutant: AQIPollutant, celsius: Double) -> Double? {
        let u = unit.lowercased().replacingOccurrences(of: "³", with: "3").replacingOccurrences(of: "μ", with: "µ")
        switch u {
        case "µg/m3", "µg/nm3", "ug/m3", "ug/nm3": return 1
        case "mg/m3", "mg/nm3": return 1000
        case "ppb", "ppm":
            guard let m = pollutant.molarMass else { return nil }
            return m / (22.414 * (273.15 + celsius) / 273.15) * (u == "ppm" ? 1000 : 1)
        default: return nil
        }
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

// MARK: - ascii-serial channels

/// What `parseTextChannel` decided about a `[[channel]]`.
private enum ChannelKind {
    /// A register channel: `parseChannel` goes on.
    case modbus
    /// A channel of an `ascii-serial` bus, fully parsed (nil when it has problems).
    case text(ChannelConfig?)
}

/// The framing of each `line` request per bus, so two channels sharing a request agree on how its answer ends.
private final class TextRequestRegistry {
    var seen: [String: (path: String, terminator: [UInt8], checksum: LineChecksum)] = [:]
}

extension Parser {
    /// Keys that only make sense for register channels.
    static let registerKeys = ["slave", "register", "address", "type", "byte_order", "status_address", "status_register",
                               "status_calibrating", "status_calibrating_mask", "status_fault", "status_fault_mask"]
    static let lineKeys = ["request", "response", "terminator", "checksum", "status_map"]
    static let bayernHessenKeys = ["bh_address", "bh_component", "bh_calibration_mask", "bh_fault_mask", "bh_error_mask"]

    /// Reads a channel of an `ascii-serial` bus (`request`/`response`… or `bh_address`/`bh_component`…)
    /// and its shared keys (scale, offset, decimals, averaging). A channel is one when its bus is an
    /// `ascii-serial` bus, or, when the bus is unknown or invalid, when it uses one of those keys.
    /// For register channels it only checks that no text key is used, and the slave range of
    /// `modbus-rtu-over-tcp` buses, then lets `parseChannel` go on.
    fileprivate func parseTextChannel(_ t: TableReader, code: String?, unit: String?, busName: String?,
                                      buses: [String: BusConfig], station: Station?) -> ChannelKind {
        let bus = busName.flatMap { buses[$0] }
        let textKeys = Self.lineKeys + Self.bayernHessenKeys
        var proto: TextProtocol?
        switch bus?.transport {
        case .asciiSerial(_, _, _, _, _, let p)?:
            proto = p
        case let transport?:
            for key in textKeys where t.has(key) {
                t.markUsed(key)
                t.error(key, "only applies to channels of an ascii-serial bus; bus \"\(busName ?? "")\" is \(transport.name)")
            }
            if case .modbusRTUOverTCP = transport, let slave = t.table["slave"]?.int, (0...255).contains(slave), !(1...247).contains(slave) {
                t.error("slave", "\(slave) is out of range 1 to 247 for an RTU bus")
            }
            return .modbus
        case nil:
            // Unknown or invalid bus: judge by the keys, so one bad bus does not flag every key of its channels.
            if Self.lineKeys.contains(where: t.has) { proto = .line } else if Self.bayernHessenKeys.contains(where: t.has) { proto = .bayernHessen } else { return .modbus }
        }
        for key in Self.registerKeys where t.has(key) {
            t.markUsed(key)
            t.error(key, "only applies to register (Modbus) channels; this channel is on ascii-serial bus \"\(busName ?? "")\"")
        }
        let ownKeys = proto == .line ? Self.lineKeys : Self.bayernHessenKeys
        let otherKeys = proto == .line ? Self.bayernHessenKeys : Self.lineKeys
        for key in otherKeys where t.has(key) {
            t.markUsed(key)
            t.error(key, "only applies to protocol \"\(proto == .line ? TextProtocol.bayernHessen.rawValue : TextProtocol.line.rawValue)\"; "
                    + "bus \"\(busName ?? "")\" speaks \"\(proto?.rawValue ?? "")\" (use \(ownKeys.prefix(2).joined(separator: " and ")))")
        }
        let scale = t.double("scale", default: 1)
        if scale == 0 { t.error("scale", "must not be 0") }
        let offset = t.double("offset", default: 0)
        let decimals = t.int("decimals", default: 2, range: 0...6)!
        let text: TextChannel? = proto == .line ? parseLineChannel(t, busName: busName).map { .line($0) }
                                                : parseBayernHessenChannel(t).map { .bayernHessen($0) }
        guard let code, let unit, let busName, let text else { return .text(nil) }
        var slave = 1
        if case .bayernHessen(let bh) = text { slave = bh.address }
        var channel = ChannelConfig(code: code, unit: unit, bus: busName, slave: slave, register: .holding, address: 0,
                                    type: .float32, byteOrder: .abcd, scale: scale, offset: offset, decimals: decimals)
        channel.text = text
        parseAveraging(t, into: &channel, station: station)
        return .text(channel)
    }

    private func parseLineChannel(_ t: TableReader, busName: String?) -> LineChannel? {
        var request: [UInt8]?
        if let raw = t.string("request", required: true) {
            switch Self.decodeEscapes(raw) {
            case .success(let bytes) where bytes.isEmpty: t.error("request", "must not be empty")
            case .success(let bytes): request = bytes
            case .failure(let problem): t.error("request", problem.message)
            }
        }
        var terminator: [UInt8] = Array("\r\n".utf8)
        if let raw = t.string("terminator") {
            switch Self.decodeEscapes(raw) {
            case .success(let bytes) where bytes.isEmpty: t.error("terminator", "must not be empty (e.g. '\\r\\n', '\\r' or '\\x03')")
            case .success(let bytes): terminator = bytes
            case .failure(let problem): t.error("terminator", problem.message)
            }
        }
        let checksum: LineChecksum = t.choice("checksum", default: LineChecksum.none)!
        var pattern: String?
        var hasStatus = false
        if let raw = t.string("response", required: true) {
            do {
                let regex = try Regex(raw)
                if !regex.contains(captureNamed: "value") {
                    t.error("response", "needs a named group (?<value>…) around the number, e.g. \"COD=(?<value>[-+0-9.]+)\"")
                } else {
                    pattern = raw
                    hasStatus = regex.contains(captureNamed: "status")
                }
            } catch {
                t.error("response", "\"\(raw)\" is not a valid regular expression: \(error)")
            }
        }
        var statusMap: [String: InstrumentStatus] = [:]
        if let raw = t.table["status_map"] {
            t.markUsed("status_map")
            if let table = raw.table {
                for key in table.keys.sorted() {
                    let text = table[key]?.string
                    if let text, let status = InstrumentStatus.allCases.first(where: { $0.description == text }) {
                        statusMap[key] = status
                    } else {
                        issues.add(t.keyPath("status_map") + ".\(key)", "\(text.map { "\"\($0)\"" } ?? "value") is not one of measuring, calibrating, fault")
                    }
                }
                if table.keys.isEmpty { t.error("status_map", "must map at least one status text, e.g. { \"M\" = \"measuring\", \"C\" = \"calibrating\" }") }
                if pattern != nil, !hasStatus {
                    t.error("status_map", "the response pattern has no (?<status>…) group to map")
                }
            } else {
                t.error("status_map", "must be an inline table like { \"M\" = \"measuring\", \"C\" = \"calibrating\", \"F\" = \"fault\" }")
            }
        } else if hasStatus {
            t.error("status_map", "missing; the response pattern has a (?<status>…) group: say what its texts mean, e.g. { \"M\" = \"measuring\", \"C\" = \"calibrating\", \"F\" = \"fault\" }")
        }
        guard let request, let pattern else { return nil }
        // Channels sharing a request share one answer: its framing must be the same.
        if let busName {
            let key = busName + "\u{0}" + request.map { String($0) }.joined(separator: ",")
            if let first = textRequests.seen[key] {
                if first.terminator != terminator {
                    t.error("terminator", "differs from \(first.path), which sends the same request on bus \"\(busName)\" (one request, one answer)")
                }
                if first.checksum != checksum {
                    t.error("checksum", "differs from \(first.path), which sends the same request on bus \"\(busName)\" (one request, one answer)")
                }
            } else {
                textRequests.seen[key] = (t.path, terminator, checksum)
            }
        }
        return LineChannel(request: request, response: pattern, terminator: terminator, checksum: checksum, statusMap: statusMap)
    }

    private func parseBayernHessenChannel(_ t: TableReader) -> BayernHessenChannel? {
        let address = t.int("bh_address", required: true, range: 0...999)
        let component = t.int("bh_component", default: 1, range: 1...99)!
        func mask(_ key: String, _ def: UInt8) -> UInt8 {
            UInt8(t.int(key, default: Int(def), range: 0...255)!)
        }
        let calibration = mask("bh_calibration_mask", BayernHessenChannel.defaultCalibrationMask)
        let fault = mask("bh_fault_mask", BayernHessenChannel.defaultFaultMask)
        let error = mask("bh_error_mask", BayernHessenChannel.defaultErrorMask)
        if calibration & fault != 0 {
            t.error("bh_calibration_mask", String(format: "shares bits 0x%02X with bh_fault_mask; a status bit means one thing", calibration & fault))
        }
        guard let address else { return nil }
        return BayernHessenChannel(address: address, component: component, calibrationMask: calibration, faultMask: fault, errorMask: error)
    }

    struct EscapeProblem: Error { let message: String }

    /// Decodes `\r`, `\n`, `\t`, `\xHH` and `\\` in a request or terminator written in a TOML literal
    /// string ('…'); other characters are sent as their UTF-8 bytes. (In a basic string "…", TOML has
    /// already turned `\r`, `\n` and `\u0002` into the characters themselves.)
    static func decodeEscapes(_ text: String) -> Result<[UInt8], EscapeProblem> {
        var out: [UInt8] = []
        var bytes = Array(text.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "\\") else { out.append(b); continue }
            guard let e = bytes.popFirst() else { return .failure(EscapeProblem(message: "ends with a lone backslash; write \\\\ for one backslash")) }
            switch e {
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "x"):
                let digits = bytes.prefix(2)
                guard digits.count == 2, let v = UInt8(String(decoding: digits, as: UTF8.self), radix: 16) else {
                    return .failure(EscapeProblem(message: "\\x needs two hex digits, e.g. \\x02"))
                }
                out.append(v)
                bytes = bytes.dropFirst(2)
            default:
                return .failure(EscapeProblem(message: "unknown escape \\\(String(UnicodeScalar(e))); use \\r, \\n, \\t, \\xHH or \\\\"))
            }
        }
        return .success(out)
    }
}
