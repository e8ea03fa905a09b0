import Foundation
import QuantracCore
import QuantracTesting
import Storage
import Testing

/// A station day in a minute: `quantracd --clock-scale 1440` (an hour in 2.5 s) polls `quantrac-sim` from
/// 00:50 local time until the local day has closed, with a calibration window stored beforehand (COD,
/// 03:10–03:40, plus 5 minutes' recovery) and the simulator stopped for a while in the morning (every channel
/// faults) — and TSS always above its `valid_max`. The test then recomputes every hourly and daily average from the stored 5-minute records with
/// the rules written out here — exclude 01/02 and range-flagged records, 9 of 12 records for an hour,
/// 18 of 24 hours for a day, hours labelled by their end, the local day 01:00 … 00:00, means, a flow total,
/// a speed-weighted vector mean and a last value — and compares them with what the daemon stored.
@Suite(.serialized, .ownThread)
struct AveragesAcceleratedTests {
    static let scale = 1440
    static let vn = UTCOffset(seconds: 7 * 3600)
    static let dayStart = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, offset: vn)
    static let dayEnd = dayStart + 86_400
    /// Below every TSS value the simulator serves (about 20 mg/L): each measuring TSS record fails the range check.
    static let tssMax = 5.0

    static func local(_ hour: Int, _ minute: Int = 0) -> Int64 { dayStart + Int64(hour * 3600 + minute * 60) }

    func station(port: Int, data: URL) -> String {
        func channel(_ code: String, _ unit: String, _ address: Int, _ extra: String = "") -> String {
            "[[channel]]\ncode = \"\(code)\"\nunit = \"\(unit)\"\nbus = \"lan\"\naddress = \(address)\ntype = \"float32\"\n\(extra)\n"
        }
        return """
            [station]
            prefix = "HN_ACCT_NUO001"
            kind = "wastewater"
            data_dir = "\(data.path)"
            poll_interval = "60s"
            [status_page]
            enabled = false
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = \(port)
            timeout = "500ms"

            """
            + channel("COD", "mg/L", 0)
            + channel("TSS", "mg/L", 2, "valid_max = \(Self.tssMax)")
            + channel("Flow", "m3/h", 4, "average = \"total\"")
            + channel("WS", "m/s", 6)
            + channel("WD", "deg", 8, "average = \"vector\"\nspeed_channel = \"WS\"\nspeed_weighted = true")
            + channel("Temp", "°C", 10, "average = \"last\"")
    }

    @Test func hoursAndADayOnAnAcceleratedClockMatchTheRules() async throws {
        let dir = try makeTemporaryDirectory("avg-accelerated")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("station.toml")
        try station(port: 1, data: data).write(to: file, atomically: true, encoding: .utf8)
        var sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", file.path, "--port", "lan=0"],
                                  logDirectory: dir, label: "sim")
        defer { _ = sim.stop() }
        let ready = try sim.waitForLine(prefix: "READY lan ", timeout: .seconds(20))
        let port = try #require(Int(ready.split(separator: " ").last ?? ""))
        try station(port: port, data: data).write(to: file, atomically: true, encoding: .utf8)

        // The calibration window, stored before the daemon starts, in station time (as `quantrac calibrate` would).
        let dbPath = data.appendingPathComponent("quantrac.sqlite").path
        try await Store(path: dbPath).startCalibration(channel: "COD", duration: .seconds(1800), reason: "span check", user: "test",
                                                       at: Timestamp(seconds: Self.local(3, 10)))

        let daemon = try TestProcess(executable: Repository.binary("quantracd"),
                                     arguments: ["--config", file.path, "--clock-scale", "\(Self.scale)", "--clock-start", "2026-03-15T00:50:00+07:00"],
                                     logDirectory: dir, label: "quantracd")
        defer { _ = daemon.stop() }
        let store = try Store(readOnlyPath: dbPath)

        // The simulator stops once the 09:00 record exists, and comes back after 8 fault records (40 minutes).
        try await waitUntilAsync(timeout: .seconds(60), what: "the 09:00 record") {
            try await !store.records(channel: "COD", after: Self.local(8, 55), through: Self.local(9)).isEmpty
        }
        _ = sim.stop()
        try await waitUntilAsync(timeout: .seconds(30), what: "8 fault records") {
            try await store.records(channel: "COD", after: Self.local(9), through: Self.dayEnd).filter { $0.status == .fault }.count >= 8
        }
        sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", file.path, "--port", "lan=\(port)"],
                              logDirectory: dir, label: "sim-again")
        _ = try sim.waitForLine(prefix: "READY lan ", timeout: .seconds(20))
        try await waitUntilAsync(timeout: .seconds(120), what: "the day's averages") {
            try await (store.meta("averages_done_until") ?? 0) >= Self.dayEnd
        }
        #expect(daemon.stop() == 0, "\(daemon.logReport())")
        #expect(daemon.stderrText.contains("ACCELERATED CLOCK"), "the test clock is announced loudly")
        #expect(!daemon.stderrText.contains("wall clock stepped"), "an accelerated clock is not a clock step")

        var records: [String: [ChannelRecord]] = [:]
        for code in ["COD", "TSS", "Flow", "WS", "WD", "Temp"] {
            records[code] = try await store.records(channel: code, after: Self.dayStart, through: Self.dayEnd)
        }
        let cod = try #require(records["COD"])
        #expect(cod.count >= 270, "a record every 5 minutes from 00:55 to 00:00 (\(cod.count))")

        // The calibration window: every COD record of 03:15–03:45 is 01 (the first one may be picked up a
        // poll late), none before or after; other channels are untouched.
        let inWindow = cod.filter { $0.intervalEnd > Self.local(3, 15) && $0.intervalEnd <= Self.local(3, 45) }
        #expect(inWindow.count >= 5 && inWindow.allSatisfy { $0.status == .calibrating }, "\(inWindow)")
        #expect(cod.filter { $0.status == .calibrating }.allSatisfy { $0.intervalEnd > Self.local(3, 10) && $0.intervalEnd <= Self.local(3, 45) })
        #expect(records["TSS"]!.allSatisfy { $0.status != .calibrating })
        // The range check on TSS flags exactly the measuring records above valid_max (here: all of them).
        for r in records["TSS"]! { #expect((r.flag == .range) == (r.status == .measuring && r.value > Self.tssMax), "\(r)") }
        #expect(records["TSS"]!.contains { $0.flag == .range })

        // Independent hourly and daily averages, compared with the stored ones.
        let hourEnds = Array(stride(from: Self.local(1), through: Self.dayEnd, by: 3600))
        var expectedHours: [String: [Int64: Expected]] = [:]
        for code in records.keys {
            for end in hourEnds { expectedHours[code, default: [:]][end] = Expected.hour(code, end: end, records: records) }
        }
        for code in records.keys.sorted() {
            let stored = try await store.averages(period: "1h", after: Self.dayStart, through: Self.dayEnd, channel: code)
            #expect(stored.map(\.average.interval.end) == hourEnds, "\(code): one average per hour, labelled by its end")
            for s in stored {
                let e = try #require(expectedHours[code]?[s.average.interval.end])
                e.check(s.average, "\(code) hour \(CivilTime(epochSeconds: s.average.interval.end, offset: Self.vn).readable)")
            }
            let day = try #require(try await store.averages(period: "24h", after: Self.dayStart, through: Self.dayEnd, channel: code).first)
            Expected.day(code, hours: expectedHours).check(day.average, "\(code) day")
        }

        // What the windows must have done to the verdicts.
        let calibrated = try #require(expectedHours["COD"]?[Self.local(4)])
        #expect(!calibrated.valid && (calibrated.excluded[.calibrating] ?? 0) >= 6, "the 03:00–04:00 COD hour is invalid: \(calibrated)")
        #expect(expectedHours["TSS"]?[Self.local(4)]?.excluded[.calibrating] == nil)
        #expect(expectedHours["TSS"]!.values.allSatisfy { !$0.valid && $0.validCount == 0 }, "range-flagged records count for nothing")
        let faulted = hourEnds.filter { (expectedHours["Flow"]?[$0]?.excluded[.fault] ?? 0) >= 4 }
        #expect(!faulted.isEmpty && faulted.allSatisfy { expectedHours["Flow"]?[$0]?.valid == false }, "the simulator's absence invalidates an hour")
        #expect(expectedHours["COD"]?[Self.local(1)]?.valid == false, "00:00–01:00 has only the records from 00:50")
        let codDay = Expected.day("COD", hours: expectedHours)
        #expect(codDay.validCount >= 18 && codDay.valid, "COD's day is valid without its calibration, fault and first hours: \(codDay)")

        // The operator's view: `quantrac averages --daily` and `--hourly` (default range: the last computed day).
        let cli = try TestProcess(executable: Repository.binary("quantrac"),
                                  arguments: ["averages", "--daily", "--from", "2026-03-15", "--to", "2026-03-15", "--channel", "COD", "--json",
                                              "--config", file.path], logDirectory: dir, label: "cli-daily")
        #expect(cli.waitForExit(timeout: .seconds(30)) == 0, "\(cli.stderrText)")
        let daily = try #require(try JSONSerialization.jsonObject(with: Data(cli.stdoutText.utf8)) as? [[String: Any]])
        #expect(daily.count == 1 && daily.first?["end"] as? String == "2026-03-16 00:00:00" && daily.first?["valid"] as? Bool == codDay.valid
                && daily.first?["valid_count"] as? Int == codDay.validCount, "\(cli.stdoutText)")
        let hourly = try TestProcess(executable: Repository.binary("quantrac"),
                                     arguments: ["averages", "--hourly", "--channel", "Flow", "--config", file.path], logDirectory: dir, label: "cli-hourly")
        #expect(hourly.waitForExit(timeout: .seconds(30)) == 0, "\(hourly.stderrText)")
        let lines = hourly.stdoutText.split(separator: "\n")
        #expect(lines.first?.hasPrefix("END ") == true && lines.filter { $0.contains(" Flow ") }.count == 24, "\(hourly.stdoutText)")
    }
}

