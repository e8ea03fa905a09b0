import Foundation
import GRDB
import QuantracCore

/// A journal entry: an operational event the station must be able to prove afterwards.
public struct JournalEntry: Sendable, Hashable {
    public let id: Int64
    public let time: Timestamp
    public let kind: String
    public let detail: String
    public let user: String?
}

/// What a retention run removed.
public struct RetentionResult: Sendable, Hashable {
    public var readings = 0
    public var records = 0
    public var files: [String] = []
}

extension Store {
    // MARK: journal

    /// Appends an event to the journal (and the audit chain). `user` is the Unix user who caused it.
    public func journal(_ kind: String, _ detail: String, user: String? = nil, at now: Timestamp) async throws {
        try await pool.write { db in try Self.journal(db, kind, detail, user: user, at: now) }
    }

    static func journal(_ db: Database, _ kind: String, _ detail: String, user: String?, at now: Timestamp) throws {
        try db.execute(sql: "INSERT INTO journal (time_ms, kind, detail, user) VALUES (?, ?, ?, ?)",
                       arguments: [now.milliseconds, kind, detail, user])
        let id = db.lastInsertedRowID
        try AuditChain.append(db, kind: .journal, ref: String(id),
                              digest: AuditChain.journalDigest(id: id, timeMs: now.milliseconds, kind: kind, detail: detail, user: user))
    }

