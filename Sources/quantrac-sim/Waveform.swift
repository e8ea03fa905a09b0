import Foundation

/// A plausible, slowly moving analyzer value: a base level, a slow sine and a little noise.
struct Waveform {
    let base: Double
    let amplitude: Double
    let period: Double
    let phase: Double

    /// Typical levels for the circular's parameter symbols; unknown codes get a generic 10 ± 1.
    init(code: String, seed: Int) {
        let table: [String: (Double, Double)] = [
            "Flow": (150, 20), "Temp": (29, 1.5), "pH": (7.2, 0.3), "TSS": (20, 4), "COD": (40, 8), "NH4": (2, 0.5),
            "TP": (1, 0.2), "TN": (10, 2), "TOC": (15, 3), "Color": (30, 5), "Cl": (0.5, 0.1), "DO": (6, 1), "EC": (350, 30),
            "TUR": (12, 3), "NO3": (1.5, 0.3), "P": (101, 1), "O2": (10, 1), "NO": (90, 15), "NO2": (40, 8), "CO": (35, 6),
            "SO2": (200, 30), "PM": (12, 3), "H2S": (1, 0.3), "NH3": (2, 0.5), "PM10": (55, 12), "PM2,5": (30, 8),
            "PM1": (15, 4), "TSP": (80, 15), "O3": (60, 20), "NOx": (120, 20), "RH": (75, 10), "WS": (2.5, 1.5),
            "WD": (180, 90), "SR": (400, 300), "Rain": (0, 0), "PO4": (0.3, 0.1), "Sal": (0.5, 0.2), "VHg": (0.01, 0.003),
        ]
        let (b, a) = table[code] ?? (10, 1)
        base = b
        amplitude = a
        period = 600 + Double(seed % 7) * 120
        phase = Double(seed) * 0.7
    }

    func value(at t: Double) -> Double {
        base + amplitude * sin(2 * .pi * t / period + phase) + amplitude * 0.05 * Double.random(in: -1...1)
    }
}
