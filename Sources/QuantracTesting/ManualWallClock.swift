import Foundation
import QuantracCore

/// A `WallClock` that only moves when the test says so.
public final class ManualWallClock: WallClock, @unchecked Sendable {
    // Invariant for @unchecked Sendable: `current` is only read or written while holding `lock`.
    private let lock = NSLock()
    private var current: Timestamp

    public init(_ start: Timestamp) {
        current = start
    }

    public func now() -> Timestamp {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    /// Moves the clock forward (or backward, for a negative duration) by `duration`.
    public func advance(by duration: Duration) {
        lock.lock()
        defer { lock.unlock() }
        current = current + duration
    }

    /// Sets the clock to `t` (also backwards, like an NTP step).
    public func set(_ t: Timestamp) {
        lock.lock()
        defer { lock.unlock() }
        current = t
    }
}
