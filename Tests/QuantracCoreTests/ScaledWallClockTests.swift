import QuantracCore
import Testing

/// The accelerated clock of `quantracd --clock-scale` (tests and soak runs only).
struct ScaledWallClockTests {
    @Test func runsRateTimesFasterFromItsStart() async throws {
        let start = Timestamp(seconds: 1_773_510_600)
        let before = ContinuousClock.now
        let clock = ScaledWallClock(start: start, rate: 1000)
        try await Task.sleep(for: .milliseconds(20))
        let t = clock.now()
        let elapsed = ContinuousClock.now - before
        // Bracketed by what really elapsed: at least the 20 ms slept, at most everything measured around it.
        #expect(t - start >= .seconds(20))
        #expect(t - start <= elapsed * 1000)
        #expect(clock.now() >= t, "never goes back")
    }

    @Test func waitsShrinkByTheRateWithAFloor() {
        let system = SystemWallClock()
        #expect(system.rate == 1)
        #expect(system.realDuration(of: .seconds(5), atLeast: .milliseconds(20)) == .seconds(5), "a real clock waits what it is told")
        let fast = ScaledWallClock(start: Timestamp(seconds: 0), rate: 1440)
        #expect(fast.realDuration(of: .seconds(3600)) == .milliseconds(2500))
        #expect(fast.realDuration(of: .seconds(1), atLeast: .milliseconds(20)) == .milliseconds(20), "polling loops do not spin")
        #expect(fast.realDuration(of: .zero) == .zero)
    }
}
