import Foundation
import Processing
import QuantracConfig
import QuantracCore
import Storage

/// Computes averages and VN_AQI from stored records, idempotently (upserts by channel, period and end).
/// Used by the daemon (`AveragesService`) and by `quantrac averages recompute`.
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
        let interval = Interval(start: end - 3600, end: end)
        let expected = Int(3600 / config.station.recordIntervalSeconds)
        var results: [StoredAverage] = []
        var speeds: [String: [Int64: Double]] = [:]
        for ch in config.channels {
            var samples = try await samples(for: ch, in: interval)
            if ch.averaging.kind == .vector, let speedCode = ch.speedChannel {
                if speeds[speedCode] == nil, let speedChannel = config.channels.first(where: { $0.code == speedCode }) {
                    let s = try await self.samples(for: speedChannel, in: interval).filter { $0.excluded == nil }
                    speeds[speedCode] = Dictionary(s.map { ($0.end, $0.value) }, uniquingKeysWith: { a, _ in a })
                }
                samples = samples.map { var s = $0; s.speed = speeds[speedCode]?[s.end]; return s }
            }
            let avg = try Averaging.hourly(samples, interval: interval, expected: expected, policy: ch.averaging)
            results.append(StoredAverage(channel: ch.code, period: "1h", average: avg))
        }
        try await store.upsert(results, at: now)
        var rolling: [StoredAverage] = []
        for ch in config.channels where ch.rolling8h {
            let hours = try await hourSamples(ch.code, period: "1h", after: end - 8 * 3600, through: end)
            rolling.append(StoredAverage(channel: ch.code, period: "8h",
                                         average: try Averaging.rolling8h(hours, interval: Interval(start: end - 8 * 3600, end: end))))
        }
        try await store.upsert(rolling, at: now)
        if config.station.kind == .ambientAir { try await computeHourlyAQI(end: end, now: now) }
        return results + rolling
    }

    /// Daily averages (and daily AQI) of the local day ending at `end` (local midnight), from hourly averages.
    public func computeDay(end: Int64, now: Timestamp) async throws -> [StoredAverage] {
        let interval = Interval(start: end - 86_400, end: end)
        var results: [StoredAverage] = []
        for ch in config.channels {
            var hours = try await hourSamples(ch.code, period: "1h", after: interval.start, through: end)
            if ch.averaging.kind == .vector, let speed = ch.speedChannel {
                let speeds = Dictionary(try await hourSamples(speed, period: "1h", after: interval.start, through: end)
                    .filter { $0.excluded == nil }.map { ($0.end, $0.value) }, uniquingKeysWith: { a, _ in a })
                hours = hours.map { var s = $0; s.speed = speeds[s.end]; return s }
            }
            results.append(StoredAverage(channel: ch.code, period: "24h", average: try Averaging.daily(hours, interval: interval, policy: ch.averaging)))
        }
        try await store.upsert(results, at: now)
        if config.station.kind == .ambientAir { try await computeDailyAQI(end: end, now: now) }
        return results
    }

    /// Recomputes every hour and every day that overlaps `(from, to)`.
    public func recompute(from: Int64, to: Int64, now: Timestamp) async throws -> (hours: Int, days: Int) {
        var hours = 0, days = 0
        var end = hourGrid.interval(containing: Timestamp(seconds: from)).end
        while end - 3600 < to {
            _ = try await computeHour(end: end, now: now)
            hours += 1
            end += 3600
        }
        var dayEnd = dayGrid.interval(containing: Timestamp(seconds: from)).end
        while dayEnd - 86_400 < to {
            _ = try await computeDay(end: dayEnd, now: now)
            days += 1
            dayEnd += 86_400
        }
        return (hours, days)
    }

    /// The channel's records of an hour as averaging samples, with their exclusion reasons.
    func samples(for ch: ChannelConfig, in interval: Interval) async throws -> [Sample] {
        let records = try await store.records(channel: ch.code, after: interval.start, through: interval.end)
        let corrections = try await store.corrections(channel: ch.code, after: interval.start - config.station.recordIntervalSeconds, through: interval.end)
        return records.map { r in
            var reason: Exclusion? = r.status == .calibrating ? .calibrating : r.status == .fault ? .fault : r.flag
            let recordStart = r.intervalEnd - config.station.recordIntervalSeconds
            if corrections.contains(where: { $0.from < r.intervalEnd && recordStart < $0.to }) { reason = .corrected }
            return Sample(end: r.intervalEnd, value: r.value, excluded: reason)
        }
    }

    /// Stored averages of a period as samples for a longer one (an invalid hour counts as incomplete).
    func hourSamples(_ channel: String, period: String, after from: Int64, through to: Int64) async throws -> [Sample] {
        try await store.averages(period: period, after: from, through: to, channel: channel).compactMap { s in
            guard let v = s.average.value else {
                return Sample(end: s.average.interval.end, value: 0, excluded: .incomplete)
            }
            return Sample(end: s.average.interval.end, value: v, excluded: s.average.isValid ? nil : .incomplete)
        }
    }

    /// Valid hourly values of every AQI channel in µg/m³, by pollutant and hour end.
    func aqiHours(after from: Int64, through to: Int64, period: String = "1h") async throws -> [AQIPollutant: [Int64: Double]] {
        var out: [AQIPollutant: [Int64: Double]] = [:]
        for ch in config.channels {
            guard let p = ch.aqiPollutant else { continue }
            for s in try await store.averages(period: period, after: from, through: to, channel: ch.code) where s.average.isValid {
                if let v = s.average.value { out[p, default: [:]][s.average.interval.end] = v * ch.aqiFactor }
            }
        }
        return out
    }

    func computeHourlyAQI(end: Int64, now: Timestamp) async throws {
        let hours = try await aqiHours(after: end - 12 * 3600, through: end)
        var oneHour: [AQIPollutant: Double] = [:]
        var history: [AQIPollutant: [Double?]] = [:]
        for (p, byEnd) in hours {
            if let v = byEnd[end] { oneHour[p] = v }
            if p == .pm10 || p == .pm25 { history[p] = (0..<12).map { byEnd[end - Int64($0) * 3600] } }
        }
        try await store.upsert(Self.stored(VNAQI.hourly(oneHour: oneHour, pmHistory: history), period: "1h", end: end), at: now)
    }

    func computeDailyAQI(end: Int64, now: Timestamp) async throws {
        let start = end - 86_400
        var pm24h: [AQIPollutant: Double] = [:]
        for ch in config.channels where ch.aqiPollutant == .pm10 || ch.aqiPollutant == .pm25 {
            if let d = try await store.averages(period: "24h", after: start, through: end, channel: ch.code).first, d.average.isValid,
               let v = d.average.value {
                pm24h[ch.aqiPollutant!] = v * ch.aqiFactor
            }
        }
        let max1h = try await aqiHours(after: start, through: end).compactMapValues { $0.values.max() }
        let o3Max8h = try await aqiHours(after: start, through: end, period: "8h")[.o3]?.values.max()
        try await store.upsert(Self.stored(VNAQI.daily(pm24h: pm24h, max1h: max1h, o3Max8h: o3Max8h), period: "24h", end: end), at: now)
    }

    static func stored(_ r: VNAQI.Result, period: String, end: Int64) -> StoredAQI {
        StoredAQI(period: period, end: end, aqi: r.aqi, dominant: r.dominant?.rawValue,
                  subIndices: r.subIndices.sorted { $0.key < $1.key }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: ","))
    }
}
