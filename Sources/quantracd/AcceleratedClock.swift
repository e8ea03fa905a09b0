import ArgumentParser
import Foundation
import Logging
import QuantracCore

/// `--clock-scale N [--clock-start ISO8601]`, hidden options **for tests and soak runs only**: the daemon's
/// station time starts at `--clock-start` (default: now) and runs N times faster than real time, so hours and
/// local days close in seconds (at 1440 an hour takes 2.5 s, a day a minute). Every wait for a station-time
/// moment (poll ticks, file building, averages, calibration windows, retention, reconnect back-off) shrinks
/// by N; Modbus and upload timeouts stay real. Logged as a warning at start. Nil without either option.
func acceleratedClock(scale: Double?, start: String?, logger: Logger) throws -> ScaledWallClock? {
    guard scale != nil || start != nil else { return nil }
    let rate = scale ?? 1
    guard rate.isFinite, rate > 0, rate <= 100_000 else {
        throw ValidationError("--clock-scale \(rate): must be above 0 and at most 100000")
    }
    var origin = SystemWallClock().now()
    if let start {
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime]
        guard let date = parser.date(from: start) else {
            throw ValidationError("--clock-start \(start): not an ISO 8601 time like 2026-03-15T00:50:00+07:00")
        }
        origin = Timestamp(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }
    logger.warning("ACCELERATED CLOCK (tests and soak runs only, never on a station): station time starts at \(start ?? "now") and runs \(rate)× real time")
    return ScaledWallClock(start: origin, rate: rate)
}
