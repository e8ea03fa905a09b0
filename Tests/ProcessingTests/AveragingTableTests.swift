import Processing
import QuantracCore
import Testing

/// Table-driven cases for the averaging rules of issue 3 that the other tables do not pin down:
/// local-day labels, completeness at and around 75 %, vector means, plausibility edges, NowCast gaps.
struct AveragingTableTests {
    static let vn = UTCOffset(seconds: 7 * 3600)

    static func local(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0) -> Int64 {
        CivilTime.epochSeconds(year: y, month: mo, day: d, hour: h, minute: mi, offset: vn)
    }

    /// (record end, local) → (hour label, day label), both local `yyyy-MM-dd HH:mm:ss`.
    @Test(arguments: [
        ((2026, 3, 15, 0, 5), "2026-03-15 01:00:00", "2026-03-16 00:00:00"),
        ((2026, 3, 15, 1, 0), "2026-03-15 01:00:00", "2026-03-16 00:00:00"),
        ((2026, 3, 15, 0, 0), "2026-03-15 00:00:00", "2026-03-15 00:00:00"),
        ((2026, 3, 15, 23, 55), "2026-03-16 00:00:00", "2026-03-16 00:00:00"),
        ((2026, 3, 16, 0, 0), "2026-03-16 00:00:00", "2026-03-16 00:00:00"),
        ((2026, 1, 1, 0, 0), "2026-01-01 00:00:00", "2026-01-01 00:00:00"),
        ((2025, 12, 31, 17, 5), "2025-12-31 18:00:00", "2026-01-01 00:00:00"),  // 10:05 UTC
        ((2024, 2, 29, 7, 0), "2024-02-29 07:00:00", "2024-03-01 00:00:00"),   // 00:00 UTC, a leap day
    ])
    func recordsBelongToTheHourAndLocalDayLabelledByTheirEnd(_ at: (Int, Int, Int, Int, Int), hourLabel: String, dayLabel: String) throws {
        let end = Self.local(at.0, at.1, at.2, at.3, at.4)
        let hour = IntervalGrid(lengthSeconds: 3600, offset: Self.vn).interval(containing: Timestamp(seconds: end - 1))
        let day = IntervalGrid(lengthSeconds: 86_400, offset: Self.vn).interval(containing: Timestamp(seconds: hour.end - 1))
        #expect(CivilTime(epochSeconds: hour.end, offset: Self.vn).readable == hourLabel)
        #expect(CivilTime(epochSeconds: day.end, offset: Self.vn).readable == dayLabel)
        #expect(try Averaging.hourly([Sample(end: end, value: 1)], interval: hour, expected: 12, policy: .init()).validCount == 1)
        #expect(try Averaging.daily([Sample(end: hour.end, value: 1)], interval: day, policy: .init()).validCount == 1)
    }

    /// (valid records, expected records, hour_min_fraction) → valid?
    @Test(arguments: [
        (8, 12, 0.75, false), (9, 12, 0.75, true), (10, 12, 0.75, true), (12, 12, 0.75, true), (0, 12, 0.75, false),
        (44, 60, 0.75, false), (45, 60, 0.75, true),                      // 1-minute records
        (2, 4, 0.75, false), (3, 4, 0.75, true),                          // 15-minute records: ceil(3) = 3
        (2, 3, 0.75, false), (3, 3, 0.75, true),                          // 20-minute records: ceil(2.25) = 3
        (6, 10, 0.7, false), (7, 10, 0.7, true),                          // 0.7 × 10 is 7, not 8
        (13, 25, 0.56, false), (14, 25, 0.56, true),                      // 0.56 × 25 = 14.000000000000002 in binary
        (1, 12, 0.01, true), (0, 12, 0.01, false), (11, 12, 1.0, false),
    ])
    func hourCompletenessAtAndAround75Percent(valid: Int, expected: Int, fraction: Double, isValid: Bool) throws {
        var policy = AveragePolicy()
        policy.hourMinFraction = fraction
        let length = 3600 / Int64(expected)
        let samples = (1...expected).map { i in
            Sample(end: Int64(i) * length, value: Double(i), excluded: i <= valid ? nil : (i % 2 == 0 ? .calibrating : .fault))
        }
        let a = try Averaging.hourly(samples, interval: Interval(start: 0, end: 3600), expected: expected, policy: policy)
        #expect(a.isValid == isValid && a.validCount == valid)
        #expect((Averaging.neededRecords(expected: expected, fraction: fraction) <= valid) == isValid)
    }

