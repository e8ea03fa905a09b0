import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// A dead analyzer link recovers by itself; a killed daemon resumes without inventing or duplicating files.
@Suite(.serialized, .ownThread)
struct RecoveryTests {
    func config(dir: URL, port: Int) -> String {
        """
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "\(dir.appendingPathComponent("data").path)"
        record_interval = "2s"
        poll_interval = "500ms"
        record_delay = "2s"

        [[bus]]
        name = "lan"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        port = \(port)
        timeout = "200ms"
        reconnect_max = "1s"

        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "lan"
        slave = 1
        address = 0
        type = "float32"

        [[target]]
        name = "local"
        url = "file://\(dir.appendingPathComponent("recv").path)"
        """
    }

    func statuses(_ dir: URL) -> [(String, String)] {
        let recv = dir.appendingPathComponent("recv")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: recv.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
        return names.map { name in
            let text = (try? String(contentsOf: recv.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return (name, String(text.split(separator: "\t").last?.prefix(2) ?? ""))
        }
    }

    @Test func analyzerLinkComesBackAfterTheServerRestarts() async throws {
        let dir = try makeTemporaryDirectory("reconnect")
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2))
        let server = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { server.stop() }
        let file = dir.appendingPathComponent("station.toml")
        try config(dir: dir, port: server.port).write(to: file, atomically: true, encoding: .utf8)
        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", file.path], logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }

        try await waitUntilAsync(timeout: .seconds(20), what: "a measuring file") { statuses(dir).contains { $0.1 == "00" } }
        server.stop()
        try await waitUntilAsync(timeout: .seconds(20), what: "a fault file while the analyzer is gone") { statuses(dir).contains { $0.1 == "02" } }
        try server.restart()
        let faults = statuses(dir).count
        try await waitUntilAsync(timeout: .seconds(20), what: "measuring again after the restart") {
            statuses(dir).dropFirst(faults).contains { $0.1 == "00" }
        }
        #expect(daemon.isRunning)
        #expect(daemon.stderrText.contains("connected to tcp://127.0.0.1:\(server.port)"), "the reconnection is logged once")
    }

    @Test func killedDaemonResumesWithoutGapsInventedOrDuplicated() async throws {
        let dir = try makeTemporaryDirectory("kill9")
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2))
        let server = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { server.stop() }
        let file = dir.appendingPathComponent("station.toml")
        try config(dir: dir, port: server.port).write(to: file, atomically: true, encoding: .utf8)
        let first = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", file.path], logDirectory: dir, label: "quantracd")
        try await waitUntilAsync(timeout: .seconds(20), what: "two files") { statuses(dir).count >= 2 }
        first.kill9()
        let before = statuses(dir).map(\.0)
        // Down for a few intervals: nothing may be produced for them.
        try await Task.sleep(for: .seconds(5))
        let second = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", file.path], logDirectory: dir, label: "quantracd-2")
        defer { second.stop() }
        try await waitUntilAsync(timeout: .seconds(20), what: "files after the restart") { statuses(dir).count >= before.count + 2 }
        #expect(second.stop() == 0)
        let after = statuses(dir)
        let names = after.map(\.0)
        #expect(Array(names.prefix(before.count)) == before, "files delivered before the kill stay as they were")
        #expect(Set(names).count == names.count)
        // No file for the intervals while no daemon ran: stamps jump across the outage.
        let stamps = names.compactMap { Int64($0.dropFirst("HN_ABCD_NUO001_".count).prefix(14)) }
        let seconds = stamps.map { ($0 / 10000 % 100) * 3600 + ($0 / 100 % 100) * 60 + $0 % 100 }
        let gaps = zip(seconds, seconds.dropFirst()).map { $1 - $0 }
        #expect(gaps.contains { $0 >= 4 }, "no file for the interval(s) fully inside the outage: \(names)")
        #expect(after.allSatisfy { $0.1 == "00" })
        // Every local file made it to the receiver byte for byte.
        for name in names {
            let local = try Data(contentsOf: dir.appendingPathComponent("data/sent/\(name)"))
            #expect(try Data(contentsOf: dir.appendingPathComponent("recv/\(name)")) == local)
        }
    }
}
