import Foundation
import QuantracCore

/// The Vietnamese air-quality index (Decision 1459/QĐ-TCMT, 2019): sub-indices, NowCast, hourly and
/// daily AQI, categories and colours. Concentrations in µg/m³.
public enum VNAQI {
    public typealias Pollutant = AQIPollutant

    /// Index levels I_i and the breakpoints BP_i per table (µg/m³); nil where the guide has none.
    static let levels: [Double] = [0, 50, 100, 150, 200, 300, 400, 500]
    static let o3_1h: [Double?] = [0, 160, 200, 300, 400, 800, 1000, 1200]
    static let o3_8h: [Double?] = [0, 100, 120, 170, 210, 400, nil, nil]
    static let table: [Pollutant: [Double?]] = [
        .co: [0, 10_000, 30_000, 45_000, 60_000, 90_000, 120_000, 150_000],
        .so2: [0, 125, 350, 550, 800, 1600, 2100, 2630],
        .no2: [0, 100, 200, 700, 1200, 2350, 3100, 3850],
        .pm10: [0, 50, 150, 250, 350, 420, 500, 600],
        .pm25: [0, 25, 50, 80, 150, 250, 350, 500],
        .o3: o3_1h,
    ]

    /// Linear interpolation between breakpoints, unrounded; capped at 500 above the top breakpoint.
    static func interpolate(_ c: Double, breakpoints: [Double?]) -> Double {
        let bps = breakpoints.compactMap { $0 }
        guard c > 0 else { return 0 }
        for i in 0..<(bps.count - 1) where c <= bps[i + 1] {
            return (levels[i + 1] - levels[i]) / (bps[i + 1] - bps[i]) * (c - bps[i]) + levels[i]
        }
        if bps.count == levels.count { return 500 }
        // O3 8-hour has no breakpoint above 400 µg/m³: the caller uses the 1-hour index then.
        return levels[bps.count - 1]
    }

    /// The sub-index of a concentration (1-hour O3 breakpoints for O3), rounded to an integer.
    public static func subIndex(_ pollutant: Pollutant, _ concentration: Double) -> Int {
        round(interpolate(concentration, breakpoints: table[pollutant]!))
    }

    /// The O3 sub-index from an 8-hour mean.
    public static func subIndexO3_8h(_ concentration: Double) -> Int {
        round(interpolate(concentration, breakpoints: o3_8h))
    }

    static func round(_ x: Double) -> Int { Int(x.rounded(.toNearestOrAwayFromZero)) }

    /// NowCast weight and concentration from the 12 latest hourly means, `hours[0]` = current hour
    /// (nil = missing, weight 0). Nil unless at least 2 of the 3 latest hours exist.
    public static func nowCast(_ hours: [Double?]) -> (weight: Double, value: Double)? {
        let h = Array(hours.prefix(12))
        guard h.prefix(3).compactMap({ $0 }).count >= 2 else { return nil }
        let present = h.compactMap { $0 }
        guard let lo = present.min(), let hi = present.max() else { return nil }
        let ratio = hi > 0 ? lo / hi : 1
        let w = ratio > 0.5 ? ratio : 0.5
        var num = 0.0, den = 0.0
        for (i, c) in h.enumerated() {
            guard let c else { continue }
            let f = pow(w, Double(i))
            num += f * c
            den += f
        }
        return (w, num / den)
    }

    public struct Result: Sendable, Hashable {
        /// Nil when neither PM10 nor PM2.5 is available.
        public let aqi: Int?
        public let subIndices: [Pollutant: Int]
        public var category: Category? { aqi.map(Category.init(aqi:)) }
        /// The pollutant with the largest sub-index.
        public var dominant: Pollutant? { subIndices.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key }
    }

    static func result(_ sub: [Pollutant: Int]) -> Result {
        guard sub[.pm10] != nil || sub[.pm25] != nil else { return Result(aqi: nil, subIndices: sub) }
        return Result(aqi: sub.values.max(), subIndices: sub)
    }

    /// Hourly AQI: 1-hour means for SO2, CO, NO2, O3; NowCast for PM10 and PM2.5 (`pmHistory[p][0]` is the current hour).
    public static func hourly(oneHour: [Pollutant: Double], pmHistory: [Pollutant: [Double?]]) -> Result {
        var sub: [Pollutant: Int] = [:]
        for p in [Pollutant.so2, .co, .no2, .o3] { if let c = oneHour[p] { sub[p] = subIndex(p, c) } }
        for p in [Pollutant.pm10, .pm25] { if let h = pmHistory[p], let n = nowCast(h) { sub[p] = subIndex(p, n.value) } }
        return result(sub)
    }

    /// Daily AQI: 24-hour means for PM, the maximum 1-hour mean for SO2, NO2 and CO, and for O3 the larger
    /// of the 1-hour index of the maximum 1-hour mean and the 8-hour index of the maximum 8-hour mean
    /// (only the 1-hour index when the 8-hour maximum is above 400 µg/m³).
    public static func daily(pm24h: [Pollutant: Double], max1h: [Pollutant: Double], o3Max8h: Double?) -> Result {
        var sub: [Pollutant: Int] = [:]
        for p in [Pollutant.pm10, .pm25] { if let c = pm24h[p] { sub[p] = subIndex(p, c) } }
        for p in [Pollutant.so2, .no2, .co] { if let c = max1h[p] { sub[p] = subIndex(p, c) } }
        let o3h = max1h[.o3].map { subIndex(.o3, $0) }
        let o38 = o3Max8h.flatMap { $0 > 400 ? nil : subIndexO3_8h($0) }
        if let v = [o3h, o38].compactMap({ $0 }).max() { sub[.o3] = v }
        return result(sub)
    }

    public enum Category: String, Sendable, CaseIterable {
        case good = "Tốt", moderate = "Trung bình", poor = "Kém", bad = "Xấu", veryBad = "Rất xấu", hazardous = "Nguy hại"

        public init(aqi: Int) {
            switch aqi {
            case ...50: self = .good
            case 51...100: self = .moderate
            case 101...150: self = .poor
            case 151...200: self = .bad
            case 201...300: self = .veryBad
            default: self = .hazardous
            }
        }

        public var english: String {
            switch self {
            case .good: return "Good"
            case .moderate: return "Moderate"
            case .poor: return "Poor"
            case .bad: return "Bad"
            case .veryBad: return "Very bad"
            case .hazardous: return "Hazardous"
            }
        }

        /// RGB colour from the guide.
        public var rgb: (Int, Int, Int) {
            switch self {
            case .good: return (0, 228, 0)
            case .moderate: return (255, 255, 0)
            case .poor: return (255, 126, 0)
            case .bad: return (255, 0, 0)
            case .veryBad: return (143, 63, 151)
            case .hazardous: return (126, 0, 35)
            }
        }
    }

    /// ppb → µg/m³ at 1 atm and `celsius` (default 25 °C): c × M / (22.414 × T/273.15).
    public static func microgramsPerCubicMetre(ppb: Double, pollutant: Pollutant, celsius: Double = 25) -> Double? {
        guard let m = pollutant.molarMass else { return nil }
        let molarVolume = 22.414 * (273.15 + celsius) / 273.15
        return ppb * m / molarVolume
    }
}

