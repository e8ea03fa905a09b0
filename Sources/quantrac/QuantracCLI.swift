import ArgumentParser
import FieldBus
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import Reporting

/// The technician's and operator's command line.
@main
struct QuantracCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantrac",
        abstract: "Quantrac station data logger: technician and operator commands.",
        subcommands: [Check.self, Read.self, Probe.self, Status.self, Calibrate.self, Outbox.self, Averages.self, AQICommand.self, Audit.self])
}

/// A command that was given correctly but could not do its work (the device refused, the daemon owns the
/// port, the calibration is already running …): printed as `Error: …` without the usage text that a
/// `ValidationError` (a mistake in the command line) adds, exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Exit status for an invalid configuration (sysexits EX_CONFIG).
let exitConfigError = ExitCode(78)

func loadConfig(_ path: String) throws -> StationConfig {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        FileHandle.standardError.write(Data("\(path): \(error.issues.count) problem\(error.issues.count == 1 ? "" : "s")\n\(error)\n".utf8))
        throw exitConfigError
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a station configuration; prints one line per problem, naming its key path.")

    @Option(name: .long, help: "Station configuration (TOML).")
    var config: String

    func run() throws {
        let c = try loadConfig(config)
        let requests = c.buses.map { bus -> Int in
            if case .asciiSerial = bus.transport { return TextPlan(bus: bus, channels: c.channels).exchanges.count }
            return ReadPlan(bus: bus, channels: c.channels).reads.count
        }.reduce(0, +)
        print("\(config): OK — station \(c.station.prefix) (\(c.station.kind.rawValue)), \(c.buses.count) bus\(c.buses.count == 1 ? "" : "es"), "
              + "\(c.channels.count) channels in \(requests) requests per poll, \(c.targets.count) target\(c.targets.count == 1 ? "" : "s")")
    }
}

struct Read: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live values: from the running daemon, or by polling every channel once when no daemon runs.",
        discussion: "With --direct (or without a daemon) the buses are opened here: a serial port the daemon owns is refused.")

    @Option(name: .long, help: "Station configuration (TOML).")
    var config: String

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    @Flag(name: .long, help: "Poll the buses directly even when the daemon runs (Modbus TCP only then).")
    var direct = false

    struct Row: Encodable {
        let code: String
        let value: Double?
        let unit: String
        let status: String
        let statusCode: String
        let reason: String?
    }

    func run() async throws {
        let c = try loadConfig(config)
        let live = direct ? nil : try fromDaemon(c)
        let rows: [Row]
        if let live { rows = live } else { rows = try await pollDirectly(c) }
        try output(rows, c)
    }

    /// The daemon's latest values over the control socket; nil when it is not running.
    func fromDaemon(_ c: StationConfig) throws -> [Row]? {
        let socket = (c.station.dataDir as NSString).appendingPathComponent("control.sock")
        guard let data = try? ControlClient.get("/status", socket: socket) else { return nil }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let snapshot = try decoder.decode(StatusBoard.Snapshot.self, from: data)
        return snapshot.channels.map { Row(code: $0.code, value: $0.value, unit: $0.unit, status: $0.status, statusCode: $0.statusCode, reason: $0.reason) }
    }

    func pollDirectly(_ c: StationConfig) async throws -> [Row] {
        try refuseSerialPortsOwnedByTheDaemon(c, buses: c.buses.map(\.name))
        var logger = Logger(label: "quantrac")
        logger.logLevel = .critical
        var samples: [FieldSample] = []
        for bus in FieldDrivers.make(for: c, logger: logger) {
            samples += await bus.poll()
            bus.shutdown()
        }
        let byIndex = Dictionary(samples.map { ($0.channelIndex, $0) }, uniquingKeysWith: { a, _ in a })
        return c.channels.enumerated().map { i, ch in
            let s = byIndex[i]
            return Row(code: ch.code, value: s?.value, unit: ch.unit, status: (s?.status ?? .fault).description,
                       statusCode: (s?.status ?? .fault).fileCode, reason: s?.reason)
        }
    }

    func output(_ rows: [Row], _ c: StationConfig) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            print(String(decoding: try encoder.encode(rows), as: UTF8.self))
            return
        }
        let table = [["CODE", "VALUE", "UNIT", "STATUS", ""]] + rows.enumerated().map { i, r in
            [r.code, r.value.map { RegulatorFileRenderer.format($0, decimals: c.channels[i].decimals) } ?? "-", r.unit,
             "\(r.statusCode) \(r.status)", r.reason ?? ""]
        }
        let widths = (0..<5).map { col in table.map { $0[col].count }.max() ?? 0 }
        for line in table {
            print(line.enumerated().map { col, cell in
                col == 4 ? cell : cell.padding(toLength: widths[col], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
        }
    }
}
