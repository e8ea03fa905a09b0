import FieldBus
import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Storage
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

    /// Exactly the right readings and lines carry `01` for the COD window (3 s, recovery 2 s, polls every
    /// 250 ms, 2 s intervals): COD readings from the window's start to its end plus the recovery are `01`
    /// (the polls in the first 500 ms may still be `00`: the daemon rereads the windows every poll interval
    /// and the next poll then applies them, so a window takes effect within one reread and one poll),
    /// every other COD reading and every TSS reading `00`; a received file's COD line is `01` exactly when
    /// its interval holds a `01` reading, and its TSS line never is.
    func expectExactlyTheCalibratedLines(recv: URL, database: URL) async throws {
        // The files first: a file is built from committed readings, so every listed file's readings are
        // in the query below.
        let names = try FileManager.default.contentsOfDirectory(atPath: recv.path).filter { $0.hasSuffix(".txt") }.sorted()
        let store = try Store(readOnlyPath: database.path)
        let window = try #require(try await store.recentCalibrations().first { $0.channel == "COD" })
        let start = window.startMs, windowEnd = try #require(window.endMs), end = windowEnd + 2000
        #expect(windowEnd - start == 3000)
        let readings = try await store.readings(in: Interval(start: 0, end: 4_000_000_000))
        let cod = readings.filter { $0.channel == "COD" }
        for r in cod {
            let t = r.time.milliseconds
            if t >= start + 500 && t < end {
                #expect(r.status == .calibrating, "COD at \(t), window \(start)..<\(end): \(r)")
            } else if t < start || t >= end {
                #expect(r.status == .measuring, "COD at \(t), window \(start)..<\(end): \(r)")
            }
        }
        #expect(cod.filter { $0.status == .calibrating }.count >= 12, "5 s of 250 ms polls, less the first 500 ms and any late polls")
        #expect(readings.filter { $0.channel == "TSS" }.allSatisfy { $0.status == .measuring })

        let calibrating = cod.filter { $0.status == .calibrating }.map(\.time.milliseconds)
        var lines01 = 0
        for name in names {
            let fileEnd = SimulatorScenarioTests.fileEnd(name), fileStart = fileEnd - 2000
            let expected = calibrating.contains { $0 >= fileStart && $0 < fileEnd } ? "01" : "00"
            let lines = try String(contentsOf: recv.appendingPathComponent(name), encoding: .utf8).split(separator: "\r\n")
            #expect(lines.first { $0.hasPrefix("COD\t") }?.hasSuffix("\t" + expected) == true, "\(name): \(lines), expected COD \(expected)")
            #expect(lines.first { $0.hasPrefix("TSS\t") }?.hasSuffix("\t00") == true, "\(name): \(lines)")
            if expected == "01" { lines01 += 1 }
        }
        #expect(lines01 >= 3 && lines01 <= 4, "a 5 s window touches 3 or 4 two-second intervals, got \(lines01)")
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
        try await expectExactlyTheCalibratedLines(recv: recv, database: dir.appendingPathComponent("data/quantrac.sqlite"))

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
