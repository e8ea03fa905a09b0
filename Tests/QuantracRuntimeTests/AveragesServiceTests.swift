import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracRuntime
import QuantracTesting
import Storage
import Testing

/// Averages from stored records: completeness, exclusions, vector wind, AQI, products, catch-up, recompute.
struct AveragesServiceTests {
    let config: StationConfig
    let dayStart: Int64

    init() throws {
        let dir = NSTemporaryDirectory() + "quantrac-avg-\(UUID().uuidString)"
        config = try ConfigLoader.parse("""
            [station]
            prefix = "HN_QTMT_KHI001"
            kind = "ambient-air"
            data_dir = "\(dir)"
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
            limit_24h = 50
            [[channel]]
            code = "O3"
            unit = "ppb"
            bus = "a"
            address = 2
            type = "float32"
            [[channel]]
            code = "WS"
            unit = "m/s"
            bus = "a"
            address = 4
            type = "float32"
            [[channel]]
            code = "WD"
            unit = "deg"
            bus = "a"
            address = 6
            type = "float32"
            average = "vector"
            speed_channel = "WS"
            [[target]]
            name = "dept"
            url = "file:///recv/{product}"
            """)
        dayStart = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, offset: config.station.utcOffset)
    }

    /// One local day of 5-minute records; hour 3 (02:00–03:00) has 4 calibration records.
    func fill(_ store: Store) async throws {
        for i in 1...288 {
            let end = dayStart + Int64(i) * 300
            let hour = (i - 1) / 12
            let status: InstrumentStatus = hour == 2 && i % 12 < 4 ? .calibrating : .measuring
            let records = [
                ChannelRecord(channel: "PM2,5", intervalEnd: end, value: 40 + Double(hour), status: status, validCount: 30, sampleCount: 30),
                ChannelRecord(channel: "O3", intervalEnd: end, value: 20, status: .measuring, validCount: 30, sampleCount: 30),
                ChannelRecord(channel: "WS", intervalEnd: end, value: 2, status: .measuring, validCount: 30, sampleCount: 30),
                ChannelRecord(channel: "WD", intervalEnd: end, value: i % 2 == 0 ? 350 : 10, status: .measuring, validCount: 30, sampleCount: 30),
            ]
            try await store.commitInterval(intervalEnd: end, records: records, fileName: "F\(i)", fileBytes: [1], targets: [], now: Timestamp(seconds: end))
        }
    }

    @Test func catchesUpADayWithCompletenessVectorWindAQIAndProducts() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: config.station.dataDir + "/q.sqlite")
        let outbox = try OutboxDirectory(dataDir: config.station.dataDir)
        try await fill(store)
        let service = AveragesService(calculator: AverageCalculator(config: config, store: store), outbox: outbox,
                                      productTargets: ["1h": ["dept"], "24h": ["dept"]], signals: [],
                                      wallClock: ManualWallClock(Timestamp(seconds: dayStart + 86_400 + 60)), logger: Logger(label: "test"))
        #expect(try await service.catchUp() == 24)
        #expect(try await service.catchUp() == 0, "idempotent: nothing left to do")

        let hours = try await store.averages(period: "1h", after: dayStart, through: dayStart + 86_400, channel: "PM2,5")
        #expect(hours.count == 24)
        #expect(hours[0].average.isValid && hours[0].average.value == 40 && hours[0].average.validCount == 12)
        let third = hours[2].average
        #expect(!third.isValid && third.validCount == 8 && third.excluded == [.calibrating: 4], "8 of 12 is below 75 %")
        #expect(third.value == 42, "the partial mean is kept with the counts")

        let wd = try await store.averages(period: "1h", after: dayStart, through: dayStart + 3600, channel: "WD")[0].average
        #expect(wd.value.map { $0 < 1e-6 || $0 > 360 - 1e-6 } == true, "350° and 10° average to north, not 180°")

        let day = try #require(try await store.averages(period: "24h", after: dayStart, through: dayStart + 86_400, channel: "PM2,5").first)
        #expect(day.average.isValid && day.average.validCount == 23 && day.average.excluded == [.incomplete: 1])
        #expect(day.average.exceeds, "limit_24h = 50 µg/m³ is exceeded by the daily mean")

        // O3 (ppb, converted at 25 °C) gets 8-hour means; the AQI exists hourly and daily.
        let o3_8h = try await store.averages(period: "8h", after: dayStart, through: dayStart + 86_400, channel: "O3")
        #expect(o3_8h.count == 24 && o3_8h[7].average.isValid && !o3_8h[4].average.isValid)
        let aqiHours = try await store.aqi(period: "1h", after: dayStart, through: dayStart + 86_400)
        #expect(aqiHours.count == 24)
        #expect(aqiHours[0].aqi == nil, "NowCast needs 2 of the 3 latest hours: no PM, no AQI in the first hour")
        #expect(aqiHours[1].aqi != nil && aqiHours[1].dominant == "PM2.5")
        let aqiDay = try #require(try await store.aqi(period: "24h", after: dayStart, through: dayStart + 86_400).first)
        #expect(aqiDay.aqi != nil && aqiDay.subIndices.contains("O3="))

        // Average files: 24 hourly and 1 daily, queued for the target, in their product folders.
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox.outbox + "/1h").count == 24)
        let daily = try FileManager.default.contentsOfDirectory(atPath: outbox.outbox + "/24h")
        #expect(daily == ["HN_QTMT_KHI001_20260316000000.txt"])
        let text = String(decoding: try outbox.read(name: "24h/" + daily[0]), as: UTF8.self)
        #expect(text.hasPrefix("PM2,5\t51.91\tµg/Nm3\t20260316000000\t00\r\n"), "mean of 23 valid hours: \(text)")
        #expect(try await store.nextPending(target: "dept")?.file == "1h/HN_QTMT_KHI001_20260315010000.txt")
    }

    @Test func lateCorrectionRecomputesARange() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: config.station.dataDir + "/q.sqlite")
        try await fill(store)
        let calculator = AverageCalculator(config: config, store: store)
        let now = Timestamp(seconds: dayStart + 90_000)
        _ = try await calculator.recompute(from: dayStart, to: dayStart + 86_400, now: now)
        #expect(try await store.averages(period: "1h", after: dayStart, through: dayStart + 3600, channel: "PM2,5")[0].average.isValid)
        // A calibration from 00:10 to 00:30 entered afterwards: 4 records of the first hour are excluded.
        try await store.addCorrection(Correction(channel: "PM2,5", from: dayStart + 600, to: dayStart + 1800, reason: "span check"),
                                      user: "tech", at: now)
        let (hours, days) = try await calculator.recompute(from: dayStart, to: dayStart + 3600, now: now)
        #expect(hours == 1 && days == 1)
        let first = try await store.averages(period: "1h", after: dayStart, through: dayStart + 3600, channel: "PM2,5")[0].average
        #expect(!first.isValid && first.excluded == [.corrected: 4])
        #expect(try await store.records(intervalEnd: dayStart + 900).count == 4, "records are never changed")
        #expect(try await store.journalEntries().last?.kind == "averages.correction")
    }

    /// Batched computation (a local day per read and write) stores exactly what computing hour by hour
    /// stores — across batch boundaries too, where 8-hour means and the NowCast look back into the day before.
    @Test func batchesEqualHourByHour() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let batched = try Store(path: config.station.dataDir + "/batched.sqlite")
        let single = try Store(path: config.station.dataDir + "/single.sqlite")
        // Two days and a half, with calibrations, faults, flags, gaps and a late correction.
        var seed: UInt64 = 42
        func next() -> Double { seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return Double(seed >> 11) / Double(1 << 53) }
        for i in 1...(288 * 5 / 2) {
            let end = dayStart + Int64(i) * 300
            var records: [ChannelRecord] = []
            for code in ["PM2,5", "O3", "WS", "WD"] where next() > 0.05 {
                let roll = next()
                let status: InstrumentStatus = roll < 0.06 ? .calibrating : roll < 0.1 ? .fault : .measuring
                records.append(ChannelRecord(channel: code, intervalEnd: end, value: code == "WD" ? next() * 360 : 10 + next() * 60, status: status,
                                             validCount: 30, sampleCount: 30, flag: next() < 0.01 ? .range : nil))
            }
            for store in [batched, single] {
                try await store.commitInterval(intervalEnd: end, records: records, fileName: "F\(i)", fileBytes: [1], targets: [], now: Timestamp(seconds: end))
            }
        }
        let correction = Correction(channel: "O3", from: dayStart + 86_400 - 1800, to: dayStart + 86_400 + 900, reason: "span")
        try await batched.addCorrection(correction, user: nil, at: Timestamp(seconds: dayStart))
        try await single.addCorrection(correction, user: nil, at: Timestamp(seconds: dayStart))
        let now = Timestamp(seconds: dayStart + 4 * 86_400)
        let end = dayStart + 60 * 3600
        // Batched: recompute from 03:00 (the first day partly), by local day.
        let counts = try await AverageCalculator(config: config, store: batched).recompute(from: dayStart + 3 * 3600, to: end, now: now)
        #expect(counts.hours == 57 && counts.days == 3)
        let one = AverageCalculator(config: config, store: single)
        for hour in stride(from: dayStart + 4 * 3600, through: end, by: 3600) {
            _ = try await one.computeHour(end: hour, now: now)
            if hour % 86_400 == dayStart % 86_400 { _ = try await one.computeDay(end: hour, now: now) }
        }
        _ = try await one.computeDay(end: dayStart + 3 * 86_400, now: now)
        for period in ["1h", "8h", "24h"] {
            let a = try await batched.averages(period: period, after: dayStart, through: dayStart + 3 * 86_400)
            let b = try await single.averages(period: period, after: dayStart, through: dayStart + 3 * 86_400)
            #expect(a == b && !a.isEmpty, "\(period) averages differ")
        }
        for period in ["1h", "24h"] {
            let a = try await batched.aqi(period: period, after: dayStart, through: dayStart + 3 * 86_400)
            #expect(a == (try await single.aqi(period: period, after: dayStart, through: dayStart + 3 * 86_400)) && !a.isEmpty, "\(period) AQI differs")
        }
        let corrected = try await batched.averages(period: "1h", after: dayStart + 82_800, through: dayStart + 86_400, channel: "O3")
        #expect(corrected.first?.average.excluded[.corrected] == 6, "the correction reaches back into the first batch")
    }
}
