import Foundation
import Logging
import QuantracConfig
import QuantracCore
import Storage
import Synchronization
import Testing
import Transmission

/// An uploader that fails its first `failures` calls, then records what it receives and on which thread.
final class FlakyUploader: Uploader {
    struct Call: Sendable, Equatable { let name: String; let directory: String; let bytes: [UInt8] }
    private let state: Mutex<(failuresLeft: Int, calls: [Call], attempts: [String], threads: Set<pthread_t>)>
    let kind: UploadError.Kind
    /// Offered to the queue as its task executor, like a real uploader's thread.
    let lane: BlockingLane<Void>?

    init(failures: Int, kind: UploadError.Kind = .transient, lane: BlockingLane<Void>? = nil) {
        state = Mutex((failures, [], [], []))
        self.kind = kind
        self.lane = lane
    }

    var calls: [Call] { state.withLock { $0.calls } }
    var attempts: [String] { state.withLock { $0.attempts } }
    /// The threads `upload` was called on.
    var threads: Set<pthread_t> { state.withLock { $0.threads } }
    var taskExecutor: (any TaskExecutor)? { lane }

    func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError) {
        let thread = pthread_self()
        let fail = state.withLock { s -> Bool in
            s.threads.insert(thread)
            s.attempts.append(name)
            if s.failuresLeft > 0 { s.failuresLeft -= 1; return true }
            s.calls.append(Call(name: name, directory: directory, bytes: bytes))
            return false
        }
        if fail { throw UploadError(kind: kind, message: "receiver down") }
    }

    func shutdown() {}
}

struct TransmissionServiceTests {
    let station: Station
    let target: TargetConfig

