import ArgumentParser
import Foundation
import QuantracConfig
import QuantracCore
import QuantracRuntime
import Processing
import Reporting
import Storage

/// `quantrac averages [list] --hourly|--daily|--period P …`, `recompute`, `exclude`, `aqi`; also `quantrac aqi`.
struct Averages: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hourly, 8-hour and daily averages and the VN_AQI, from the stored records.",
        discussion: "Without a subcommand, lists averages: quantrac averages --hourly|--daily [--from A] [--to B] [--channel C] [--json].",
        subcommands: [List.self, Recompute.self, Exclude.self, AQI.self],
        defaultSubcommand: List.self)

    /// The range `(from, to]` of period ends, in local station time.
    struct Range: ParsableArguments {
        @Option(name: .long, help: "Station configuration (TOML).") var config: String
        @Option(name: .long, help: "From (local time, exclusive): 2026-03-15, \"2026-03-15 10:00\".") var from: String?
        @Option(name: .long, help: "To (local time, inclusive; a date alone means the end of that day).") var to: String?

        /// Both ends, required (commands that change data).
        func bounds(_ c: StationConfig) throws -> (Int64, Int64) {
            guard from != nil, to != nil else { throw ValidationError("--from and --to are required") }
            return try bounds(c, span: 0, latest: nil)
        }

        /// The given ends; a missing `--to` is the newest computed hour (`latest`, else now) and a missing
        /// `--from` is `span` seconds before `--to`.
        func bounds(_ c: StationConfig, span: Int64, latest: Int64?) throws -> (Int64, Int64) {
            let offset = c.station.utcOffset
            var end: Int64
            if let to {
                guard let t = parseLocalTime(to, offset: offset) else { throw ValidationError("--to \(to): not a local time like 2026-03-15 10:00") }
                end = to.filter(\.isNumber).count == 8 ? t + 86_400 : t
            } else {
                end = latest ?? SystemWallClock().now().seconds
            }
            var start = end - span
            if let from {
                guard let f = parseLocalTime(from, offset: offset) else { throw ValidationError("--from \(from): not a local time like 2026-03-15 10:00") }
                start = f
            }
            guard start < end else { throw ValidationError("--from must be before --to") }
            return (start, end)
        }
    }

    /// `--hourly` (default), `--daily`, or `--period 1h|8h|24h`.
    struct Period: ParsableArguments {
        enum Choice: String, EnumerableFlag {
            case hourly, daily
        }
        @Flag(exclusivity: .exclusive, help: "Hourly (1h, the default) or daily (24h, local day 01:00 … 00:00) values.") var choice: Choice?
        @Option(name: .long, help: "1h, 8h or 24h (instead of --hourly/--daily).") var period: String?

        func resolve(allowed: [String]) throws -> String {
            switch (choice, period) {
            case (.some, .some): throw ValidationError("give --hourly/--daily or --period, not both")
            case (.hourly, nil), (nil, nil): return "1h"
            case (.daily, nil): return "24h"
            case (nil, let p?):
                guard allowed.contains(p) else { throw ValidationError("--period must be \(allowed.joined(separator: ", "))") }
                return p
            }
        }
    }

    /// Without `--to`: the end of the newest computed period of `period`; nil before the first.
    static func latestEnd(_ c: StationConfig, store: Store, period: String) async throws -> Int64? {
        guard let done = try await store.meta(AveragesService.doneKey) else { return nil }
        guard period == "24h" else { return done }
        return IntervalGrid(lengthSeconds: 86_400, offset: c.station.utcOffset).interval(containing: Timestamp(seconds: done)).start
    }

    /// The default span without `--from`: a day of hourly values, a week of daily ones.
    static func defaultSpan(_ period: String) -> Int64 { period == "24h" ? 7 * 86_400 : 86_400 }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print stored averages: value, valid/expected records, validity, exclusions, limit exceedance.",
            discussion: "Without --from/--to: the last day of hourly values (a week of daily ones) computed.")
        @OptionGroup var range: Range
        @OptionGroup var period: Period
        @Option(name: .long, help: "Only this channel code.") var channel: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        struct Row: Encodable {
            let channel: String; let period: String; let end: String; let value: Double?; let valid: Bool
            let validCount: Int; let expected: Int; let excluded: [String: Int]; let min: Double?; let max: Double?; let exceeds: Bool
        }

        func run() async throws {
            let c = try loadConfig(range.config)
            let period = try period.resolve(allowed: ["1h", "8h", "24h"])
            if let channel, !c.channels.contains(where: { $0.code == channel }) {
                throw ValidationError("no [[channel]] with code \(channel) (known: \(c.channels.map(\.code).joined(separator: ", ")))")
            }
            let store = try openStore(c, readOnly: true)
            let (f, t) = try range.bounds(c, span: Averages.defaultSpan(period), latest: try await Averages.latestEnd(c, store: store, period: period))
            let rows = try await store.averages(period: period, after: f, through: t, channel: channel).map { s in
                Row(channel: s.channel, period: s.period, end: formatLocal(ms: s.average.interval.end * 1000, offset: c.station.utcOffset),
                    value: s.average.value, valid: s.average.isValid, validCount: s.average.validCount, expected: s.average.expectedCount,
                    excluded: Dictionary(uniqueKeysWithValues: s.average.excluded.map { ($0.key.rawValue, $0.value) }),
                    min: s.average.min, max: s.average.max, exceeds: s.average.exceeds)
            }
            if json { return try printJSON(rows) }
            let decimals = Dictionary(c.channels.map { ($0.code, $0.decimals) }, uniquingKeysWith: { a, _ in a })
            func fmt(_ v: Double?, _ code: String) -> String { v.map { RegulatorFileRenderer.format($0, decimals: decimals[code] ?? 2) } ?? "-" }
            printTable([["END", "CHANNEL", "VALUE", "VALID", "COUNT", "MIN", "MAX", "EXCLUDED", "LIMIT"]] + rows.map { r in
                [r.end, r.channel, fmt(r.value, r.channel), r.valid ? "yes" : "NO", "\(r.validCount)/\(r.expected)", fmt(r.min, r.channel), fmt(r.max, r.channel),
                 r.excluded.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","), r.exceeds ? "EXCEEDED" : ""]
            })
            if rows.isEmpty {
                print("no \(period) averages from \(formatLocal(ms: f * 1000, offset: c.station.utcOffset)) to \(formatLocal(ms: t * 1000, offset: c.station.utcOffset))")
            }
            let exceeded = rows.filter(\.exceeds).count
            if exceeded > 0 { print("\n\(exceeded) average(s) beyond their limit (the logger reports; it does not judge compliance)") }
        }
    }

    struct Recompute: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute every hour and day in a range from the stored records (after a late correction).",
            discussion: "Average files already made are not changed.")
        @OptionGroup var range: Range

        func run() async throws {
            let c = try loadConfig(range.config)
            let (f, t) = try range.bounds(c)
            let store = try openStore(c)
            let now = SystemWallClock().now()
            let (hours, days) = try await AverageCalculator(config: c, store: store).recompute(from: f, to: t, now: now)
            try await store.journal("averages.recompute", "\(hours) hours and \(days) days recomputed from \(f) to \(t)", user: invokingUser(), at: now)
            print("recomputed \(hours) hourly and \(days) daily averages")
        }
    }

    struct Exclude: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Exclude a channel's records in a range from averages (e.g. a calibration entered afterwards), then recompute.",
            discussion: "Nothing is deleted: the records stay, the correction is journaled with your user name.")
        @OptionGroup var range: Range
        @Option(name: .long, help: "Channel code.") var channel: String
        @Option(name: .long, help: "Why (kept in the journal).") var reason: String

        func run() async throws {
            let c = try loadConfig(range.config)
            guard c.channels.contains(where: { $0.code == channel }) else { throw ValidationError("no [[channel]] with code \(channel)") }
            let (f, t) = try range.bounds(c)
            let store = try openStore(c)
            let now = SystemWallClock().now()
            try await store.addCorrection(Correction(channel: channel, from: f, to: t, reason: reason), user: invokingUser(), at: now)
            let (hours, days) = try await AverageCalculator(config: c, store: store).recompute(from: f, to: t, now: now)
            print("\(channel) excluded; recomputed \(hours) hourly and \(days) daily averages")
        }
    }

    struct AQI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the hourly or daily VN_AQI with its sub-indices (ambient-air stations).")
        @OptionGroup var options: AQIOptions

        func run() async throws { try await options.run() }
    }

    /// `quantrac aqi` and `quantrac averages aqi`.
    struct AQIOptions: ParsableArguments {
        @OptionGroup var range: Range
        @OptionGroup var period: Period
        @Flag(name: .long, help: "Print JSON.") var json = false

        struct Row: Encodable {
            let period: String; let end: String; let aqi: Int?; let category: String?; let categoryVi: String?
            let dominant: String?; let subIndices: [String: Int]
        }

        func run() async throws {
            let c = try loadConfig(range.config)
            let period = try period.resolve(allowed: ["1h", "24h"])
            let store = try openStore(c, readOnly: true)
            let (f, t) = try range.bounds(c, span: Averages.defaultSpan(period), latest: try await Averages.latestEnd(c, store: store, period: period))
            let rows = try await store.aqi(period: period, after: f, through: t).map { r in
                let category = r.aqi.map(Processing.VNAQI.Category.init(aqi:))
                var sub: [String: Int] = [:]
                for part in r.subIndices.split(separator: ",") {
                    let kv = part.split(separator: "=")
                    if kv.count == 2, let v = Int(kv[1]) { sub[String(kv[0])] = v }
                }
                return Row(period: period, end: formatLocal(ms: r.end * 1000, offset: c.station.utcOffset), aqi: r.aqi,
                           category: category?.english, categoryVi: category?.rawValue, dominant: r.dominant, subIndices: sub)
            }
            if json { return try printJSON(rows) }
            printTable([["END", "AQI", "CATEGORY", "DOMINANT", "SUB-INDICES"]] + rows.map { r in
                [r.end, r.aqi.map(String.init) ?? "-", r.category ?? "no PM data", r.dominant ?? "-",
                 r.subIndices.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")]
            })
            if rows.isEmpty {
                print("no \(period) AQI from \(formatLocal(ms: f * 1000, offset: c.station.utcOffset)) to \(formatLocal(ms: t * 1000, offset: c.station.utcOffset))"
                      + (c.station.kind == .ambientAir ? "" : " (the VN_AQI is computed at ambient-air stations only)"))
            }
        }
    }
}

/// `quantrac aqi [--hourly|--daily] [--from A] [--to B] [--json]`: the VN_AQI, as `quantrac averages aqi`.
struct AQICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aqi",
        abstract: "Print the hourly or daily VN_AQI with its sub-indices (ambient-air stations).",
        discussion: "Without --from/--to: the last day of hourly values (a week of daily ones) computed.")
    @OptionGroup var options: Averages.AQIOptions

    func run() async throws { try await options.run() }
}
