import Foundation
import GRDB
import QuantracCore

/// A calibration or maintenance window: one channel, or the whole station when `channel` is nil.
public struct Calibration: Sendable, Hashable, Codable {
    public let id: Int64
    public let channel: String?
    public let startMs: Int64
    /// Planned end (from `--duration`); nil: until stopped.
    public let untilMs: Int64?
    public let reason: String
    public let user: String?
    public let stoppedMs: Int64?

    /// When the window ends (stopped or planned); nil while open-ended and running.
    public var endMs: Int64? {
        switch (untilMs, stoppedMs) {
        case let (u?, s?): return min(u, s)
        case let (u?, nil): return u
        case let (nil, s?): return s
        default: return nil
        }
    }

    /// Active at `t`, or ended less than `recovery` before it (analyzers need time to settle).
    public func covers(_ t: Timestamp, recovery: Duration) -> Bool {
        guard t.milliseconds >= startMs else { return false }
        guard let end = endMs else { return true }
        return t.milliseconds < end + recovery.wholeMilliseconds
    }

    public func applies(to channel: String) -> Bool { self.channel == nil || self.channel == channel }
}

extension Store {
    public enum CalibrationError: Error, CustomStringConvertible {
        case alreadyActive(String)
        case notActive(String)
        public var description: String {
            switch self {
            case .alreadyActive(let what): return "\(what) is already in calibration; stop it first or let it end"
            case .notActive(let what): return "\(what) is not in calibration"
            }
        }
    }

    static func what(_ channel: String?) -> String { channel.map { "channel \($0)" } ?? "the station" }

    /// Starts a calibration window (journaled with the user). Refused while one is running for the same target.
    @discardableResult
    public func startCalibration(channel: String?, duration: Duration?, reason: String, user: String?, at now: Timestamp) async throws -> Calibration {
        try await pool.write { db in
            let running = try Self.calibrations(db, activeAt: now).contains { $0.channel == channel }
            if running { throw CalibrationError.alreadyActive(Self.what(channel)) }
            let until = duration.map { now.milliseconds + $0.wholeMilliseconds }
            try db.execute(sql: "INSERT INTO calibration (channel, start_ms, until_ms, reason, user) VALUES (?, ?, ?, ?, ?)",
                           arguments: [channel, now.milliseconds, until, reason, user])
            let id = db.lastInsertedRowID
            try Self.journal(db, "calibration.start", "\(Self.what(channel))\(duration.map { " for \($0.wholeMilliseconds / 60_000) min" } ?? ""): \(reason)",
                             user: user, at: now)
            return Calibration(id: id, channel: channel, startMs: now.milliseconds, untilMs: until, reason: reason, user: user, stoppedMs: nil)
        }
    }

    /// Ends the running calibration of a channel (or the station). Journaled.
    public func stopCalibration(channel: String?, user: String?, at now: Timestamp) async throws {
        try await pool.write { db in
            guard let c = try Self.calibrations(db, activeAt: now).first(where: { $0.channel == channel }) else {
                throw CalibrationError.notActive(Self.what(channel))
            }
            try db.execute(sql: "UPDATE calibration SET stopped_ms = ?, stopped_by = ? WHERE id = ?", arguments: [now.milliseconds, user, c.id])
            try Self.journal(db, "calibration.stop", "\(Self.what(channel)) (started \(c.startMs) ms)", user: user, at: now)
        }
    }

    /// Windows that are running at `now` or ended within `recovery` before it.
    public func calibrations(coveringFrom now: Timestamp, recovery: Duration) async throws -> [Calibration] {
        try await pool.read { db in
            // Calibrations are a handful a day: the newest few hundred always contain every one still in effect.
            try Self.all(db, sql: "SELECT * FROM calibration WHERE start_ms <= ? ORDER BY id DESC LIMIT 500", [now.milliseconds])
                .filter { $0.covers(now, recovery: recovery) }
        }
    }

    /// The most recent windows (running first), for `quantrac calibrate list`.
    public func recentCalibrations(limit: Int = 20) async throws -> [Calibration] {
        try await pool.read { db in try Self.all(db, sql: "SELECT * FROM calibration ORDER BY id DESC LIMIT ?", [limit]) }
    }

    static func calibrations(_ db: Database, activeAt now: Timestamp) throws -> [Calibration] {
        try all(db, sql: "SELECT * FROM calibration WHERE start_ms <= ?", [now.milliseconds]).filter { c in
            c.endMs.map { now.milliseconds < $0 } ?? true
        }
    }

    static func all(_ db: Database, sql: String, _ args: [any DatabaseValueConvertible]) throws -> [Calibration] {
        try Row.fetchAll(db, sql: sql, arguments: StatementArguments(args)).map {
            Calibration(id: $0["id"], channel: $0["channel"], startMs: $0["start_ms"], untilMs: $0["until_ms"], reason: $0["reason"],
                        user: $0["user"], stoppedMs: $0["stopped_ms"])
        }
    }
}
