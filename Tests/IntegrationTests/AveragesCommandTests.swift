import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Storage
import Testing

/// `quantrac averages` as an operator runs it, on a station database filled with a day of records.
@Suite(.serialized, .ownThread)
struct AveragesCommandTests {
    func quantrac(_ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: arguments, logDirectory: dir, label: label)
        _ = p.waitForExit(timeout: .seconds(30))
        return p
    }

    @Test func recomputeListExcludeAndAQI() async throws {
        let dir = try makeTemporaryDirectory("avg-cli")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let configFile = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_QTMT_KHI001"
            kind = "ambient-air"
            data_dir = "\(data.path)"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "PM2,5"
            unit = "µg/Nm3"
            bus = "a"
            address = 0
            type = "float32"
            limit_1h = 50
            [[channel]]
            code = "NO2"
            unit = "µg/Nm3"
            bus = "a"
            address = 2
            type = "float32"
            """.write(to: configFile, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: configFile.path)
        let day = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, offset: config.station.utcOffset)
        let store = try Store(path: data.appendingPathComponent("quantrac.sqlite").path)
        for i in 1...288 {
            let end = day + Int64(i) * 300
            let pm = i <= 12 ? 60.0 : 20.0
            try await store.commitInterval(intervalEnd: end, records: [
                ChannelRecord(channel: "PM2,5", intervalEnd: end, value: pm, status: .measuring, validCount: 30, sampleCount: 30),
                ChannelRecord(channel: "NO2", intervalEnd: end, value: 118.7, status: .measuring, validCount: 30, sampleCount: 30),
            ], fileName: "F\(i)", fileBytes: [1], targets: [], now: Timestamp(seconds: end))
        }
        let c = ["--config", configFile.path]

        let recompute = try quantrac(["averages", "recompute", "--from", "2026-03-15", "--to", "2026-03-15"] + c, in: dir, label: "recompute")
        #expect(recompute.exitStatus == 0, "\(recompute.stderrText)")
        #expect(recompute.stdoutText.contains("recomputed 24 hourly and 1 daily averages"), "\(recompute.stdoutText)")

        let list = try quantrac(["averages", "list", "--from", "2026-03-15", "--to", "2026-03-15 03:00", "--channel", "PM2,5"] + c, in: dir, label: "list")
        #expect(list.stdoutText.contains("2026-03-15 01:00:00  PM2,5    60.00  yes    12/12"), "\(list.stdoutText)")
        #expect(list.stdoutText.contains("EXCEEDED") && list.stdoutText.contains("1 average(s) beyond their limit"))

        let aqi = try quantrac(["averages", "aqi", "--from", "2026-03-15 01:00", "--to", "2026-03-15 02:00"] + c, in: dir, label: "aqi")
        // 02:00: NowCast of 20 then 60 µg/m³ (w = 1/3 → 1/2): (20 + 0.5·60)/1.5 = 33.3 → PM2.5 index 67; NO2 118.7 → 59.
        #expect(aqi.stdoutText.contains("2026-03-15 02:00:00  67   Moderate  PM2.5     NO2=59,PM2.5=67"), "\(aqi.stdoutText)")

        // The shapes: `quantrac aqi` and `quantrac averages --hourly|--daily` (list is the default).
        let aqiJSON = try quantrac(["aqi", "--daily", "--json", "--from", "2026-03-15", "--to", "2026-03-15"] + c, in: dir, label: "aqi-json")
        let days = try #require(try JSONSerialization.jsonObject(with: Data(aqiJSON.stdoutText.utf8)) as? [[String: Any]], "\(aqiJSON.stderrText)")
        #expect(days.count == 1 && days[0]["end"] as? String == "2026-03-16 00:00:00" && days[0]["category"] as? String != nil)
        #expect((days[0]["sub_indices"] as? [String: Int])?["NO2"] == 59, "the largest hourly NO2, 118.7 µg/m³: \(aqiJSON.stdoutText)")
        let hourlyAQI = try quantrac(["aqi", "--hourly", "--from", "2026-03-15 01:00", "--to", "2026-03-15 02:00"] + c, in: dir, label: "aqi-hourly")
        #expect(hourlyAQI.stdoutText == aqi.stdoutText, "quantrac aqi is quantrac averages aqi")
        // (60 + 23 × 20) / 24 µg/m³: the day is the mean of its hours.
        let daily = try quantrac(["averages", "--daily", "--from", "2026-03-15", "--to", "2026-03-15"] + c, in: dir, label: "daily")
        #expect(daily.stdoutText.contains("2026-03-16 00:00:00  PM2,5    21.67   yes    24/24"), "\(daily.stdoutText)\(daily.stderrText)")
        let both = try quantrac(["averages", "--daily", "--period", "8h", "--from", "2026-03-15", "--to", "2026-03-15"] + c, in: dir, label: "both")
        #expect(both.exitStatus != 0 && both.stderrText.contains("not both"), "\(both.stderrText)")

        let exclude = try quantrac(["averages", "exclude", "--channel", "PM2,5", "--from", "2026-03-15 00:00", "--to", "2026-03-15 00:20",
                                    "--reason", "zero check entered late"] + c, in: dir, label: "exclude")
        #expect(exclude.exitStatus == 0, "\(exclude.stderrText)")
        let json = try quantrac(["averages", "list", "--json", "--from", "2026-03-15", "--to", "2026-03-15 01:00", "--channel", "PM2,5"] + c,
                                in: dir, label: "list-json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(json.stdoutText.utf8)) as? [[String: Any]])
        #expect(rows.count == 1 && rows[0]["valid"] as? Bool == false && rows[0]["valid_count"] as? Int == 8, "8 of 12: \(json.stdoutText)")
        #expect((rows[0]["excluded"] as? [String: Int])?["corrected"] == 4)
        let journal = try quantrac(["audit", "journal"] + c, in: dir, label: "journal").stdoutText
        #expect(journal.contains("averages.correction") && journal.contains("zero check entered late"))
    }
}
