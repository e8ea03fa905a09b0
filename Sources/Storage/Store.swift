import Foundation
import GRDB
import QuantracCore

/// A file waiting in (or delivered from) the outbox, for one target.
public struct OutboxEntry: Sendable, Hashable {
    public let file: String
    public let intervalEnd: Int64
    public let target: String
    public let attempts: Int
}

/// Per-target queue figures.
public struct TargetQueueState: Sendable, Hashable {
    public let target: String
    public let pending: Int
    public let oldestPending: String?
    public let lastSentMs: Int64?
    public let lastError: String?
}

/// The station's database: SQLite through GRDB, WAL journal, `synchronous = FULL` so that a committed
/// transaction survives power loss. The source of truth for readings, records and the outbox.
///
/// All methods are async and run on GRDB's own serial writer / reader queues, never on the cooperative pool.
public final class Store: Sendable {
    let pool: DatabasePool
    public let path: String

    /// Opens (creating if needed) the database at `path` and applies the migrations.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    /// Opens an existing database read-only (for the CLI while the daemon runs).
    public init(readOnlyPath path: String) throws {
        self.path = path
        var config = Configuration()
        config.readonly = true
        pool = try DatabasePool(path: path, configuration: config)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1 readings, records, outbox") { db in
            try db.execute(sql: """
                CREATE TABLE reading (
                    id INTEGER PRIMARY KEY,
                    time_ms INTEGER NOT NULL,
                    channel TEXT NOT NULL,
                    value REAL,
                    status INTEGER NOT NULL CHECK (status IN (0, 1, 2)),
                    reason TEXT
                );
                CREATE INDEX reading_time ON reading(time_ms);
                CREATE TABLE record (
                    interval_end INTEGER NOT NULL,
                    channel TEXT NOT NULL,
                    value REAL NOT NULL,
                    status INTEGER NOT NULL CHECK (status IN (0, 1, 2)),
                    valid_count INTEGER NOT NULL,
                    sample_count INTEGER NOT NULL,
                    PRIMARY KEY (interval_end, channel)
                ) WITHOUT ROWID;
                CREATE TABLE file (
                    name TEXT PRIMARY KEY,
                    interval_end INTEGER NOT NULL,
                    product TEXT NOT NULL DEFAULT '5m',
                    size INTEGER NOT NULL,
                    created_ms INTEGER NOT NULL,
                    archived INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE delivery (
                    file TEXT NOT NULL REFERENCES file(name),
                    target TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'sent')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    last_attempt_ms INTEGER,
                    sent_ms INTEGER,
                    PRIMARY KEY (file, target)
                );
                CREATE INDEX delivery_pending ON delivery(target, state);
                CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                """)
        }
        m.registerMigration("v2 journal, audit chain, queue order, abandon") { db in
            try db.execute(sql: """
                CREATE TABLE delivery2 (
                    file TEXT NOT NULL REFERENCES file(name),
                    target TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'abandoned')),
                    seq INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    last_attempt_ms INTEGER,
                    sent_ms INTEGER,
                    note TEXT,
                    PRIMARY KEY (file, target)
                );
                INSERT INTO delivery2 (file, target, state, seq, attempts, last_error, last_attempt_ms, sent_ms)
                    SELECT d.file, d.target, d.state, f.interval_end, d.attempts, d.last_error, d.last_attempt_ms, d.sent_ms
                    FROM delivery d JOIN file f ON f.name = d.file;
                DROP TABLE delivery;
                ALTER TABLE delivery2 RENAME TO delivery;
                CREATE INDEX delivery_queue ON delivery(target, state, seq);
                ALTER TABLE file ADD COLUMN sha256 TEXT;
                CREATE TABLE journal (
                    id INTEGER PRIMARY KEY,
                    time_ms INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    detail TEXT NOT NULL,
                    user TEXT
                );
                CREATE TRIGGER journal_append_only_u BEFORE UPDATE ON journal BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                CREATE TRIGGER journal_append_only_d BEFORE DELETE ON journal BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                CREATE TABLE chain (
                    seq INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL CHECK (kind IN ('interval', 'journal')),
                    ref TEXT NOT NULL,
                    digest TEXT NOT NULL,
                    link TEXT NOT NULL
                );
                CREATE TRIGGER chain_append_only_u BEFORE UPDATE ON chain BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
                CREATE TRIGGER chain_append_only_d BEFORE DELETE ON chain BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
                CREATE TABLE target_state (
                    target TEXT PRIMARY KEY,
                    parked TEXT,
                    parked_ms INTEGER,
                    retry_ms INTEGER
                );
                """)
        }
        m.registerMigration("v3 averages, AQI, corrections, record flags") { db in
            try db.execute(sql: """
                ALTER TABLE record ADD COLUMN flag TEXT;
                CREATE TABLE average (
                    channel TEXT NOT NULL,
                    period TEXT NOT NULL CHECK (period IN ('1h', '8h', '24h')),
                    period_end INTEGER NOT NULL,
                    value REAL,
                    valid INTEGER NOT NULL,
                    valid_count INTEGER NOT NULL,
                    expected_count INTEGER NOT NULL,
                    excluded TEXT NOT NULL,
                    min REAL,
                    max REAL,
                    exceeds INTEGER NOT NULL,
                    computed_ms INTEGER NOT NULL,
                    PRIMARY KEY (channel, period, period_end)
                ) WITHOUT ROWID;
                CREATE INDEX average_period ON average(period, period_end);
                CREATE TABLE aqi (
                    period TEXT NOT NULL CHECK (period IN ('1h', '24h')),
                    period_end INTEGER NOT NULL,
                    aqi INTEGER,
                    dominant TEXT,
                    sub_indices TEXT NOT NULL,
                    computed_ms INTEGER NOT NULL,
                    PRIMARY KEY (period, period_end)
                ) WITHOUT ROWID;
                CREATE TABLE correction (
                    id INTEGER PRIMARY KEY,
                    channel TEXT NOT NULL,
                    from_s INTEGER NOT NULL,
                    to_s INTEGER NOT NULL,
                    reason TEXT NOT NULL,
                    user TEXT,
                    created_ms INTEGER NOT NULL
                );
                """)
        }
        m.registerMigration("v4 calibrations") { db in
            try db.execute(sql: """
                CREATE TABLE calibration (
                    id INTEGER PRIMARY KEY,
                    channel TEXT,
                    start_ms INTEGER NOT NULL,
                    until_ms INTEGER,
                    reason TEXT NOT NULL,
                    user TEXT,
                    stopped_ms INTEGER,
                    stopped_by TEXT
                );
                """)
        }
        return m
    }

    // MARK: readings

    /// Stores one poll tick in one transaction; returns once it is durable.
    public func append(_ readings: [Reading]) async throws {
        try await pool.write { db in
            let stmt = try db.cachedStatement(sql: "INSERT INTO reading (time_ms, channel, value, status, reason) VALUES (?, ?, ?, ?, ?)")
            for r in readings {
                try stmt.execute(arguments: [r.time.milliseconds, r.channel, r.value, r.status.rawValue, r.reason])
            }
        }
    }

    /// Readings with `start ≤ time < end` (epoch seconds), oldest first.
    public func readings(in interval: Interval) async throws -> [Reading] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT time_ms, channel, value, status, reason FROM reading WHERE time_ms >= ? AND time_ms < ? ORDER BY time_ms, id",
                             arguments: [interval.start * 1000, interval.end * 1000]).map { row in
                Reading(channel: row[1], time: Timestamp(milliseconds: row[0]), value: row[2],
                        status: InstrumentStatus(rawValue: row[3]) ?? .fault, reason: row[4])
            }
        }
    }

    /// Time of the oldest reading at or after `time`, if any.
    public func firstReadingTime(atOrAfter time: Timestamp) async throws -> Timestamp? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(time_ms) FROM reading WHERE time_ms >= ?", arguments: [time.milliseconds])
                .map(Timestamp.init(milliseconds:))
        }
    }

    /// The most recent reading per channel.
    public func latestReadings() async throws -> [Reading] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT r.time_ms, r.channel, r.value, r.status, r.reason FROM reading r
                JOIN (SELECT channel, MAX(id) AS id FROM reading GROUP BY channel) m ON m.id = r.id
                """).map { row in
                Reading(channel: row[1], time: Timestamp(milliseconds: row[0]), value: row[2],
                        status: InstrumentStatus(rawValue: row[3]) ?? .fault, reason: row[4])
            }
        }
    }

    // MARK: records and files

    /// End of the last interval whose record and file were committed.
    public func lastBuiltIntervalEnd() async throws -> Int64? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'last_built_interval_end'") }
    }

    /// Value of the channel's most recent record that had a valid value (status 00 or 01) before `intervalEnd`.
    public func lastValidRecordValue(channel: String, before intervalEnd: Int64) async throws -> Double? {
        try await pool.read { db in
            try Double.fetchOne(db, sql: "SELECT value FROM record WHERE channel = ? AND interval_end < ? AND status != 2 ORDER BY interval_end DESC LIMIT 1",
                                arguments: [channel, intervalEnd])
        }
    }

    public func records(intervalEnd: Int64) async throws -> [ChannelRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT channel, value, status, valid_count, sample_count, flag FROM record WHERE interval_end = ?",
                             arguments: [intervalEnd]).map { row in
                ChannelRecord(channel: row[0], intervalEnd: intervalEnd, value: row[1], status: InstrumentStatus(rawValue: row[2]) ?? .fault,
                              validCount: row[3], sampleCount: row[4], flag: (row[5] as String?).flatMap(Exclusion.init(rawValue:)))
            }
        }
    }

    /// True when a file of that name was committed before (its interval must never be built again).
    public func fileExists(_ name: String) async throws -> Bool {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1 FROM file WHERE name = ?", arguments: [name]) != nil }
    }

    /// Commits an interval in one transaction: its records, its file (already durable in the outbox
    /// directory) with its SHA-256, one pending delivery per target at the tail of each queue, the audit
    /// chain link, and the build mark. Returns false (and changes nothing but the build mark) when the
    /// file was committed before: committed records and files are immutable.
    @discardableResult
    public func commitInterval(intervalEnd: Int64, records: [ChannelRecord], fileName: String, fileBytes: [UInt8],
                               targets: [String], now: Timestamp) async throws -> Bool {
        let fileDigest = SHA256.hex(fileBytes)
        return try await pool.write { db in
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('last_built_interval_end', ?) ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                           arguments: [intervalEnd])
            try db.execute(sql: "INSERT OR IGNORE INTO file (name, interval_end, size, created_ms, sha256) VALUES (?, ?, ?, ?, ?)",
                           arguments: [fileName, intervalEnd, fileBytes.count, now.milliseconds, fileDigest])
            guard db.changesCount == 1 else { return false }
            for r in records {
                try db.execute(sql: "INSERT INTO record (interval_end, channel, value, status, valid_count, sample_count, flag) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [intervalEnd, r.channel, r.value, r.status.rawValue, r.validCount, r.sampleCount, r.flag?.rawValue])
            }
            for t in targets {
                try Self.enqueue(db, file: fileName, target: t)
            }
            try AuditChain.append(db, kind: .interval, ref: fileName,
                                  digest: AuditChain.intervalDigest(records: records, fileName: fileName, fileDigest: fileDigest))
            return true
        }
    }

    static func enqueue(_ db: Database, file: String, target: String) throws {
        try db.execute(sql: """
            INSERT INTO delivery (file, target, state, seq) VALUES (?, ?, 'pending', (SELECT COALESCE(MAX(seq), 0) + 1 FROM delivery))
            ON CONFLICT (file, target) DO NOTHING
            """, arguments: [file, target])
    }

    // MARK: outbox

    /// The head of `target`'s queue: the file pending longest (FIFO by enqueue order; files are enqueued
    /// in interval order as they are built, re-sent files at the tail).
    public func nextPending(target: String) async throws -> OutboxEntry? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT d.file, f.interval_end, d.attempts FROM delivery d JOIN file f ON f.name = d.file
                WHERE d.target = ? AND d.state = 'pending' ORDER BY d.seq LIMIT 1
                """, arguments: [target]).map { OutboxEntry(file: $0[0], intervalEnd: $0[1], target: target, attempts: $0[2]) }
        }
    }

    /// Marks a delivery sent; returns true when the file has no pending delivery left (ready to archive).
    public func markSent(file: String, target: String, at now: Timestamp) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "UPDATE delivery SET state = 'sent', sent_ms = ?, last_attempt_ms = ?, attempts = attempts + 1, last_error = NULL WHERE file = ? AND target = ?",
                           arguments: [now.milliseconds, now.milliseconds, file, target])
            return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery WHERE file = ? AND state = 'pending'", arguments: [file]) == 0
        }
    }

    public func markFailed(file: String, target: String, error: String, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE delivery SET attempts = attempts + 1, last_error = ?, last_attempt_ms = ? WHERE file = ? AND target = ?",
                           arguments: [error, now.milliseconds, file, target])
        }
    }

    /// Records that the file now lives in the sent directory.
    public func markArchived(file: String) async throws {
        try await pool.write { db in try db.execute(sql: "UPDATE file SET archived = 1 WHERE name = ?", arguments: [file]) }
    }

    /// Files whose deliveries are all done but that were not moved to the sent directory yet (crash recovery).
    public func deliveredButNotArchived() async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(db, sql: """
                SELECT name FROM file f WHERE archived = 0
                AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.file = f.name AND d.state = 'pending') ORDER BY interval_end
                """)
        }
    }

    public func isArchived(file: String) async throws -> Bool {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT archived FROM file WHERE name = ?", arguments: [file]) == 1 }
    }

    public func queueState(target: String) async throws -> TargetQueueState {
        try await pool.read { db in
            let pending = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery WHERE target = ? AND state = 'pending'", arguments: [target]) ?? 0
            let oldest = try String.fetchOne(db, sql: """
                SELECT file FROM delivery WHERE target = ? AND state = 'pending' ORDER BY seq LIMIT 1
                """, arguments: [target])
            let lastSent = try Int64.fetchOne(db, sql: "SELECT MAX(sent_ms) FROM delivery WHERE target = ?", arguments: [target])
            let lastError = try String.fetchOne(db, sql: "SELECT last_error FROM delivery WHERE target = ? AND last_error IS NOT NULL ORDER BY last_attempt_ms DESC LIMIT 1",
                                                arguments: [target])
            return TargetQueueState(target: target, pending: pending, oldestPending: oldest, lastSentMs: lastSent, lastError: lastError)
        }
    }
}
