/// A half-open time interval `[start, end)` in epoch seconds, labelled by its end as the regulator does.
public struct Interval: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let start: Int64
    public let end: Int64

    public init(start: Int64, end: Int64) {
        precondition(start < end, "an interval must not be empty")
        self.start = start
        self.end = end
    }

    public func contains(_ t: Timestamp) -> Bool {
        t.milliseconds >= start * 1000 && t.milliseconds < end * 1000
    }

    public static func < (a: Interval, b: Interval) -> Bool { (a.end, a.start) < (b.end, b.start) }

    public var description: String { "[\(start), \(end))" }
}

/// A grid of equal intervals aligned to local midnight at a fixed UTC offset.
///
/// `length` must divide a day, so every local day starts on a boundary (5 min → 00:00, 00:05, …).
public struct IntervalGrid: Sendable, Hashable {
    public let length: Int64
    public let offset: UTCOffset

    public init(lengthSeconds: Int64, offset: UTCOffset) {
        precondition(lengthSeconds > 0 && 86_400 % lengthSeconds == 0, "interval length must divide a day")
        self.length = lengthSeconds
        self.offset = offset
    }

    /// The interval that contains `t` (start ≤ t < end).
    public func interval(containing t: Timestamp) -> Interval {
        let local = t.seconds + Int64(offset.seconds)
        var start = local - ((local % length) + length) % length
        start -= Int64(offset.seconds)
        return Interval(start: start, end: start + length)
    }

    /// The interval that ends at `end` (which must be on the grid).
    public func interval(endingAt end: Int64) -> Interval {
        Interval(start: end - length, end: end)
    }

    /// True when `epochSeconds` is a boundary of the grid.
    public func isBoundary(_ epochSeconds: Int64) -> Bool {
        ((epochSeconds + Int64(offset.seconds)) % length + length) % length == 0
    }

    /// The first boundary strictly after `t`.
    public func nextBoundary(after t: Timestamp) -> Timestamp {
        Timestamp(seconds: interval(containing: t).end)
    }
}