    public func journalEntries(limit: Int = 100) async throws -> [JournalEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, time_ms, kind, detail, user FROM journal ORDER BY id DESC LIMIT ?", arguments: [limit])
                .reversed().map { JournalEntry(id: $0[0], time: Timestamp(milliseconds: $0[1]), kind: $0[2], detail: $0[3], user: $0[4]) }
        }
    }

    /// Time of the newest stored reading (to report downtime on start).
    public func lastReadingTime() async throws -> Timestamp? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(time_ms) FROM tick").map(Timestamp.init(milliseconds:)) }
    }

    // MARK: outbox control

    /// Parks a target's queue (authentication refused): no attempts until `requestRetry` or a restart.
    public func park(target: String, reason: String, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: """
                INSERT INTO target_state (target, parked, parked_ms) VALUES (?, ?, ?)
                ON CONFLICT(target) DO UPDATE SET parked = excluded.parked, parked_ms = excluded.parked_ms
                """, arguments: [target, reason, now.milliseconds])
        }
    }

    public func unpark(target: String) async throws {
        try await pool.write { db in try db.execute(sql: "UPDATE target_state SET parked = NULL, parked_ms = NULL WHERE target = ?", arguments: [target]) }
    }

    /// Why the target is parked, if it is.
    public func parkedReason(target: String) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT parked FROM target_state WHERE target = ?", arguments: [target]) }
    }

    /// Asks every queue to try again now (skipping backoff, un-parking); `quantrac outbox retry`.
    public func requestRetry(targets: [String], user: String?, at now: Timestamp) async throws {
        try await pool.write { db in
            for t in targets {
                try db.execute(sql: """
                    INSERT INTO target_state (target, retry_ms) VALUES (?, ?)
                    ON CONFLICT(target) DO UPDATE SET retry_ms = excluded.retry_ms, parked = NULL, parked_ms = NULL
                    """, arguments: [t, now.milliseconds])
            }
            try Self.journal(db, "outbox.retry", "retry requested for \(targets.joined(separator: ", "))", user: user, at: now)
        }
    }

    /// Time of the last retry request for `target`.
    public func retryRequested(target: String) async throws -> Int64? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT retry_ms FROM target_state WHERE target = ?", arguments: [target]) }
    }

    /// Re-queues files already delivered to `target` whose interval ends in `[from, to]` (epoch seconds),
    /// at the tail of the queue, unchanged. Returns the file names. Journaled.
    public func resend(target: String, from: Int64, to: Int64, user: String?, at now: Timestamp) async throws -> [String] {
        try await pool.write { db in
            let names = try String.fetchAll(db, sql: """
                SELECT d.file FROM delivery d JOIN file f ON f.name = d.file
                WHERE d.target = ? AND d.state = 'sent' AND f.interval_end BETWEEN ? AND ? ORDER BY f.interval_end, d.file
                """, arguments: [target, from, to])
            for name in names {
                try db.execute(sql: """
                    UPDATE delivery SET state = 'pending', seq = (SELECT MAX(seq) + 1 FROM delivery), note = 'resend', last_error = NULL
                    WHERE file = ? AND target = ?
                    """, arguments: [name, target])
            }
            try Self.journal(db, "outbox.resend", "\(names.count) file(s) re-queued for \(target): \(names.first ?? "-") … \(names.last ?? "-")",
                             user: user, at: now)
            return names
        }
    }

    public enum AbandonError: Error, CustomStringConvertible {
        case notPending(file: String, target: String)
        public var description: String {
            switch self {
            case .notPending(let f, let t): return "\(f) is not pending for target \(t)"
            }
        }
    }

    /// Takes one file out of a target's queue without sending it — the only way that happens. Journaled.
    public func abandon(file: String, target: String, reason: String, user: String?, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE delivery SET state = 'abandoned', note = ? WHERE file = ? AND target = ? AND state = 'pending'",
                           arguments: [reason, file, target])
            guard db.changesCount == 1 else { throw AbandonError.notPending(file: file, target: target) }
            try Self.journal(db, "outbox.abandon", "\(file) abandoned for \(target): \(reason)", user: user, at: now)
        }
    }

    /// Every target that has ever had a delivery.
    public func knownTargets() async throws -> [String] {
        try await pool.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT target FROM delivery ORDER BY target") }
    }

    // MARK: retention

    /// Deletes readings older than `readingsBefore`, records older than `recordsBefore` and forgets sent
    /// files older than `filesBefore` (returned so the caller removes them from `sent/`). A file that any
    /// target still has pending is never touched. Journaled with the counts.
    public func applyRetention(readingsBefore: Int64, recordsBefore: Int64, filesBefore: Int64, at now: Timestamp) async throws -> RetentionResult {
        try await pool.write { db in
            var result = RetentionResult()
            result.readings = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(count), 0) FROM tick WHERE time_ms < ?",
                                               arguments: [readingsBefore * 1000]) ?? 0
            try db.execute(sql: "DELETE FROM tick WHERE time_ms < ?", arguments: [readingsBefore * 1000])
            try db.execute(sql: "DELETE FROM record WHERE interval_end < ?", arguments: [recordsBefore])
            result.records = db.changesCount
            result.files = try String.fetchAll(db, sql: """
                SELECT name FROM file f WHERE interval_end < ? AND archived = 1
                AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.file = f.name AND d.state = 'pending')
                """, arguments: [filesBefore])
            try db.execute(sql: "UPDATE file SET archived = 2 WHERE interval_end < ? AND archived = 1 AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.file = file.name AND d.state = 'pending')",
                           arguments: [filesBefore])
            try db.execute(sql: """
                INSERT INTO meta (key, value) VALUES ('records_pruned_before', ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)
                """, arguments: [recordsBefore])
            if result.readings + result.records + result.files.count > 0 {
                try Self.journal(db, "retention", "removed \(result.readings) readings, \(result.records) records, \(result.files.count) sent files",
                                 user: nil, at: now)
            }
            return result
        }
    }

    // MARK: audit

    /// Walks the whole chain: recomputes every link, and every entry's digest from the current records,
    /// journal rows and file bytes (`fileBytes` returns nil for a file that is missing).
    public func verifyAuditChain(fileBytes: @escaping @Sendable (String) -> [UInt8]?) async throws -> AuditReport {
        try await pool.read { db in
            var report = AuditReport()
            let recordsPruned = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'records_pruned_before'") ?? .min
            var previous = AuditChain.genesis
            var expectedSeq: Int64 = 1
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, kind, ref, digest, link FROM chain ORDER BY seq")
            while let row = try cursor.next() {
                let seq: Int64 = row[0], kindText: String = row[1], ref: String = row[2], digest: String = row[3], link: String = row[4]
                report.links += 1
                func broken(_ why: String) -> AuditReport {
                    var r = report
                    r.firstBreak = "link \(seq) (\(kindText) \(ref)): \(why)"
                    return r
                }
                guard seq == expectedSeq else { return broken("link \(expectedSeq) is missing") }
                guard let kind = AuditChain.Kind(rawValue: kindText) else { return broken("unknown kind") }
                guard AuditChain.link(previous: previous, seq: seq, kind: kind, ref: ref, digest: digest) == link else {
                    return broken("the chain itself was altered (link hash does not match)")
                }
                switch kind {
                case .journal:
                    report.journalEntries += 1
                    guard let j = try Row.fetchOne(db, sql: "SELECT id, time_ms, kind, detail, user FROM journal WHERE id = ?", arguments: [Int64(ref)]) else {
                        return broken("journal entry \(ref) was deleted")
                    }
                    if AuditChain.journalDigest(id: j[0], timeMs: j[1], kind: j[2], detail: j[3], user: j[4]) != digest {
                        return broken("journal entry \(ref) was edited")
                    }
                case .interval:
                    report.intervals += 1
                    guard let f = try Row.fetchOne(db, sql: "SELECT interval_end, sha256, archived, product FROM file WHERE name = ?", arguments: [ref]) else {
                        return broken("the file's row was deleted")
                    }
                    let end: Int64 = f[0], fileDigest: String = f[1] ?? "", fileRemoved = (f[2] as Int) == 2
                    // Average files (1h, 24h) chain their bytes only: averages may be recomputed, files never change.
                    let isRecordFile = (f[3] as String) == "5m"
                    if (end < recordsPruned && isRecordFile) || fileRemoved { report.pruned += 1 }
                    if end >= recordsPruned, isRecordFile {
                        let records = try Row.fetchAll(db, sql: "SELECT channel, value, status, valid_count, sample_count, flag FROM record WHERE interval_end = ?",
                                                       arguments: [end]).map {
                            ChannelRecord(channel: $0[0], intervalEnd: end, value: $0[1], status: InstrumentStatus(rawValue: $0[2]) ?? .fault,
                                          validCount: $0[3], sampleCount: $0[4], flag: ($0[5] as String?).flatMap(Exclusion.init(rawValue:)))
                        }
                        if AuditChain.intervalDigest(records: records, fileName: ref, fileDigest: fileDigest) != digest {
                            return broken("stored records or file digest of interval \(end) were edited")
                        }
                    }
                    if !fileRemoved {
                        guard let bytes = fileBytes(ref) else { return broken("the local copy of the file is missing") }
                        if SHA256.hex(bytes) != fileDigest { return broken("the file's bytes were changed") }
                    }
                }
                previous = link
                expectedSeq += 1
            }
            return report
        }
    }
}
