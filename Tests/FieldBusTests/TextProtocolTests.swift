import FieldBus
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import SerialPort
import Testing

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Bayern-Hessen framing against the examples printed in analyzer manuals.
struct BayernHessenTests {
    @Test func dataRequestMatchesTheManualExample() {
        // Ecotech Serinus manual: <STX>DA097<ETX>3A
        #expect(BayernHessen.dataRequest(address: 97) == [0x02] + bytes("DA097") + [0x03] + bytes("3A"))
        #expect(BayernHessen.dataRequest(address: 1) == [0x02] + bytes("DA001") + [0x03] + bytes("35"))
    }

    @Test func blockCheckMatchesTheManualControlExample() {
        // <STX>ST843 K<ETX>52
        #expect(BayernHessen.frame("ST843 K") == [0x02] + bytes("ST843 K") + [0x03] + bytes("52"))
    }

    @Test func valuesUseFourDigitMantissaAndSignedExponent() {
        #expect(BayernHessen.parseValue("+2578+01") == 25.78)
        #expect(BayernHessen.parseValue("+5681+00") == 5.681)
        #expect(BayernHessen.parseValue("+4567-02") == 0.04567)
        #expect(BayernHessen.parseValue("-5384+06") == -5_384_000)
        #expect(BayernHessen.parseValue("+0000+00") == 0)
        for bad in ["2578+01", "+257+01", "+2578+1", "+25a8+01", "+2578*01", "001"] {
            #expect(BayernHessen.parseValue(bad) == nil, "\(bad)")
        }
        for v in [25.78, 5.681, 0.04567, -5_384_000, 45.6, 1, 999.9] {
            #expect(BayernHessen.parseValue(BayernHessen.formatValue(v)) == v, "\(v)")
        }
    }

    @Test func parsesTheThermoExampleAnswer() throws {
        // Thermo i-series manual: three concentrations, operation status 03, error status 04.
        let text = "MD03 001 +2578+01 03 04 0000000000 002 +5681+00 03 04 0000000000 003 +1175+01 03 04 0000000000 "
        let components = try BayernHessen.parseMD(bytes(text)).get()
        #expect(components.map(\.value) == [25.78, 5.681, 11.75])
        #expect(components.map(\.id) == ["001", "002", "003"])
        #expect(components.allSatisfy { $0.status == 0x03 && $0.error == 0x04 })
    }

    @Test func parsesRecordsWithOtherExtraFields() throws {
        // Met One BAM-1020 style: id value ss ff serial 000000, status bits in hex (82, 40).
        let text = "MD02 001 -1500-02 82 00 001 000000 002 +7116-01 82 40 001 000000 "
        let c = try BayernHessen.parseMD(bytes(text)).get()
        #expect(c.map(\.value) == [-0.015, 0.7116])
        #expect(c[0].status == 0x82 && c[1].error == 0x40)
    }

    @Test func refusesMalformedAnswers() {
        #expect(throws: BayernHessen.FrameError.self) { try BayernHessen.parseMD(bytes("XX01 001 +1000+00 00 00")).get() }
        #expect(throws: BayernHessen.FrameError.self) { try BayernHessen.parseMD(bytes("MD02 001 +1000+00 00 00 0000000000 ")).get() }
        #expect(throws: BayernHessen.FrameError.self) { try BayernHessen.parseMD(bytes("MD01 001 +1000+00 00")).get() }
        #expect(throws: BayernHessen.FrameError.self) { try BayernHessen.parseMD(bytes("MD01 001 +1000+00 0G 00")).get() }
    }

    @Test func verifiesTheBlockCheckOfAnswers() throws {
        let good = [0x02] + bytes("MD01 001 +4560+01 04 00 001 000000 ") + [0x03] + bytes("2B")
        #expect(try BayernHessen.verify(good).get() == bytes("MD01 001 +4560+01 04 00 001 000000 "))
        var bad = good
        bad[11] = UInt8(ascii: "7")
        #expect(BayernHessen.verify(bad) == .failure(.badBlockCheck(got: "2B", expected: 0x2B ^ UInt8(ascii: "4") ^ UInt8(ascii: "7"))))
        #expect(BayernHessen.verify(Array(good.dropLast())) == .failure(.noFrame))
        let lower = Array(good.dropLast(2)) + bytes("2b")
        #expect(throws: Never.self) { try BayernHessen.verify(lower).get() }
    }

