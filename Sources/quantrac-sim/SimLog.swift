import Foundation

/// The simulator's output: `READY` lines on stdout, one line per event on stderr (fault starts and ends,
/// problems), each prefixed with the UTC time. Safe from any thread (one `write(2)` per line).
enum SimLog {
    /// A line on stdout (the `READY` protocol tests and scripts wait for).
    static func stdout(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// An event on stderr: `2026-11-22T09:00:01.250Z fault start …`.
    static func event(_ message: String) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        FileHandle.standardError.write(Data("\(formatter.string(from: Date())) \(message)\n".utf8))
    }

    /// Milliseconds since 1970, for machine-readable event lines.
    static var unixMilliseconds: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}

/// Random bytes standing for line noise or a confused analyzer.
enum Garbage {
    /// 8 to 24 random bytes.
    static func bytes() -> [UInt8] {
        (0..<Int.random(in: 8...24)).map { _ in UInt8.random(in: 0...255) }
    }
}
