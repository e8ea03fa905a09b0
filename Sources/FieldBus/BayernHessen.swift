import QuantracConfig
import QuantracCore

/// The Bayern-Hessen analyzer protocol (also called Gesytec or Geysitech protocol): framing, block
/// check, the `DA` data request and its `MD` answer.
///
/// Frames are `STX text ETX bcc1 bcc2`. The block check is the XOR of every byte from STX to ETX
/// inclusive, sent as two hex digits (most significant first). A data request is `STX "DA" aaa ETX BCC`
/// with the analyzer's three-digit address. The answer is
///
///     STX "MD" cc { SP kkk SP ±mmmm±ee SP ss SP ff [SP extra…] } SP ETX bcc1 bcc2
///
/// with `cc` the number of components (two digits) and, per component: an identifier `kkk`, the value as a
/// four-digit mantissa with an implied decimal point after the first digit and a signed two-digit
/// exponent (`+2578+01` = 25.78, `+4567-02` = 0.04567, `-5384+06` = −5 384 000), the status byte `ss`
/// and the error byte `ff` as two hex digits each, then maker-specific fields (a serial number, a gas
/// id, ten zeros …) that are skipped. Components are found by their value field, so any number of extra
/// fields works. Sources: the Bayern-Hessen appendices of the Ecotech Serinus and Thermo Fisher
/// i-series manuals (framing, BCC, `DA`, `MD` layout and the number format).
public enum BayernHessen {
    public static let stx: UInt8 = 0x02
    public static let etx: UInt8 = 0x03

    /// XOR of `bytes` (the caller passes STX…ETX inclusive).
    public static func blockCheck<C: Collection>(_ bytes: C) -> UInt8 where C.Element == UInt8 {
        bytes.reduce(0, ^)
    }

    /// `STX text ETX` followed by the block check as two uppercase hex digits.
    public static func frame(_ text: String) -> [UInt8] {
        let body = [stx] + Array(text.utf8) + [etx]
        return body + hex2(blockCheck(body))
    }

    /// The data request for the analyzer at `address` (0…999): `STX DA aaa ETX BCC`.
    public static func dataRequest(address: Int) -> [UInt8] {
        frame("DA" + threeDigits(address))
    }

    /// One component of an `MD` answer.
    public struct Component: Sendable, Hashable {
        /// The identifier field as sent (`001`, a gas id …).
        public let id: String
        public let value: Double
        public let status: UInt8
        public let error: UInt8

        public init(id: String, value: Double, status: UInt8, error: UInt8) {
            self.id = id
            self.value = value
            self.status = status
            self.error = error
        }
    }

    /// Why an answer was refused.
    public enum FrameError: Error, Sendable, Hashable, CustomStringConvertible {
        case noFrame
        case badBlockCheck(got: String, expected: UInt8)
        case malformed(String)

        public var description: String {
            switch self {
            case .noFrame: return "no STX…ETX frame in the answer"
            case .badBlockCheck(let got, let expected): return "bad block check (got \(got), expected \(hex2String(expected)))"
            case .malformed(let why): return "malformed MD answer: \(why)"
            }
        }
    }

    /// Where a complete frame sits in `buffer`: the range from STX to the second BCC digit, once the
    /// whole frame has arrived. Bytes before the first STX (noise, an echo) are skipped.
    public static func completeFrame(in buffer: [UInt8]) -> Range<Int>? {
        guard let start = buffer.firstIndex(of: stx), let end = buffer[start...].firstIndex(of: etx), end + 2 < buffer.count else { return nil }
        return start..<(end + 3)
    }

    /// Checks the block check of `frame` (STX … ETX bcc1 bcc2) and returns the text between STX and ETX.
    public static func verify(_ frame: [UInt8]) -> Result<[UInt8], FrameError> {
        guard frame.count >= 4, frame.first == stx, let etxIndex = frame.firstIndex(of: etx), etxIndex + 3 == frame.count else {
            return .failure(.noFrame)
        }
        let expected = blockCheck(frame[...etxIndex])
        let got = Array(frame[(etxIndex + 1)...])
        let gotText = String(decoding: got, as: UTF8.self)
        guard let value = UInt8(gotText, radix: 16), got.allSatisfy(isHexDigit), value == expected else {
            return .failure(.badBlockCheck(got: printable(got), expected: expected))
        }
        return .success(Array(frame[1..<etxIndex]))
    }

