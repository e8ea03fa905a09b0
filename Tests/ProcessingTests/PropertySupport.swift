import Foundation
import Testing

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, seedable generator, so every property case can be
/// replayed from its seed alone.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

/// One generated case: its seed (printed by every failing expectation) and its generator.
struct PropertyCase {
    let seed: UInt64
    var rng: SplitMix64
    var label: Comment { "seed \(seed) (replay: QUANTRAC_PROPERTY_SEED=\(seed))" }
}

/// Runs `body` for `cases` seeds derived from `base` — or only for `QUANTRAC_PROPERTY_SEED` when it is set,
/// to replay a failure.
func forAll(cases: Int = 300, base: UInt64, _ body: (inout PropertyCase) throws -> Void) rethrows {
    let seeds: [UInt64]
    if let text = ProcessInfo.processInfo.environment["QUANTRAC_PROPERTY_SEED"], let seed = UInt64(text) {
        seeds = [seed]
    } else {
        seeds = (0..<UInt64(cases)).map { base &+ $0 &* 0x1000_0001 }
    }
    for seed in seeds {
        var c = PropertyCase(seed: seed, rng: SplitMix64(seed: seed))
        try body(&c)
    }
}

/// The smallest angle between two directions in degrees (0…180).
func angularDistance(_ a: Double, _ b: Double) -> Double {
    let d = (a - b).truncatingRemainder(dividingBy: 360)
    let m = d < 0 ? d + 360 : d
    return min(m, 360 - m)
}
