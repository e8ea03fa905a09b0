import Acquisition
import ArgumentParser
import FieldBus
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import Storage

/// `quantrac-bench acquisition`: the daemon's acquisition path — `ModbusBus` on its libmodbus lane thread,
/// decoding, status mapping, the calibration gate, the status board, `BusPoller`'s commit window and the
/// SQLite store — driven flat out instead of on the poll grid.
///
/// Ticks are stamped 1 ms apart (a 1 kHz poll grid, ahead of the wall clock when the bus is faster), so
/// the station's `commit_window` of 10 s commits every 10 000 ticks. Prints one JSON line with the figures.
struct AcquisitionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquisition",
        abstract: "Polls, decodes and stores the first bus of a station as fast as it answers; prints transactions per second.")

    @Option(help: "Station file (its first bus is polled; data_dir is used as the database folder).")
    var config: String

    @Option(help: "How long to poll, in seconds.")
    var seconds: Double = 5

    @Option(help: "Override the station's commit_window, in milliseconds (0 commits every tick).")
    var commitWindowMs: Int?

    func run() async throws {
        let station: StationConfig
        do { station = try ConfigLoader.load(path: config) } catch { throw ValidationError("\(error)") }
        guard let busConfig = station.buses.first else { throw ValidationError("\(config) has no [[bus]]") }
        var logger = Logger(label: "quantrac-bench")
        logger.logLevel = .warning
        try FileManager.default.createDirectory(atPath: station.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: (station.station.dataDir as NSString).appendingPathComponent("quantrac.sqlite"))
        let bus = FieldDrivers.make(bus: busConfig, config: station, logger: logger)
        let board = StatusBoard(station: station.station.prefix, startedMs: 0, channels: station.channels.map { ($0.code, $0.unit, $0.bus) },
                                buses: [busConfig.name], targets: [])
        let window = commitWindowMs.map { Duration.milliseconds($0) } ?? station.station.commitWindow
        let pollInterval = Duration.milliseconds(1)
        let poller = BusPoller(bus: bus, channels: station.channels, pollInterval: pollInterval, offset: station.station.utcOffset,
                               store: store, progress: AcquisitionProgress(), wallClock: SystemWallClock(), logger: logger, board: board,
                               calibration: CalibrationGate(recovery: station.station.calibrationRecovery),
                               commitWindow: window, recordGrid: station.station.grid)
        let requestsPerTick = (bus as? ModbusBus)?.plan.reads.count ?? 1

        // As BusPoller.run does: on the bus thread when the bus offers it.
        let loop = { @Sendable () async -> (ticks: Int, elapsed: Duration) in
            var buffer = UnsavedTicks(capacity: 10_000_000)
            // One warm-up tick: connects, creates the channel keys.
            var tick = SystemWallClock().now()
            await poller.pollOnce(at: tick, buffer: &buffer)
            await poller.commit(&buffer)
            let clock = ContinuousClock()
            let start = clock.now
            let deadline = start + .milliseconds(Int64(seconds * 1000))
            var ticks = 0
            while clock.now < deadline {
                tick = tick + pollInterval
                await poller.pollOnce(at: tick, buffer: &buffer)
                ticks += 1
            }
            await poller.commit(&buffer)
            return (ticks, clock.now - start)
        }
        let (ticks, elapsed) = if let executor = bus.taskExecutor {
            await withTaskExecutorPreference(executor) { await loop() }
        } else {
            await loop()
        }
        bus.shutdown()

        let secondsElapsed = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let snapshot = board.snapshot()
        let faults = snapshot.channels.filter { $0.statusCode != "00" }.map { "\($0.code): \($0.reason ?? $0.status)" }
        let stored = try await store.readings(in: Interval(start: 0, end: Int64.max / 1000)).count
        let result: [String: any Sendable] = [
            "bench": "acquisition", "ticks": ticks, "transactions": ticks * requestsPerTick, "seconds": secondsElapsed,
            "tps": Double(ticks * requestsPerTick) / secondsElapsed, "channels": station.channels.count,
            "readings_stored": stored, "commit_window_ms": window.wholeMilliseconds, "faults": faults.count,
        ]
        print(Self.json(result))
        if !faults.isEmpty { throw ValidationError("faulted channels: \(faults.prefix(5).joined(separator: "; "))") }
        if stored != (ticks + 1) * station.channels.count {
            throw ValidationError("stored \(stored) readings, expected \((ticks + 1) * station.channels.count)")
        }
    }

    /// A flat JSON object with keys in sorted order.
    static func json(_ fields: [String: any Sendable]) -> String {
        "{" + fields.keys.sorted().map { key in
            let v = fields[key]
            let text: String
            switch v {
            case let s as String: text = "\"\(s)\""
            case let d as Double: text = String(format: "%.6f", d)
            default: text = v.map { "\($0)" } ?? "null"
            }
            return "\"\(key)\": \(text)"
        }.joined(separator: ", ") + "}"
    }
}
