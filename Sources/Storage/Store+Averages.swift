import Foundation
import GRDB
import QuantracCore

/// A stored average of one channel over one period.
public struct StoredAverage: Sendable, Hashable {
    public let channel: String
    /// `1h`, `8h` or `24h`.
    public let period: String
    public let average: Average

    public init(channel: String, period: String, average: Average) {
        self.channel = channel
        self.period = period
        self.average = average
    }
}

/// A stored VN_AQI value.
public struct StoredAQI: Sendable, Hashable {
    public let period: String
    public let end: Int64
    public let aqi: Int?
    public let dominant: String?
    /// `PM2.5=110,O3=45`.
    public let subIndices: String

    public init(period: String, end: Int64, aqi: Int?, dominant: String?, subIndices: String) {
        self.period = period
        self.end = end
        self.aqi = aqi
        self.dominant = dominant
        self.subIndices = subIndices
    }
}

/// A late correction: the channel's records in `(from, to]` are excluded from averages.
public struct Correction: Sendable, Hashable {
    public let channel: String
    public let from: Int64
    public let to: Int64
    public let reason: String

    public init(channel: String, from: Int64, to: Int64, reason: String) {
        self.channel = channel
        self.from = from
        self.to = to
        self.reason = reason
    }
}

extension Store {
    /// Records of a channel with `start < interval_end ≤ end`, oldest first.
    public func records(channel: String, after start: Int64, through end: Int64) async throws -> [ChannelRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT interval_end, value, status, valid_count, sample_count, flag FROM record
                WHERE channel = ? AND interval_end > ? AND interval_end <= ? ORDER BY interval_end
                """, arguments: [channel, start, end]).map {
                ChannelRecord(channel: channel, intervalEnd: $0[0], value: $0[1], status: InstrumentStatus(rawValue: $0[2]) ?? .fault,
                              validCount: $0[3], sampleCount: $0[4], flag: ($0[5] as String?).flatMap(Exclusion.init(rawValue:)))
            }
        }
    }

    /// The channel's newest record before `intervalEnd` that was measuring and passed its checks.
    public func lastGoodRecord(channel: String, before intervalEnd: Int64) async throws -> ChannelRecord? {
        try await records(channel: channel, after: intervalEnd - 86_400, through: intervalEnd - 1)
            .last { $0.status == .measuring && $0.flag == nil }
    }

    /// The channel's last `limit` readings before `time`, oldest first (for the stuck check).
    public func readings(channel: String, before time: Timestamp, limit: Int) async throws -> [Reading] {
        try await pool.read { db in
            let codes = try Self.channelCodes(db)
            guard limit > 0, codes.values.contains(channel) else { return [] }
            var found: [Reading] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT time_ms, data FROM tick WHERE time_ms < ? ORDER BY time_ms DESC, id DESC",
                                           arguments: [time.milliseconds])
            while found.count < limit, let row = try rows.next() {
                found += try Self.decodeTick(row, codes: codes).reversed().filter { $0.channel == channel }.prefix(limit - found.count)
            }
            return found.reversed()
        }
    }

    /// Corrections of a channel overlapping `(start, end]`.
    public func corrections(channel: String, after start: Int64, through end: Int64) async throws -> [Correction] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT from_s, to_s, reason FROM correction WHERE channel = ? AND to_s > ? AND from_s < ?",
                             arguments: [channel, start, end]).map { Correction(channel: channel, from: $0[0], to: $0[1], reason: $0[2]) }
        }
    }

    /// Records a late correction (journaled); the caller recomputes the affected averages.
    public func addCorrection(_ c: Correction, user: String?, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO correction (channel, from_s, to_s, reason, user, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [c.channel, c.from, c.to, c.reason, user, now.milliseconds])
            try Self.journal(db, "averages.correction", "\(c.channel) excluded from \(c.from) to \(c.to): \(c.reason)", user: user, at: now)
        }
    }

    /// Inserts or replaces averages (idempotent by channel, period, end).
    public func upsert(_ averages: [StoredAverage], at now: Timestamp) async throws {
        try await upsert(averages, aqi: [], at: now)
    }

    public func upsert(_ aqi: StoredAQI, at now: Timestamp) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO aqi (period, period_end, aqi, dominant, sub_indices, computed_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [aqi.period, aqi.end, aqi.aqi, aqi.dominant, aqi.subIndices, now.milliseconds])
        }
    }

    /// Averages of `period` with `from < end ≤ to`, oldest first (all channels unless one is given).
    public func averages(period: String, after from: Int64, through to: Int64, channel: String? = nil) async throws -> [StoredAverage] {
        try await pool.read { db in
            var sql = "SELECT channel, period_end, value, valid, valid_count, expected_count, excluded, min, max, exceeds FROM average WHERE period = ? AND period_end > ? AND period_end <= ?"
            var args: [any DatabaseValueConvertible] = [period, from, to]
            if let channel { sql += " AND channel = ?"; args.append(channel) }
            sql += " ORDER BY period_end, channel"
            let length: Int64 = period == "1h" ? 3600 : period == "8h" ? 28_800 : 86_400
            return try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map { row in
                var excluded: [Exclusion: Int] = [:]
                for part in (row[6] as String).split(separator: ",") {
                    let kv = part.split(separator: "=")
                    if kv.count == 2, let e = Exclusion(rawValue: String(kv[0])), let n = Int(kv[1]) { excluded[e] = n }
                }
                let end: Int64 = row[1]
                return StoredAverage(channel: row[0], period: period, average: Average(
                    interval: Interval(start: end - length, end: end), value: row[2], isValid: row[3], validCount: row[4],
                    expectedCount: row[5], excluded: excluded, min: row[7], max: row[8], exceeds: row[9]))
            }
        }
    }

    public func aqi(period: String, after from: Int64, through to: Int64) async throws -> [StoredAQI] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT period_end, aqi, dominant, sub_indices FROM aqi WHERE period = ? AND period_end > ? AND period_end <= ? ORDER BY period_end",
                             arguments: [period, from, to]).map { StoredAQI(period: period, end: $0[0], aqi: $0[1], dominant: $0[2], subIndices: $0[3]) }
        }
    }

    /// Time of the oldest record, to start the first catch-up.
    public func firstRecordEnd() async throws -> Int64? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT MIN(interval_end) FROM record") }
    }

    /// A stored meta value (build marks, averages progress).
    public func meta(_ key: String) async throws -> Int64? {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setMeta(_ key: String, _ value: Int64) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, value])
        }
    }

    /// Commits an average file (product `1h` or `24h`, name `PRODUCT/NAME`) already written to the outbox,
    /// with one pending delivery per target; chained like record files. False when it existed already.
    @discardableResult
    public func commitProductFile(name: String, product: String, periodEnd: Int64, bytes: [UInt8], targets: [String],
                                  now: Timestamp) async throws -> Bool {
        let digest = SHA256.hex(bytes)
        return try await pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO file (name, interval_end, product, size, created_ms, sha256) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [name, periodEnd, product, bytes.count, now.milliseconds, digest])
            guard db.changesCount == 1 else { return false }
            for t in targets { try Self.enqueue(db, file: name, target: t) }
            try AuditChain.append(db, kind: .interval, ref: name, digest: AuditChain.intervalDigest(records: [], fileName: name, fileDigest: digest))
            return true
        }
    }
}