    @Test func findsAFrameOnlyOnceItIsComplete() {
        let frame = [0x02] + bytes("MD01 001 +4560+01 04 00 ") + [0x03] + bytes("2B")
        let noise: [UInt8] = [0xFF, 0x00, 0x41]
        #expect(BayernHessen.completeFrame(in: noise + frame) == 3..<(3 + frame.count))
        for cut in 1..<frame.count {
            #expect(BayernHessen.completeFrame(in: noise + frame.prefix(cut)) == nil)
        }
    }

    @Test func statusBitsMapThroughTheMasks() {
        func component(_ status: UInt8, _ error: UInt8) -> BayernHessen.Component {
            BayernHessen.Component(id: "001", value: 1, status: status, error: error)
        }
        let ch = BayernHessenChannel(address: 1, component: 1)  // defaults: calibration 0x0E, fault 0x01, error 0xFF
        #expect(BayernHessen.status(of: component(0x00, 0x00), ch).0 == .measuring)
        #expect(BayernHessen.status(of: component(0x40, 0x00), ch).0 == .measuring)  // units bit
        #expect(BayernHessen.status(of: component(0x02, 0x00), ch).0 == .calibrating)  // out of service
        #expect(BayernHessen.status(of: component(0x04, 0x00), ch).0 == .calibrating)  // zero
        #expect(BayernHessen.status(of: component(0x08, 0x00), ch).0 == .calibrating)  // span
        #expect(BayernHessen.status(of: component(0x01, 0x00), ch) == (.fault, "analyzer reports fault (status byte 0x01)"))
        #expect(BayernHessen.status(of: component(0x04, 0x10), ch) == (.fault, "analyzer reports error (error byte 0x10)"))
        let custom = BayernHessenChannel(address: 1, component: 1, calibrationMask: 0x80, faultMask: 0x00, errorMask: 0x0F)
        #expect(BayernHessen.status(of: component(0x82, 0x40), custom).0 == .calibrating)
        #expect(BayernHessen.status(of: component(0x02, 0x40), custom).0 == .measuring)
        #expect(BayernHessen.status(of: component(0x01, 0x01), custom).0 == .fault)
    }
}

/// The generic line protocol: checksums, framing, regular expressions, status maps.
struct LineProtocolTests {
    @Test func checksumsCoverEveryByteBeforeTheTwoDigits() throws {
        let body = bytes("COD=41.20;TSS=18.52;ST=M*")
        #expect(LineFraming.checksum(.xor8, of: body) == 0x48)
        #expect(LineFraming.checksum(.sum8, of: body) == 0x0E)
        #expect(try LineFraming.verify(body + bytes("48"), checksum: .xor8).get() == body)
        #expect(try LineFraming.verify(body + bytes("0e"), checksum: .sum8).get() == body)
        #expect(LineFraming.verify(body + bytes("49"), checksum: .xor8) == .failure(.badChecksum(got: "49", expected: 0x48)))
        #expect(LineFraming.verify(body + bytes("4"), checksum: .xor8) == .failure(.badChecksum(got: "*4", expected: LineFraming.checksum(.xor8, of: body.dropLast()))))
        #expect(LineFraming.verify(bytes("4"), checksum: .xor8) == .failure(.badChecksum(got: "4", expected: 0)))
        #expect(try LineFraming.verify(body, checksum: .none).get() == body)
    }

    @Test func findsTheFirstNonEmptyLine() {
        #expect(LineFraming.firstLine(in: bytes("pH 7.45\r"), terminator: bytes("\r"))?.line == bytes("pH 7.45"))
        #expect(LineFraming.firstLine(in: bytes("pH 7.4"), terminator: bytes("\r")) == nil)
        #expect(LineFraming.firstLine(in: bytes("A\rB\r\n"), terminator: bytes("\r\n"))?.line == bytes("A\rB"))
        let empty = LineFraming.firstLine(in: bytes("\r\nX\r\n"), terminator: bytes("\r\n"))
        #expect(empty?.line == [] && empty?.consumed == 2)
        #expect(LineFraming.firstLine(in: bytes("\npH 7.45\r"), terminator: bytes("\r"))?.line == bytes("pH 7.45"))
    }

