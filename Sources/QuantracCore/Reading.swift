/// One polled value of one channel, as stored: the value in the channel's unit after scale and offset,
/// or nil when nothing usable was read, with the instrument status and, for faults, why.
public struct Reading: Sendable, Hashable {
    public var channel: String
    public var time: Timestamp
    public var value: Double?
    public var status: InstrumentStatus
    /// Short reason for a fault (e.g. `timeout`, `exception illegal data address`); nil otherwise.
    public var reason: String?

    public init(channel: String, time: Timestamp, value: Double?, status: InstrumentStatus, reason: String? = nil) {
        self.channel = channel
        self.time = time
        self.value = value
        self.status = status
        self.reason = reason
    }

    /// True when the value counts as a measurement (status measuring and a finite value).
    public var isValidMeasurement: Bool {
        status == .measuring && (value?.isFinite ?? false)
    }
}

/// The record of one channel for one closed interval: the line of a regulator file.
public struct ChannelRecord: Sendable, Hashable {
    public var channel: String
    /// End of the interval (epoch seconds), the time written in the file.
    public var intervalEnd: Int64
    public var value: Double
    public var status: InstrumentStatus
    /// Samples that were measuring with a value.
    public var validCount: Int
    /// All samples stored for the interval.
    public var sampleCount: Int
    /// A failed plausibility check (range, stuck, rate): the record stays as it is in the file but is
    /// left out of averages.
    public var flag: Exclusion?

    public init(channel: String, intervalEnd: Int64, value: Double, status: InstrumentStatus, validCount: Int, sampleCount: Int,
                flag: Exclusion? = nil) {
        self.channel = channel
        self.intervalEnd = intervalEnd
        self.value = value
        self.status = status
        self.validCount = validCount
        self.sampleCount = sampleCount
        self.flag = flag
    }
}
