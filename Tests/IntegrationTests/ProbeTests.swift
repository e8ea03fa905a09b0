import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// `quantrac probe` against pymodbus: every decoding around the address, and the serial-port guard.
@Suite(.serialized, .ownThread)
struct ProbeTests {
    @Test func showsEveryDecodingAroundTheAddress() throws {
        let dir = try makeTemporaryDirectory("probe")
        var spec = ModbusSpec()
        // 123.456 as CDAB at address 5, inside a wider block so A-1 and A+1 exist.
        spec.setHolding(device: 3, address: 4, values: [0x1111] + RegisterCodec(type: .float32, byteOrder: .cdab).encode(123.456) + [0x2222, 0x3333, 0x4444])
        let server = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { server.stop() }
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = \(server.port)
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            address = 0
            type = "uint16"
            """.write(to: config, atomically: true, encoding: .utf8)
        let p = try TestProcess(executable: Repository.binary("quantrac"),
                                arguments: ["probe", "--config", config.path, "--bus", "lan", "--slave", "3", "--address", "5", "--count", "2", "--json"],
                                logDirectory: dir, label: "probe")
        _ = p.waitForExit(timeout: .seconds(20))
        #expect(p.exitStatus == 0, "\(p.stderrText)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(p.stdoutText.utf8)) as? [String: Any])
        #expect(result["start"] as? Int == 4)
        #expect((result["registers"] as? [Int])?.prefix(3) == [0x1111, 0xE979, 0x42F6])
        let decodings = try #require(result["decodings"] as? [[String: Any]])
        func value(_ start: Int, _ type: String, _ order: String) -> Double? {
            decodings.first { $0["start"] as? Int == start && $0["type"] as? String == type && $0["byte_order"] as? String == order }?["value"] as? Double
        }
        #expect(abs((value(5, "float32", "CDAB") ?? 0) - 123.456) < 1e-4, "the right reading is there")
        #expect(value(5, "float32", "ABCD") != nil && value(4, "float32", "CDAB") != nil && value(6, "float32", "CDAB") != nil,
                "and the neighbours, to spot an off-by-one")
        let text = try TestProcess(executable: Repository.binary("quantrac"),
                                   arguments: ["probe", "--config", config.path, "--bus", "lan", "--slave", "3", "--address", "5"],
                                   logDirectory: dir, label: "probe-text")
        _ = text.waitForExit(timeout: .seconds(20))
        #expect(text.stdoutText.contains("starting at 4 (one before: off-by-one?)"))
        #expect(text.stdoutText.contains("float32  -1.88337e+25  123.456"), "\(text.stdoutText)")
    }

    /// The whole text output of `quantrac probe` for a float stored CDAB (123.456 = 0x42F6E979, four
    /// distinct bytes), served by `quantrac-sim` between known words, against the golden text below: the
    /// CDAB column of the row at the address asked for shows 123.456.
    @Test func goldenOutputForAFloatStoredCDAB() throws {
        let dir = try makeTemporaryDirectory("probe-golden")
        var station = """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = 1
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            slave = 3
            address = 5
            type = "float32"
            byte_order = "CDAB"

            """
        var scenario = "station = \"station.toml\"\n[[bus]]\nname = \"lan\"\nport = 0\n[[channel]]\ncode = \"COD\"\nbase = 123.456\n"
        for (code, address, word) in [("A", 4, 0x1111), ("B", 7, 0x2222), ("C", 8, 0x3333), ("D", 9, 0x4444), ("E", 10, 0x5555)] {
            station += "[[channel]]\ncode = \"\(code)\"\nunit = \"-\"\nbus = \"lan\"\nslave = 3\naddress = \(address)\ntype = \"uint16\"\n"
            scenario += "[[channel]]\ncode = \"\(code)\"\nbase = \(word)\n"
        }
        try station.write(to: dir.appendingPathComponent("station.toml"), atomically: true, encoding: .utf8)
        try scenario.write(to: dir.appendingPathComponent("scenario.toml"), atomically: true, encoding: .utf8)
        let served = dir.appendingPathComponent("served.toml")
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"),
                                  arguments: ["--scenario", dir.appendingPathComponent("scenario.toml").path, "--station-out", served.path],
                                  logDirectory: dir, label: "sim")
        defer { sim.stop() }
        let port = try #require(try sim.waitForLine(prefix: "READY lan ", timeout: .seconds(20)).split(separator: " ").last)
        let probe = try TestProcess(executable: Repository.binary("quantrac"),
                                    arguments: ["probe", "--config", served.path, "--bus", "lan", "--slave", "3", "--address", "5"],
                                    logDirectory: dir, label: "probe")
        _ = probe.waitForExit(timeout: .seconds(20))
        #expect(probe.exitStatus == 0, "\(probe.stderrText)")
        let golden = """
            tcp://127.0.0.1:PORT slave 3 holding registers 4…10 (zero-based; mbpoll -r is this + 1)
            ADDRESS  HEX     UNSIGNED  SIGNED
            4        0x1111  4369      4369
            5 <      0xE979  59769     -5767
            6        0x42F6  17142     17142
            7        0x2222  8738      8738
            8        0x3333  13107     13107
            9        0x4444  17476     17476
            10       0x5555  21845     21845

            starting at 4 (one before: off-by-one?):
            TYPE     ABCD          CDAB          BADC         DCBA
            int32    286386553     -377941743    286357993    2045317393
            uint32   286386553     3917025553    286357993    2045317393
            float32  1.15104e-28   -1.88189e+25  1.1476e-28   1.51269e+35
            float64  1.89029e-226  2.9249e-144   1.8443e-226  3.03707e-144

            starting at 5 (the address asked for):
            TYPE     ABCD           CDAB         BADC          DCBA
            int32    -377928970     1123477881   2045376066    -163415575
            uint32   3917038326     1123477881   2045376066    4131551721
            float32  -1.88337e+25   123.456      1.5185e+35    -9.86112e+32
            float64  -1.20853e+200  4.65106e-62  1.84087e+279  4.65106e-62

            starting at 6 (one after):
            TYPE     ABCD         CDAB         BADC           DCBA
            int32    1123426850   572670710    -163438046     572716610
            uint32   1123426850   572670710    4131529250     572716610
            float32  123.067      2.19905e-18  -9.84373e+32   2.20855e-18
            float64  3.89374e+14  7.45248e+20  -4.46091e+261  7.45248e+20

            """
        let output = probe.stdoutText.replacingOccurrences(of: "tcp://127.0.0.1:\(port) ", with: "tcp://127.0.0.1:PORT ")
        #expect(output == golden, "probe output differs from the golden text:\n\(output)")
        let atAddress = output.components(separatedBy: "starting at 5 (the address asked for):\n").last ?? ""
        let header = atAddress.split(separator: "\n").first?.split(separator: " ").map(String.init) ?? []
        let float32 = atAddress.split(separator: "\n").first { $0.hasPrefix("float32 ") }?.split(separator: " ").map(String.init) ?? []
        #expect(header.firstIndex(of: "CDAB").map { float32[$0] } == "123.456", "the CDAB column of the float32 row at address 5 shows 123.456")

        // Past the end of the served map (11 does not exist): the device's refusal and what to check,
        // without the usage text of a command-line mistake.
        let beyond = try TestProcess(executable: Repository.binary("quantrac"),
                                     arguments: ["probe", "--config", served.path, "--bus", "lan", "--slave", "3", "--address", "10", "--count", "2"],
                                     logDirectory: dir, label: "probe-beyond")
        _ = beyond.waitForExit(timeout: .seconds(20))
        #expect(beyond.exitStatus == 1, "\(beyond.stderrText)")
        #expect(beyond.stderrText.contains("exception illegal data address"), "\(beyond.stderrText)")
        #expect(beyond.stderrText.contains("the device has no holding registers 10…11: check --address (zero-based) and --count"), "\(beyond.stderrText)")
        #expect(!beyond.stderrText.contains("Usage:"), "\(beyond.stderrText)")
    }

    @Test func refusesASerialPortTheDaemonOwns() async throws {
        let dir = try makeTemporaryDirectory("probe-owned")
        let pty = try PtyPair.start(in: dir)
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: [1, 2])
        let server = try ModbusPeer.rtu(device: pty.a, spec: spec, in: dir)
        defer { server.stop(); pty.stop() }
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            poll_interval = "1s"
            record_interval = "10s"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "\(pty.b)"
            timeout = "300ms"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "rs485"
            address = 0
            type = "uint16"
            """.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", config.path], logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        try await waitUntilAsync(timeout: .seconds(10), what: "the daemon's control socket") {
            FileManager.default.fileExists(atPath: dir.appendingPathComponent("data/control.sock").path)
        }
        let probe = try TestProcess(executable: Repository.binary("quantrac"),
                                    arguments: ["probe", "--config", config.path, "--bus", "rs485", "--address", "0"], logDirectory: dir, label: "probe")
        _ = probe.waitForExit(timeout: .seconds(10))
        #expect(probe.exitStatus != 0 && probe.stderrText.contains("quantracd is running and owns \(pty.b)"), "\(probe.stderrText)")
        // `quantrac read` asks the daemon instead.
        try await Task.sleep(for: .seconds(2))
        let read = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--config", config.path], logDirectory: dir, label: "read")
        _ = read.waitForExit(timeout: .seconds(10))
        #expect(read.exitStatus == 0 && read.stdoutText.contains("COD   1.00   mg/L  00 measuring"), "\(read.stdoutText)\(read.stderrText)")
    }
}
