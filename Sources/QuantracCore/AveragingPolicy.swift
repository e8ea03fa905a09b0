import Foundation

/// How a channel's values combine over an hour or a day.
public enum AverageKind: String, Sendable, CaseIterable, Codable {
    /// Arithmetic mean (default).
    case mean
    /// Wind direction: unit-vector mean in degrees [0, 360), paired with a speed channel.
    case vector
    /// Flow: the volume over the period (m³) from rates in m³/h: mean valid rate × period hours.
    case total
    /// The last valid value of the period.
    case last
}

/// Why a record was left out of an average. Excluded data is never deleted, only counted.
public enum Exclusion: String, Sendable, CaseIterable, Codable, Comparable {
    case calibrating, fault, missing, range, stuck, rate, corrected
    /// An hour (in a day or an 8-hour mean) whose own average failed its completeness rule.
    case incomplete

    public static func < (a: Exclusion, b: Exclusion) -> Bool { a.rawValue < b.rawValue }
}

/// Per-channel averaging policy.
public struct AveragePolicy: Sendable, Hashable {
    public var kind: AverageKind = .mean
    /// Fraction of the expected records (hour) that must be valid, e.g. 0.75 → 9 of 12.
    public var hourMinFraction: Double = 0.75
    /// Valid hours a day needs, e.g. 18 of 24.
    public var dayMinHours: Int = 18
    /// Vector averages only: weight each direction by the paired wind speed.
    public var speedWeighted = false
    public var limit1h: Double?
    public var limit24h: Double?
    /// Lower limit (pH-like ranges): an average below it is an exceedance.
    public var limitMin: Double?

    public init() {}
}

/// An hourly, 8-hour or daily average with everything needed to explain it.
public struct Average: Sendable, Hashable {
    public var interval: Interval
    /// The average (partial, from the valid samples) even when `isValid` is false; nil without valid samples.
    public var value: Double?
    public var isValid: Bool
    public var validCount: Int
    public var expectedCount: Int
    public var excluded: [Exclusion: Int]
    public var min: Double?
    public var max: Double?
    /// Above `limit_1h`/`limit_24h` or below `limit_min` (valid averages only).
    public var exceeds: Bool

    public init(interval: Interval, value: Double?, isValid: Bool, validCount: Int, expectedCount: Int,
                excluded: [Exclusion: Int], min: Double?, max: Double?, exceeds: Bool) {
        self.interval = interval
        self.value = value
        self.isValid = isValid
        self.validCount = validCount
        self.expectedCount = expectedCount
        self.excluded = excluded
        self.min = min
        self.max = max
        self.exceeds = exceeds
    }
}

/// Per-channel plausibility checks on 5-minute records (and the polls behind them).
public struct ValidityPolicy: Sendable, Hashable {
    public var validMin: Double?
    public var validMax: Double?
    /// Same value for this many consecutive polls → stuck.
    public var stuckPolls: Int?
    /// Largest plausible change between consecutive records, in channel units per minute.
    public var maxRatePerMinute: Double?

    public init() {}
}

/// A pollutant of the Vietnamese AQI (QĐ 1459/QĐ-TCMT).
public enum AQIPollutant: String, Sendable, CaseIterable, Codable, Comparable {
    case o3 = "O3", co = "CO", so2 = "SO2", no2 = "NO2", pm10 = "PM10", pm25 = "PM2.5"
    public static func < (a: AQIPollutant, b: AQIPollutant) -> Bool { a.rawValue < b.rawValue }

    /// Molar mass (g/mol) for ppb → µg/m³.
    public var molarMass: Double? {
        switch self {
        case .o3: return 48.00
        case .co: return 28.01
        case .so2: return 64.07
        case .no2: return 46.01
        case .pm10, .pm25: return nil
        }
    }
}

