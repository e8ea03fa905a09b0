import QuantracCore

/// The compact on-disk form of one poll tick: every reading of one time in one BLOB of the `tick` table
/// (schema v5), instead of one row per reading.
///
/// A row per reading cost a B-tree cell, a copy of the channel code and an index entry each; a 64-channel
/// station at 1 Hz wrote about 5 KiB a second into the WAL for that (see BENCHMARKS.md, footprint). The
/// blob holds, per reading, in poll order:
///
/// - one flag byte: bits 0–1 the status (0 measuring, 1 calibrating, 2 fault), bit 2 a value follows,
///   bit 3 a reason follows;
/// - the channel's key (`channel_key.id`) as an unsigned LEB128 varint;
/// - the value as 8 bytes, IEEE 754 binary64, little-endian (when bit 2 is set);
/// - the reason as a varint byte length and its UTF-8 bytes (when bit 3 is set).
///
/// A measuring reading takes 10 bytes for the first 128 channel keys. Pure value code: no I/O.
enum ReadingBlob {
    struct DecodeError: Error, CustomStringConvertible {
        let offset: Int
        var description: String { "corrupt reading blob at byte \(offset)" }
    }

    private static let hasValue: UInt8 = 0b0100
    private static let hasReason: UInt8 = 0b1000

    /// Encodes `readings` (all of one time) with `key` giving each channel code's key.
    static func encode(_ readings: [Reading], key: (String) -> Int64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(readings.count * 10)
        for r in readings {
            var flags = UInt8(truncatingIfNeeded: r.status.rawValue) & 0b11
            if r.value != nil { flags |= hasValue }
            let reason = r.reason.map { Array($0.utf8) }
            if reason != nil { flags |= hasReason }
            out.append(flags)
            appendVarint(UInt64(bitPattern: key(r.channel)), to: &out)
            if let v = r.value {
                var bits = v.bitPattern.littleEndian
                withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
            }
            if let reason {
                appendVarint(UInt64(reason.count), to: &out)
                out.append(contentsOf: reason)
            }
        }
        return out
    }

    /// Decodes a blob written by `encode`; `code` names each channel key (nil: an unknown key, skipped).
    static func decode(_ bytes: [UInt8], time: Timestamp, code: (Int64) -> String?) throws(DecodeError) -> [Reading] {
        var readings: [Reading] = []
        var i = 0
        while i < bytes.count {
            let flags = bytes[i]
            i += 1
            let key = try readVarint(bytes, at: &i)
            var value: Double?
            if flags & hasValue != 0 {
                guard i + 8 <= bytes.count else { throw DecodeError(offset: i) }
                var bits: UInt64 = 0
                for b in 0..<8 { bits |= UInt64(bytes[i + b]) << (8 * UInt64(b)) }
                value = Double(bitPattern: bits)
                i += 8
            }
            var reason: String?
            if flags & hasReason != 0 {
                let length = Int(clamping: try readVarint(bytes, at: &i))
                guard length <= bytes.count - i else { throw DecodeError(offset: i) }
                reason = String(decoding: bytes[i..<(i + length)], as: UTF8.self)
                i += length
            }
            guard let status = InstrumentStatus(rawValue: Int(flags & 0b11)) else { throw DecodeError(offset: i) }
            if let channel = code(Int64(bitPattern: key)) {
                readings.append(Reading(channel: channel, time: time, value: value, status: status, reason: reason))
            }
        }
        return readings
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func readVarint(_ bytes: [UInt8], at i: inout Int) throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard i < bytes.count, shift < 64 else { throw DecodeError(offset: i) }
            let b = bytes[i]
            i += 1
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }
}
