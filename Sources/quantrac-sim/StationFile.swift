import Foundation

/// A station file edited line by line, so the copy the daemon uses keeps every comment and key of the
/// original: only the keys set here change (`port` and `device` of a `[[bus]]`, `data_dir` of
/// `[station]`). Handles the `key = value` layout of station files, not every TOML construct.
struct StationFile {
    private struct Block {
        /// The header line (`[station]`, `[[bus]]` …), nil for the lines before the first header.
        var header: String?
        var lines: [String]
    }

    private var blocks: [Block] = [Block(header: nil, lines: [])]

    init(_ text: String) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if Self.tableName(of: line) != nil {
                blocks.append(Block(header: line, lines: []))
            } else {
                blocks[blocks.count - 1].lines.append(line)
            }
        }
    }

    var text: String {
        blocks.flatMap { ($0.header.map { [$0] } ?? []) + $0.lines }.joined(separator: "\n")
    }

    /// `station` for `[station]`, `bus` for `[[bus]]`; nil for other lines.
    static func tableName(of line: String) -> String? {
        var t = line.trimmingCharacters(in: .whitespaces)
        if let hash = t.firstIndex(of: "#") { t = t[..<hash].trimmingCharacters(in: .whitespaces) }
        guard t.hasPrefix("["), t.hasSuffix("]") else { return nil }
        return t.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
    }

    /// The key of a `key = value` line (nil for comments and other lines).
    static func key(of line: String) -> String? {
        let t = line.trimmingCharacters(in: .whitespaces)
        guard !t.hasPrefix("#"), let eq = t.firstIndex(of: "=") else { return nil }
        return t[..<eq].trimmingCharacters(in: .whitespaces)
    }

    /// The string value of `key` in a block (`name = "rs485"` → `rs485`).
    private static func string(_ key: String, in block: Block) -> String? {
        guard let line = block.lines.first(where: { Self.key(of: $0) == key }), let eq = line.firstIndex(of: "=") else { return nil }
        let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard value.hasPrefix("\""), let close = value.dropFirst().firstIndex(of: "\"") else { return nil }
        return String(value[value.index(after: value.startIndex)..<close])
    }

    /// Sets `key` to the raw TOML `value` in the `[station]` table.
    mutating func setStation(_ key: String, _ value: String) {
        for i in blocks.indices where blocks[i].header.flatMap(Self.tableName) == "station" { Self.set(key, value, in: &blocks[i]) }
    }

    /// Sets `key` to the raw TOML `value` in the `[[bus]]` named `bus`.
    mutating func setBus(_ bus: String, _ key: String, _ value: String) {
        for i in blocks.indices where blocks[i].header.flatMap(Self.tableName) == "bus" && Self.string("name", in: blocks[i]) == bus {
            Self.set(key, value, in: &blocks[i])
        }
    }

    private static func set(_ key: String, _ value: String, in block: inout Block) {
        let line = "\(key) = \(value)"
        if let j = block.lines.firstIndex(where: { Self.key(of: $0) == key }) {
            block.lines[j] = line + "    # set by quantrac-sim"
        } else {
            block.lines.insert(line + "    # set by quantrac-sim", at: 0)
        }
    }

    /// A TOML basic string.
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
