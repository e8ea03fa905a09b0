import Processing
import QuantracCore
import Testing

struct AveragingTests {
    let hour = Interval(start: 0, end: 3600)

    func samples(_ values: [Double?], excluded: [Int: Exclusion] = [:]) -> [Sample] {
        values.enumerated().compactMap { i, v in v.map { Sample(end: Int64(i + 1) * 300, value: $0, excluded: excluded[i]) } }
    }

    @Test func hourIsValidWithNineOfTwelveRecords() throws {
        var policy = AveragePolicy()
        let nine = samples([1, 2, 3, 4, 5, 6, 7, 8, 9, nil, nil, nil])
        let a = try Averaging.hourly(nine, interval: hour, expected: 12, policy: policy)
        #expect(a.isValid && a.value == 5 && a.validCount == 9 && a.excluded == [.missing: 3] && a.min == 1 && a.max == 9)
        let eight = samples([1, 2, 3, 4, 5, 6, 7, 8, 100, 100, 100, 100], excluded: [8: .calibrating, 9: .fault, 10: .range, 11: .stuck])
        let b = try Averaging.hourly(eight, interval: hour, expected: 12, policy: policy)
        #expect(!b.isValid && b.value == 4.5 && b.excluded == [.calibrating: 1, .fault: 1, .range: 1, .stuck: 1])
        policy.hourMinFraction = 0.5
        #expect(try Averaging.hourly(eight, interval: hour, expected: 12, policy: policy).isValid)
    }

    @Test func hourIsHalfOpenLabelledByItsEnd() throws {
        // A record stamped 01:00 belongs to the hour 00:00–01:00; one stamped 00:00 does not.
        #expect(throws: Averaging.OutOfSpan.self) { try Averaging.hourly([Sample(end: 0, value: 1)], interval: hour, expected: 12, policy: .init()) }
        #expect(throws: Averaging.OutOfSpan.self) { try Averaging.hourly([Sample(end: 3900, value: 1)], interval: hour, expected: 12, policy: .init()) }
        #expect(try Averaging.hourly([Sample(end: 3600, value: 1)], interval: hour, expected: 1, policy: .init()).isValid)
    }

    @Test func dayNeedsEighteenValidHours() throws {
        let day = Interval(start: 0, end: 86_400)
        let hours = (1...24).map { Sample(end: Int64($0) * 3600, value: Double($0), excluded: $0 > 18 ? .missing : nil) }
        let d = try Averaging.daily(hours, interval: day, policy: .init())
        #expect(d.isValid && d.value == 9.5 && d.validCount == 18)
        let seventeen = hours.enumerated().map { i, s in i == 0 ? Sample(end: s.end, value: s.value, excluded: .fault) : s }
        #expect(try !Averaging.daily(seventeen, interval: day, policy: .init()).isValid)
    }

    @Test func vectorMeanAcrossNorth() {
        #expect(abs(Averaging.vectorMean([(350, 1), (10, 1)])! - 0) < 1e-9 || abs(Averaging.vectorMean([(350, 1), (10, 1)])! - 360) < 1e-9)
        #expect(abs(Averaging.vectorMean([(80, 1), (100, 1)])! - 90) < 1e-9)
        #expect(abs(Averaging.vectorMean([(270, 3), (0, 1)])! - 288.4349488) < 1e-6, "speed weighting: atan2(-3, 1)")
        #expect(Averaging.vectorMean([(0, 1), (180, 1)]) == nil, "opposite winds cancel")
        // The scalar mean would say 180°, which is wrong.
        var policy = AveragePolicy()
        policy.kind = .vector
        let a = try? Averaging.hourly([Sample(end: 300, value: 350), Sample(end: 600, value: 10)], interval: hour, expected: 2, policy: policy)
        #expect(a.map { $0.value! < 1 || $0.value! > 359 } == true)
    }

    @Test func flowTotalsInCubicMetres() throws {
        var policy = AveragePolicy()
        policy.kind = .total
        let a = try Averaging.hourly(samples(Array(repeating: 120, count: 12)), interval: hour, expected: 12, policy: policy)
        #expect(a.value == 120)  // 120 m³/h for one hour
        let day = Interval(start: 0, end: 86_400)
        let d = try Averaging.daily((1...24).map { Sample(end: Int64($0) * 3600, value: 100) }, interval: day, policy: policy)
        #expect(d.value == 2400)
    }

    @Test func lastAndExceedances() throws {
        var policy = AveragePolicy()
        policy.kind = .last
        #expect(try Averaging.hourly(samples([1, 5, 3]), interval: hour, expected: 3, policy: policy).value == 3)
        policy.kind = .mean
        policy.limit1h = 4
        #expect(try Averaging.hourly(samples([5, 5, 5]), interval: hour, expected: 3, policy: policy).exceeds)
        #expect(try !Averaging.hourly(samples([5, 5, 5, nil]), interval: hour, expected: 12, policy: policy).exceeds, "invalid averages are not judged")
        policy.limit1h = nil
        policy.limitMin = 6
        #expect(try Averaging.hourly(samples([5.5, 5.5, 5.5]), interval: hour, expected: 3, policy: policy).exceeds)
    }

    @Test func rolling8h() throws {
        let i = Interval(start: 0, end: 8 * 3600)
        let hours = (1...8).map { Sample(end: Int64($0) * 3600, value: Double($0), excluded: $0 <= 2 ? .missing : nil) }
        let r = try Averaging.rolling8h(hours, interval: i)
        #expect(r.isValid && r.value == 5.5)
        let five = hours.enumerated().map { i, s in i == 2 ? Sample(end: s.end, value: s.value, excluded: .fault) : s }
        #expect(try !Averaging.rolling8h(five, interval: i).isValid)
    }

    @Test func plausibilityChecks() {
        var policy = ValidityPolicy()
        policy.validMin = 0
        policy.validMax = 14
        policy.stuckPolls = 4
        policy.maxRatePerMinute = 1
        let rec = ChannelRecord(channel: "pH", intervalEnd: 600, value: 7, status: .measuring, validCount: 3, sampleCount: 3)
        func polls(_ v: [Double]) -> [Reading] { v.enumerated().map { Reading(channel: "pH", time: Timestamp(seconds: Int64($0.offset)), value: $0.element, status: .measuring) } }
        #expect(Validity.check(record: rec, previous: nil, polls: polls([7, 7.1, 7]), policy: policy) == nil)
        var high = rec
        high.value = 15
        #expect(Validity.check(record: high, previous: nil, polls: [], policy: policy) == .range)
        #expect(Validity.check(record: rec, previous: nil, polls: polls([6, 7, 7, 7, 7]), policy: policy) == .stuck)
        let prev = ChannelRecord(channel: "pH", intervalEnd: 300, value: 1, status: .measuring, validCount: 3, sampleCount: 3)
        #expect(Validity.check(record: rec, previous: prev, polls: [], policy: policy) == .rate)
        var calibrating = high
        calibrating.status = .calibrating
        #expect(Validity.check(record: calibrating, previous: nil, polls: [], policy: policy) == nil, "already excluded by its status")
    }
}
