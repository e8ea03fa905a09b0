import Foundation
import Processing
import QuantracCore
import Testing

/// Properties of the averaging rules, each over a few hundred generated cases (SplitMix64; a failing case
/// names its seed, `QUANTRAC_PROPERTY_SEED=<seed>` replays it alone).
struct AveragingPropertyTests {
    static let reasons: [Exclusion] = [.calibrating, .fault, .range, .stuck, .rate, .corrected]
    /// Record intervals that divide an hour (and so a day): 36 s … 1 h.
    static let recordSeconds: [Int64] = (1...3600).filter { 3600 % $0 == 0 && $0 >= 36 }.map(Int64.init)

    /// Records of one hour (`expected` slots of `length` s): each slot present with probability `present`,
    /// excluded with probability `excluded`, values from `value`.
    static func hour(_ c: inout PropertyCase, start: Int64, expected: Int, length: Int64, present: Double = 0.9,
                     excluded: Double = 0.25, value: (inout SplitMix64) -> Double) -> [Sample] {
        var out: [Sample] = []
        for slot in 1...expected where c.rng.chance(present) {
            let reason = c.rng.chance(excluded) ? reasons.randomElement(using: &c.rng) : nil
            out.append(Sample(end: start + Int64(slot) * length, value: value(&c.rng), excluded: reason))
        }
        return out
    }

