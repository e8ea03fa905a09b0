import Foundation
import GRDB
import QuantracCore

/// Reads and writes for computing many averages at once (catch-up after a stop, `quantrac averages
/// recompute`): one range scan and one transaction per batch instead of one query per channel and hour.
extension Store {
    /// Records of every channel with `start < interval_end ≤ end`, by interval then channel (a range scan of
    /// the record table's primary key).
    public func records(after start: Int64, through end: Int64) async throws -> [ChannelRecord] {
        try await pool.read { db in
            var out: [ChannelRecord] = []
            let rows = try Row.fetchCursor(db, sql: """
                SELECT interval_end, channel, value, status, valid_count, sample_count, flag FROM record
                WHERE interval_end > ? AND interval_end <= ? ORDER BY interval_end, channel
                """, arguments: [start, end])
            while let row = try rows.next() {
                let flag: String? = row[6]
                out.append(ChannelRecord(channel: row[1], intervalEnd: row[0], value: row[2],
                                         status: InstrumentStatus(rawValue: row[3]) ?? .fault, validCount: row[4], sampleCount: row[5],
                                         flag: flag.flatMap(Exclusion.init(rawValue:))))
            }
            return out
        }
    }

    /// Corrections of every channel overlapping `(start, end]`.
    public func corrections(after start: Int64, through end: Int64) async throws -> [Correction] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT channel, from_s, to_s, reason FROM correction WHERE to_s > ? AND from_s < ? ORDER BY id",
                             arguments: [start, end]).map { Correction(channel: $0[0], from: $0[1], to: $0[2], reason: $0[3]) }
        }
    }

    /// Inserts or replaces averages (by channel, period and end) and VN_AQI values (by period and end), all in
    /// one transaction.
    public func upsert(_ averages: [StoredAverage], aqi: [StoredAQI], at now: Timestamp) async throws {
        guard !averages.isEmpty || !aqi.isEmpty else { return }
        try await pool.write { db in
            let average = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO average (channel, period, period_end, value, valid, valid_count, expected_count, excluded, min, max, exceeds, computed_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for s in averages {
                let a = s.average
                try average.execute(arguments: [s.channel, s.period, a.interval.end, a.value, a.isValid, a.validCount, a.expectedCount,
                                                Self.excludedText(a.excluded), a.min, a.max, a.exceeds, now.milliseconds])
            }
            let index = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO aqi (period, period_end, aqi, dominant, sub_indices, computed_ms) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for v in aqi {
                try index.execute(arguments: [v.period, v.end, v.aqi, v.dominant, v.subIndices, now.milliseconds])
            }
        }
    }

    static let exclusionOrder = Exclusion.allCases.sorted()

    /// `calibrating=4,missing=1`: the exclusion counts in reason order, as stored.
    static func excludedText(_ excluded: [Exclusion: Int]) -> String {
        guard !excluded.isEmpty else { return "" }
        var text = ""
        for reason in exclusionOrder {
            guard let n = excluded[reason] else { continue }
            if !text.isEmpty { text += "," }
            text += reason.rawValue + "=" + String(n)
        }
        return text
    }
}
