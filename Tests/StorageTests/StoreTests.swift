import Foundation
import QuantracCore
import Storage
import Testing
import GRDB
import Synchronization

/// File bytes by name, shared with the verifier closure.
final class FileBox: Sendable {
    private let files = Mutex<[String: [UInt8]]>([:])
    func set(_ name: String, _ bytes: [UInt8]?) { files.withLock { $0[name] = bytes } }
    func get(_ name: String) -> [UInt8]? { files.withLock { $0[name] } }
}

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
        for end: Int64 in [300, 600, 900] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: 1, status: .measuring, validCount: 1, sampleCount: 1)
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end).txt", fileBytes: Array(repeating: 65, count: 10), targets: ["a", "b"], now: now)
        }
        #expect(try await store.lastBuiltIntervalEnd() == 900)
        #expect(try await store.nextPending(target: "a")?.file == "F300.txt")
        #expect(try await store.markSent(file: "F300.txt", target: "a", at: now) == false)
        // A re-sent file goes to the tail: the queue is FIFO.
        #expect(try await store.resend(target: "a", from: 0, to: 300, user: "tech", at: now) == ["F300.txt"])
        #expect(try await store.nextPending(target: "a")?.file == "F600.txt")
        _ = try await store.markSent(file: "F600.txt", target: "a", at: now)
        _ = try await store.markSent(file: "F900.txt", target: "a", at: now)
        #expect(try await store.nextPending(target: "a")?.file == "F300.txt")
        _ = try await store.markSent(file: "F300.txt", target: "a", at: now)
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

    @Test func committedIntervalsAreImmutable() async throws {
        let (store, _) = try makeStore()
        let rec = ChannelRecord(channel: "COD", intervalEnd: 300, value: 1, status: .measuring, validCount: 1, sampleCount: 1)
        #expect(try await store.commitInterval(intervalEnd: 300, records: [rec], fileName: "F.txt", fileBytes: [1], targets: ["a"], now: Timestamp(seconds: 1)))
        _ = try await store.markSent(file: "F.txt", target: "a", at: Timestamp(seconds: 2))
        var other = rec
        other.value = 99
        #expect(try await store.commitInterval(intervalEnd: 300, records: [other], fileName: "F.txt", fileBytes: [2], targets: ["a"], now: Timestamp(seconds: 3)) == false)
        #expect(try await store.nextPending(target: "a") == nil, "a sent file is not queued again")
        #expect(try await store.records(intervalEnd: 300) == [rec])
        #expect(try await store.fileExists("F.txt"))
    }

    @Test func abandonIsTheOnlyWayOutAndIsJournaled() async throws {
        let (store, _) = try makeStore()
        let now = Timestamp(seconds: 5)
        try await store.commitInterval(intervalEnd: 300, records: [], fileName: "F.txt", fileBytes: [1], targets: ["a"], now: now)
        try await store.abandon(file: "F.txt", target: "a", reason: "receiver asked", user: "tech", at: now)
        #expect(try await store.nextPending(target: "a") == nil)
        await #expect(throws: Store.AbandonError.self) {
            try await store.abandon(file: "F.txt", target: "a", reason: "again", user: "tech", at: now)
        }
        let journal = try await store.journalEntries()
        #expect(journal.last?.kind == "outbox.abandon" && journal.last?.user == "tech" && journal.last?.detail.contains("receiver asked") == true)
    }

    @Test func parkAndRetry() async throws {
        let (store, _) = try makeStore()
        try await store.park(target: "a", reason: "login refused", at: Timestamp(seconds: 1))
        #expect(try await store.parkedReason(target: "a") == "login refused")
        try await store.requestRetry(targets: ["a"], user: "tech", at: Timestamp(seconds: 2))
        #expect(try await store.parkedReason(target: "a") == nil)
        #expect(try await store.retryRequested(target: "a") == 2000)
    }

    @Test func auditChainDetectsEditsToRecordsFilesJournalAndChain() async throws {
        let (store, dir) = try makeStore()
        let files = FileBox()
        for end: Int64 in [300, 600] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: Double(end), status: .measuring, validCount: 1, sampleCount: 1)
            let bytes = Array("COD\t\(end)\r\n".utf8)
            files.set("F\(end)", bytes)
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end)", fileBytes: bytes, targets: [], now: Timestamp(seconds: 1))
            try await store.journal("test", "after \(end)", at: Timestamp(seconds: 2))
        }
        let ok = try await store.verifyAuditChain { files.get($0) }
        #expect(ok.firstBreak == nil && ok.links == 4 && ok.intervals == 2 && ok.journalEntries == 2)

        files.set("F600", Array("COD\t601\r\n".utf8))
        #expect(try await store.verifyAuditChain { files.get($0) }.firstBreak == "link 3 (interval F600): the file's bytes were changed")
        files.set("F600", Array("COD\t600\r\n".utf8))

        // Edit a record behind the daemon's back, as someone with sqlite3 would.
        let db = try DatabaseQueue(path: dir + "/q.sqlite")
        try await db.write { try $0.execute(sql: "UPDATE record SET value = 1 WHERE interval_end = 300") }
        #expect(try await store.verifyAuditChain { files.get($0) }.firstBreak == "link 1 (interval F300): stored records or file digest of interval 300 were edited")
        try await db.write { try $0.execute(sql: "UPDATE record SET value = 300 WHERE interval_end = 300") }
        #expect(try await store.verifyAuditChain { files.get($0) }.firstBreak == nil)

        // The journal and the chain refuse edits outright.
        await #expect(throws: (any Error).self) { try await db.write { try $0.execute(sql: "UPDATE journal SET detail = 'x'") } }
        await #expect(throws: (any Error).self) { try await db.write { try $0.execute(sql: "DELETE FROM chain WHERE seq = 2") } }
        // Dropping the triggers first is still detected.
        try await db.write { db in
            try db.execute(sql: "DROP TRIGGER journal_append_only_u")
            try db.execute(sql: "UPDATE journal SET detail = 'after 999' WHERE id = 2")
        }
        #expect(try await store.verifyAuditChain { files.get($0) }.firstBreak == "link 4 (journal 2): journal entry 2 was edited")
    }

    @Test func retentionKeepsUnsentFilesAndPrunedIntervalsStillVerify() async throws {
        let (store, _) = try makeStore()
        let files = FileBox()
        for end: Int64 in [300, 600, 900] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: 1, status: .measuring, validCount: 1, sampleCount: 1)
            files.set("F\(end)", [UInt8(end / 300)])
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end)", fileBytes: [UInt8(end / 300)], targets: ["a"], now: Timestamp(seconds: 1))
        }
        try await store.append([Reading(channel: "COD", time: Timestamp(seconds: 100), value: 1, status: .measuring),
                                Reading(channel: "COD", time: Timestamp(seconds: 700), value: 1, status: .measuring)])
        for f in ["F300", "F600"] {
            if try await store.markSent(file: f, target: "a", at: Timestamp(seconds: 2)) { try await store.markArchived(file: f) }
        }
        // F900 is still pending: never deleted.
        let result = try await store.applyRetention(readingsBefore: 600, recordsBefore: 650, filesBefore: 1000, at: Timestamp(seconds: 3))
        #expect(result.readings == 1 && result.records == 2 && result.files == ["F300", "F600"])
        #expect(try await store.nextPending(target: "a")?.file == "F900")
        files.set("F300", nil)
        let report = try await store.verifyAuditChain { files.get($0) }
        #expect(report.firstBreak == nil && report.pruned == 2)
        #expect(try await store.journalEntries().last?.kind == "retention")
    }

    @Test func lastValidRecordSkipsFaults() async throws {
        let (store, _) = try makeStore()
        for (end, value, status) in [(300, 5.0, InstrumentStatus.measuring), (600, 0, .fault)] as [(Int64, Double, InstrumentStatus)] {
            let rec = ChannelRecord(channel: "COD", intervalEnd: end, value: value, status: status, validCount: 1, sampleCount: 1)
            try await store.commitInterval(intervalEnd: end, records: [rec], fileName: "F\(end)", fileBytes: Array(repeating: 65, count: 1), targets: [], now: Timestamp(seconds: 1))
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
        try OutboxDirectory(dataDir: dir).removeStaleTemporaries()
        #expect(!FileManager.default.fileExists(atPath: outbox.outbox + "/B.txt.tmp"))
    }
}
