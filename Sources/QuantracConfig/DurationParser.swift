/// Parses the configuration's duration strings: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1d"`.
public enum DurationParser {
    /// The duration, or nil when the text is not `<whole number><ms|s|m|h|d>`.
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, ms) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(number),
                  n <= Int64.max / ms / 1_000_000 else { return nil }
            return .milliseconds(n * ms)
        }
        return nil
    }

    public static let expected = "a duration like \"500ms\", \"10s\", \"5m\", \"1h\" or \"1d\""
}