/// An average as the test computes it from the records, by the rules in the suite's comment.
struct Expected: CustomStringConvertible {
    var value: Double?
    var valid: Bool
    var validCount: Int
    var expectedCount: Int
    var excluded: [Exclusion: Int]
    var min: Double?
    var max: Double?

    var description: String { "value \(value.map { "\($0)" } ?? "-") valid \(valid) \(validCount)/\(expectedCount) \(excluded)" }

    static func reason(_ r: ChannelRecord) -> Exclusion? {
        switch r.status {
        case .calibrating: return .calibrating
        case .fault: return .fault
        case .measuring: return r.channel == "TSS" && r.value > AveragesAcceleratedTests.tssMax ? .range : nil
        }
    }

    /// The hour ending at `end`: its records are those with end in (end − 1 h, end].
    static func hour(_ code: String, end: Int64, records: [String: [ChannelRecord]]) -> Expected {
        let mine = (records[code] ?? []).filter { $0.intervalEnd > end - 3600 && $0.intervalEnd <= end }
        var excluded: [Exclusion: Int] = [:]
        for r in mine { if let e = reason(r) { excluded[e, default: 0] += 1 } }
        if mine.count < 12 { excluded[.missing] = 12 - mine.count }
        let valid = mine.filter { reason($0) == nil }
        var value: Double?
        if !valid.isEmpty {
            switch code {
            case "WD":
                let speeds = Dictionary((records["WS"] ?? []).filter { reason($0) == nil }.map { ($0.intervalEnd, $0.value) }, uniquingKeysWith: { a, _ in a })
                value = vectorMean(valid.map { ($0.value, speeds[$0.intervalEnd] ?? 0) })
            case "Temp":
                value = valid.last?.value
            default:
                value = valid.map(\.value).reduce(0, +) / Double(valid.count)  // Flow: m³/h × 1 h
            }
        }
        return Expected(value: value, valid: valid.count >= 9 && value != nil, validCount: valid.count, expectedCount: 12,
                        excluded: excluded, min: valid.map(\.value).min(), max: valid.map(\.value).max())
    }

