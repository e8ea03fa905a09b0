import Foundation
import Processing
import QuantracConfig
import QuantracCore
import Storage

/// Computes averages and VN_AQI from stored records, idempotently (upserts by channel, period and end).
/// Used by the daemon (`AveragesService`) and by `quantrac averages recompute`.
///
/// Hours are computed in batches (up to a local day): one range read of the batch's records, one write
/// per kind of result. The result is the same as computing the hours one by one, oldest first: 8-hour means
/// and the hourly AQI look back only, at hours of the batch or already stored.
public struct AverageCalculator: Sendable {
    public let config: StationConfig
    public let store: Store

    public init(config: StationConfig, store: Store) {
        self.config = config
        self.store = store
    }

    var hourGrid: IntervalGrid { IntervalGrid(lengthSeconds: 3600, offset: config.station.utcOffset) }
    var dayGrid: IntervalGrid { IntervalGrid(lengthSeconds: 86_400, offset: config.station.utcOffset) }

    /// Hourly averages (and 8-hour means, hourly AQI) of the hour ending at `end`.
    public func computeHour(end: Int64, now: Timestamp) async throws -> [StoredAverage] {
        try await computeHours(after: end - 3600, through: end, now: now)
    }

    /// Hourly averages, 8-hour means and the hourly AQI of every hour ending in `(start, end]`; both are
    /// hour boundaries of the local grid. Returns the hourly and 8-hour averages, oldest hour first.
    public func computeHours(after start: Int64, through end: Int64, now: Timestamp) async throws -> [StoredAverage] {
        precondition(hourGrid.isBoundary(start) && hourGrid.isBoundary(end), "hours are computed on the hour grid")
        let ends = Array(stride(from: start + 3600, through: end, by: 3600))
        guard !ends.isEmpty else { return [] }
        let samples = try await samplesByHour(after: start, through: end)
        let expected = Int(3600 / config.station.recordIntervalSeconds)
        var hourly: [StoredAverage] = []
        hourly.reserveCapacity(ends.count * config.channels.count)
        for e in ends {
            let interval = Interval(start: e - 3600, end: e)
            for ch in config.channels {
                var s = samples[ch.code]?[e] ?? []
                if ch.averaging.kind == .vector, let speed = ch.speedChannel {
                    let speeds = Self.validValues(samples[speed]?[e] ?? [])
                    s = s.map { var x = $0; x.speed = speeds[x.end]; return x }
                }
                hourly.append(StoredAverage(channel: ch.code, period: "1h",
                                            average: try Averaging.hourly(s, interval: interval, expected: expected, policy: ch.averaging)))
            }
        }
        let rolling = try await rolling8h(ends: ends, hourly: hourly)
        let aqi = config.station.kind == .ambientAir ? try await hourlyAQI(ends: ends, hourly: hourly) : []
        try await store.upsert(hourly + rolling, aqi: aqi, at: now)
        return hourly + rolling
    }

    /// Daily averages (and daily AQI) of the local day ending at `end` (local midnight), from hourly averages.
    public func computeDay(end: Int64, now: Timestamp) async throws -> [StoredAverage] {
        let interval = Interval(start: end - 86_400, end: end)
        let hours = Dictionary(grouping: try await store.averages(period: "1h", after: interval.start, through: end), by: \.channel)
        var results: [StoredAverage] = []
        for ch in config.channels {
            var samples = (hours[ch.code] ?? []).map(Self.sample(of:))
            if ch.averaging.kind == .vector, let speed = ch.speedChannel {
                let speeds = Self.validValues((hours[speed] ?? []).map(Self.sample(of:)))
                samples = samples.map { var s = $0; s.speed = speeds[s.end]; return s }
            }
            results.append(StoredAverage(channel: ch.code, period: "24h", average: try Averaging.daily(samples, interval: interval, policy: ch.averaging)))
        }
        let aqi = config.station.kind == .ambientAir ? [try await dailyAQI(end: end, hours: hours, days: results)] : []
        try await store.upsert(results, aqi: aqi, at: now)
        return results
    }

    /// Recomputes every hour and every day that overlaps `(from, to)`.
    public func recompute(from: Int64, to: Int64, now: Timestamp) async throws -> (hours: Int, days: Int) {
        var hours = 0, days = 0
        var start = hourGrid.interval(containing: Timestamp(seconds: from)).start
        let last = hourGrid.interval(containing: Timestamp(seconds: to - 1)).end
        while start < last {
            let end = min(dayGrid.interval(containing: Timestamp(seconds: start)).end, last)
            _ = try await computeHours(after: start, through: end, now: now)
            hours += Int((end - start) / 3600)
            start = end
        }
        var dayEnd = dayGrid.interval(containing: Timestamp(seconds: from)).end
        while dayEnd - 86_400 < to {
            _ = try await computeDay(end: dayEnd, now: now)
            days += 1
            dayEnd += 86_400
        }
        return (hours, days)
    }

    /// The records of `(start, end]` as averaging samples with their exclusion reasons, by channel and hour end.
    func samplesByHour(after start: Int64, through end: Int64) async throws -> [String: [Int64: [Sample]]] {
        let length = config.station.recordIntervalSeconds
        let records = try await store.records(after: start, through: end)
        let corrections = Dictionary(grouping: try await store.corrections(after: start - length, through: end), by: \.channel)
        var out: [String: [Int64: [Sample]]] = [:]
        for r in records {
            var reason: Exclusion? = r.status == .calibrating ? .calibrating : r.status == .fault ? .fault : r.flag
            if let cs = corrections[r.channel] {
                let recordStart = r.intervalEnd - length
                if cs.contains(where: { $0.from < r.intervalEnd && recordStart < $0.to }) { reason = .corrected }
            }
            let hourEnd = hourGrid.interval(containing: Timestamp(seconds: r.intervalEnd - 1)).end
            out[r.channel, default: [:]][hourEnd, default: []].append(Sample(end: r.intervalEnd, value: r.value, excluded: reason))
        }
        return out
    }

