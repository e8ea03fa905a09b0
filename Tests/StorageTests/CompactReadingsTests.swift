import Foundation
import GRDB
import QuantracCore
@testable import Storage
import Testing

/// The compact reading storage (schema v5): one `tick` row per poll tick, its readings in one blob.
struct CompactReadingsTests {
    func makeDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "quantrac-compact-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func blobRoundTripsEveryKindOfReading() throws {
        let t = Timestamp(milliseconds: 1_700_000_000_123)
        let readings = [
            Reading(channel: "COD", time: t, value: 123.456, status: .measuring),
            Reading(channel: "TSS", time: t, value: nil, status: .fault, reason: "exception illegal data address"),
            Reading(channel: "pH", time: t, value: -0.0, status: .calibrating),
            Reading(channel: "Nhiệt độ", time: t, value: .infinity, status: .measuring, reason: "lỗi ở cổng"),
            Reading(channel: "Far", time: t, value: 1e-300, status: .fault, reason: ""),
        ]
        let keys: [String: Int64] = ["COD": 1, "TSS": 127, "pH": 128, "Nhiệt độ": 300_000, "Far": Int64(Int32.max) + 9]
        let blob = ReadingBlob.encode(readings) { keys[$0] ?? 0 }
        let codes = Dictionary(uniqueKeysWithValues: keys.map { ($1, $0) })
        let decoded = try ReadingBlob.decode(blob, time: t) { codes[$0] }
        #expect(decoded == readings)
        #expect(decoded[2].value?.sign == .minus, "the sign of zero survives")
        // A measuring reading with a small key is 10 bytes: flags, key, binary64.
        #expect(ReadingBlob.encode([readings[0]]) { _ in 5 }.count == 10)
    }

    @Test func truncatedBlobIsAnErrorNotAGuess() throws {
        let t = Timestamp(seconds: 1)
        let blob = ReadingBlob.encode([Reading(channel: "A", time: t, value: 1, status: .measuring, reason: "x")]) { _ in 1 }
        for cut in 1..<blob.count {
            #expect(throws: ReadingBlob.DecodeError.self) { try ReadingBlob.decode(Array(blob.prefix(cut)), time: t) { _ in "A" } }
        }
    }

    @Test func oneRowPerTickAndQueriesKeepPollOrder() async throws {
        let dir = try makeDirectory()
        let store = try Store(path: dir + "/q.sqlite")
        // Two ticks in one commit (a commit window), then a third, with channels not in code order.
        try await store.append([
            Reading(channel: "Z", time: Timestamp(seconds: 100), value: 1, status: .measuring),
            Reading(channel: "A", time: Timestamp(seconds: 100), value: 2, status: .measuring),
            Reading(channel: "Z", time: Timestamp(seconds: 101), value: 3, status: .measuring),
            Reading(channel: "A", time: Timestamp(seconds: 101), value: nil, status: .fault, reason: "timeout"),
        ])
        try await store.append([Reading(channel: "Z", time: Timestamp(seconds: 102), value: 5, status: .calibrating)])
        try await store.append([])
        let rows = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tick") }
        #expect(rows == 3)
        #expect(try await store.readings(in: Interval(start: 100, end: 102)).map(\.value) == [1, 2, 3, nil])
        #expect(try await store.readings(channel: "Z", before: Timestamp(seconds: 103), limit: 2).map(\.value) == [3, 5])
        #expect(try await store.readings(channel: "A", before: Timestamp(seconds: 103), limit: 5).map(\.value) == [2, nil])
        #expect(try await store.readings(channel: "nope", before: Timestamp(seconds: 103), limit: 5).isEmpty)
        #expect(try await store.latestReadings().map(\.value) == [nil, 5])
        #expect(try await store.lastReadingTime() == Timestamp(seconds: 102))
        #expect(try await store.firstReadingTime(atOrAfter: Timestamp(milliseconds: 100_001)) == Timestamp(seconds: 101))

        // A second store on the same file (the channel keys come from the database, not a cache).
        let again = try Store(path: dir + "/q.sqlite")
        try await again.append([Reading(channel: "B", time: Timestamp(seconds: 103), value: 7, status: .measuring),
                                Reading(channel: "A", time: Timestamp(seconds: 103), value: 8, status: .measuring)])
        #expect(try await store.readings(in: Interval(start: 103, end: 104)).map(\.channel) == ["B", "A"])

        let removed = try await store.applyRetention(readingsBefore: 102, recordsBefore: 0, filesBefore: 0, at: Timestamp(seconds: 200))
        #expect(removed.readings == 4, "retention counts readings, not rows")
        #expect(try await store.readings(in: Interval(start: 0, end: 1000)).count == 3)
    }

    @Test func migrationMovesOldReadingRowsIntoTicks() async throws {
        let dir = try makeDirectory()
        let path = dir + "/q.sqlite"
        // A v4 database as a station has it, with readings of three ticks in the old one-row-per-reading table.
        let old = [
            Reading(channel: "COD", time: Timestamp(seconds: 10), value: 1.5, status: .measuring),
            Reading(channel: "TSS", time: Timestamp(seconds: 10), value: nil, status: .fault, reason: "timeout"),
            Reading(channel: "COD", time: Timestamp(seconds: 20), value: 2.5, status: .calibrating),
            Reading(channel: "TSS", time: Timestamp(seconds: 20), value: 3.25, status: .measuring),
            Reading(channel: "COD", time: Timestamp(seconds: 30), value: 4, status: .measuring),
        ]
        do {
            let queue = try DatabaseQueue(path: path)
            try Store.migrator.migrate(queue, upTo: "v4 calibrations")
            try await queue.write { db in
                for r in old {
                    try db.execute(sql: "INSERT INTO reading (time_ms, channel, value, status, reason) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [r.time.milliseconds, r.channel, r.value, r.status.rawValue, r.reason])
                }
            }
        }
        let store = try Store(path: path)
        #expect(try await store.readings(in: Interval(start: 0, end: 100)) == old)
        let (ticks, oldTable) = try await store.pool.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tick"),
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name = 'reading'"))
        }
        #expect(ticks == 3 && oldTable == 0)
        try await store.append([Reading(channel: "TSS", time: Timestamp(seconds: 40), value: 9, status: .measuring)])
        #expect(try await store.readings(channel: "TSS", before: Timestamp(seconds: 50), limit: 2).map(\.value) == [3.25, 9])
    }
}
