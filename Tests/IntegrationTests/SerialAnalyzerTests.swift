import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// ASCII analyzers through libserialport on real pty pairs (a pyserial analyzer on the other end), and
/// Modbus RTU over TCP against pymodbus serving RTU framing on a TCP socket, through the real
/// `quantrac read --json` and `quantracd`.
///
/// libserialport 0.1.1 cannot open a pty by itself; the suite builds `Tests/Fixtures/pty_serialport_shim.c`
/// with gcc and runs the binaries with it in `LD_PRELOAD` (see the shim for what it fakes).
@Suite(.serialized, .ownThread)
struct SerialAnalyzerTests {
    struct Row: Decodable {
        let code: String
        let value: Double?
        let status: String
        let statusCode: String
        let reason: String?
    }

    /// The LD_PRELOAD shim, built into `dir`.
    static func buildShim(in dir: URL) throws -> URL {
        let shim = dir.appendingPathComponent("pty_serialport_shim.so")
        let gcc = try TestProcess(executable: URL(fileURLWithPath: "/usr/bin/gcc"),
                                  arguments: ["-shared", "-fPIC", "-O2", "-o", shim.path,
                                              Repository.fixtures.appendingPathComponent("pty_serialport_shim.c").path, "-ldl"],
                                  logDirectory: dir, label: "gcc")
        guard gcc.waitForExit(timeout: .seconds(60)) == 0 else { throw TestHarnessError("gcc failed:\n" + gcc.logReport()) }
        return shim
    }

    /// A pyserial analyzer on `device`; its behaviour follows the JSON in `control` (see the script).
    static func analyzer(_ proto: String, device: String, control: URL, in dir: URL) throws -> TestProcess {
        let p = try TestProcess.python(script: Repository.fixtures.appendingPathComponent("serial_analyzer.py"),
                                       arguments: ["--device", device, "--protocol", proto, "--control", control.path],
                                       logDirectory: dir, label: "analyzer-\(proto)")
        _ = try p.waitForLine(prefix: "READY", timeout: .seconds(20))
        return p
    }

    static func setControl(_ control: URL, _ json: String) throws {
        let tmp = control.appendingPathExtension("tmp")
        try json.write(to: tmp, atomically: false, encoding: .utf8)
        _ = rename(tmp.path, control.path)
    }

    static func station(dir: URL, lineDevice: String, bhDevice: String, recordInterval: String = "1m", target: URL? = nil) -> String {
        """
        [station]
        prefix = "HN_ABCD_KHI001"
        kind = "stack-gas"
        data_dir = "\(dir.appendingPathComponent("data").path)"
        record_interval = "\(recordInterval)"
        poll_interval = "1s"
        record_delay = "3s"

        [[bus]]
        name = "line"
        transport = "ascii-serial"
        protocol = "line"
        device = "\(lineDevice)"
        baud = 9600
        timeout = "300ms"

        [[bus]]
        name = "gas"
        transport = "ascii-serial"
        protocol = "bayern-hessen"
        device = "\(bhDevice)"
        timeout = "300ms"

        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "line"
        request = 'RD?\\r\\n'
        response = 'COD=(?<value>[-+0-9.]+);.*ST=(?<status>\\w)'
        checksum = "xor8"
        status_map = { "M" = "measuring", "C" = "calibrating", "F" = "fault" }

        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "line"
        request = 'RD?\\r\\n'
        response = 'TSS=(?<value>[-+0-9.]+)'
        checksum = "xor8"

        [[channel]]
        code = "pH"
        unit = "-"
        bus = "line"
        request = "PH?\\r"
        terminator = "\\r"
        response = '^pH (?<value>[0-9.]+)$'

        [[channel]]
        code = "SO2"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 1

        [[channel]]
        code = "NO"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 2

        [[channel]]
        code = "NO2"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 3
        decimals = 5

        [[channel]]
        code = "PM10"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 2
        decimals = 1
        \(target.map { "\n[[target]]\nname = \"dept\"\nurl = \"file://\($0.path)\"\n" } ?? "")
        """
    }