    @Test func readsNumbersAsAnalyzersPrintThem() {
        #expect(LineFraming.number(" +12.50 ") == 12.5)
        #expect(LineFraming.number("-1.5e-3") == -0.0015)
        #expect(LineFraming.number("12,5") == nil)
        #expect(LineFraming.number("nan") == nil)
        #expect(LineFraming.number("") == nil)
    }
}

// MARK: - The exchange engine with a scripted line

/// A serial line that answers each request from a script: a list of chunks (arriving one per receive),
/// or nothing (silence). Bytes left from an earlier answer stay pending until discarded.
final class ScriptedLink: ByteLink {
    var script: [[[UInt8]]?]
    var pending: [[UInt8]] = []
    var sent: [[UInt8]] = []
    var discards = 0
    var failNextSend: SerialPortError?

    init(_ script: [[[UInt8]]?], stale: [[UInt8]] = []) {
        self.script = script
        pending = stale
    }

    func send(_ bytes: [UInt8], timeout: Duration) throws(SerialPortError) {
        if let e = failNextSend {
            failNextSend = nil
            throw e
        }
        sent.append(bytes)
        if !script.isEmpty, let chunks = script.removeFirst() { pending += chunks }
    }

    func receive(maxCount: Int, timeout: Duration) throws(SerialPortError) -> [UInt8] {
        if pending.isEmpty {
            Thread.sleep(forTimeInterval: min(0.05, Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18))
            return []
        }
        return pending.removeFirst()
    }

    func discardInput() throws(SerialPortError) {
        discards += 1
        pending = []
    }
}