    /// Parses the text of an `MD` answer (between STX and ETX).
    public static func parseMD(_ text: [UInt8]) -> Result<[Component], FrameError> {
        let s = String(decoding: text, as: UTF8.self)
        guard s.hasPrefix("MD") else { return .failure(.malformed("does not start with MD")) }
        let tokens = s.dropFirst(2).split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let countToken = tokens.first, let count = Int(countToken), (0...99).contains(count) else {
            return .failure(.malformed("no component count after MD"))
        }
        var components: [Component] = []
        var i = 2  // tokens[0] is the count; a value field needs an identifier before it
        while i < tokens.count {
            guard let value = parseValue(tokens[i]) else { i += 1; continue }
            guard i + 2 < tokens.count, let status = hexByte(tokens[i + 1]), let error = hexByte(tokens[i + 2]) else {
                return .failure(.malformed("component \(components.count + 1) has no status and error byte"))
            }
            components.append(Component(id: tokens[i - 1], value: value, status: status, error: error))
            i += 3
        }
        guard components.count == count else {
            return .failure(.malformed("announces \(count) components, carries \(components.count)"))
        }
        return .success(components)
    }

    /// `±mmmm±ee` → ±m.mmm × 10^±ee; nil for anything else.
    public static func parseValue(_ token: String) -> Double? {
        let b = Array(token.utf8)
        guard b.count == 8, b[0] == UInt8(ascii: "+") || b[0] == UInt8(ascii: "-"),
              b[5] == UInt8(ascii: "+") || b[5] == UInt8(ascii: "-"),
              b[1...4].allSatisfy(isDigit), b[6...7].allSatisfy(isDigit),
              let mantissa = Int(String(decoding: b[1...4], as: UTF8.self)),
              let exponent = Int(String(decoding: b[5...7], as: UTF8.self)) else { return nil }
        // Through the decimal text, so 25.78 is the nearest double to 25.78, not 2578 × 10⁻² rounded twice.
        let sign = b[0] == UInt8(ascii: "-") ? "-" : ""
        return Double("\(sign)\(mantissa)e\(exponent - 3)")
    }

    /// The text `value` is sent as: `±mmmm±ee` (the inverse of `parseValue`, for simulators and tests).
    public static func formatValue(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "+0000+00" }
        var exponent = Int((abs(value)).log10Floor)
        var mantissa = Int((abs(value) / pow10(exponent - 3)).rounded())
        if mantissa >= 10_000 { mantissa /= 10; exponent += 1 }
        exponent = max(-99, min(99, exponent))
        let m = String(mantissa), e = String(abs(exponent))
        return (value < 0 ? "-" : "+") + String(repeating: "0", count: max(0, 4 - m.count)) + m
            + (exponent < 0 ? "-" : "+") + String(repeating: "0", count: max(0, 2 - e.count)) + e
    }

    /// The instrument status of a component under a channel's masks: a fault bit in the status byte or
    /// an error bit wins, then a calibration bit; anything else is measuring.
    public static func status(of c: Component, _ ch: BayernHessenChannel) -> (InstrumentStatus, reason: String?) {
        if c.status & ch.faultMask != 0 {
            return (.fault, "analyzer reports fault (status byte 0x\(hex2String(c.status)))")
        }
        if c.error & ch.errorMask != 0 {
            return (.fault, "analyzer reports error (error byte 0x\(hex2String(c.error)))")
        }
        if c.status & ch.calibrationMask != 0 { return (.calibrating, nil) }
        return (.measuring, nil)
    }

    // MARK: - Helpers

    static func threeDigits(_ n: Int) -> String {
        let s = String(max(0, min(999, n)))
        return String(repeating: "0", count: 3 - s.count) + s
    }

    static func hex2(_ b: UInt8) -> [UInt8] { Array(hex2String(b).utf8) }

    static func hexByte(_ token: String) -> UInt8? {
        token.utf8.count == 2 && token.utf8.allSatisfy(isHexDigit) ? UInt8(token, radix: 16) : nil
    }

    private static func pow10(_ e: Int) -> Double {
        var r = 1.0
        for _ in 0..<abs(e) { r *= 10 }
        return e < 0 ? 1 / r : r
    }
}

/// Two uppercase hex digits.
func hex2String(_ b: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(b >> 4)], digits[Int(b & 0x0F)]])
}

func isHexDigit(_ b: UInt8) -> Bool {
    (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b)
}

func isDigit(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) }

/// Bytes as readable text for fault reasons and logs: printable ASCII as is, the rest as `<STX>`, `<ETX>`,
/// `\r`, `\n` or `\xHH`; at most `limit` bytes, then `…`.
public func printable<C: Collection>(_ bytes: C, limit: Int = 48) -> String where C.Element == UInt8 {
    var out = ""
    for (i, b) in bytes.enumerated() {
        if i == limit { out += "…"; break }
        switch b {
        case 0x02: out += "<STX>"
        case 0x03: out += "<ETX>"
        case 0x0D: out += "\\r"
        case 0x0A: out += "\\n"
        case 0x20...0x7E: out.append(Character(UnicodeScalar(b)))
        default: out += "\\x" + hex2String(b)
        }
    }
    return out
}

private extension Double {
    /// ⌊log10(self)⌋ for positive finite values, exact at powers of ten.
    var log10Floor: Int {
        var e = 0
        var v = self
        while v >= 10 { v /= 10; e += 1 }
        while v < 1 { v *= 10; e -= 1 }
        return e
    }
}