    /// The local day ending at midnight from the 24 hours labelled 01:00 … 00:00.
    static func day(_ code: String, hours: [String: [Int64: Expected]]) -> Expected {
        let ends = stride(from: AveragesAcceleratedTests.dayStart + 3600, through: AveragesAcceleratedTests.dayEnd, by: 3600)
        let valid = ends.compactMap { end in hours[code]?[end].flatMap { $0.valid ? (end, $0.value!) : nil } }
        let present = ends.filter { hours[code]?[$0] != nil }.count
        var excluded: [Exclusion: Int] = [:]
        if present > valid.count { excluded[.incomplete] = present - valid.count }
        if present < 24 { excluded[.missing] = 24 - present }
        var value: Double?
        if !valid.isEmpty {
            switch code {
            case "WD":
                value = vectorMean(valid.map { end, v in (v, hours["WS"]?[end].flatMap { $0.valid ? $0.value : nil } ?? 0) })
            case "Temp":
                value = valid.last?.1
            case "Flow":
                value = valid.map(\.1).reduce(0, +) / Double(valid.count) * 24
            default:
                value = valid.map(\.1).reduce(0, +) / Double(valid.count)
            }
        }
        return Expected(value: value, valid: valid.count >= 18 && value != nil, validCount: valid.count, expectedCount: 24,
                        excluded: excluded, min: valid.map(\.1).min(), max: valid.map(\.1).max())
    }

    static func vectorMean(_ v: [(degrees: Double, weight: Double)]) -> Double? {
        let s = v.map { $0.weight * sin($0.degrees * .pi / 180) }.reduce(0, +)
        let c = v.map { $0.weight * cos($0.degrees * .pi / 180) }.reduce(0, +)
        guard hypot(s, c) > 1e-9 else { return nil }
        let d = atan2(s, c) * 180 / .pi
        return d < 0 ? d + 360 : d
    }

    func check(_ a: Average, _ what: String) {
        #expect(a.isValid == valid && a.validCount == validCount && a.expectedCount == expectedCount && a.excluded == excluded,
                "\(what): stored \(a.isValid) \(a.validCount)/\(a.expectedCount) \(a.excluded), computed \(self)")
        // A day's min and max are of hourly means, which the two sides sum in a different order.
        Self.compare(a.min, min, what + " min", degrees: false)
        Self.compare(a.max, max, what + " max", degrees: false)
        Self.compare(a.value, value, what, degrees: what.hasPrefix("WD"))
    }

    static func compare(_ stored: Double?, _ computed: Double?, _ what: String, degrees: Bool) {
        switch (stored, computed) {
        case (nil, nil): break
        case let (x?, y?):
            let close = degrees ? Swift.min(abs(x - y), 360 - abs(x - y)) < 1e-6 : abs(x - y) <= 1e-9 * Swift.max(1, abs(y))
            #expect(close, "\(what): stored \(x), computed \(y)")
        default:
            Issue.record("\(what): stored \(String(describing: stored)), computed \(String(describing: computed))")
        }
    }
}
