import ArgumentParser
import Foundation
import QuantracConfig
import QuantracCore
import Storage
#if canImport(Glibc)
import Glibc
#endif

/// The station database of a configuration, for commands that read or change history.
func openStore(_ config: StationConfig, readOnly: Bool = false) throws -> Store {
    let path = (config.station.dataDir as NSString).appendingPathComponent("quantrac.sqlite")
    guard FileManager.default.fileExists(atPath: path) else {
        throw CommandFailure("no database at \(path) yet: start quantracd with this configuration first")
    }
    return readOnly ? try Store(readOnlyPath: path) : try Store(path: path)
}

/// The Unix user behind a command (the one who ran sudo, if any), for the journal.
func invokingUser() -> String {
    if let sudo = ProcessInfo.processInfo.environment["SUDO_USER"], !sudo.isEmpty { return sudo }
    if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    return "uid \(getuid())"
}

/// Local time at the station's offset: `2026-03-15`, `2026-03-15 10:30`, `2026-03-15T10:30:00`, `20260315103000`.
func parseLocalTime(_ text: String, offset: UTCOffset) -> Int64? {
    let digits = text.filter(\.isNumber)
    let separatorsOK = text.allSatisfy { $0.isNumber || "-: T".contains($0) }
    guard separatorsOK, [8, 12, 14].contains(digits.count) else { return nil }
    func part(_ from: Int, _ len: Int) -> Int { Int(digits.dropFirst(from).prefix(len)) ?? 0 }
    let (y, mo, d) = (part(0, 4), part(4, 2), part(6, 2))
    let (h, mi, s) = digits.count >= 12 ? (part(8, 2), part(10, 2), digits.count == 14 ? part(12, 2) : 0) : (0, 0, 0)
    guard (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 60 else { return nil }
    return CivilTime.epochSeconds(year: y, month: mo, day: d, hour: h, minute: mi, second: s, offset: offset)
}

func formatLocal(ms: Int64?, offset: UTCOffset) -> String {
    guard let ms else { return "-" }
    return CivilTime(epochSeconds: ms / 1000, offset: offset).readable
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Left-aligned columns, two spaces apart.
func printTable(_ rows: [[String]]) {
    guard let width = rows.first?.count else { return }
    let widths = (0..<width).map { col in rows.map { $0[col].count }.max() ?? 0 }
    for row in rows {
        let line = row.enumerated().map { col, cell in col == width - 1 ? cell : cell.padding(toLength: widths[col], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
        print(line.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
    }
}

struct Outbox: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and control the per-target upload queues.",
        subcommands: [List.self, Retry.self, Resend.self, Abandon.self])

    struct Options: ParsableArguments {
        @Option(name: .long, help: "Station configuration (TOML).")
        var config: String
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Per target: pending files, oldest pending, last success, last error.")
        @OptionGroup var options: Options
        @Flag(name: .long, help: "Print JSON.") var json = false

        struct Row: Encodable {
            let target: String
            let pending: Int
            let oldestPending: String?
            let lastSuccess: String?
            let lastError: String?
            let parked: String?
        }

        func run() async throws {
            let c = try loadConfig(options.config)
            let store = try openStore(c, readOnly: true)
            let names = Array(Set(c.targets.map(\.name) + (try await store.knownTargets()))).sorted()
            var rows: [Row] = []
            for name in names {
                let q = try await store.queueState(target: name)
                rows.append(Row(target: name, pending: q.pending, oldestPending: q.oldestPending,
                                lastSuccess: q.lastSentMs.map { formatLocal(ms: $0, offset: c.station.utcOffset) },
                                lastError: q.lastError, parked: try await store.parkedReason(target: name)))
            }
            if json { return try printJSON(rows) }
            printTable([["TARGET", "PENDING", "OLDEST PENDING", "LAST SUCCESS", "LAST ERROR"]] + rows.map {
                [$0.target + ($0.parked != nil ? " (parked)" : ""), String($0.pending), $0.oldestPending ?? "-", $0.lastSuccess ?? "-", $0.lastError ?? "-"]
            })
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Try every queue (or one) now: skips the backoff and resumes a queue parked after a refused login.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "Only this target.") var target: String?

        func run() async throws {
            let c = try loadConfig(options.config)
            let targets = target.map { [$0] } ?? c.targets.map(\.name)
            if let target, !c.targets.contains(where: { $0.name == target }) { throw ValidationError("no [[target]] named \(target)") }
            try await openStore(c).requestRetry(targets: targets, user: invokingUser(), at: SystemWallClock().now())
            print("retry requested for \(targets.joined(separator: ", ")); the daemon picks it up within a second")
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue already-sent files again, byte-identical, for a receiver that lost them.",
            discussion: "Times are local station time: 2026-03-15, \"2026-03-15 10:30\" or 20260315103000; both ends included.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "Target to send to again.") var target: String
        @Option(name: .long, help: "First interval end (local time).") var from: String
        @Option(name: .long, help: "Last interval end (local time).") var to: String

        func run() async throws {
            let c = try loadConfig(options.config)
            guard c.targets.contains(where: { $0.name == target }) else { throw ValidationError("no [[target]] named \(target)") }
            guard let f = parseLocalTime(from, offset: c.station.utcOffset) else { throw ValidationError("--from \(from): not a local time like 2026-03-15 10:30") }
            guard let t = parseLocalTime(to, offset: c.station.utcOffset) else { throw ValidationError("--to \(to): not a local time like 2026-03-15 10:30") }
            // A date alone as --to means the whole day.
            let end = to.filter(\.isNumber).count == 8 ? t + 86_400 : t
            let names = try await openStore(c).resend(target: target, from: f, to: end, user: invokingUser(), at: SystemWallClock().now())
            print("\(names.count) file(s) queued again for \(target)" + (names.isEmpty ? "" : ": \(names.first!) … \(names.last!)"))
        }
    }

    struct Abandon: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take one pending file out of a target's queue without sending it (journaled; the file stays on disk).")
        @OptionGroup var options: Options
        @Argument(help: "File name, e.g. HN_ABCD_NUO001_20260315103500.txt") var file: String
        @Option(name: .long, help: "Target.") var target: String
        @Option(name: .long, help: "Why (kept in the journal).") var reason: String

        func run() async throws {
            let c = try loadConfig(options.config)
            guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--reason must say why") }
            do {
                try await openStore(c).abandon(file: file, target: target, reason: reason, user: invokingUser(), at: SystemWallClock().now())
            } catch let error as Store.AbandonError {
                throw CommandFailure("\(error)")
            }
            print("\(file) abandoned for \(target); journaled")
        }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the audit chain and read the journal.",
                                                    subcommands: [Verify.self, Journal.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the SHA-256 chain over every record, file and journal entry; name the first broken link.")
        @OptionGroup var options: Outbox.Options
        @Flag(name: .long, help: "Print JSON.") var json = false

        struct Result: Encodable { let ok: Bool; let links: Int; let intervals: Int; let journalEntries: Int; let pruned: Int; let firstBreak: String? }

        func run() async throws {
            let c = try loadConfig(options.config)
            let outbox = try OutboxDirectory(dataDir: c.station.dataDir)
            let report = try await openStore(c, readOnly: true).verifyAuditChain { name in try? outbox.read(name: name) }
            let result = Result(ok: report.firstBreak == nil, links: report.links, intervals: report.intervals,
                                journalEntries: report.journalEntries, pruned: report.pruned, firstBreak: report.firstBreak)
            if json { try printJSON(result) } else if let b = report.firstBreak {
                print("BROKEN at \(b)")
            } else {
                print("OK: \(report.links) links (\(report.intervals) intervals, \(report.journalEntries) journal entries, \(report.pruned) pruned by retention)")
            }
            if report.firstBreak != nil { throw ExitCode(2) }
        }
    }

    struct Journal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the newest journal entries.")
        @OptionGroup var options: Outbox.Options
        @Option(name: .long, help: "How many entries.") var last = 50

        func run() async throws {
            let c = try loadConfig(options.config)
            let entries = try await openStore(c, readOnly: true).journalEntries(limit: last)
            printTable([["TIME", "EVENT", "USER", "DETAIL"]] + entries.map {
                [formatLocal(ms: $0.time.milliseconds, offset: c.station.utcOffset), $0.kind, $0.user ?? "-", $0.detail]
            })
        }
    }
}
