/// The health of one device (slave) on a shared bus: online → suspect → offline → recovering → online.
///
/// A device that stops answering becomes *suspect* at its first failed poll and *offline* after
/// `offlineAfter` failed polls in a row. An offline device is tried again only after a backoff (doubling
/// from the poll interval up to `backoffMax`), so a dead analyzer costs at most one timeout per retry and
/// never delays the other devices of the line more than that. Its first answer makes it *recovering*; two
/// answers in a row make it *online* again — by itself, e.g. after a power cycle.
public struct DeviceHealth: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        case online, suspect, offline, recovering
    }

    public private(set) var state: State = .online
    private var failures = 0
    private var successes = 0
    private var backoff: Duration
    private let backoffMin: Duration
    private let backoffMax: Duration
    private let offlineAfter: Int
    /// When an offline device may be polled again.
    public private(set) var nextRetry: ContinuousClock.Instant?
    /// How long the device's requests took in the last poll that asked it anything (a timeout counts in
    /// full): its share of the bus's poll time.
    public private(set) var lastResponse: Duration?

    public init(offlineAfter: Int, backoffMin: Duration, backoffMax: Duration) {
        self.offlineAfter = max(1, offlineAfter)
        self.backoffMin = backoffMin
        self.backoffMax = max(backoffMin, backoffMax)
        backoff = backoffMin
    }

    /// Whether the device should be polled now (always, unless offline and its retry is not due).
    public func shouldPoll(at now: ContinuousClock.Instant) -> Bool {
        guard state == .offline, let nextRetry else { return true }
        return now >= nextRetry
    }

    /// Records the outcome of one poll of the device, and how long its requests took (`took`); returns
    /// the new state when it changed.
    @discardableResult
    public mutating func record(answered: Bool, at now: ContinuousClock.Instant, took: Duration? = nil) -> State? {
        let before = state
        if let took { lastResponse = took }
        if answered {
            failures = 0
            successes += 1
            switch state {
            case .online, .suspect: state = .online
            case .offline: state = .recovering
            case .recovering: if successes >= 2 { state = .online }
            }
            if state == .online { backoff = backoffMin }
            nextRetry = nil
        } else {
            successes = 0
            failures += 1
            switch state {
            case .online, .suspect: state = failures >= offlineAfter ? .offline : .suspect
            case .recovering, .offline: state = .offline
            }
            if state == .offline {
                nextRetry = now + backoff
                backoff = min(backoff * 2, backoffMax)
            }
        }
        return state == before ? nil : state
    }
}
