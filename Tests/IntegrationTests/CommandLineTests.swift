import Foundation
import QuantracTesting
import Testing

/// The executables as a technician runs them.
@Suite(.serialized, .ownThread)
struct CommandLineTests {
    func run(_ binary: String, _ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        let p = try TestProcess(executable: Repository.binary(binary), arguments: arguments, logDirectory: dir, label: label)
        _ = p.waitForExit(timeout: .seconds(30))
        return p
    }

    @Test func checkAcceptsTheDemoStationAndRejectsABrokenOneNamingKeyPaths() throws {
        let dir = try makeTemporaryDirectory("check")
        let ok = try run("quantrac", ["check", "--config", Repository.root.appendingPathComponent("Boards/stations/demo.toml").path],
                         in: dir, label: "check-ok")
        #expect(ok.exitStatus == 0, "\(ok.stderrText)")
        #expect(ok.stdoutText.contains("OK — station HN_DEMO_NUO001 (wastewater), 1 bus, 6 channels in 1 requests per poll, 1 target"))

        let broken = dir.appendingPathComponent("broken.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "data"
            [[bus]]
            name = "plc"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "A"
            unit = "u"
            bus = "plc"
            address = 0
            type = "uint16"
            [[channel]]
            code = "B"
            unit = "u"
            bus = "plc"
            address = 1
            type = "uint16"
            [[channel]]
            code = "C"
            unit = "u"
            bus = "plc"
            address = 2
            type = "uint16"
            [[channel]]
            code = "D"
            unit = "u"
            bus = "plk"
            address = 4
            type = "float32"
            byte_order = "ACBD"
            """.write(to: broken, atomically: true, encoding: .utf8)
        let bad = try run("quantrac", ["check", "--config", broken.path], in: dir, label: "check-bad")
        #expect(bad.exitStatus == 78)
        #expect(bad.stderrText == """
            \(broken.path): 2 problems
            channel[3].bus: "plk" is not a [[bus]] name (known: plc)
            channel[3].byte_order: "ACBD" is not one of ABCD, CDAB, BADC, DCBA

            """)
        let daemon = try run("quantracd", ["--config", broken.path], in: dir, label: "daemon-bad")
        #expect(daemon.exitStatus == 78, "config errors must not make systemd restart the daemon in a loop")
        #expect(daemon.stderrText.contains("channel[3].byte_order"))
        let missing = try run("quantrac", ["check", "--config", dir.appendingPathComponent("nope.toml").path], in: dir, label: "check-missing")
        #expect(missing.exitStatus == 78 && missing.stderrText.contains("cannot read"))
    }

    @Test func simulatorServesEveryByteOrderAndReadShowsIt() throws {
        let dir = try makeTemporaryDirectory("sim")
        let demo = try String(contentsOf: Repository.root.appendingPathComponent("Boards/stations/demo.toml"), encoding: .utf8)
        let config = dir.appendingPathComponent("demo.toml")
        try demo.write(to: config, atomically: true, encoding: .utf8)
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", config.path, "--port", "sim=0"],
                                  logDirectory: dir, label: "sim")
        defer { sim.stop() }
        let port = try #require(Int(try sim.waitForLine(prefix: "READY sim ", timeout: .seconds(10)).split(separator: " ")[2]))
        try demo.replacingOccurrences(of: "port = 15020", with: "port = \(port)").write(to: config, atomically: true, encoding: .utf8)

        let read = try run("quantrac", ["read", "--config", config.path, "--json"], in: dir, label: "read")
        #expect(read.exitStatus == 0, "\(read.stderrText)")
        struct Row: Decodable { let code: String; let value: Double?; let statusCode: String }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try decoder.decode([Row].self, from: Data(read.stdoutText.utf8))
        #expect(rows.map(\.code) == ["Flow", "Temp", "pH", "TSS", "COD", "NH4"])
        #expect(rows.allSatisfy { $0.statusCode == "00" })
        // Values near the simulator's levels prove every byte order decodes (a swap gives nonsense).
        let levels: [String: ClosedRange<Double>] = ["Flow": 120...180, "Temp": 26...32, "pH": 6.8...7.6, "TSS": 15...25, "COD": 30...50, "NH4": 1.3...2.7]
        for row in rows { #expect(levels[row.code]!.contains(row.value ?? -1), "\(row.code) = \(row.value ?? .nan)") }

        sim.stop()
        let down = try run("quantrac", ["read", "--config", config.path], in: dir, label: "read-down")
        #expect(down.exitStatus == 0)
        #expect(down.stdoutText.split(separator: "\n").dropFirst().allSatisfy { $0.contains("02 fault") }, "\(down.stdoutText)")
    }
}