    /// (valid hours, day_min_hours) → valid?
    @Test(arguments: [(17, 18, false), (18, 18, true), (19, 18, true), (24, 18, true), (0, 18, false), (1, 1, true), (23, 24, false)])
    func dayCompletenessAroundEighteenHours(validHours: Int, minimum: Int, isValid: Bool) throws {
        var policy = AveragePolicy()
        policy.dayMinHours = minimum
        let hours = (1...24).map { Sample(end: Int64($0) * 3600, value: 10, excluded: $0 <= validHours ? nil : .incomplete) }
        let d = try Averaging.daily(hours, interval: Interval(start: 0, end: 86_400), policy: policy)
        #expect(d.isValid == isValid && d.validCount == validHours && d.excluded[.incomplete] == (24 - validHours == 0 ? nil : 24 - validHours))
    }

    /// Directions (unit weights) → vector mean in degrees; nil when they cancel.
    @Test(arguments: [
        ([350.0, 10], 0.0), ([340, 20], 0), ([10, 350, 0], 0), ([90, 180], 135), ([270, 0], 315), ([10, 20, 30], 20),
        ([355, 5, 15], 5), ([180], 180), ([359.5, 0.5], 0), ([45, 45, 45], 45), ([200, 220], 210),
    ] as [([Double], Double)])
    func vectorMeans(_ directions: [Double], mean: Double) throws {
        let m = try #require(Averaging.vectorMean(directions.map { ($0, 1) }))
        #expect(angularDistance(m, mean) < 1e-9 && m >= 0 && m < 360, "\(directions) → \(m)")
    }

    @Test func oppositeWindsHaveNoMean() {
        #expect(Averaging.vectorMean([(0, 1), (180, 1)]) == nil)
        #expect(Averaging.vectorMean([(90, 2), (270, 2)]) == nil)
        #expect(Averaging.vectorMean([(0, 0), (90, 0)]) == nil, "calm: no weight, no direction")
    }

    /// (record value, valid_min, valid_max) → excluded as `range`?
    @Test(arguments: [
        (0.0, 0.0, 14.0, false), (14, 0, 14, false), (-0.01, 0, 14, true), (14.01, 0, 14, true), (7, 0, 14, false),
        (-5, -10, -1, false), (0, -10, -1, true),
    ])
    func rangeCheckIsInclusive(value: Double, low: Double, high: Double, excluded: Bool) {
        var policy = ValidityPolicy()
        policy.validMin = low
        policy.validMax = high
        let r = ChannelRecord(channel: "pH", intervalEnd: 600, value: value, status: .measuring, validCount: 1, sampleCount: 1)
        #expect((Validity.check(record: r, previous: nil, polls: [], policy: policy) == .range) == excluded)
    }

    /// Poll values (nil = a fault poll) → stuck with `stuck_polls = 3`?
    @Test(arguments: [
        ([7.0, 7, 7], true), ([7, 7], false), ([6, 7, 7, 7], true), ([7, 7, 7, 6], false), ([7, 7.0001, 7], false),
        ([7, 7, nil, 7], true), ([nil, nil, nil], false), ([0, 0, 0], true),
    ] as [([Double?], Bool)])
    func stuckNeedsTheSameValueOnTheLastValidPolls(_ values: [Double?], stuck: Bool) {
        let polls = values.enumerated().map { i, v in
            Reading(channel: "COD", time: Timestamp(seconds: Int64(i) * 10), value: v, status: v == nil ? .fault : .measuring)
        }
        #expect(Validity.isStuck(polls, run: 3) == stuck, "\(values)")
    }

    /// Hourly series (current hour first; nil = missing) → NowCast, to 0.1 µg/m³ (nil: fewer than 2 of the 3 latest).
    @Test(arguments: [
        ([30.0, 30, 30] as [Double?], 30.0 as Double?),
        ([nil, 30, 20], 26.0),                  // w = 2/3: (2/3·30 + 4/9·20) / (2/3 + 4/9)
        ([30, nil, nil, 30], nil),
        ([nil, nil, 30, 30, 30], nil),
        ([40, nil, 40, nil, nil, nil, nil, nil, nil, nil, nil, 40], 40),
        ([100, nil, 10], 82.0),                 // w floored at 1/2: (100 + 0.25·10) / 1.25
        ([25, 25, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil], 25),
    ])
    func nowCastWithMissingHours(_ hours: [Double?], expected: Double?) {
        let n = VNAQI.nowCast(hours)
        #expect(n.map { ($0.value * 10).rounded() / 10 } == expected, "\(hours) → \(String(describing: n))")
    }
}
