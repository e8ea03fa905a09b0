import QuantracConfig
import QuantracCore

/// The generic request/response ("line") protocol: a fixed request, an answer line ended by a
/// terminator, an optional two-hex-digit checksum at the end of the line, and a regular expression that
/// picks the value (and optionally a status text) out of the line.
public enum LineFraming {
    /// The checksum of `bytes`: XOR (`xor8`) or sum modulo 256 (`sum8`); 0 for `none`.
    public static func checksum<C: Collection>(_ kind: LineChecksum, of bytes: C) -> UInt8 where C.Element == UInt8 {
        switch kind {
        case .none: return 0
        case .xor8: return bytes.reduce(0, ^)
        case .sum8: return bytes.reduce(0, &+)
        }
    }

    /// Why an answer line was refused.
    public enum LineError: Error, Sendable, Hashable, CustomStringConvertible {
        case badChecksum(got: String, expected: UInt8)

        public var description: String {
            switch self {
            case .badChecksum(let got, let expected): return "bad checksum (got \(got), expected \(hex2String(expected)))"
            }
        }
    }

    /// The end of the first answer line in `buffer`: the line (without terminator) once a terminator has
    /// arrived, `consumed` bytes from the start. CR and LF bytes at the start of a line are dropped (the LF
    /// of a CR LF when the terminator is CR, a blank line an analyzer sends first); a line that is empty
    /// then is for the caller to skip.
    public static func firstLine(in buffer: [UInt8], terminator: [UInt8]) -> (line: [UInt8], consumed: Int)? {
        guard !terminator.isEmpty, buffer.count >= terminator.count else { return nil }
        var i = 0
        while i + terminator.count <= buffer.count {
            if buffer[i] == terminator[0], Array(buffer[i..<(i + terminator.count)]) == terminator {
                return (Array(buffer[..<i].drop { $0 == 0x0D || $0 == 0x0A }), i + terminator.count)
            }
            i += 1
        }
        return nil
    }

    /// Checks and removes the checksum: with `xor8`/`sum8` the line ends with two hex digits (either
    /// case) computed over every byte of the line before them.
    public static func verify(_ line: [UInt8], checksum kind: LineChecksum) -> Result<[UInt8], LineError> {
        guard kind != .none else { return .success(line) }
        guard line.count >= 2 else { return .failure(.badChecksum(got: printable(line), expected: checksum(kind, of: [UInt8]()))) }
        let body = line.dropLast(2), digits = line.suffix(2)
        let expected = checksum(kind, of: body)
        guard digits.allSatisfy(isHexDigit), let got = UInt8(String(decoding: digits, as: UTF8.self), radix: 16), got == expected else {
            return .failure(.badChecksum(got: printable(digits), expected: expected))
        }
        return .success(Array(body))
    }

    /// The line as text, one character per byte (ISO 8859-1), so any byte can be matched and nothing is lost.
    public static func text(_ line: [UInt8]) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: line.map { Unicode.Scalar($0) })
        return String(scalars)
    }

    /// A number as analyzers print it: optional sign (`+12.5`), optional exponent, surrounding spaces.
    public static func number(_ text: Substring) -> Double? {
        var t = text.drop { $0 == " " }
        while t.last == " " { t = t.dropLast() }
        if t.first == "+" { t = t.dropFirst() }
        guard let v = Double(t), v.isFinite else { return nil }
        return v
    }
}

/// The compiled reader of one line-protocol channel. Holds a `Regex`, which is not `Sendable`: built
/// and used on the bus lane thread only.
final class LineMatcher {
    let regex: Regex<AnyRegexOutput>
    let statusMap: [String: InstrumentStatus]

    init(pattern: String, statusMap: [String: InstrumentStatus]) throws {
        regex = try Regex(pattern)
        self.statusMap = statusMap
    }

    /// The raw value and status in `line` (already stripped of terminator and checksum), or why not.
    func read(_ line: String) -> (value: Double?, status: InstrumentStatus, reason: String?) {
        guard let match = try? regex.firstMatch(in: line) else {
            return (nil, .fault, "answer does not match response: \"\(printable(line.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }))\"")
        }
        guard let text = match.output["value"]?.substring else {
            return (nil, .fault, "answer has no value: \"\(printable(line.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }))\"")
        }
        guard let value = LineFraming.number(text) else {
            return (nil, .fault, "value \"\(text)\" is not a number")
        }
        guard let statusText = match.output["status"]?.substring else { return (value, .measuring, nil) }
        let key = String(statusText)
        guard let status = statusMap[key] ?? statusMap[key.trimmingSpaces] else {
            return (value, .fault, "status \"\(key)\" is not in status_map")
        }
        return (value, status, status == .fault ? "analyzer reports fault (status \"\(key)\")" : nil)
    }
}

private extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
