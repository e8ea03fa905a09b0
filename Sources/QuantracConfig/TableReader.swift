import TOMLKit

/// Reads one TOML table, remembering which keys were used so unknown keys become errors, and
/// collecting problems with their key paths instead of stopping at the first.
final class TableReader {
    let table: TOMLTable
    let path: String
    private var used: Set<String> = []
    private let issues: IssueCollector

    init(_ table: TOMLTable, path: String, issues: IssueCollector) {
        self.table = table
        self.path = path
        self.issues = issues
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ message: String) { issues.add(keyPath(key), message) }

    func has(_ key: String) -> Bool { table.contains(key: key) }

    /// Marks a key as known without reading it as a scalar (sub-tables, arrays of tables).
    func markUsed(_ key: String) { used.insert(key) }

    private func value(_ key: String) -> (any TOMLValueConvertible)? {
        used.insert(key)
        return table[key]
    }

    private func typeName(_ v: any TOMLValueConvertible) -> String {
        switch v.type {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a number"
        case .bool: return "a boolean"
        case .table: return "a table"
        case .array: return "an array"
        default: return "a date/time"
        }
    }

    func string(_ key: String, required: Bool = false, default def: String? = nil) -> String? {
        guard let v = value(key) else {
            if required { error(key, "missing; add \(key) = \"...\"") }
            return def
        }
        guard let s = v.string else {
            error(key, "must be a string, found \(typeName(v))")
            return def
        }
        return s
    }

    func int(_ key: String, required: Bool = false, default def: Int? = nil, range: ClosedRange<Int>? = nil) -> Int? {
        guard let v = value(key) else {
            if required { error(key, "missing; add \(key) = <integer>") }
            return def
        }
        guard let i = v.int else {
            error(key, "must be an integer, found \(typeName(v))")
            return def
        }
        if let range, !range.contains(i) {
            error(key, "\(i) is out of range \(range.lowerBound) to \(range.upperBound)")
            return def
        }
        return i
    }

    func double(_ key: String, default def: Double) -> Double {
        guard let v = value(key) else { return def }
        if let d = v.double, d.isFinite { return d }
        if let i = v.int { return Double(i) }
        error(key, "must be a finite number, found \(typeName(v))")
        return def
    }

    func bool(_ key: String, default def: Bool) -> Bool {
        guard let v = value(key) else { return def }
        guard let b = v.bool else {
            error(key, "must be true or false, found \(typeName(v))")
            return def
        }
        return b
    }

    /// A finite number, or nil when the key is absent.
    func optionalDouble(_ key: String) -> Double? {
        guard has(key) else { return nil }
        let d = double(key, default: .nan)
        return d.isNaN ? nil : d
    }

    /// A string that must be one of an enum's raw values.
    func choice<E: RawRepresentable & CaseIterable>(_ key: String, required: Bool = false, default def: E? = nil,
                                                    caseInsensitive: Bool = false) -> E? where E.RawValue == String {
        guard let raw = string(key, required: required) else { return def }
        let match = E.allCases.first { caseInsensitive ? $0.rawValue.lowercased() == raw.lowercased() : $0.rawValue == raw }
        if let match { return match }
        error(key, "\"\(raw)\" is not one of \(E.allCases.map(\.rawValue).joined(separator: ", "))")
        return def
    }

    func duration(_ key: String, default def: Duration, allowZero: Bool = false) -> Duration {
        guard let raw = string(key) else { return def }
        guard let d = DurationParser.parse(raw) else {
            error(key, "\"\(raw)\" is not \(DurationParser.expected)")
            return def
        }
        guard d > .zero || (allowZero && d == .zero) else {
            error(key, "must be longer than 0")
            return def
        }
        return d
    }

    /// Reports every key of the table that no reader asked for.
    func rejectUnknownKeys() {
        for key in table.keys where !used.contains(key) {
            issues.add(keyPath(key), "unknown key")
        }
    }
}

final class IssueCollector {
    private(set) var issues: [ConfigIssue] = []
    func add(_ path: String, _ message: String) { issues.append(ConfigIssue(path: path, message: message)) }
}
