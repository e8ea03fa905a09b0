import Foundation
import QuantracConfig
import QuantracCore
import Reporting
import Testing

struct RegulatorFileTests {
    static let config = """
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "/tmp/x"
        [[bus]]
        name = "a"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        [[channel]]
        code = "Flow"
        unit = "m3/h"
        bus = "a"
        address = 0
        type = "float32"
        [[channel]]
        code = "Temp"
        unit = "°C"
        bus = "a"
        address = 2
        type = "int16"
        decimals = 1
        [[channel]]
        code = "pH"
        unit = "-"
        bus = "a"
        address = 3
        type = "uint16"
        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "a"
        address = 4
        type = "float32"
        decimals = 1
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "a"
        address = 6
        type = "float32"
        decimals = 1
        [[channel]]
        code = "NH4"
        unit = "mg/L"
        bus = "a"
        address = 8
        type = "float32"
        """

    /// The circular's constructed example (§3.7): COD in calibration, NH4 faulty.
    @Test func rendersTheCircularsExampleByteForByte() throws {
        let c = try ConfigLoader.parse(Self.config)
        let end = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, hour: 10, minute: 35, offset: c.station.utcOffset)
        func rec(_ code: String, _ v: Double, _ s: InstrumentStatus = .measuring) -> ChannelRecord {
            ChannelRecord(channel: code, intervalEnd: end, value: v, status: s, validCount: 30, sampleCount: 30)
        }
        // Records arrive in any order; lines follow the configuration.
        let records = [rec("NH4", 0, .fault), rec("Flow", 152.4), rec("Temp", 29.6), rec("pH", 7.21), rec("TSS", 18.5),
                       rec("COD", 41.2, .calibrating)]
        let file = RegulatorFileRenderer(station: c.station, channels: c.channels).render(intervalEnd: end, records: records)
        #expect(file.name == "HN_ABCD_NUO001_20260315103500.txt")
        let golden = try Data(contentsOf: #require(Bundle.module.url(forResource: "Golden/HN_ABCD_NUO001_20260315103500", withExtension: "txt")))
        #expect(file.bytes == Array(golden))
        #expect(!file.bytes.starts(with: [0xEF, 0xBB, 0xBF]), "no BOM")
    }

    @Test func missingRecordIsAFaultLine() throws {
        let c = try ConfigLoader.parse(Self.config)
        let file = RegulatorFileRenderer(station: c.station, channels: c.channels).render(intervalEnd: 1_773_545_700, records: [])
        let lines = String(decoding: file.bytes, as: UTF8.self).components(separatedBy: "\r\n").dropLast()
        #expect(lines.count == 6)
        #expect(lines.allSatisfy { $0.hasSuffix("\t02") })
        #expect(lines.first == "Flow\t0.00\tm3/h\t20260315103500\t02")
    }

    @Test func lineEndingCanBeLF() throws {
        let c = try ConfigLoader.parse(Self.config.replacingOccurrences(of: "data_dir = \"/tmp/x\"", with: "data_dir = \"/tmp/x\"\nline_ending = \"lf\""))
        let file = RegulatorFileRenderer(station: c.station, channels: c.channels).render(intervalEnd: 1_773_545_700, records: [])
        #expect(!file.bytes.contains(13))
        #expect(file.bytes.filter { $0 == 10 }.count == 6)
    }

    @Test func numberFormatting() {
        #expect(RegulatorFileRenderer.format(152.4, decimals: 2) == "152.40")
        #expect(RegulatorFileRenderer.format(-0.001, decimals: 2) == "0.00")
        #expect(RegulatorFileRenderer.format(-1.005, decimals: 1) == "-1.0")
        #expect(RegulatorFileRenderer.format(48210.4, decimals: 0) == "48210")
        #expect(RegulatorFileRenderer.format(1e12, decimals: 2) == "1000000000000.00")
        #expect(RegulatorFileRenderer.format(.nan, decimals: 2) == "0.00")
    }

    @Test func fileTimeIsLocalAtTheOffset() throws {
        let c = try ConfigLoader.parse(Self.config)
        let renderer = RegulatorFileRenderer(station: c.station, channels: c.channels)
        // 2026-03-15 17:00:00 UTC is 00:00 on the 16th in Vietnam.
        #expect(renderer.fileName(intervalEnd: CivilTime.epochSeconds(year: 2026, month: 3, day: 15, hour: 17, offset: UTCOffset(seconds: 0)))
                == "HN_ABCD_NUO001_20260316000000.txt")
    }
}
