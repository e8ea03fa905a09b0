import Acquisition
import ArgumentParser
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracRuntime
import Storage

/// `quantrac-bench backlog`: fills a fresh data directory with the backlog of an outage the way the daemon
/// builds it — one stored tick per record interval for the `count` intervals before now, then the daemon's
/// own `RecordService` renders each file, writes it durably into `outbox/` and commits it with one pending
/// delivery per target. The real `quantracd` is then started on the same station file to drain it.
struct BacklogBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backlog",
        abstract: "Builds COUNT regulator files of the intervals before now into the station's outbox, pending for every target.")

    @Option(help: "Station file (its data_dir must be empty or missing).")
    var config: String

    @Option(help: "Number of files (2016 = 7 days of 5-minute intervals).")
    var count: Int = 2016

    func run() async throws {
        let station: StationConfig
        do { station = try ConfigLoader.load(path: config) } catch { throw ValidationError("\(error)") }
        var logger = Logger(label: "quantrac-bench")
        logger.logLevel = .warning
        let dataDir = station.station.dataDir
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let store = try Store(path: (dataDir as NSString).appendingPathComponent("quantrac.sqlite"))
        let outbox = try OutboxDirectory(dataDir: dataDir)
        let clock = SystemWallClock()
        let grid = station.station.grid
        // The newest interval must be ready at once (its end plus the record delay passed), or a fill run
        // just after a boundary builds one file fewer.
        let lastEnd = grid.interval(containing: clock.now() + (.zero - station.station.recordDelay)).start
        let first = lastEnd - Int64(count) * grid.length

        // One tick a second into every interval, all channels measuring.
        var readings: [Reading] = []
        readings.reserveCapacity(count * station.channels.count)
        for i in 0..<count {
            let time = Timestamp(seconds: first + Int64(i) * grid.length + 1)
            for (c, ch) in station.channels.enumerated() {
                readings.append(Reading(channel: ch.code, time: time, value: Double((i * 7 + c * 13) % 1000) / 10 + 0.25, status: .measuring))
            }
        }
        try await store.append(readings)

        let records = RecordService(config: station, store: store, outbox: outbox, progress: AcquisitionProgress(), signals: [],
                                    wallClock: clock, logger: logger)
        let started = ContinuousClock.now
        var built = 0
        while try await records.buildNextReady() != nil { built += 1 }
        let elapsed = ContinuousClock.now - started
        var pending: [String: Int] = [:]
        for t in station.targets { pending[t.name] = try await store.queueState(target: t.name).pending }
        print(AcquisitionBench.json([
            "bench": "backlog-fill", "files": built, "outbox": outbox.outbox,
            "pending": pending.values.min() ?? 0, "build_seconds": Double(elapsed.components.seconds),
        ]))
        guard built == count else { throw ValidationError("built \(built) files, expected \(count)") }
    }
}
