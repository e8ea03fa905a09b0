import Foundation
import Logging
import QuantracConfig
import QuantracCore
import Reporting
import ServiceLifecycle
import Storage
import Transmission

/// Computes every closed hour (and, at local midnight, the day) once all its records are built, from the
/// database only — so a restart mid-hour loses nothing and on start every closed period without an
/// average is caught up. Writes hourly/daily average files for targets that ask for products `1h`/`24h`.
public struct AveragesService: Service {
    let calculator: AverageCalculator
    let outbox: OutboxDirectory
    /// Target names per product (`1h`, `24h`).
    let productTargets: [String: [String]]
    let signals: [OutboxSignal]
    let wallClock: any WallClock
    let logger: Logger
    private let renderer: RegulatorFileRenderer
    /// Meta key: the end of the last hour whose averages are computed.
    public static let doneKey = "averages_done_until"

    public init(calculator: AverageCalculator, outbox: OutboxDirectory, productTargets: [String: [String]], signals: [OutboxSignal],
                wallClock: any WallClock, logger: Logger) {
        self.calculator = calculator
        self.outbox = outbox
        self.productTargets = productTargets
        self.signals = signals
        self.wallClock = wallClock
        self.logger = logger
        renderer = RegulatorFileRenderer(station: calculator.config.station, channels: calculator.config.channels)
    }

    public func run() async throws {
        var failing: String?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await catchUp()
                failing = nil
            } catch {
                let text = "\(error)"
                if failing != text { logger.error("cannot compute averages, retrying: \(text)") }
                failing = text
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wallClock.realDuration(of: .seconds(5), atLeast: .milliseconds(20))) }
        }
    }

    /// Computes every hour whose records are all built and that has no average yet; returns the hours done.
    @discardableResult
    public func catchUp() async throws -> Int {
        let store = calculator.store
        guard let lastBuilt = try await store.lastBuiltIntervalEnd() else { return 0 }
        var done: Int64
        if let d = try await store.meta(Self.doneKey) {
            done = d
        } else if let first = try await store.firstRecordEnd() {
            done = calculator.hourGrid.interval(containing: Timestamp(seconds: first - 1)).start
        } else {
            return 0
        }
        var count = 0
        while done + 3600 <= lastBuilt, !Task.isCancelled {
            // Every closed hour up to the next local midnight at once (one read, one write), then that day.
            let end = min(calculator.dayGrid.interval(containing: Timestamp(seconds: done)).end, done + (lastBuilt - done) / 3600 * 3600)
            let now = wallClock.now()
            let averages = try await calculator.computeHours(after: done, through: end, now: now)
            for hour in stride(from: done + 3600, through: end, by: 3600) {
                try await writeProduct("1h", end: hour, averages: averages.filter { $0.period == "1h" && $0.average.interval.end == hour })
            }
            if calculator.dayGrid.isBoundary(end) {
                let daily = try await calculator.computeDay(end: end, now: now)
                try await writeProduct("24h", end: end, averages: daily)
                logger.info("daily averages", metadata: ["end": "\(end)", "valid": "\(daily.filter(\.average.isValid).count)/\(daily.count)"])
            }
            try await store.setMeta(Self.doneKey, end)
            count += Int((end - done) / 3600)
            done = end
        }
        return count
    }

    /// The average file of a product: the 5-minute layout, value = the average, status 00 when the
    /// average is valid and 02 when it fails its completeness rule (value then the partial mean, or 0).
    func writeProduct(_ product: String, end: Int64, averages: [StoredAverage]) async throws {
        guard let targets = productTargets[product], !targets.isEmpty else { return }
        let records = averages.map {
            ChannelRecord(channel: $0.channel, intervalEnd: end, value: $0.average.value ?? 0,
                          status: $0.average.isValid ? .measuring : .fault, validCount: $0.average.validCount, sampleCount: $0.average.expectedCount)
        }
        let file = renderer.render(intervalEnd: end, records: records)
        let name = "\(product)/\(file.name)"
        guard try await !calculator.store.fileExists(name) else { return }
        try outbox.write(name: name, bytes: file.bytes)
        try await calculator.store.commitProductFile(name: name, product: product, periodEnd: end, bytes: file.bytes, targets: targets, now: wallClock.now())
        for s in signals { s.notify() }
        logger.info("file ready", metadata: ["file": "\(name)"])
    }
}