    static func read(_ config: URL, shim: URL, in dir: URL) throws -> [String: Row] {
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--config", config.path, "--json", "--direct"],
                                environment: ["LD_PRELOAD": shim.path], logDirectory: dir, label: "read")
        guard p.waitForExit(timeout: .seconds(30)) == 0 else { throw TestHarnessError("quantrac read failed\n" + p.logReport()) }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try decoder.decode([Row].self, from: Data(p.stdoutText.utf8))
        return Dictionary(rows.map { ($0.code, $0) }, uniquingKeysWith: { a, _ in a })
    }

    @Test func lineAndBayernHessenAnalyzersThroughQuantracRead() throws {
        let dir = try makeTemporaryDirectory("serial-read")
        let shim = try Self.buildShim(in: dir)
        let linePty = try PtyPair.start(in: dir.appendingPathComponent("line"))
        let bhPty = try PtyPair.start(in: dir.appendingPathComponent("bh"))
        let lineControl = dir.appendingPathComponent("line.json"), bhControl = dir.appendingPathComponent("bh.json")
        try Self.setControl(lineControl, "{}")
        try Self.setControl(bhControl, "{}")
        let lineAnalyzer = try Self.analyzer("line", device: linePty.a, control: lineControl, in: dir)
        let bhAnalyzer = try Self.analyzer("bayern-hessen", device: bhPty.a, control: bhControl, in: dir)
        defer { lineAnalyzer.stop(); bhAnalyzer.stop(); linePty.stop(); bhPty.stop() }
        let config = dir.appendingPathComponent("station.toml")
        try Self.station(dir: dir, lineDevice: linePty.resolvedB, bhDevice: bhPty.resolvedB).write(to: config, atomically: true, encoding: .utf8)
        let logs = { "\n" + lineAnalyzer.logReport() + "\n" + bhAnalyzer.logReport() }

        // 1. Everything answers: values and statuses as the analyzers send them.
        var r = try Self.read(config, shim: shim, in: dir)
        #expect(r["COD"]?.value == 41.2 && r["COD"]?.status == "measuring", "\(logs())")
        #expect(r["TSS"]?.value == 18.52 && r["TSS"]?.statusCode == "00")
        #expect(r["pH"]?.value == 7.45 && r["pH"]?.statusCode == "00")
        #expect(r["SO2"]?.value == 12.34 && r["NO"]?.value == 5.678 && r["NO2"]?.value == 0.04567)
        #expect(r["PM10"]?.value == 45.6 && r["PM10"]?.statusCode == "00")

        // 2. The line analyzer sends noise; the gas analyzer zeroes (status bit 2) and the dust monitor reports an error.
        try Self.setControl(lineControl, #"{"mode": "garbage"}"#)
        try Self.setControl(bhControl, #"{"bh_status": {"001": "04"}, "bh_error": {"002": "01"}}"#)
        r = try Self.read(config, shim: shim, in: dir)
        for code in ["COD", "TSS"] {
            #expect(r[code]?.statusCode == "02" && r[code]?.value == nil, "\(code)")
            #expect(r[code]?.reason?.hasPrefix("bad checksum (got \\x80\\x9F, expected ") == true, "\(r[code]?.reason ?? "-")")
        }
        #expect(r["pH"]?.statusCode == "02" && r["pH"]?.reason?.hasPrefix("answer does not match response: ") == true, "\(r["pH"]?.reason ?? "-")")
        for code in ["SO2", "NO", "NO2"] { #expect(r[code]?.status == "calibrating" && r[code]?.statusCode == "01", "\(code)") }
        #expect(r["SO2"]?.value == 12.34)
        #expect(r["PM10"]?.statusCode == "02" && r["PM10"]?.reason == "analyzer reports error (error byte 0x01)")

        // 3. The gas analyzer goes silent, the line analyzer answers half a line; then both recover.
        try Self.setControl(lineControl, #"{"mode": "partial"}"#)
        try Self.setControl(bhControl, #"{"mode": "silent"}"#)
        r = try Self.read(config, shim: shim, in: dir)
        #expect(r["COD"]?.reason?.hasPrefix("incomplete answer (") == true, "\(r["COD"]?.reason ?? "-")")
        for code in ["SO2", "NO", "NO2", "PM10"] { #expect(r[code]?.reason == "timeout", "\(code)") }

        try Self.setControl(lineControl, #"{"mode": "badcheck", "line_status": "C"}"#)
        try Self.setControl(bhControl, #"{"mode": "badcheck"}"#)
        r = try Self.read(config, shim: shim, in: dir)
        #expect(r["COD"]?.reason?.hasPrefix("bad checksum") == true && r["pH"]?.statusCode == "00")
        #expect(r["SO2"]?.reason?.hasPrefix("bad block check") == true, "\(r["SO2"]?.reason ?? "-")")

        try Self.setControl(lineControl, #"{"line_status": "C"}"#)
        try Self.setControl(bhControl, "{}")
        r = try Self.read(config, shim: shim, in: dir)
        #expect(r["COD"]?.status == "calibrating" && r["COD"]?.value == 41.2)
        #expect(r.values.filter { $0.code != "COD" }.allSatisfy { $0.statusCode == "00" }, "\(r.values.map { "\($0.code) \($0.reason ?? "")" })")
    }

    @Test func daemonWritesTheAnalyzersStatusesIntoTheRegulatorFile() async throws {
        let dir = try makeTemporaryDirectory("serial-daemon")
        let shim = try Self.buildShim(in: dir)
        let linePty = try PtyPair.start(in: dir.appendingPathComponent("line"))
        let bhPty = try PtyPair.start(in: dir.appendingPathComponent("bh"))
        let lineControl = dir.appendingPathComponent("line.json"), bhControl = dir.appendingPathComponent("bh.json")
        // The COD analyzer is calibrating; the gas analyzer is in span mode (bit 3); the dust monitor reports an error.
        try Self.setControl(lineControl, #"{"line_status": "C"}"#)
        try Self.setControl(bhControl, #"{"bh_status": {"001": "08"}, "bh_error": {"002": "20"}}"#)
        let lineAnalyzer = try Self.analyzer("line", device: linePty.a, control: lineControl, in: dir)
        let bhAnalyzer = try Self.analyzer("bayern-hessen", device: bhPty.a, control: bhControl, in: dir)
        defer { lineAnalyzer.stop(); bhAnalyzer.stop(); linePty.stop(); bhPty.stop() }
        let receiver = dir.appendingPathComponent("receiver")
        try FileManager.default.createDirectory(at: receiver, withIntermediateDirectories: true)
        let config = dir.appendingPathComponent("station.toml")
        try Self.station(dir: dir, lineDevice: linePty.resolvedB, bhDevice: bhPty.resolvedB, recordInterval: "4s", target: receiver)
            .write(to: config, atomically: true, encoding: .utf8)

        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", config.path, "--log-level", "debug"],
                                     environment: ["LD_PRELOAD": shim.path], logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        let files = { ((try? FileManager.default.contentsOfDirectory(atPath: receiver.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted() }
        try await waitUntilAsync(timeout: .seconds(40), what: "two files at the receiver") { files().count >= 2 }
        let name = files()[1]  // [0] may cover a partial first interval
        let stamp = String(name.dropFirst("HN_ABCD_KHI001_".count).prefix(14))
        let text = try String(contentsOf: receiver.appendingPathComponent(name), encoding: .utf8)
        let expected = [
            ("COD", "41.20", "mg/L", "01"), ("TSS", "18.52", "mg/L", "00"), ("pH", "7.45", "-", "00"),
            ("SO2", "12.34", "mg/Nm3", "01"), ("NO", "5.68", "mg/Nm3", "01"), ("NO2", "0.04567", "mg/Nm3", "01"),
            ("PM10", "0.0", "mg/Nm3", "02"),
        ].map { "\($0.0)\t\($0.1)\t\($0.2)\t\(stamp)\t\($0.3)\r\n" }.joined()
        #expect(text == expected, "daemon log:\n\(daemon.stderrText.suffix(4000))\n\(lineAnalyzer.stderrText.suffix(1000))")
        #expect(daemon.stderrText.contains("analyzer reports error (error byte 0x20)"))

        // A serial line has one owner: while the daemon holds the ports, a direct read is refused and says why;
        // a plain read gets the daemon's live values instead.
        let direct = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--config", config.path, "--json", "--direct"],
                                     environment: ["LD_PRELOAD": shim.path], logDirectory: dir, label: "read-direct")
        _ = direct.waitForExit(timeout: .seconds(30))
        #expect(direct.exitStatus != 0 && direct.stderrText.contains("quantracd is running and owns \(linePty.resolvedB), \(bhPty.resolvedB)"),
                "\(direct.stderrText)")
        let live = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--config", config.path, "--json"],
                                   logDirectory: dir, label: "read-live")
        _ = live.waitForExit(timeout: .seconds(30))
        #expect(live.exitStatus == 0 && live.stdoutText.contains("\"code\" : \"SO2\""), "\(live.stdoutText)\(live.stderrText)")
    }

    @Test func modbusRTUOverTCPThroughQuantracRead() throws {
        let dir = try makeTemporaryDirectory("rtu-over-tcp")
        var spec = ModbusSpec()
        spec.setHolding(device: 3, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(123.456))
        spec.setHolding(device: 3, address: 2, values: RegisterCodec(type: .int16, byteOrder: .abcd).encode(-123))
        spec.setInput(device: 3, address: 10, values: RegisterCodec(type: .uint32, byteOrder: .cdab).encode(1_234_567))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let specURL = dir.appendingPathComponent("spec.json")
        try spec.jsonData().write(to: specURL)
        let server = try TestProcess.python(script: Repository.fixtures.appendingPathComponent("modbus_rtu_tcp_server.py"),
                                            arguments: ["--port", "0", "--spec", specURL.path], logDirectory: dir)
        defer { server.stop() }
        let port = try #require(Int(try server.waitForLine(prefix: "READY ", timeout: .seconds(20)).dropFirst(6)))
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"

            [[bus]]
            name = "dtu"
            transport = "modbus-rtu-over-tcp"
            host = "127.0.0.1"
            port = \(port)
            timeout = "300ms"

            [[channel]]
            code = "Flow"
            unit = "m3/h"
            bus = "dtu"
            slave = 3
            address = 0
            type = "float32"

            [[channel]]
            code = "Temp"
            unit = "°C"
            bus = "dtu"
            slave = 3
            address = 2
            type = "int16"
            scale = 0.1

            [[channel]]
            code = "TN"
            unit = "mg/L"
            bus = "dtu"
            slave = 3
            register = "input"
            address = 10
            type = "uint32"
            byte_order = "CDAB"
            scale = 0.001

            [[channel]]
            code = "Bad"
            unit = "u"
            bus = "dtu"
            slave = 3
            address = 50
            type = "uint16"

            [[channel]]
            code = "Gone"
            unit = "u"
            bus = "dtu"
            slave = 4
            address = 0
            type = "uint16"
            """.write(to: config, atomically: true, encoding: .utf8)
        let check = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["check", "--config", config.path],
                                    logDirectory: dir, label: "check")
        #expect(check.waitForExit(timeout: .seconds(30)) == 0, "\(check.stderrText)")
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--config", config.path, "--json", "--direct"],
                                logDirectory: dir, label: "read")
        #expect(p.waitForExit(timeout: .seconds(30)) == 0, "\(p.logReport())")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try decoder.decode([Row].self, from: Data(p.stdoutText.utf8))
        let r = Dictionary(rows.map { ($0.code, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(r["Flow"]?.value == Double(Float(123.456)) && r["Flow"]?.statusCode == "00", "\(p.stdoutText)\n\(server.logReport())")
        #expect(r["Temp"]?.value.map { abs($0 - -12.3) < 1e-9 } == true)
        #expect(r["TN"]?.value.map { abs($0 - 1234.567) < 1e-9 } == true)
        #expect(r["Bad"]?.statusCode == "02" && r["Bad"]?.reason == "exception illegal data address")
        #expect(r["Gone"]?.statusCode == "02" && r["Gone"]?.reason == "timeout")
    }
}
