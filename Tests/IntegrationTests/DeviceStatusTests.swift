import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// Analyzer status registers and dead devices on a shared RS-485 line, against pymodbus servers.
@Suite(.serialized, .ownThread)
struct DeviceStatusTests {
    func config(port: Int, dir: URL, extra: String = "") -> String {
        """
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "\(dir.appendingPathComponent("data").path)"
        record_interval = "2s"
        poll_interval = "500ms"
        record_delay = "1s"
        [[bus]]
        name = "lan"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        port = \(port)
        timeout = "200ms"
        \(extra)
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "lan"
        slave = 1
        address = 0
        type = "float32"
        status_address = 10
        status_calibrating = [2, 3]
        status_fault_mask = 0x8000
        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "lan"
        slave = 1
        address = 2
        type = "float32"
        """
    }

    func readStatus(statusWord: UInt16, in dir: URL) throws -> [String: String] {
        var spec = ModbusSpec()
        let f = RegisterCodec(type: .float32, byteOrder: .abcd)
        spec.setHolding(device: 1, address: 0, values: f.encode(41.2) + f.encode(18.5))
        spec.setHolding(device: 1, address: 10, values: [statusWord])
        let server = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { server.stop() }
        let file = dir.appendingPathComponent("station-\(statusWord).toml")
        try config(port: server.port, dir: dir).write(to: file, atomically: true, encoding: .utf8)
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--json", "--direct", "--config", file.path],
                                logDirectory: dir, label: "read-\(statusWord)")
        _ = p.waitForExit(timeout: .seconds(20))
        let rows = try JSONSerialization.jsonObject(with: Data(p.stdoutText.utf8)) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["code"] as! String, "\($0["status_code"]!)|\($0["reason"] ?? "")") })
    }

    @Test func statusRegisterMapsToMeasuringCalibratingFault() throws {
        let dir = try makeTemporaryDirectory("status-reg")
        #expect(try readStatus(statusWord: 0, in: dir) == ["COD": "00|", "TSS": "00|"])
        #expect(try readStatus(statusWord: 3, in: dir) == ["COD": "01|", "TSS": "00|"], "analyzer-side calibration shows as 01")
        #expect(try readStatus(statusWord: 0x8001, in: dir) == ["COD": "02|analyzer reports fault (status 0x8001)", "TSS": "00|"])
    }

    @Test func deadDeviceGoesOfflineAndCostsTheOthersNothing() async throws {
        let dir = try makeTemporaryDirectory("offline")
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2) + [0, 0, 0, 0, 0, 0, 0, 0, 0])
        let pty = try PtyPair.start(in: dir)
        let server = try ModbusPeer.rtu(device: pty.a, spec: spec, in: dir)
        defer { server.stop(); pty.stop() }
        let file = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            record_interval = "2s"
            poll_interval = "500ms"
            record_delay = "1s"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "\(pty.b)"
            timeout = "300ms"
            reconnect_max = "2s"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "rs485"
            slave = 1
            address = 0
            type = "float32"
            [[channel]]
            code = "NH4"
            unit = "mg/L"
            bus = "rs485"
            slave = 7
            address = 0
            type = "uint16"
            """.write(to: file, atomically: true, encoding: .utf8)
        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", file.path, "--log-level", "debug"],
                                     logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        try await waitUntilAsync(timeout: .seconds(20), what: "slave 7 offline") { daemon.stderrText.contains("device 7 is offline") }
        let status = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--json", "--config", file.path],
                                     logDirectory: dir, label: "status")
        _ = status.waitForExit(timeout: .seconds(10))
        #expect(status.stdoutText.contains("\"7\":\"offline\"") || status.stdoutText.contains("\"7\" : \"offline\""), "\(status.stdoutText)")
        let text = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--config", file.path],
                                   logDirectory: dir, label: "status-text")
        _ = text.waitForExit(timeout: .seconds(10))
        let busRow = text.stdoutText.split(separator: "\n").first { $0.hasPrefix("rs485 ") }.map(String.init) ?? ""
        #expect(busRow.contains(/\s1 online \(\d+ ms\), 7 offline \(\d+ ms\)$/), "the bus row names each device's health and response time: \(text.stdoutText)")
        // While offline it is tried only after a backoff (0.5 s, 1 s, 2 s …): most ticks send nothing to slave 7.
        let mark = daemon.stderrText.count
        try await Task.sleep(for: .seconds(4))
        let log = String(daemon.stderrText.dropFirst(mark))
        let attempts = log.split(separator: "\n").filter { $0.contains("request failed") && $0.contains("slave=7") }.count
        let ticks = log.components(separatedBy: "tick polled").count - 1
        #expect(ticks >= 6 && attempts * 2 <= ticks, "\(attempts) requests to the dead slave in \(ticks) ticks")
        #expect(daemon.isRunning)
    }
}
