import FieldBus
import Foundation
import Logging
import QuantracConfig
import SerialPort
import Testing

/// Per-analyzer health on ASCII buses: the same state machine as Modbus slaves (`DeviceHealth`).
struct TextDeviceHealthTests {
    static func config(_ protocolName: String, _ channels: String) throws -> StationConfig {
        try TextLinkTests.config("protocol = \"\(protocolName)\"\noffline_after = 2\nreconnect_max = \"1m\"", channels)
    }

    static let twoAnalyzers = """
        [[channel]]
        code = "SO2"
        unit = "mg/Nm3"
        bus = "a"
        bh_address = 1
        [[channel]]
        code = "PM10"
        unit = "mg/Nm3"
        bus = "a"
        bh_address = 2
        """

    static func text(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func md(_ value: String) -> [UInt8] { BayernHessen.frame("MD01 001 \(value) 00 00 0000000000 ") }

    @Test func aSilentAnalyzerGoesOfflineAndIsNoLongerAskedEveryPoll() throws {
        let c = try Self.config("bayern-hessen", Self.twoAnalyzers)
        let da1 = BayernHessen.dataRequest(address: 1), da2 = BayernHessen.dataRequest(address: 2)
        // Analyzer 1 answers every time; analyzer 2 never.
        let fake = ScriptedLink([[Self.md("+1234+01")], nil, [Self.md("+1234+01")], nil, [Self.md("+1234+01")], [Self.md("+1234+01")]])
        // A minute's backoff: once offline, analyzer 2 is not asked again during this test.
        let link = TextLink(plan: TextPlan(bus: c.buses[0], channels: c.channels), endpoint: "fake", backoffMin: .seconds(60)) {
            () throws(SerialPortError) -> any ByteLink in fake
        }
        let logger = Logger(label: "test")
        var s = link.poll(logger: logger)
        #expect(s.map(\.reason) == [nil, "timeout"])
        #expect(link.health[2]?.state == .suspect && link.health[1]?.state == .online)
        s = link.poll(logger: logger)
        #expect(link.health[2]?.state == .offline, "offline after offline_after = 2 missed polls")
        s = link.poll(logger: logger)
        #expect(s[0] == FieldSample(channelIndex: 0, value: 12.34, status: .measuring, reason: nil))
        #expect(s[1].status == .fault && s[1].reason?.hasPrefix("device offline, next try in ") == true, "\(s[1].reason ?? "-")")
        _ = link.poll(logger: logger)
        #expect(fake.sent == [da1, da2, da1, da2, da1, da1], "the offline analyzer costs the line nothing until its retry is due")
    }

    @Test func aLineAnalyzerThatTimedOutIsNotAskedAgainInTheSamePoll() throws {
        let c = try Self.config("line", TextLinkTests.lineChannels)
        // RD? gets no answer: PH? (the same analyzer) is not sent in that poll; both are sent in the next.
        let fake = ScriptedLink([nil, [TextLinkTests.rd()], [Self.text("pH 7.45\r")]])
        let link = TextLinkTests.link(c, fake)
        let logger = Logger(label: "test")
        let first = link.poll(logger: logger)
        #expect(first.map(\.reason) == ["timeout", "timeout", "timeout"])
        #expect(fake.sent == [Self.text("RD?\r\n")])
        let second = link.poll(logger: logger)
        #expect(second.map(\.status) == [.measuring, .measuring, .measuring])
        #expect(fake.sent == [Self.text("RD?\r\n"), Self.text("RD?\r\n"), Self.text("PH?\r")])
        #expect(link.health[1]?.state == .online, "one miss (suspect), then an answer: online again")
    }
}
