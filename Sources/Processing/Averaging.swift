import Foundation
import QuantracCore

/// One input to an average: a value at a time with its validity (nil reason = valid).
public struct Sample: Sendable, Hashable {
    public var end: Int64
    public var value: Double
    public var excluded: Exclusion?
    /// The paired wind speed for `vector` averages (valid and measured at the same time), if any.
    public var speed: Double?

    public init(end: Int64, value: Double, excluded: Exclusion? = nil, speed: Double? = nil) {
        self.end = end
        self.value = value
        self.excluded = excluded
        self.speed = speed
    }
}

/// Pure averaging: functions of their inputs and an explicit policy; no clock, no storage.
public enum Averaging {
    public struct OutOfSpan: Error, CustomStringConvertible {
        public let sampleEnd: Int64
        public let interval: Interval
        public var description: String { "sample ending at \(sampleEnd) is outside \(interval)" }
    }

    /// Combines valid values by kind; nil when there is none. `hours` is the period length for totals.
    public static func combine(_ samples: [Sample], kind: AverageKind, hours: Double, speedWeighted: Bool) -> Double? {
        guard !samples.isEmpty else { return nil }
        switch kind {
        case .mean:
            return RecordBuilder.mean(samples.map(\.value))
        case .total:
            return RecordBuilder.mean(samples.map(\.value)).map { $0 * hours }
        case .last:
            return samples.max { $0.end < $1.end }?.value
        case .vector:
            return vectorMean(samples.map { ($0.value, speedWeighted ? ($0.speed ?? 0) : 1) })
        }
    }

    /// Unit-vector mean direction in degrees [0, 360); nil when the vectors cancel out or weigh nothing.
    public static func vectorMean(_ directions: [(degrees: Double, weight: Double)]) -> Double? {
        var s = 0.0, c = 0.0
        for (d, w) in directions {
            let r = d * .pi / 180
            s += w * sin(r)
            c += w * cos(r)
        }
        guard abs(s) > 1e-9 || abs(c) > 1e-9 else { return nil }
        let deg = atan2(s, c) * 180 / .pi
        let normalised = deg < 0 ? deg + 360 : deg
        return normalised >= 360 ? 0 : normalised
    }

    /// The hourly average of the records of `interval` (one hour, labelled by its end).
    /// `expected` is the number of records the hour should have (3600 / record interval).
    public static func hourly(_ samples: [Sample], interval: Interval, expected: Int, policy: AveragePolicy) throws(OutOfSpan) -> Average {
        try average(samples, interval: interval, expected: expected,
                    needed: neededRecords(expected: expected, fraction: policy.hourMinFraction), hours: 1, limit: policy.limit1h, policy: policy)
    }

    /// The fewest valid records that make `fraction` of `expected`: the ceiling of the product, exact for
    /// fractions written with a few decimals (0.56 × 25 needs 14 records, although the binary product is
    /// 14.000000000000002).
    public static func neededRecords(expected: Int, fraction: Double) -> Int {
        let exact = Double(expected) * fraction
        let nearest = exact.rounded()
        return Int(abs(exact - nearest) <= 1e-9 * max(1, exact) ? nearest : exact.rounded(.up))
    }

    /// The daily average from the day's hourly averages (as samples: value = hourly value, excluded when invalid).
    public static func daily(_ hours: [Sample], interval: Interval, policy: AveragePolicy) throws(OutOfSpan) -> Average {
        try average(hours, interval: interval, expected: 24, needed: policy.dayMinHours, hours: 24, limit: policy.limit24h, policy: policy)
    }

    /// 8-hour rolling mean ending at `interval.end` from the 8 hourly averages (valid with ≥ 6 of 8).
    public static func rolling8h(_ hours: [Sample], interval: Interval) throws(OutOfSpan) -> Average {
        var policy = AveragePolicy()
        policy.kind = .mean
        return try average(hours, interval: interval, expected: 8, needed: 6, hours: 8, limit: nil, policy: policy)
    }

    static func average(_ samples: [Sample], interval: Interval, expected: Int, needed: Int, hours: Double,
                        limit: Double?, policy: AveragePolicy) throws(OutOfSpan) -> Average {
        // Samples are labelled by their end: a sample belongs to (start, end].
        for s in samples where s.end <= interval.start || s.end > interval.end {
            throw OutOfSpan(sampleEnd: s.end, interval: interval)
        }
        let valid = samples.filter { $0.excluded == nil }
        var excluded: [Exclusion: Int] = [:]
        for s in samples { if let e = s.excluded { excluded[e, default: 0] += 1 } }
        let missing = expected - samples.count
        if missing > 0 { excluded[.missing, default: 0] += missing }
        let value = combine(valid, kind: policy.kind, hours: hours, speedWeighted: policy.speedWeighted)
        let isValid = valid.count >= max(1, needed) && value != nil
        var exceeds = false
        if isValid, let v = value {
            if let limit, v > limit { exceeds = true }
            if let low = policy.limitMin, v < low { exceeds = true }
        }
        return Average(interval: interval, value: value, isValid: isValid, validCount: valid.count, expectedCount: expected,
                       excluded: excluded, min: valid.map(\.value).min(), max: valid.map(\.value).max(), exceeds: exceeds)
    }
}

public enum Validity {
    /// Why a record fails the plausibility checks, or nil. `previous` is the channel's last valid record.
    /// `polls` are the record's readings (for the stuck check) preceded by the polls before it.
    public static func check(record: ChannelRecord, previous: ChannelRecord?, polls: [Reading], policy: ValidityPolicy) -> Exclusion? {
        guard record.status == .measuring else { return nil }
        if let low = policy.validMin, record.value < low { return .range }
        if let high = policy.validMax, record.value > high { return .range }
        if let n = policy.stuckPolls, n > 1, isStuck(polls, run: n) { return .stuck }
        if let rate = policy.maxRatePerMinute, let p = previous, p.intervalEnd < record.intervalEnd {
            let minutes = Double(record.intervalEnd - p.intervalEnd) / 60
            if abs(record.value - p.value) / minutes > rate { return .rate }
        }
        return nil
    }

    /// True when the last `run` valid polls all carry exactly the same value.
    public static func isStuck(_ polls: [Reading], run: Int) -> Bool {
        let values = polls.filter(\.isValidMeasurement).compactMap(\.value)
        guard values.count >= run, let last = values.last else { return false }
        return values.suffix(run).allSatisfy { $0 == last }
    }
}