    /// 8-hour means ending at each of `ends`, from this batch's hourly averages and the 7 hours stored before it.
    func rolling8h(ends: [Int64], hourly: [StoredAverage]) async throws -> [StoredAverage] {
        let channels = config.channels.filter(\.rolling8h)
        guard let first = ends.first, !channels.isEmpty else { return [] }
        let codes = Set(channels.map(\.code))
        var byChannel: [String: [Int64: Sample]] = [:]
        for s in try await stored(channels: codes, after: first - 8 * 3600, through: first - 3600) + hourly where codes.contains(s.channel) {
            byChannel[s.channel, default: [:]][s.average.interval.end] = Self.sample(of: s)
        }
        var out: [StoredAverage] = []
        for e in ends {
            for ch in channels {
                let hours = (0..<8).reversed().compactMap { byChannel[ch.code]?[e - Int64($0) * 3600] }
                out.append(StoredAverage(channel: ch.code, period: "8h",
                                         average: try Averaging.rolling8h(hours, interval: Interval(start: e - 8 * 3600, end: e))))
            }
        }
        return out
    }

    /// The hourly AQI at each of `ends` (NowCast over the 12 latest hours: this batch and the 11 stored before it).
    func hourlyAQI(ends: [Int64], hourly: [StoredAverage]) async throws -> [StoredAQI] {
        guard let first = ends.first else { return [] }
        let codes = Set(config.channels.filter { $0.aqiPollutant != nil }.map(\.code))
        let before = try await stored(channels: codes, after: first - 12 * 3600, through: first - 3600)
        let hours = aqiValues(Dictionary(grouping: before + hourly.filter { codes.contains($0.channel) }, by: \.channel))
        var out: [StoredAQI] = []
        for end in ends {
            var oneHour: [AQIPollutant: Double] = [:]
            var history: [AQIPollutant: [Double?]] = [:]
            for (p, byEnd) in hours {
                if let v = byEnd[end] { oneHour[p] = v }
                if p == .pm10 || p == .pm25 { history[p] = (0..<12).map { byEnd[end - Int64($0) * 3600] } }
            }
            out.append(Self.stored(VNAQI.hourly(oneHour: oneHour, pmHistory: history), period: "1h", end: end))
        }
        return out
    }

    /// The daily AQI: 24-hour PM means, the largest valid hourly means and the largest 8-hour O3 mean of the day.
    func dailyAQI(end: Int64, hours: [String: [StoredAverage]], days: [StoredAverage]) async throws -> StoredAQI {
        let start = end - 86_400
        var pm24h: [AQIPollutant: Double] = [:]
        for ch in config.channels {
            guard let p = ch.aqiPollutant, p == .pm10 || p == .pm25,
                  let d = days.first(where: { $0.channel == ch.code }), d.average.isValid, let v = d.average.value else { continue }
            pm24h[p] = v * ch.aqiFactor
        }
        let max1h = aqiValues(hours).compactMapValues { $0.values.max() }
        let eightHour = Dictionary(grouping: try await store.averages(period: "8h", after: start, through: end), by: \.channel)
        let o3Max8h = aqiValues(eightHour)[.o3]?.values.max()
        return Self.stored(VNAQI.daily(pm24h: pm24h, max1h: max1h, o3Max8h: o3Max8h), period: "24h", end: end)
    }

    /// Stored hourly averages of `channels` with `from < end ≤ to` (one query per channel: few channels, few hours).
    func stored(channels: Set<String>, after from: Int64, through to: Int64) async throws -> [StoredAverage] {
        guard from < to else { return [] }
        var out: [StoredAverage] = []
        for code in channels.sorted() { out += try await store.averages(period: "1h", after: from, through: to, channel: code) }
        return out
    }

    /// Valid averages of the AQI channels in µg/m³, by pollutant and period end (a later channel of the
    /// same pollutant wins, in configuration order).
    func aqiValues(_ averages: [String: [StoredAverage]]) -> [AQIPollutant: [Int64: Double]] {
        var out: [AQIPollutant: [Int64: Double]] = [:]
        for ch in config.channels {
            guard let p = ch.aqiPollutant else { continue }
            for s in averages[ch.code] ?? [] where s.average.isValid {
                if let v = s.average.value { out[p, default: [:]][s.average.interval.end] = v * ch.aqiFactor }
            }
        }
        return out
    }

    /// A stored average as a sample of a longer period (an invalid one counts as incomplete).
    static func sample(of s: StoredAverage) -> Sample {
        guard let v = s.average.value else { return Sample(end: s.average.interval.end, value: 0, excluded: .incomplete) }
        return Sample(end: s.average.interval.end, value: v, excluded: s.average.isValid ? nil : .incomplete)
    }

    /// The values of the valid samples by end (for pairing wind speed with direction).
    static func validValues(_ samples: [Sample]) -> [Int64: Double] {
        Dictionary(samples.filter { $0.excluded == nil }.map { ($0.end, $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    static func stored(_ r: VNAQI.Result, period: String, end: Int64) -> StoredAQI {
        StoredAQI(period: period, end: end, aqi: r.aqi, dominant: r.dominant?.rawValue,
                  subIndices: r.subIndices.sorted { $0.key < $1.key }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ","))
    }
}