    init() throws {
        let c = try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/tmp/unused"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "a"
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            url = "file:///recv/{station}/{yyyy}/{MM}/{dd}"
            retry_max = "2s"
            """)
        station = c.station
        target = c.targets[0]
    }

    func setUp(files: Int) async throws -> (Store, OutboxDirectory, [String]) {
        let dir = NSTemporaryDirectory() + "quantrac-tx-\(UUID().uuidString)"
        let store = try Store(path: dir + ".sqlite")
        let outbox = try OutboxDirectory(dataDir: dir)
        var names: [String] = []
        // 2026-03-15 23:55 and 2026-03-16 00:00 local: the 00:00 file belongs to the 15th.
        let base = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, hour: 23, minute: 50, offset: station.utcOffset)
        for i in 0..<files {
            let end = base + Int64(i + 1) * 300
            let name = "HN_ABCD_NUO001_\(CivilTime(epochSeconds: end, offset: station.utcOffset).compactStamp).txt"
            try outbox.write(name: name, bytes: Array("file \(i)\r\n".utf8))
            try await store.commitInterval(intervalEnd: end, records: [], fileName: name, fileBytes: Array("file \(i)\r\n".utf8), targets: ["dept"], now: Timestamp(seconds: 0))
            names.append(name)
        }
        return (store, outbox, names)
    }

    func runUntil(_ service: TransmissionService, _ done: @escaping @Sendable () async -> Bool) async throws {
        let task = Task { try await service.run() }
        let deadline = ContinuousClock.now + .seconds(20)
        while !(await done()), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        task.cancel()
        _ = try? await task.value
    }

    @Test func deliversOldestFirstAfterFailuresWithoutDroppingAny() async throws {
        let (store, outbox, names) = try await setUp(files: 3)
        let uploader = FlakyUploader(failures: 2)
        let service = TransmissionService(target: target, station: station, uploader: uploader, store: store, outbox: outbox,
                                          signal: OutboxSignal(), wallClock: SystemWallClock(), logger: Logger(label: "test"))
        // Until the last one is uploaded *and* recorded (moved to sent/), not merely uploaded.
        let last = outbox.sent + "/" + names[2]
        try await runUntil(service) { uploader.calls.count == 3 && FileManager.default.fileExists(atPath: last) }
        try #require(uploader.calls.count == 3, "all three delivered within 20 s")
        #expect(uploader.calls.map(\.name) == names)
        #expect(uploader.attempts == [names[0], names[0], names[0], names[1], names[2]], "retries the head, never skips it")
        #expect(uploader.calls.map(\.directory) == ["/recv/NUO001/2026/03/15", "/recv/NUO001/2026/03/15", "/recv/NUO001/2026/03/16"])
        #expect(uploader.calls[1].bytes == Array("file 1\r\n".utf8))
        #expect(try await store.nextPending(target: "dept") == nil)
        for name in names { #expect(FileManager.default.fileExists(atPath: outbox.sent + "/" + name)) }
    }

    /// A backlog of several batches, acknowledged every 64 files while the next ones upload: every file
    /// goes once, in queue order, and every one is recorded sent and archived.
    @Test func backlogOfSeveralBatchesGoesOnceInOrderAndIsRecorded() async throws {
        let (store, outbox, names) = try await setUp(files: 600)
        let uploader = FlakyUploader(failures: 0)
        let service = TransmissionService(target: target, station: station, uploader: uploader, store: store, outbox: outbox,
                                          signal: OutboxSignal(), wallClock: SystemWallClock(), logger: Logger(label: "test"))
        let last = outbox.sent + "/" + names[names.count - 1]
        try await runUntil(service) { FileManager.default.fileExists(atPath: last) }
        #expect(uploader.calls.map(\.name) == names, "each file once, oldest first")
        #expect(try await store.queueState(target: "dept").pending == 0)
        let archived = try FileManager.default.contentsOfDirectory(atPath: outbox.sent).filter { $0.hasSuffix(".txt") }
        #expect(archived.count == names.count)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox.outbox).filter { $0.hasSuffix(".txt") }.isEmpty)
    }

    /// An uploader that offers its thread gets the queue's own code on it: every upload is a call on
    /// that thread, not a hand-off there and back.
    @Test func queueRunsOnTheUploadThreadWhenTheUploaderOffersIt() async throws {
        let (store, outbox, names) = try await setUp(files: 100)
        let lane = BlockingLane<Void>(name: "target-test") {}
        let laneThread = try await lane.run { _ in pthread_self() }
        let uploader = FlakyUploader(failures: 0, lane: lane)
        let service = TransmissionService(target: target, station: station, uploader: uploader, store: store, outbox: outbox,
                                          signal: OutboxSignal(), wallClock: SystemWallClock(), logger: Logger(label: "test"))
        let last = outbox.sent + "/" + names[names.count - 1]
        try await runUntil(service) { FileManager.default.fileExists(atPath: last) }
        #expect(uploader.calls.map(\.name) == names)
        #expect(uploader.threads == [laneThread])
        #expect(try await store.queueState(target: "dept").pending == 0)
    }

    @Test func rejectedUploadsStayQueued() async throws {
        let (store, outbox, names) = try await setUp(files: 2)
        let uploader = FlakyUploader(failures: 1000, kind: .rejected)
        let service = TransmissionService(target: target, station: station, uploader: uploader, store: store, outbox: outbox,
                                          signal: OutboxSignal(), wallClock: SystemWallClock(), logger: Logger(label: "test"))
        try await runUntil(service) { uploader.attempts.count >= 2 }
        #expect(Set(uploader.attempts) == [names[0]])
        let state = try await store.queueState(target: "dept")
        #expect(state.pending == 2 && state.lastError == "receiver down" && state.oldestPending == names[0])
        #expect(FileManager.default.fileExists(atPath: outbox.outbox + "/" + names[0]))
    }

    @Test func averageFilesGoToTheirProductFolder() async throws {
        let dir = NSTemporaryDirectory() + "quantrac-tx-\(UUID().uuidString)"
        let store = try Store(path: dir + ".sqlite")
        let outbox = try OutboxDirectory(dataDir: dir)
        let end = CivilTime.epochSeconds(year: 2026, month: 3, day: 16, offset: station.utcOffset)
        try outbox.write(name: "24h/HN_ABCD_NUO001_20260316000000.txt", bytes: [1, 2])
        try await store.commitProductFile(name: "24h/HN_ABCD_NUO001_20260316000000.txt", product: "24h", periodEnd: end, bytes: [1, 2],
                                          targets: ["dept"], now: Timestamp(seconds: end))
        var t = target
        t.pathTemplate = "/recv/{product}/{yyyy}{MM}{dd}"
        let uploader = FlakyUploader(failures: 0)
        let service = TransmissionService(target: t, station: station, uploader: uploader, store: store, outbox: outbox,
                                          signal: OutboxSignal(), wallClock: SystemWallClock(), logger: Logger(label: "test"))
        let sentPath = outbox.sent + "/24h/HN_ABCD_NUO001_20260316000000.txt"
        try await runUntil(service) { uploader.calls.count == 1 && FileManager.default.fileExists(atPath: sentPath) }
        try #require(uploader.calls.count == 1)
        #expect(uploader.calls.first == FlakyUploader.Call(name: "HN_ABCD_NUO001_20260316000000.txt", directory: "/recv/24h/20260315", bytes: [1, 2]))
        #expect(FileManager.default.fileExists(atPath: outbox.sent + "/24h/HN_ABCD_NUO001_20260316000000.txt"))
    }

    @Test func fileTargetPublishesByRename() async throws {
        let dir = NSTemporaryDirectory() + "quantrac-recv-\(UUID().uuidString)/a/b"
        let uploader = FileUploader(target: target)
        try await uploader.upload(name: "X.txt", bytes: [1, 2, 3], directory: dir)
        #expect(FileManager.default.contents(atPath: dir + "/X.txt") == Data([1, 2, 3]))
        #expect(!FileManager.default.fileExists(atPath: dir + "/X.txt.part"))
        uploader.shutdown()
    }
}
