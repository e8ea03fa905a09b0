import Acquisition
import FieldBus
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracTesting
import ServiceLifecycle
import Storage
import Synchronization
import Testing

/// A bus of `channels` channels whose every poll answers with the poll's number as the value.
final class CountingDriver: FieldDriver {
    let busName = "lan"
    let channels: Int
    private let polls = Mutex(0)
    init(channels: Int) { self.channels = channels }
    var pollCount: Int { polls.withLock { $0 } }
    func poll() async -> [FieldSample] {
        let n = polls.withLock { $0 += 1; return $0 }
        return (0..<channels).map { FieldSample(channelIndex: $0, value: Double(n), status: .measuring, reason: nil) }
    }
    func shutdown() {}
}

/// `[station] commit_window`: readings wait in memory at most that long, are acknowledged only once
/// committed, and are committed on interval boundaries and on SIGTERM.
struct CommitWindowTests {
    static func channels(_ n: Int) throws -> [ChannelConfig] {
        var text = """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/nonexistent"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"

            """
        for i in 0..<n { text += "[[channel]]\ncode = \"C\(i)\"\nunit = \"-\"\nbus = \"lan\"\naddress = \(i)\ntype = \"uint16\"\n" }
        return try ConfigLoader.parse(text).channels
    }

    func makeStore() throws -> Store {
        let dir = NSTemporaryDirectory() + "quantrac-window-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try Store(path: dir + "/q.sqlite")
    }

    @Test func commitRuleHoldsAReadingAtMostTheWindow() {
        let t0 = Timestamp(seconds: 1_000_000)
        let second = Duration.seconds(1)
        func commits(after s: Int64, window: Duration = .seconds(10), grid: IntervalGrid? = nil, oldest: Timestamp = t0) -> Bool {
            BusPoller.mustCommit(oldest: oldest, tick: t0 + .seconds(s), pollInterval: second, window: window, grid: grid)
        }
        // 1 s polls, 10 s window: ticks 0…9 wait, tick 10 commits all 11 (the oldest waited 10 s).
        #expect((0...9).allSatisfy { !commits(after: $0) })
        #expect(commits(after: 10))
        #expect(commits(after: 0, window: .zero), "a zero window commits every tick")
        // Crossing a record-interval boundary commits at once, whatever the window.
        let grid = IntervalGrid(lengthSeconds: 60, offset: UTCOffset(seconds: 0))
        let lastOfInterval = Timestamp(seconds: 1_000_020 - 1)  // 1_000_020 is a minute boundary
        #expect(!BusPoller.mustCommit(oldest: Timestamp(seconds: 1_000_016), tick: lastOfInterval, pollInterval: second, window: .seconds(10), grid: grid))
        #expect(BusPoller.mustCommit(oldest: lastOfInterval, tick: lastOfInterval + second, pollInterval: second, window: .seconds(10), grid: grid))
    }

    @Test func heldReadingsAreLiveButNotAcknowledgedUntilCommitted() async throws {
        let store = try makeStore()
        let driver = CountingDriver(channels: 3)
        let progress = AcquisitionProgress()
        let board = StatusBoard(station: "S", startedMs: 0, channels: (0..<3).map { ("C\($0)", "-", "lan") }, buses: ["lan"], targets: [])
        let poller = BusPoller(bus: driver, channels: try Self.channels(3), pollInterval: .seconds(1), offset: UTCOffset(seconds: 0), store: store,
                               progress: progress, wallClock: ManualWallClock(Timestamp(seconds: 0)), logger: Logger(label: "test"),
                               board: board, commitWindow: .seconds(10), recordGrid: IntervalGrid(lengthSeconds: 300, offset: UTCOffset(seconds: 0)))
        var buffer = UnsavedTicks(capacity: 100)
        let t0 = Timestamp(seconds: 1_000_201)  // inside the 5-minute interval [1_000_200, 1_000_500)
        // The first tick after start is committed at once (start-up waits for a stored poll).
        await poller.pollOnce(at: t0, buffer: &buffer)
        #expect(try await store.readings(in: Interval(start: 0, end: 2_000_000)).count == 3)
        #expect(await progress.lowWatermark(buses: ["lan"]) == t0)
        let t1 = t0 + .seconds(1)
        for s in 0...9 {
            await poller.pollOnce(at: t1 + .seconds(Int64(s)), buffer: &buffer)
        }
        #expect(board.snapshot().channels.map(\.value) == [11, 11, 11], "the status board shows the held tick")
        #expect(try await store.readings(in: Interval(start: 0, end: 2_000_000)).count == 3, "nothing more committed yet")
        #expect(await progress.lowWatermark(buses: ["lan"]) == t0, "nothing more acknowledged yet")
        await poller.pollOnce(at: t1 + .seconds(10), buffer: &buffer)
        #expect(try await store.readings(in: Interval(start: 0, end: 2_000_000)).count == 36)
        #expect(await progress.lowWatermark(buses: ["lan"]) == t1 + .seconds(10))
        #expect(buffer.count == 0)

        // The next tick is the last of its 5-minute interval (1_000_500 is a boundary); the one after crosses it.
        await poller.pollOnce(at: Timestamp(seconds: 1_000_499), buffer: &buffer)
        #expect(await progress.lowWatermark(buses: ["lan"]) == t1 + .seconds(10))
        await poller.pollOnce(at: Timestamp(seconds: 1_000_500), buffer: &buffer)
        #expect(await progress.lowWatermark(buses: ["lan"]) == Timestamp(seconds: 1_000_500), "a boundary commits at once")
        #expect(try await store.readings(in: Interval(start: 0, end: 2_000_000)).count == 42)
    }

    @Test func gracefulShutdownStoresWhatTheWindowHolds() async throws {
        let store = try makeStore()
        let driver = CountingDriver(channels: 2)
        let poller = BusPoller(bus: driver, channels: try Self.channels(2), pollInterval: .milliseconds(50), offset: UTCOffset(seconds: 0),
                               store: store, progress: AcquisitionProgress(), wallClock: SystemWallClock(), logger: Logger(label: "test"),
                               commitWindow: .seconds(60))
        let group = ServiceGroup(services: [poller], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        try await waitUntilAsync(timeout: .seconds(20), what: "a few polls") { driver.pollCount >= 4 }
        #expect(try await store.readings(in: Interval(start: 0, end: Int64(Int32.max))).count == 2, "only the first tick; the rest held within the 60 s window")
        await group.triggerGracefulShutdown()
        try await running.value
        let stored = try await store.readings(in: Interval(start: 0, end: Int64(Int32.max)))
        #expect(stored.count == driver.pollCount * 2, "every polled reading is stored on SIGTERM")
        #expect(stored.last?.value == Double(driver.pollCount))
    }
}
