#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point in time: milliseconds since the Unix epoch (UTC). Wall-clock time, not monotonic.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public init(seconds: Int64) { self.milliseconds = seconds * 1000 }

    /// Whole seconds since the epoch, rounded down (also for times before 1970).
    public var seconds: Int64 { milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000 }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.milliseconds < b.milliseconds }

    public static func + (t: Timestamp, d: Duration) -> Timestamp {
        Timestamp(milliseconds: t.milliseconds + d.wholeMilliseconds)
    }

    public static func - (a: Timestamp, b: Timestamp) -> Duration { .milliseconds(a.milliseconds - b.milliseconds) }

    public var description: String { "\(milliseconds)ms" }
}

extension Duration {
    /// The duration in whole milliseconds (sub-millisecond parts dropped).
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// The duration in seconds as a floating-point number.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// Source of wall-clock timestamps. Injected everywhere a timestamp is taken, so tests can drive time.
public protocol WallClock: Sendable {
    func now() -> Timestamp
    /// Seconds of this clock per real second: 1, except under the accelerated clock of tests and soak runs
    /// (`ScaledWallClock`). Waits for a wall-clock moment divide by it (`realDuration(of:)`).
    var rate: Double { get }
}

extension WallClock {
    public var rate: Double { 1 }
}

/// The system's real-time clock (`clock_gettime(CLOCK_REALTIME)`), which NTP may step.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(milliseconds: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

