import QuantracConfig
import Testing

/// `[station] commit_window`: default, zero, and the 60 s bound with its key path.
struct CommitWindowConfigTests {
    static func station(_ line: String) -> String {
        """
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "data"
        \(line)
        [[bus]]
        name = "lan"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "lan"
        address = 0
        type = "float32"
        """
    }

    @Test func defaultIsTenSecondsAndZeroCommitsEveryPoll() throws {
        #expect(try ConfigLoader.parse(Self.station("")).station.commitWindow == .seconds(10))
        #expect(try ConfigLoader.parse(Self.station("commit_window = \"0s\"")).station.commitWindow == .zero)
        #expect(try ConfigLoader.parse(Self.station("commit_window = \"2500ms\"")).station.commitWindow == .milliseconds(2500))
    }

    @Test func refusesMoreThanAMinuteOrNonsense() {
        for (value, message) in [
            ("\"90s\"", "station.commit_window: must be at most 60s (readings held in memory are lost on power loss; default 10s)"),
            ("\"soon\"", "station.commit_window: \"soon\" is not"),
            ("10", "station.commit_window: must be"),
        ] {
            do {
                _ = try ConfigLoader.parse(Self.station("commit_window = \(value)"))
                Issue.record("commit_window = \(value) was accepted")
            } catch {
                #expect(error.issues.map(\.description).contains { $0.hasPrefix(message) }, "\(error.issues)")
            }
        }
    }
}