struct TextLinkTests {
    static func config(_ bus: String, _ channels: String) throws -> StationConfig {
        try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/tmp/x"
            [[bus]]
            name = "a"
            transport = "ascii-serial"
            device = "/dev/ttyS0"
            timeout = "50ms"
            \(bus)
            \(channels)
            """)
    }

    static let lineChannels = #"""
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "a"
        request = 'RD?\r\n'
        response = 'COD=(?<value>[-+0-9.]+).*ST=(?<status>\w)'
        checksum = "xor8"
        status_map = { "M" = "measuring", "C" = "calibrating", "F" = "fault" }
        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "a"
        request = 'RD?\r\n'
        response = 'TSS=(?<value>[-+0-9.]+)'
        checksum = "xor8"
        scale = 2
        offset = 1
        [[channel]]
        code = "pH"
        unit = "-"
        bus = "a"
        request = 'PH?\r'
        terminator = '\r'
        response = '^pH (?<value>[0-9.]+)$'
        """#

    static func link(_ config: StationConfig, _ fake: ScriptedLink) -> TextLink {
        TextLink(plan: TextPlan(bus: config.buses[0], channels: config.channels), endpoint: "fake", backoffMin: .milliseconds(10)) { () throws(SerialPortError) -> any ByteLink in fake }
    }

    static func rd(_ status: String = "M") -> [UInt8] {
        let body = bytes("COD=41.20;TSS=18.52;ST=\(status)*")
        return body + bytes(String(format: "%02X", LineFraming.checksum(.xor8, of: body))) + bytes("\r\n")
    }

    static let logger = Logger(label: "test")

    @Test func sharedRequestsAreSentOncePerPoll() throws {
        let c = try Self.config(#"protocol = "line""#, Self.lineChannels)
        let plan = TextPlan(bus: c.buses[0], channels: c.channels)
        #expect(plan.exchanges.count == 2)
        #expect(plan.exchanges[0].request == bytes("RD?\r\n") && plan.exchanges[0].fields.map(\.code) == ["COD", "TSS"])
        #expect(plan.exchanges[1].request == bytes("PH?\r"))

        let fake = ScriptedLink([[Self.rd()], [bytes("pH 7.45\r")]], stale: [bytes("late garbage\r\n")])
        let samples = Self.link(c, fake).poll(logger: Self.logger)
        #expect(fake.sent == [bytes("RD?\r\n"), bytes("PH?\r")])
        #expect(fake.discards == 2)
        #expect(samples == [
            FieldSample(channelIndex: 0, value: 41.2, status: .measuring, reason: nil),
            FieldSample(channelIndex: 1, value: 18.52 * 2 + 1, status: .measuring, reason: nil),
            FieldSample(channelIndex: 2, value: 7.45, status: .measuring, reason: nil),
        ])
    }

    @Test func answersArrivingInPiecesAreAssembled() throws {
        let c = try Self.config(#"protocol = "line""#, Self.lineChannels)
        let rd = Self.rd("C")
        let fake = ScriptedLink([[Array(rd.prefix(3)), Array(rd.dropFirst(3).prefix(20)), Array(rd.dropFirst(23))],
                                 [bytes("\r\n"), bytes("pH 7"), bytes(".45\r")]])
        let samples = Self.link(c, fake).poll(logger: Self.logger)
        #expect(samples.map(\.status) == [.calibrating, .measuring, .measuring])
        #expect(samples.map(\.value) == [41.2, 38.04, 7.45])
    }

    @Test func faultsOnlyTheChannelsOfTheBadExchangeAndRecoversNextPoll() throws {
        let c = try Self.config(#"protocol = "line""#, Self.lineChannels)
        let body = bytes("COD=41.20;TSS=18.52;ST=M*")
        let fake = ScriptedLink([
            // poll 1: noise with a line end instead of RD; pH fine
            [[0x15, 0xFF, 0x00] + bytes("#@!\r\n")], [bytes("pH 7.45\r")],
            // poll 2: bad checksum; pH silent
            [body + bytes("00\r\n")], nil,
            // poll 3: half an answer; pH answers something else
            [Array(Self.rd().prefix(10))], [bytes("ERR\r")],
            // poll 4: analyzer reports a status the map does not know, and fault; all good otherwise
            [Self.rd("X")], [bytes("pH 7.45\r")],
            // poll 5: everything fine again
            [Self.rd("F")], [bytes("pH 7.45\r")],
        ])
        let link = Self.link(c, fake)
        var s = link.poll(logger: Self.logger)
        #expect(s.map(\.status) == [.fault, .fault, .measuring])
        #expect(s[0].reason == "bad checksum (got @!, expected C9)")  // noise ending in a line end
        #expect(s[1].reason == s[0].reason)

        s = link.poll(logger: Self.logger)
        #expect(s.map(\.status) == [.fault, .fault, .fault])
        #expect(s[0].reason == "bad checksum (got 00, expected 48)")
        #expect(s[2].reason == "timeout")

        s = link.poll(logger: Self.logger)
        #expect(s[0].reason == #"incomplete answer (10 bytes, no end of frame): "COD=41.20;""#)
        #expect(s[2].reason == #"answer does not match response: "ERR""#)

        s = link.poll(logger: Self.logger)
        #expect(s[0] == FieldSample(channelIndex: 0, value: 41.2, status: .fault, reason: #"status "X" is not in status_map"#))
        #expect(s[1].status == .measuring && s[2].status == .measuring)

        s = link.poll(logger: Self.logger)
        #expect(s[0] == FieldSample(channelIndex: 0, value: 41.2, status: .fault, reason: #"analyzer reports fault (status "F")"#))
        #expect(s[1] == FieldSample(channelIndex: 1, value: 38.04, status: .measuring, reason: nil))
        #expect(fake.discards == 10)
    }

    @Test func aVanishedPortFaultsTheRestAndIsReopened() throws {
        let c = try Self.config(#"protocol = "line""#, Self.lineChannels)
        let fake = ScriptedLink([[Self.rd()], [bytes("pH 7.45\r")]])
        fake.failNextSend = SerialPortError(code: .gone, function: "sp_blocking_write", context: "fake", message: "EIO")
        var opens = 0
        let link = TextLink(plan: TextPlan(bus: c.buses[0], channels: c.channels), endpoint: "/dev/fake 9600 8N1", backoffMin: .milliseconds(10)) { () throws(SerialPortError) -> any ByteLink in
            opens += 1
            return fake
        }
        let s = link.poll(logger: Self.logger)
        #expect(s.map(\.reason) == ["serial port lost: device gone", "serial port lost: device gone", "serial port lost: device gone"])
        let again = link.poll(logger: Self.logger)
        #expect(again.map(\.status) == [.measuring, .measuring, .measuring])
        #expect(opens == 2)
    }

    @Test func aPortThatCannotBeOpenedIsRetriedWithBackoff() throws {
        let c = try Self.config(#"protocol = "line""#, Self.lineChannels)
        var opens = 0
        let link = TextLink(plan: TextPlan(bus: c.buses[0], channels: c.channels), endpoint: "/dev/ttyUSB9 9600 8N1", backoffMin: .seconds(60)) { () throws(SerialPortError) -> any ByteLink in
            opens += 1
            throw SerialPortError(code: .notFound, function: "sp_get_port_by_name", context: "/dev/ttyUSB9", message: "not found")
        }
        let first = link.poll(logger: Self.logger)
        #expect(first.map(\.reason) == Array(repeating: "cannot open /dev/ttyUSB9: no such serial device", count: 3))
        _ = link.poll(logger: Self.logger)
        #expect(opens == 1)  // the next attempt waits for the backoff
    }

    static let bhChannels = """
        [[channel]]
        code = "SO2"
        unit = "µg/Nm3"
        bus = "a"
        bh_address = 1
        bh_component = 1
        [[channel]]
        code = "NO2"
        unit = "µg/Nm3"
        bus = "a"
        bh_address = 1
        bh_component = 2
        scale = 2
        [[channel]]
        code = "PM10"
        unit = "µg/Nm3"
        bus = "a"
        bh_address = 2
        bh_calibration_mask = 0x80
        bh_error_mask = 0x0F
        [[channel]]
        code = "CO"
        unit = "mg/Nm3"
        bus = "a"
        bh_address = 2
        bh_component = 2
        """

    static func md(_ text: String) -> [UInt8] { BayernHessen.frame(text) }

    @Test func bayernHessenAsksEachAnalyzerOnceAndMapsStatus() throws {
        let c = try Self.config(#"protocol = "bayern-hessen""#, Self.bhChannels)
        let plan = TextPlan(bus: c.buses[0], channels: c.channels)
        #expect(plan.exchanges.map(\.request) == [BayernHessen.dataRequest(address: 1), BayernHessen.dataRequest(address: 2)])
        let fake = ScriptedLink([
            [[0x00, 0x7F], Self.md("MD03 001 +1234+01 04 00 0000000000 002 +5678+00 04 00 0000000000 003 +4567-02 04 00 0000000000 ")],
            [Self.md("MD01 001 +4560+01 82 40 001 000000 ")],
        ])
        let s = Self.link(c, fake).poll(logger: Self.logger)
        #expect(s[0] == FieldSample(channelIndex: 0, value: 12.34, status: .calibrating, reason: nil))
        #expect(s[1] == FieldSample(channelIndex: 1, value: 11.356, status: .calibrating, reason: nil))
        #expect(s[2] == FieldSample(channelIndex: 2, value: 45.6, status: .calibrating, reason: nil))
        #expect(s[3] == FieldSample(channelIndex: 3, value: nil, status: .fault, reason: "the MD answer has no component 2 (it carries 1)"))
        #expect(fake.sent == [BayernHessen.dataRequest(address: 1), BayernHessen.dataRequest(address: 2)])
    }

    @Test func bayernHessenRefusesBadBlockChecksAndNoise() throws {
        let c = try Self.config(#"protocol = "bayern-hessen""#, Self.bhChannels)
        var corrupt = Self.md("MD01 001 +4560+01 00 00 001 000000 ")
        corrupt[12] = UInt8(ascii: "9")
        let fake = ScriptedLink([
            [Self.md("MD03 001 +1234+01 00 01 0000000000 002 +5678+00 01 00 0000000000 003 +4567-02 00 00 0000000000 ")],
            [corrupt],
            [[0x15, 0xFF] + bytes("garbage")],
            nil,
        ])
        let link = Self.link(c, fake)
        var s = link.poll(logger: Self.logger)
        #expect(s[0] == FieldSample(channelIndex: 0, value: 12.34, status: .fault, reason: "analyzer reports error (error byte 0x01)"))
        #expect(s[1] == FieldSample(channelIndex: 1, value: 11.356, status: .fault, reason: "analyzer reports fault (status byte 0x01)"))
        #expect(s[2].reason?.hasPrefix("bad block check (got ") == true && s[3].reason == s[2].reason)
        s = link.poll(logger: Self.logger)
        #expect(s[0].reason == #"incomplete answer (9 bytes, no end of frame): "\x15\xFFgarbage""#)
        #expect(s[2].reason == "timeout" && s[3].reason == "timeout")
    }
}
