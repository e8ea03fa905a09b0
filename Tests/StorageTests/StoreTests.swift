import Foundation
import QuantracCore
import Storage
import Testing

struct StoreTests {
    func makeStore() throws -> (Store, String) {
        let dir = NSTemporaryDirectory() + "quantrac-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try Store(path: dir + "/q.sqlite"), dir)
    }

    @Test func readingsAreStoredAndQueriedByHalfOpenInterval() async throws {
        let (store, _) = try makeStore()
        try await store.append([
            Reading(channel: "COD", time: Timestamp(seconds: 100), value: 1.5, status: .measuring),
            Reading(channel: "TSS", time: Timestamp(seconds: 100), value: nil, status: .fault, reason: "timeout"),
        ])
        try await store.append([Reading(channel: "COD", time: Timestamp(seconds: 110), value: 2, status: .calibrating)])
        let inside = try await store.readings(in: Interval(start: 100, end: 110))
        #expect(inside.count == 2)
        #expect(inside[1].reason == "timeout" && inside[1].value == nil && inside[1].status == .fault)
        #expect(try await store.readings(in: Interval(start: 101, end: 111)).map(\.value) == [2])
        #expect(try await store.firstReadingTime(atOrAfter: Timestamp(seconds: 101)) == Timestamp(seconds: 110))
        #expect(try await store.latestReadings().count == 2)
    }

    @Test func outboxIsFifoPerTargetAndArchivesWhenAllTargetsHaveAFile() async throws {
        let (store, _) = try makeStore()
        let now = Timestamp(seconds: 1)
        // Committed out of order on purpose: the queue orders by interval.
        for end: Int64 in [600, 300, 900] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: 1, status: .measuring, validCount: 1, sampleCount: 1)
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end).txt", fileSize: 10, targets: ["a", "b"], now: now)
        }
        #expect(try await store.lastBuiltIntervalEnd() == 900)
        #expect(try await store.nextPending(target: "a")?.file == "F300.txt")
        #expect(try await store.markSent(file: "F300.txt", target: "a", at: now) == false)
        #expect(try await store.nextPending(target: "a")?.file == "F600.txt")
        #expect(try await store.nextPending(target: "b")?.file == "F300.txt")
        try await store.markFailed(file: "F300.txt", target: "b", error: "refused", at: now)
        #expect(try await store.nextPending(target: "b")?.attempts == 1)
        #expect(try await store.markSent(file: "F300.txt", target: "b", at: now) == true)
        #expect(try await store.deliveredButNotArchived() == ["F300.txt"])
        try await store.markArchived(file: "F300.txt")
        #expect(try await store.deliveredButNotArchived().isEmpty)
        let state = try await store.queueState(target: "b")
        #expect(state.pending == 2 && state.oldestPending == "F600.txt" && state.lastSentMs == 1000)
    }

    @Test func committingAnIntervalTwiceIsIdempotent() async throws {
        let (store, _) = try makeStore()
        let rec = ChannelRecord(channel: "COD", intervalEnd: 300, value: 1, status: .measuring, validCount: 1, sampleCount: 1)
        try await store.commitInterval(intervalEnd: 300, records: [rec], fileName: "F.txt", fileSize: 1, targets: ["a"], now: Timestamp(seconds: 1))
        _ = try await store.markSent(file: "F.txt", target: "a", at: Timestamp(seconds: 2))
        try await store.commitInterval(intervalEnd: 300, records: [rec], fileName: "F.txt", fileSize: 1, targets: ["a"], now: Timestamp(seconds: 3))
        #expect(try await store.nextPending(target: "a") == nil, "a sent file is not queued again")
        #expect(try await store.records(intervalEnd: 300) == [rec])
    }

    @Test func lastValidRecordSkipsFaults() async throws {
        let (store, _) = try makeStore()
        for (end, value, status) in [(300, 5.0, InstrumentStatus.measuring), (600, 0, .fault)] as [(Int64, Double, InstrumentStatus)] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: value, status: status, validCount: 1, sampleCount: 1)
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end)", fileSize: 1, targets: [], now: Timestamp(seconds: 1))
        }
        #expect(try await store.lastValidRecordValue(channel: "COD", before: 900) == 5)
        #expect(try await store.lastValidRecordValue(channel: "COD", before: 300) == nil)
    }

    @Test func outboxWritesAtomicallyAndArchives() throws {
        let (_, dir) = try makeStore()
        let outbox = try OutboxDirectory(dataDir: dir)
        try outbox.write(name: "A.txt", bytes: Array("x\r\n".utf8))
        #expect(try outbox.read(name: "A.txt") == Array("x\r\n".utf8))
        #expect(!FileManager.default.fileExists(atPath: outbox.outbox + "/A.txt.tmp"))
        try outbox.archive(name: "A.txt")
        try outbox.archive(name: "A.txt")  // idempotent
        #expect(FileManager.default.fileExists(atPath: outbox.sent + "/A.txt"))
        #expect(try outbox.read(name: "A.txt") == Array("x\r\n".utf8))
        // A leftover temporary file from a crash is removed on open.
        #expect(FileManager.default.createFile(atPath: outbox.outbox + "/B.txt.tmp", contents: Data("half".utf8)))
        _ = try OutboxDirectory(dataDir: dir)
        #expect(!FileManager.default.fileExists(atPath: outbox.outbox + "/B.txt.tmp"))
    }
}
