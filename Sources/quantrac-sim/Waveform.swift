import Foundation
import QuantracConfig

/// The value of a simulated channel (engineering units, after scale and offset) at a moment.
extension SimChannel {
    /// - Parameters:
    ///   - t: time since the simulator started (scenario time, already multiplied by `--speed`).
    ///   - wall: seconds since 1970, for the `typical` waveform (its phase follows the wall clock).
    ///   - calibrating: the device calibrates: the value is `span`.
    func value(at t: Duration, wall: Double, calibrating: Bool) -> Double {
        if calibrating { return span }
        let seconds = t.inSimSeconds, p = period.inSimSeconds
        switch waveform {
        case .constant:
            return base
        case .sine:
            return base + amplitude * sin(2 * .pi * seconds / p)
        case .ramp:
            return base + amplitude * (seconds / p - (seconds / p).rounded(.down))
        case .typical:
            // A slow sine whose period and phase depend on the channel's position, plus 5 % noise.
            let typicalPeriod = 600 + Double(seed % 7) * 120, phase = Double(seed) * 0.7
            return base + amplitude * sin(2 * .pi * wall / typicalPeriod + phase) + amplitude * 0.05 * Double.random(in: -1...1)
        }
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    var inSimSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
