import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// `quantrac probe` against pymodbus: every decoding around the address, and the serial-port guard.
@Suite(.serialized)
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
