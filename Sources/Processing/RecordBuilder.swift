import QuantracCore

/// Builds the record of one channel for one closed interval from its stored samples (circular §3.5).
///
/// Pure: no clock, no storage. Rules, in order:
/// - any sample calibrating → status `01`; value = mean of the measuring samples, else of the calibrating ones;
/// - else at least one valid measurement → status `00`; value = arithmetic mean of the valid measurements
///   (faulty samples in part of the interval are left out of the mean and counted);
/// - else → status `02`; value = `fallback` (the station's `missing_value` policy).
public enum RecordBuilder {
    public struct OutOfInterval: Error, CustomStringConvertible {
        public let reading: Reading
        public let interval: Interval
        public var description: String { "reading of \(reading.channel) at \(reading.time) is outside \(interval)" }
    }

    /// The record for `channel` over `interval`; every sample must lie in the interval and belong to the channel.
    /// With `directional` (wind direction, `average = "vector"`), means are unit-vector means in degrees.
    public static func record(channel: String, interval: Interval, samples: [Reading], fallback: Double,
                              directional: Bool = false) throws(OutOfInterval) -> ChannelRecord {
        func average(_ values: [Double]) -> Double? {
            directional ? Averaging.vectorMean(values.map { (degrees: $0, weight: 1.0) }) : RecordBuilder.mean(values)
        }
        for s in samples where !interval.contains(s.time) || s.channel != channel {
            throw OutOfInterval(reading: s, interval: interval)
        }
        let valid = samples.filter(\.isValidMeasurement).compactMap(\.value)
        let calibrating = samples.filter { $0.status == .calibrating }.compactMap(\.value).filter(\.isFinite)
        let status: InstrumentStatus
        let value: Double
        if samples.contains(where: { $0.status == .calibrating }) {
            status = .calibrating
            value = average(valid) ?? average(calibrating) ?? fallback
        } else if let m = average(valid) {
            status = .measuring
            value = m
        } else {
            status = .fault
            value = fallback
        }
        return ChannelRecord(channel: channel, intervalEnd: interval.end, value: value, status: status,
                             validCount: valid.count, sampleCount: samples.count)
    }

    /// Arithmetic mean, or nil for no values: the first value plus the compensated (Kahan) mean of the
    /// deviations from it, so a constant series averages to exactly its value (7.1, not 7.099999999999999),
    /// and the result never leaves [min, max] of the values.
    public static func mean(_ values: [Double]) -> Double? {
        guard let first = values.first else { return nil }
        var sum = 0.0, c = 0.0, lo = first, hi = first
        for v in values {
            let y = (v - first) - c
            let t = sum + y
            c = (t - sum) - y
            sum = t
            lo = min(lo, v)
            hi = max(hi, v)
        }
        return min(max(first + sum / Double(values.count), lo), hi)
    }
}
