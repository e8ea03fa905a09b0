/// An accelerated wall clock, **for tests and soak runs only** (`quantracd --clock-scale`): it starts at
/// `start` and runs `rate` times faster than real time, measured on the monotonic clock (a step of the
/// system clock does not move it). An hour of station time passes in `3600 / rate` real seconds.
///
/// Every wait for a wall-clock moment in the daemon divides by `rate` (`WallClock.realDuration(of:atLeast:)`);
/// I/O timeouts (Modbus response, curl) stay real.
public struct ScaledWallClock: WallClock {
    /// The station time at creation.
    public let start: Timestamp
    /// Station seconds per real second (above 0).
    public let rate: Double
    private let origin: ContinuousClock.Instant

    /// - Precondition: `rate` is finite and above 0.
    public init(start: Timestamp, rate: Double) {
        precondition(rate.isFinite && rate > 0, "a clock rate must be above 0")
        self.start = start
        self.rate = rate
        origin = ContinuousClock.now
    }

    public func now() -> Timestamp {
        let elapsed = (ContinuousClock.now - origin).inSeconds
        return Timestamp(milliseconds: start.milliseconds + Int64((elapsed * rate * 1000).rounded(.down)))
    }
}

extension WallClock {
    /// The real (monotonic) time in which `duration` of this clock passes: `duration` itself at rate 1;
    /// under an accelerated clock `duration / rate`, but at least `floor`, so loops that look at the
    /// database every so often do not spin.
    public func realDuration(of duration: Duration, atLeast floor: Duration = .zero) -> Duration {
        guard rate != 1 else { return duration }
        return max(duration * (1 / rate), floor)
    }
}
