import Foundation
import QuantracConfig
import Testing

/// Each folder under Golden/ holds a `config.toml` and the exact problem lines `quantrac check` must
/// report for it (`expected.err`; empty for a valid configuration).
struct GoldenConfigTests {
    static let root = Bundle.module.resourceURL!.appendingPathComponent("Golden")
    static let cases: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()

    @Test func thereAreGoldenCases() {
        #expect(Self.cases.count >= 10)
    }

    @Test(arguments: cases)
    func reportsExactlyTheExpectedProblems(_ name: String) throws {
        let dir = Self.root.appendingPathComponent(name)
        let text = try String(contentsOf: dir.appendingPathComponent("config.toml"), encoding: .utf8)
        let expected = try String(contentsOf: dir.appendingPathComponent("expected.err"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        var actual: [String] = []
        do {
            _ = try ConfigLoader.parse(text, file: "config.toml")
        } catch {
            actual = error.issues.map(\.description)
        }
        #expect(actual == expected)
    }
}

struct ConfigDefaultsTests {
    @Test func defaultsFollowTheIssue() throws {
        let c = try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "stack-gas"
            data_dir = "/var/lib/quantrac"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "/dev/ttyUSB0"
            [[channel]]
            code = "SO2"
            unit = "mg/Nm3"
            bus = "rs485"
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            url = "ftp://10.0.0.1/{station}"
            """)
        #expect(c.station.utcOffset.seconds == 25_200)
        #expect(c.station.recordIntervalSeconds == 300)
        #expect(c.station.pollInterval == .seconds(10))
        #expect(c.station.stationCode == "NUO001")
        #expect(c.buses[0].timeout == .seconds(1))
        #expect(c.buses[0].transport == .modbusRTU(device: "/dev/ttyUSB0", baud: 9600, parity: .none, dataBits: 8, stopBits: 1))
        let ch = c.channels[0]
        #expect(ch.slave == 1 && ch.register == .holding && ch.byteOrder == .abcd && ch.scale == 1 && ch.offset == 0 && ch.decimals == 2)
        #expect(c.targets[0].publish == .rename && c.targets[0].authority == "10.0.0.1" && c.targets[0].pathTemplate == "/{station}")
    }

    @Test func durations() {
        #expect(DurationParser.parse("500ms") == .milliseconds(500))
        #expect(DurationParser.parse("10s") == .seconds(10))
        #expect(DurationParser.parse("5m") == .seconds(300))
        #expect(DurationParser.parse("1h") == .seconds(3600))
        for bad in ["", "s", "10", "1.5s", "-1s", "10 s", "5min"] { #expect(DurationParser.parse(bad) == nil, "\(bad)") }
    }

    @Test func syntaxErrorsNameTheLine() {
        #expect(throws: ConfigError.self) { try ConfigLoader.parse("[station\nprefix = 1") }
        do {
            _ = try ConfigLoader.parse("[station]\nprefix = \n")
        } catch {
            #expect(error.description.hasPrefix("line 2: TOML syntax error"))
        }
    }
}
