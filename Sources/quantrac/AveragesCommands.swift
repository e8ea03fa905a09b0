import ArgumentParser
import Foundation
import QuantracConfig
import QuantracCore
import QuantracRuntime
import Processing
import Reporting
import Storage

struct Averages: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Hourly, 8-hour and daily averages and the VN_AQI, from the stored records.",
        subcommands: [List.self, Recompute.self, Exclude.self, AQI.self])

    struct Range: ParsableArguments {
        @Option(name: .long, help: "Station configuration (TOML).") var config: String
        @Option(name: .long, help: "From (local time, exclusive): 2026-03-15, \"2026-03-15 10:00\".") var from: String
        @Option(name: .long, help: "To (local time, inclusive; a date alone means the end of that day).") var to: String

        func bounds(_ c: StationConfig) throws -> (Int64, Int64) {
            guard let f = parseLocalTime(from, offset: c.station.utcOffset) else { throw ValidationError("--from \(from): not a local time like 2026-03-15 10:00") }
            guard let t = parseLocalTime(to, offset: c.station.utcOffset) else { throw ValidationError("--to \(to): not a local time like 2026-03-15 10:00") }
            let end = to.filter(\.isNumber).count == 8 ? t + 86_400 : t
            guard f < end else { throw ValidationError("--from must be before --to") }
            return (f, end)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print stored averages with their validity and exclusion counts.")
        @OptionGroup var range: Range
        @Option(name: .long, help: "1h, 8h or 24h.") var period = "1h"
        @Option(name: .long, help: "Only this channel code.") var channel: String?
        @Flag(name: .long, help: "Print JSON.") var json = false

        struct Row: Encodable {
            let channel: String; let period: String; let end: String; let value: Double?; let valid: Bool
            let validCount: Int; let expected: Int; let excluded: [String: Int]; let min: Double?; let max: Double?; let exceeds: Bool
        }

        func run() async throws {
            let c = try loadConfig(range.config)
            guard ["1h", "8h", "24h"].contains(period) else { throw ValidationError("--period must be 1h, 8h or 24h") }
            let (f, t) = try range.bounds(c)
            let rows = try await openStore(c, readOnly: true).averages(period: period, after: f, through: t, channel: channel).map { s in
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
        static let configuration = CommandConfiguration(abstract: "Print the hourly or daily VN_AQI (ambient-air stations).")
        @OptionGroup var range: Range
        @Option(name: .long, help: "1h or 24h.") var period = "1h"

        func run() async throws {
            let c = try loadConfig(range.config)
            let (f, t) = try range.bounds(c)
            let rows = try await openStore(c, readOnly: true).aqi(period: period, after: f, through: t)
            printTable([["END", "AQI", "CATEGORY", "DOMINANT", "SUB-INDICES"]] + rows.map { r in
                [formatLocal(ms: r.end * 1000, offset: c.station.utcOffset), r.aqi.map(String.init) ?? "-",
                 r.aqi.map { Processing.VNAQI.Category(aqi: $0).english } ?? "no PM data", r.dominant ?? "-", r.subIndices]
            })
        }
    }
}
