/// A fixed offset from UTC (Vietnam: `+07:00`, no daylight saving).
public struct UTCOffset: Sendable, Hashable, CustomStringConvertible {
    public let seconds: Int

    public init(seconds: Int) { self.seconds = seconds }

    /// Parses `+07:00`, `-03:30`, `+0700` or `Z`; nil when malformed or beyond ±14:00.
    public init?(parsing text: String) {
        if text == "Z" || text == "z" { self.seconds = 0; return }
        let chars = Array(text)
        guard chars.count == 6 || chars.count == 5, chars[0] == "+" || chars[0] == "-" else { return nil }
        let digits = chars.dropFirst().filter { $0 != ":" }
        guard digits.count == 4, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        if chars.count == 6, chars[3] != ":" { return nil }
        let h = Int(String(digits.prefix(2)))!, m = Int(String(digits.suffix(2)))!
        guard h <= 14, m < 60 else { return nil }
        self.seconds = (chars[0] == "-" ? -1 : 1) * (h * 3600 + m * 60)
    }

    public var description: String {
        let a = abs(seconds)
        let h = a / 3600, m = (a % 3600) / 60
        return "\(seconds < 0 ? "-" : "+")\(h < 10 ? "0" : "")\(h):\(m < 10 ? "0" : "")\(m)"
    }
}

/// Civil (calendar) date and time at a fixed offset, computed without time-zone databases.
public struct CivilTime: Sendable, Hashable {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

    /// The local civil time of `epochSeconds` at `offset`.
    public init(epochSeconds: Int64, offset: UTCOffset) {
        let local = epochSeconds + Int64(offset.seconds)
        var days = local / 86_400
        var secs = local % 86_400
        if secs < 0 { secs += 86_400; days -= 1 }
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = Int(yoe + era * 400 + (m <= 2 ? 1 : 0))
        month = Int(m)
        day = Int(d)
        hour = Int(secs / 3600)
        minute = Int((secs % 3600) / 60)
        second = Int(secs % 60)
    }

    /// Epoch seconds of a local civil time at `offset` (inverse of `init(epochSeconds:offset:)`).
    public static func epochSeconds(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0,
                                    offset: UTCOffset) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mm = Int64(month)
        let doy = (153 * (mm > 2 ? mm - 3 : mm + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset.seconds)
    }

    /// `yyyyMMddHHmmss`, the 14-digit stamp of the regulator files.
    public var compactStamp: String {
        pad(year, 4) + pad(month, 2) + pad(day, 2) + pad(hour, 2) + pad(minute, 2) + pad(second, 2)
    }

    /// `yyyy-MM-dd HH:mm:ss` for people.
    public var readable: String {
        "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))"
    }

    private func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
