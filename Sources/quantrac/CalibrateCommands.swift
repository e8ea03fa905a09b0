import ArgumentParser
import Foundation
import QuantracConfig
import QuantracCore
import Storage

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calibration and maintenance windows: readings carry status 01 while one runs (and for the recovery time after).",
        discussion: """
            Takes effect within a second in the running daemon, survives restarts, ends by itself after --duration, \
            and is journaled with your Unix user name.
            """,
        subcommands: [Start.self, Stop.self, List.self])

    struct Which: ParsableArguments {
        @Option(name: .long, help: "Station configuration (TOML).") var config: String
        @Option(name: .long, help: "Channel code, e.g. COD.") var channel: String?
        @Flag(name: .long, help: "The whole station (maintenance).") var station = false

        func target(_ c: StationConfig) throws -> String? {
            switch (channel, station) {
            case (nil, false): throw ValidationError("say which: --channel CODE or --station")
            case (_?, true): throw ValidationError("--channel and --station exclude each other")
            case (let code?, false):
                guard c.channels.contains(where: { $0.code == code }) else {
                    throw ValidationError("no [[channel]] with code \(code) (known: \(c.channels.map(\.code).joined(separator: ", ")))")
                }
                return code
            case (nil, true): return nil
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a calibration (zero/span, probe change …).")
        @OptionGroup var which: Which
        @Option(name: .long, help: "Ends by itself after this long, e.g. 30m, 2h.") var duration: String?
        @Option(name: .long, help: "Why (kept in the journal).") var reason = "calibration"

        func run() async throws {
            let c = try loadConfig(which.config)
            let channel = try which.target(c)
            var d: Duration?
            if let duration {
                guard let parsed = DurationParser.parse(duration), parsed > .zero else { throw ValidationError("--duration \(duration): \(DurationParser.expected)") }
                d = parsed
            }
            do {
                let cal = try await openStore(c).startCalibration(channel: channel, duration: d, reason: reason, user: invokingUser(), at: SystemWallClock().now())
                print("\(channel ?? "station") in calibration" + (cal.untilMs.map { " until \(formatLocal(ms: $0, offset: c.station.utcOffset))" } ?? " until stopped")
                      + "; readings stay 01 for \(c.station.calibrationRecovery.wholeMilliseconds / 1000) s after it ends")
            } catch let e as Store.CalibrationError {
                throw CommandFailure("\(e)")
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a running calibration (the recovery time still applies).")
        @OptionGroup var which: Which

        func run() async throws {
            let c = try loadConfig(which.config)
            let channel = try which.target(c)
            do {
                try await openStore(c).stopCalibration(channel: channel, user: invokingUser(), at: SystemWallClock().now())
            } catch let e as Store.CalibrationError {
                throw CommandFailure("\(e)")
            }
            print("\(channel ?? "station") calibration stopped; readings stay 01 for \(c.station.calibrationRecovery.wholeMilliseconds / 1000) s")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Recent calibration windows, running ones marked.")
        @Option(name: .long, help: "Station configuration (TOML).") var config: String
        @Flag(name: .long, help: "Print JSON.") var json = false

        func run() async throws {
            let c = try loadConfig(config)
            let store = try openStore(c, readOnly: true)
            let now = SystemWallClock().now()
            let all = try await store.recentCalibrations()
            if json { return try printJSON(all) }
            let offset = c.station.utcOffset
            printTable([["WHAT", "STATE", "START", "END", "USER", "REASON"]] + all.map { cal in
                let state = cal.endMs.map { now.milliseconds < $0 ? "running" : now.milliseconds < $0 + c.station.calibrationRecovery.wholeMilliseconds ? "recovering" : "ended" } ?? "running"
                return [cal.channel ?? "station", state, formatLocal(ms: cal.startMs, offset: offset), formatLocal(ms: cal.endMs, offset: offset),
                        cal.user ?? "-", cal.reason]
            })
        }
    }
}
