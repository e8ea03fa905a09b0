import Foundation
import GRDB
import QuantracCore
import Synchronization

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
    /// Channel code → `channel_key.id`, as committed (filled lazily by `append`).
    private let channelKeys = Mutex<[String: Int64]>([:])

    /// Opens (creating if needed) the database at `path` and applies the migrations.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        // A gateway has little memory: each connection keeps at most 512 KiB of pages (SQLite's default is
        // 2 MiB; the hot pages are the tail of the tick table), and two readers are enough for the daemon's
        // services (GRDB's default is five).
        config.maximumReaderCount = 2
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA cache_size = -512")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try Self.migrator.migrate(pool)
    }

    /// Opens an existing database read-only (for the CLI while the daemon runs).
    public init(readOnlyPath path: String) throws {
        self.path = path
        var config = Configuration()
        config.readonly = true
        // The daemon may be creating the database or switching it to WAL at this moment (an exclusive lock
        // for a few milliseconds): wait for it rather than fail with "database is locked".
        config.busyMode = .timeout(10)
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
        m.registerMigration("v5 compact readings: one row per tick") { db in
            // One row per reading cost a B-tree cell, the channel code and an index entry each: most of the
            // bytes written per tick. A tick is now one row; its readings are one blob (ReadingBlob).
            try db.execute(sql: """
                CREATE TABLE channel_key (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
                CREATE TABLE tick (
                    id INTEGER PRIMARY KEY,
                    time_ms INTEGER NOT NULL,
                    count INTEGER NOT NULL,
                    data BLOB NOT NULL
                );
                CREATE INDEX tick_time ON tick(time_ms);
                INSERT INTO channel_key (code) SELECT DISTINCT channel FROM reading ORDER BY channel;
                """)
            var keys: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, code FROM channel_key") { keys[row[1]] = row[0] }
            let insert = try db.makeStatement(sql: "INSERT INTO tick (time_ms, count, data) VALUES (?, ?, ?)")
            var batch: [Reading] = []
            func flush() throws {
                guard let first = batch.first else { return }
                try insert.execute(arguments: [first.time.milliseconds, batch.count, Data(ReadingBlob.encode(batch) { keys[$0] ?? 0 })])
                batch.removeAll(keepingCapacity: true)
            }
            let rows = try Row.fetchCursor(db, sql: "SELECT time_ms, channel, value, status, reason FROM reading ORDER BY time_ms, id")
            while let row = try rows.next() {
                let r = Reading(channel: row[1], time: Timestamp(milliseconds: row[0]), value: row[2],
                                status: InstrumentStatus(rawValue: row[3]) ?? .fault, reason: row[4])
                if let first = batch.first, first.time != r.time { try flush() }
                batch.append(r)
            }
            try flush()
            try db.execute(sql: "DROP TABLE reading")
        }
        return m
    }

    // MARK: readings

    /// Stores readings in one transaction and returns once it is durable: one `tick` row per run of
    /// readings with the same time (a bus's poll tick), so a commit window of several ticks is one commit.
    public func append(_ readings: [Reading]) async throws {
        guard !readings.isEmpty else { return }
        let known = channelKeys.withLock { $0 }
        let added = try await pool.write { db -> [String: Int64] in
            var keys = known, added: [String: Int64] = [:]
            for code in Set(readings.map(\.channel)) where keys[code] == nil {
                try db.execute(sql: "INSERT OR IGNORE INTO channel_key (code) VALUES (?)", arguments: [code])
                guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM channel_key WHERE code = ?", arguments: [code]) else {
                    throw DatabaseError(resultCode: .SQLITE_INTERNAL, message: "channel_key row for \(code) vanished")
                }
                keys[code] = id
                added[code] = id
            }
            let insert = try db.cachedStatement(sql: "INSERT INTO tick (time_ms, count, data) VALUES (?, ?, ?)")
            var start = 0
            while start < readings.count {
                var end = start + 1
                while end < readings.count, readings[end].time == readings[start].time { end += 1 }
                let blob = ReadingBlob.encode(Array(readings[start..<end])) { keys[$0] ?? 0 }
                try insert.execute(arguments: [readings[start].time.milliseconds, end - start, Data(blob)])
                start = end
            }
            return added
        }
        // Only keys of a committed transaction are remembered.
        if !added.isEmpty { channelKeys.withLock { $0.merge(added) { old, _ in old } } }
    }

    /// Channel code by key, for decoding tick blobs.
    static func channelCodes(_ db: Database) throws -> [Int64: String] {
        var codes: [Int64: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, code FROM channel_key") { codes[row[0]] = row[1] }
        return codes
    }

    /// The readings of one `tick` row (`time_ms`, `data`).
    static func decodeTick(_ row: Row, codes: [Int64: String]) throws -> [Reading] {
        let data: Data = row[1]
        return try ReadingBlob.decode(Array(data), time: Timestamp(milliseconds: row[0])) { codes[$0] }
    }

    /// Readings with `start ≤ time < end` (epoch seconds), oldest first (in poll order within a tick).
    public func readings(in interval: Interval) async throws -> [Reading] {
        try await pool.read { db in
            let codes = try Self.channelCodes(db)
            return try Row.fetchAll(db, sql: "SELECT time_ms, data FROM tick WHERE time_ms >= ? AND time_ms < ? ORDER BY time_ms, id",
                                    arguments: [interval.start * 1000, interval.end * 1000])
                .flatMap { try Self.decodeTick($0, codes: codes) }
        }
    }

    /// Time of the oldest reading at or after `time`, if any.
    public func firstReadingTime(atOrAfter time: Timestamp) async throws -> Timestamp? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(time_ms) FROM tick WHERE time_ms >= ?", arguments: [time.milliseconds])
                .map(Timestamp.init(milliseconds:))
        }
    }

    /// The most recent reading per channel (walks the ticks from the newest until every known channel is seen).
    public func latestReadings() async throws -> [Reading] {
        try await pool.read { db in
            let codes = try Self.channelCodes(db)
            var latest: [String: Reading] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT time_ms, data FROM tick ORDER BY time_ms DESC, id DESC")
            while latest.count < codes.count, let row = try rows.next() {
                for r in try Self.decodeTick(row, codes: codes).reversed() where latest[r.channel] == nil { latest[r.channel] = r }
            }
            return latest.values.sorted { ($0.time, $0.channel) < ($1.time, $1.channel) }
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

    /// The first `limit` files of `target`'s queue, head first (see `nextPending`).
    public func pendingEntries(target: String, limit: Int) async throws -> [OutboxEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.file, f.interval_end, d.attempts FROM delivery d JOIN file f ON f.name = d.file
                WHERE d.target = ? AND d.state = 'pending' ORDER BY d.seq LIMIT ?
                """, arguments: [target, limit]).map { OutboxEntry(file: $0[0], intervalEnd: $0[1], target: target, attempts: $0[2]) }
        }
    }

    /// Marks several deliveries of `target` sent in one transaction (one fsync for a batch of uploads);
    /// returns the files among them that have no pending delivery left (ready to archive), in order.
    public func markSent(files: [String], target: String, at now: Timestamp) async throws -> [String] {
        guard !files.isEmpty else { return [] }
        return try await pool.write { db in
            // Prepared once per connection (GRDB's statement cache), not once per file.
            let sent = try db.cachedStatement(sql: """
                UPDATE delivery SET state = 'sent', sent_ms = ?, last_attempt_ms = ?, attempts = attempts + 1, last_error = NULL
                WHERE file = ? AND target = ?
                """)
            let pending = try db.cachedStatement(sql: "SELECT COUNT(*) FROM delivery WHERE file = ? AND state = 'pending'")
            var done: [String] = []
            for file in files {
                try sent.execute(arguments: [now.milliseconds, now.milliseconds, file, target])
                if try Int.fetchOne(pending, arguments: [file]) == 0 { done.append(file) }
            }
            return done
        }
    }

    /// Records that these files now live in the sent directory, in one transaction.
    public func markArchived(files: [String]) async throws {
        guard !files.isEmpty else { return }
        try await pool.write { db in
            let archived = try db.cachedStatement(sql: "UPDATE file SET archived = 1 WHERE name = ?")
            for file in files { try archived.execute(arguments: [file]) }
        }
    }

    /// Marks a delivery sent; returns true when the file has no pending delivery left (ready to archive).
    public func markSent(file: String, target: String, at now: Timestamp) async throws -> Bool {
        try await markSent(files: [file], target: target, at: now) == [file]
    }

    public func markFailed(file: String, target: String, error: String, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE delivery SET attempts = attempts + 1, last_error = ?, last_attempt_ms = ? WHERE file = ? AND target = ?",
                           arguments: [error, now.milliseconds, file, target])
        }
    }

    /// Records that the file now lives in the sent directory.
    public func markArchived(file: String) async throws { try await markArchived(files: [file]) }

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
