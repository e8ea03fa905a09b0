import FieldBus
import Testing

struct DeviceHealthTests {
    @Test func deadDeviceGoesOfflineIsRetriedWithBackoffAndComesBack() {
        var h = DeviceHealth(offlineAfter: 3, backoffMin: .seconds(1), backoffMax: .seconds(4))
        let t0 = ContinuousClock.now
        #expect(h.record(answered: false, at: t0) == .suspect)
        #expect(h.record(answered: false, at: t0) == nil)
        #expect(h.record(answered: false, at: t0) == .offline)
        #expect(!h.shouldPoll(at: t0 + .milliseconds(999)) && h.shouldPoll(at: t0 + .seconds(1)))
        // Each failed retry doubles the wait, up to the maximum.
        h.record(answered: false, at: t0 + .seconds(1))
        #expect(!h.shouldPoll(at: t0 + .milliseconds(2999)) && h.shouldPoll(at: t0 + .seconds(3)))
        h.record(answered: false, at: t0 + .seconds(3))
        h.record(answered: false, at: t0 + .seconds(7))
        #expect(h.nextRetry == t0 + .seconds(11), "capped at 4 s")
        // Power comes back: recovering, then online after a second answer.
        #expect(h.record(answered: true, at: t0 + .seconds(11)) == .recovering)
        #expect(h.shouldPoll(at: t0 + .seconds(11)))
        #expect(h.record(answered: true, at: t0 + .seconds(12)) == .online)
    }

    @Test func aSingleMissIsOnlySuspect() {
        var h = DeviceHealth(offlineAfter: 3, backoffMin: .seconds(1), backoffMax: .seconds(4))
        let t0 = ContinuousClock.now
        #expect(h.record(answered: false, at: t0) == .suspect)
        #expect(h.record(answered: true, at: t0) == .online)
        #expect(h.record(answered: false, at: t0) == .suspect)
        #expect(h.record(answered: false, at: t0) == nil)
        #expect(h.record(answered: true, at: t0) == .online, "two misses in a row are not three")
    }

    @Test func aFailedRecoveryGoesStraightBackOffline() {
        var h = DeviceHealth(offlineAfter: 1, backoffMin: .seconds(1), backoffMax: .seconds(8))
        let t0 = ContinuousClock.now
        #expect(h.record(answered: false, at: t0) == .offline)
        #expect(h.record(answered: true, at: t0 + .seconds(1)) == .recovering)
        #expect(h.record(answered: false, at: t0 + .seconds(1)) == .offline)
    }
}
