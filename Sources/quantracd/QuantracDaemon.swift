import ArgumentParser
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracRuntime

/// The Quantrac daemon: polls the analyzers, stores every reading, builds the regulator files and
/// delivers them. Runs until SIGTERM or SIGINT.
@main
struct QuantracDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantracd",
        abstract: "Quantrac station data logger daemon.")

    @Option(name: .long, help: "Station configuration (TOML).")
    var config: String

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(name: .long, help: "Log format: auto (journald under systemd, else plain), plain, journald (<N> priority prefixes).")
    var logFormat: LogFormat = .auto

    // Tests and soak runs only (AcceleratedClock.swift): station time runs N× faster, from an ISO 8601 start.
    @Option(name: .long, help: .hidden) var clockScale: Double?
    @Option(name: .long, help: .hidden) var clockStart: String?

    mutating func run() async throws {
        let level = logLevel
        let format = logFormat.resolved(environment: ProcessInfo.processInfo.environment)
        LoggingSystem.bootstrap { label in
            if format == .journald { return JournaldLogHandler(logLevel: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "quantracd")
        let station: StationConfig
        do {
            station = try ConfigLoader.load(path: config)
        } catch {
            printError("quantracd: configuration \(config) is invalid:\n\(error)")
            throw ExitCode(78)  // EX_CONFIG: systemd's RestartPreventExitStatus
        }
        do {
            let wallClock: any WallClock = try acceleratedClock(scale: clockScale, start: clockStart, logger: logger) ?? SystemWallClock()
            try await Daemon(config: station, configPath: config, logger: logger, wallClock: wallClock).run()
        } catch let error as StartupError {
            printError("quantracd: \(error)")
            throw ExitCode(78)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

extension LogFormat: ExpressibleByArgument {}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleWriter.write(string)
    }
}
