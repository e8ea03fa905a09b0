import Foundation
import GRDB
import QuantracCore

/// The SHA-256 hash chain over committed intervals (records + file bytes) and journal entries.
///
/// Entry n stores `digest` (of its content) and `link = SHA256(link(n-1) ‖ n ‖ kind ‖ ref ‖ digest)`.
/// An edit to a record, a file, a journal row or the chain itself breaks the first affected link.
public enum AuditChain {
    public enum Kind: String, Sendable { case interval, journal }

    static let genesis = String(repeating: "0", count: 64)

    static func link(previous: String, seq: Int64, kind: Kind, ref: String, digest: String) -> String {
        SHA256.hex("\(previous)\n\(seq)\n\(kind.rawValue)\n\(ref)\n\(digest)")
    }

    /// Digest of an interval: its records (any order; sorted by channel) and its file's name and bytes.
    public static func intervalDigest(records: [ChannelRecord], fileName: String, fileDigest: String) -> String {
        var text = ""
        for r in records.sorted(by: { $0.channel < $1.channel }) {
            text += "\(r.channel)\t\(String(r.value.bitPattern, radix: 16))\t\(r.status.rawValue)\t\(r.validCount)\t\(r.sampleCount)"
                + (r.flag.map { "\t\($0.rawValue)" } ?? "") + "\n"
        }
        text += "file\t\(fileName)\t\(fileDigest)\n"
        return SHA256.hex(text)
    }

    static func journalDigest(id: Int64, timeMs: Int64, kind: String, detail: String, user: String?) -> String {
        SHA256.hex("\(id)\t\(timeMs)\t\(kind)\t\(detail)\t\(user ?? "")")
    }

    /// Appends one entry inside the caller's transaction.
    static func append(_ db: Database, kind: Kind, ref: String, digest: String) throws {
        let last = try Row.fetchOne(db, sql: "SELECT seq, link FROM chain ORDER BY seq DESC LIMIT 1")
        let seq: Int64 = (last?[0] ?? 0) + 1
        let previous: String = last?[1] ?? genesis
        try db.execute(sql: "INSERT INTO chain (seq, kind, ref, digest, link) VALUES (?, ?, ?, ?, ?)",
                       arguments: [seq, kind.rawValue, ref, digest, link(previous: previous, seq: seq, kind: kind, ref: ref, digest: digest)])
    }
}

/// The outcome of `Store.verifyAuditChain`.
public struct AuditReport: Sendable {
    public var links = 0
    public var intervals = 0
    public var journalEntries = 0
    /// Intervals whose records or sent files were removed by retention: only their links are checked.
    /// Intervals whose records or sent file were removed by retention: what is left of them is checked.
    public var pruned = 0
    /// The first broken link, described for a person; nil when the chain is intact.
    public var firstBreak: String?
}
