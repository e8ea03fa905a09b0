import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// `quantrac calibrate` against a running daemon polling a pymodbus server.
@Suite(.serialized, .ownThread)
struct CalibrationTests {
    func quantrac(_ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: arguments, logDirectory: dir, label: label)
        _ = p.waitForExit(timeout: .seconds(30))
        return p
    }

    /// Status codes of COD per received file, oldest first.
    func codStatuses(_ recv: URL) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: recv.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
        return names.compactMap { name in
            let text = (try? String(contentsOf: recv.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return text.split(separator: "\r\n").first { $0.hasPrefix("COD\t") }.map { String($0.suffix(2)) }
        }
    }

    @Test func calibrationMarksReadingsEndsByItselfAndSurvivesARestart() async throws {
        let dir = try makeTemporaryDirectory("calibrate")
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2) + RegisterCodec(type: .float32, byteOrder: .abcd).encode(18.5))
        let modbus = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { modbus.stop() }
        let recv = dir.appendingPathComponent("recv")
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            record_interval = "2s"
            poll_interval = "250ms"
            record_delay = "1s"
            calibration_recovery = "2s"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = \(modbus.port)
            timeout = "200ms"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            address = 0
            type = "float32"
            [[channel]]
            code = "TSS"
            unit = "mg/L"
            bus = "lan"
            address = 2
            type = "float32"
            [[target]]
            name = "local"
            url = "file://\(recv.path)"
            """.write(to: config, atomically: true, encoding: .utf8)
        let c = ["--config", config.path]
        var daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: c, logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        try await waitUntilAsync(timeout: .seconds(20), what: "a measuring file") { codStatuses(recv).contains("00") }

        // A 3-second calibration: COD files turn 01, TSS stays 00, then back to 00 by itself after duration + recovery.
        let start = try quantrac(["calibrate", "start", "--channel", "COD", "--duration", "3s", "--reason", "span check"] + c, in: dir, label: "start")
        #expect(start.exitStatus == 0, "\(start.stderrText)")
        let before = codStatuses(recv).count
        try await waitUntilAsync(timeout: .seconds(10), what: "a COD file with status 01") { codStatuses(recv).dropFirst(before).contains("01") }
        let status = try quantrac(["status", "--json"] + c, in: dir, label: "status")
        #expect(status.stdoutText.contains("COD: span check"), "\(status.stdoutText)")
        let firstCalibrated = codStatuses(recv).count
        try await waitUntilAsync(timeout: .seconds(20), what: "COD measuring again") { codStatuses(recv).dropFirst(firstCalibrated).contains("00") }
        let calibrated = try String(contentsOf: recv.appendingPathComponent(try FileManager.default.contentsOfDirectory(atPath: recv.path).sorted()[firstCalibrated - 1]),
                                    encoding: .utf8).split(separator: "\r\n")
        #expect(calibrated[0].hasPrefix("COD\t41.20\tmg/L\t") && calibrated[0].hasSuffix("\t01"), "\(calibrated)")
        #expect(calibrated[1].hasPrefix("TSS\t18.50\tmg/L\t") && calibrated[1].hasSuffix("\t00"), "only COD is in calibration: \(calibrated)")

        // A station-wide maintenance window without a duration survives a restart.
        #expect(try quantrac(["calibrate", "start", "--station", "--reason", "probe change"] + c, in: dir, label: "start2").exitStatus == 0)
        let refused = try quantrac(["calibrate", "start", "--station"] + c, in: dir, label: "start3")
        #expect(refused.exitStatus != 0 && refused.stderrText.contains("already in calibration"))
        daemon.stop()
        daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: c, logDirectory: dir, label: "quantracd-2")
        let afterRestart = codStatuses(recv).count
        try await waitUntilAsync(timeout: .seconds(20), what: "two files after the restart") { codStatuses(recv).count >= afterRestart + 2 }
        #expect(codStatuses(recv).dropFirst(afterRestart + 1).allSatisfy { $0 == "01" }, "\(codStatuses(recv))")
        #expect(try quantrac(["calibrate", "stop", "--station"] + c, in: dir, label: "stop").exitStatus == 0)
        let stopped = codStatuses(recv).count
        try await waitUntilAsync(timeout: .seconds(20), what: "measuring after stop + recovery") { codStatuses(recv).dropFirst(stopped).contains("00") }

        let list = try quantrac(["calibrate", "list"] + c, in: dir, label: "list").stdoutText
        #expect(list.contains("COD") && list.contains("station") && list.contains("span check") && list.contains("probe change"), "\(list)")
        let journal = try quantrac(["audit", "journal"] + c, in: dir, label: "journal").stdoutText
        #expect(journal.contains("calibration.start") && journal.contains("calibration.stop"))
        #expect(journal.split(separator: "\n").contains { $0.contains("calibration.start") && $0.contains(ProcessInfo.processInfo.environment["SUDO_USER"] ?? "root") })
    }
}