    static func anyValue(_ rng: inout SplitMix64) -> Double {
        // Mostly ordinary concentrations; sometimes huge or negative; sometimes all equal (rounding traps).
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return 7.1
        case 1: return Double.random(in: -1e6...1e6, using: &rng)
        default: return Double.random(in: 0...500, using: &rng)
        }
    }

    @Test func meanOfValidSamplesLiesWithinTheirMinAndMax() throws {
        try forAll(base: 0x4D45_414E) { c in
            let samples = Self.hour(&c, start: 0, expected: 12, length: 300, value: Self.anyValue)
            let a = try Averaging.hourly(samples, interval: Interval(start: 0, end: 3600), expected: 12, policy: AveragePolicy())
            let valid = samples.filter { $0.excluded == nil }.map(\.value)
            #expect(a.min == valid.min() && a.max == valid.max(), c.label)
            if let lo = valid.min(), let hi = valid.max() {
                let v = try #require(a.value, c.label)
                #expect(lo <= v && v <= hi, "\(v) outside [\(lo), \(hi)]; \(c.label)")
            } else {
                #expect(a.value == nil && !a.isValid, c.label)
            }
        }
    }

    @Test func excludingStatus01And02IsAveragingTheFilteredList() throws {
        try forAll(base: 0x4558_434C) { c in
            var policy = AveragePolicy()
            policy.kind = AverageKind.allCases.randomElement(using: &c.rng)!
            let samples = Self.hour(&c, start: 3600, expected: 12, length: 300, excluded: 0.4) { rng in
                Double.random(in: 0..<360, using: &rng)
            }
            let interval = Interval(start: 3600, end: 7200)
            let all = try Averaging.hourly(samples, interval: interval, expected: 12, policy: policy)
            let kept = samples.filter { $0.excluded == nil }
            let filtered = try Averaging.hourly(kept, interval: interval, expected: 12, policy: policy)
            #expect(all.value == filtered.value && all.validCount == filtered.validCount && all.isValid == filtered.isValid,
                    "\(policy.kind); \(c.label)")
            var counts: [Exclusion: Int] = [:]
            for s in samples { if let e = s.excluded { counts[e, default: 0] += 1 } }
            if samples.count < 12 { counts[.missing] = 12 - samples.count }
            #expect(all.excluded == counts, c.label)
            #expect(all.validCount + counts.values.reduce(0, +) == 12, "every expected record is valid or counted once; \(c.label)")
        }
    }

    @Test func hourCompletenessIsMonotoneAndFlipsAtTheCeilingOfTheFraction() throws {
        try forAll(cases: 400, base: 0x434F_4D50) { c in
            let length = Self.recordSeconds.randomElement(using: &c.rng)!
            let expected = Int(3600 / length)
            // Fractions as an operator writes them (0.75, 0.6, 0.56 …): the threshold is exact integer arithmetic.
            let percent = c.rng.chance(0.3) ? 75 : Int.random(in: 1...100, using: &c.rng)
            var policy = AveragePolicy()
            policy.hourMinFraction = Double(percent) / 100
            let needed = max(1, (percent * expected + 99) / 100)
            for p in 1...100 {
                #expect(Averaging.neededRecords(expected: expected, fraction: Double(p) / 100) == (p * expected + 99) / 100,
                        "\(p) % of \(expected); \(c.label)")
            }
            let interval = Interval(start: 0, end: 3600)
            var previous = false
            for validCount in 0...expected {
                // validCount valid records, the other slots excluded or missing at random.
                var samples: [Sample] = []
                for slot in 1...expected {
                    let end = Int64(slot) * length
                    if slot <= validCount {
                        samples.append(Sample(end: end, value: 1))
                    } else if c.rng.chance(0.5) {
                        samples.append(Sample(end: end, value: 1, excluded: Self.reasons.randomElement(using: &c.rng)))
                    }
                }
                let a = try Averaging.hourly(samples.shuffled(using: &c.rng), interval: interval, expected: expected, policy: policy)
                #expect(a.isValid == (validCount >= needed),
                        "\(validCount) of \(expected) valid at \(percent) % (needs \(needed)); \(c.label)")
                #expect(!previous || a.isValid, "monotone; \(c.label)")
                previous = a.isValid
            }
        }
    }

    @Test func dayCompletenessFlipsAtDayMinHours() throws {
        try forAll(base: 0x4441_5953) { c in
            var policy = AveragePolicy()
            policy.dayMinHours = Int.random(in: 1...24, using: &c.rng)
            let validHours = Int.random(in: 0...24, using: &c.rng)
            let order = Array(1...24).shuffled(using: &c.rng)
            let hours = order.enumerated().compactMap { i, h -> Sample? in
                if i < validHours { return Sample(end: Int64(h) * 3600, value: Double(h)) }
                return c.rng.chance(0.5) ? Sample(end: Int64(h) * 3600, value: 0, excluded: .incomplete) : nil
            }
            let d = try Averaging.daily(hours, interval: Interval(start: 0, end: 86_400), policy: policy)
            #expect(d.isValid == (validHours >= policy.dayMinHours) && d.validCount == validHours, c.label)
            #expect(d.validCount + d.excluded.values.reduce(0, +) == 24, c.label)
        }
    }

    @Test func vectorMeanIsRotationEquivariantAndOrderInvariant() throws {
        try forAll(base: 0x5645_4354) { c in
            let n = Int.random(in: 1...20, using: &c.rng)
            let weighted = c.rng.chance(0.5)
            let directions = (0..<n).map { _ in
                (degrees: Double.random(in: 0..<360, using: &c.rng), weight: weighted ? Double.random(in: 0.1...10, using: &c.rng) : 1)
            }
            // Near-cancelling winds have no meaningful direction: rotation cannot be checked there.
            var s = 0.0, co = 0.0
            for d in directions { s += d.weight * sin(d.degrees * .pi / 180); co += d.weight * cos(d.degrees * .pi / 180) }
            guard hypot(s, co) > 1e-3 * directions.map(\.weight).reduce(0, +) else { return }
            let mean = try #require(Averaging.vectorMean(directions), c.label)
            #expect(mean >= 0 && mean < 360, c.label)
            let turn = Double.random(in: 0..<360, using: &c.rng)
            let rotated = try #require(Averaging.vectorMean(directions.map { (($0.degrees + turn).truncatingRemainder(dividingBy: 360), $0.weight) }))
            #expect(angularDistance(rotated, mean + turn) < 1e-6, "rotated by \(turn): \(rotated) vs \(mean); \(c.label)")
            let shuffled = try #require(Averaging.vectorMean(directions.shuffled(using: &c.rng)))
            #expect(angularDistance(shuffled, mean) < 1e-9, c.label)
        }
    }

    @Test func flowTotalsAreAdditiveOverACompleteDay() throws {
        try forAll(cases: 200, base: 0x544F_5441) { c in
            var policy = AveragePolicy()
            policy.kind = .total
            let day = Interval(start: 0, end: 86_400)
            var hourly: [Average] = []
            var allRates: [Double] = []
            for h in 0..<24 {
                let rates = (0..<12).map { _ in Double.random(in: 0...500, using: &c.rng) }
                allRates += rates
                let samples = rates.enumerated().map { Sample(end: Int64(h) * 3600 + Int64($0.offset + 1) * 300, value: $0.element) }
                hourly.append(try Averaging.hourly(samples, interval: Interval(start: Int64(h) * 3600, end: Int64(h + 1) * 3600),
                                                   expected: 12, policy: policy))
            }
            let daily = try Averaging.daily(hourly.map { Sample(end: $0.interval.end, value: $0.value!) }, interval: day, policy: policy)
            let sum = hourly.map { $0.value! }.reduce(0, +)
            let total = try #require(daily.value, c.label)
            #expect(abs(total - sum) <= 1e-9 * max(1, sum), "day \(total) vs Σ hours \(sum); \(c.label)")
            // m³/h for 24 h: the mean rate of the day's records times 24.
            let fromRecords = allRates.reduce(0, +) / Double(allRates.count) * 24
            #expect(abs(total - fromRecords) <= 1e-9 * max(1, sum), c.label)
        }
    }

    @Test func aRecordFallsInExactlyOneHourAndOneLocalDay() {
        let offsets = [UTCOffset(seconds: 7 * 3600), UTCOffset(seconds: 0), UTCOffset(seconds: -(3 * 3600 + 1800)), UTCOffset(seconds: 5 * 3600 + 2700)]
        forAll(cases: 500, base: 0x4C41_4245) { c in
            let offset = offsets.randomElement(using: &c.rng)!
            let length = [Int64(60), 300, 600, 900].randomElement(using: &c.rng)!
            // A record end on the local grid between 2020 and 2030 (often exactly on an hour or midnight).
            let grid = IntervalGrid(lengthSeconds: length, offset: offset)
            var end = grid.interval(containing: Timestamp(seconds: Int64.random(in: 1_577_836_800...1_893_456_000, using: &c.rng))).end
            if c.rng.chance(0.2) { end = IntervalGrid(lengthSeconds: 86_400, offset: offset).interval(containing: Timestamp(seconds: end)).end }
            let hourGrid = IntervalGrid(lengthSeconds: 3600, offset: offset)
            let dayGrid = IntervalGrid(lengthSeconds: 86_400, offset: offset)
            let hour = hourGrid.interval(containing: Timestamp(seconds: end - 1))
            let record = [Sample(end: end, value: 1)]
            // Accepted by its hour, refused by the neighbours (half-open, labelled by the end).
            var accepting: [Int64] = []
            for h in [hour.start - 3600, hour.start, hour.start + 3600] {
                let i = Interval(start: h, end: h + 3600)
                if (try? Averaging.hourly(record, interval: i, expected: 12, policy: AveragePolicy())) != nil { accepting.append(i.end) }
            }
            #expect(accepting == [hour.end] && hour.start < end && end <= hour.end, c.label)
            #expect(hourGrid.isBoundary(end) == (end == hour.end), "a record at hh:00 is the last one of its hour; \(c.label)")
            // The hour belongs to exactly one local day: 01:00 … 00:00.
            let day = dayGrid.interval(containing: Timestamp(seconds: hour.end - 1))
            var days: [Int64] = []
            for d in [day.start - 86_400, day.start, day.start + 86_400] {
                let i = Interval(start: d, end: d + 86_400)
                if (try? Averaging.daily([Sample(end: hour.end, value: 1)], interval: i, policy: AveragePolicy())) != nil { days.append(i.end) }
            }
            #expect(days == [day.end], c.label)
            let midnight = CivilTime(epochSeconds: day.end, offset: offset)
            #expect(midnight.hour == 0 && midnight.minute == 0 && midnight.second == 0, c.label)
            let label = CivilTime(epochSeconds: hour.end, offset: offset)
            let first = CivilTime(epochSeconds: day.start + 3600, offset: offset)
            if label.hour == 0 {
                #expect(hour.end == day.end, "the hour labelled 00:00 closes the previous day; \(c.label)")
            } else {
                #expect((label.year, label.month, label.day) == (first.year, first.month, first.day), c.label)
            }
        }
    }

    @Test func nowCastWithMissingHoursStaysWithinTheAvailableHours() {
        forAll(base: 0x4E4F_5743) { c in
            let hours: [Double?] = (0..<12).map { _ in c.rng.chance(0.3) ? nil : Double.random(in: 0...600, using: &c.rng) }
            let recent = hours.prefix(3).compactMap { $0 }.count
            guard let n = VNAQI.nowCast(hours) else {
                #expect(recent < 2, "NowCast exists with 2 of the 3 latest hours; \(c.label)")
                return
            }
            let present = hours.compactMap { $0 }
            #expect(recent >= 2, c.label)
            #expect(n.weight >= 0.5 && n.weight <= 1, c.label)
            #expect(n.value >= present.min()! - 1e-9 && n.value <= present.max()! + 1e-9, "\(n.value) outside \(present); \(c.label)")
            // Appending a 13th hour changes nothing: only the 12 latest hours count.
            #expect(VNAQI.nowCast(hours + [1000])?.value == n.value, c.label)
        }
    }

    @Test func aqiSubIndexIsMonotoneInConcentration() {
        forAll(cases: 500, base: 0x4151_494D) { c in
            let p = AQIPollutant.allCases.randomElement(using: &c.rng)!
            let top = p == .co ? 180_000.0 : 4000
            let a = Double.random(in: 0...top, using: &c.rng), b = Double.random(in: 0...top, using: &c.rng)
            let (lo, hi) = (min(a, b), max(a, b))
            let (i, j) = (VNAQI.subIndex(p, lo), VNAQI.subIndex(p, hi))
            #expect(i <= j && (0...500).contains(i) && (0...500).contains(j), "\(p) \(lo) → \(i), \(hi) → \(j); \(c.label)")
            let (o, q) = (VNAQI.subIndexO3_8h(min(lo, 400)), VNAQI.subIndexO3_8h(min(hi, 400)))
            #expect(o <= q && q <= 300, "O3 8 h; \(c.label)")
        }
    }
}
