import ArgumentParser
import Logging
import QuantracConfig
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

    mutating func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
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
            try await Daemon(config: station, configPath: config, logger: logger).run()
        } catch let error as StartupError {
            printError("quantracd: \(error)")
            throw ExitCode(78)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

func printError(_ text: String) {
    var stderr = StandardError()
    print(text, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleWriter.write(string)
    }
}
