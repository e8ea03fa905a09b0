import Acquisition
import Foundation
import Logging
import Processing
import QuantracConfig
import QuantracCore
import Reporting
import ServiceLifecycle
import Storage
import Transmission

/// Builds the record and regulator file of every closed interval, from stored readings only.
///
/// An interval is built once every bus has stored a tick at or after its end, or `record_delay` after its
/// end at the latest. Intervals without a single stored reading (the daemon was not running) are not
/// invented. After a crash, every interval with readings and no record is built on start, in order.
public struct RecordService: Service {
    let config: StationConfig
    let store: Store
    let outbox: OutboxDirectory
    let progress: AcquisitionProgress
    let signals: [OutboxSignal]
    let wallClock: any WallClock
    let logger: Logger
    let board: StatusBoard?
    private let renderer: RegulatorFileRenderer
    private let lane = BlockingLane<Void>(name: "records") { () }

    public init(config: StationConfig, store: Store, outbox: OutboxDirectory, progress: AcquisitionProgress,
                signals: [OutboxSignal], wallClock: any WallClock, logger: Logger, board: StatusBoard? = nil) {
        self.board = board
        self.config = config
        self.store = store
        self.outbox = outbox
        self.progress = progress
        self.signals = signals
        self.wallClock = wallClock
        self.logger = logger
        self.renderer = RegulatorFileRenderer(station: config.station, channels: config.channels)
    }

    public func run() async throws {
        defer { lane.shutdown() }
        var failing: String?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if let name = try await buildNextReady() {
                    if failing != nil { logger.notice("files are built again") }
                    failing = nil
                    board?.update { $0.lastFile = name; $0.fileError = nil }
                    continue
                }
            } catch {
                // Disk full, read-only data directory …: nothing is lost (readings stay stored), retry.
                let text = "\(error)"
                if failing != text { logger.error("cannot build the next file, retrying: \(text)") }
                failing = text
                board?.update { $0.fileError = text }
            }
            let pause: Duration = failing == nil ? .milliseconds(250) : .seconds(2)
            _ = try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wallClock.realDuration(of: pause, atLeast: .milliseconds(20))) }
        }
    }

    /// Builds the oldest unbuilt interval that has readings, if it is ready; returns its file name.
    @discardableResult
    public func buildNextReady() async throws -> String? {
        let grid = config.station.grid
        let lastBuilt = try await store.lastBuiltIntervalEnd()
        let from = lastBuilt.map { Timestamp(seconds: $0) } ?? Timestamp(milliseconds: .min)
        guard let first = try await store.firstReadingTime(atOrAfter: from) else { return nil }
        let interval = grid.interval(containing: first)
        guard await isReady(interval) else { return nil }
        return try await build(interval)
    }

    func isReady(_ interval: Interval) async -> Bool {
        let end = Timestamp(seconds: interval.end)
        if wallClock.now() >= end + config.station.recordDelay { return true }
        guard let low = await progress.lowWatermark(buses: config.buses.map(\.name)) else { return false }
        return low >= end
    }

    /// The channel's plausibility checks (range, stuck, rate of change) for a new record.
    func plausibility(of record: ChannelRecord, channel ch: ChannelConfig, polls: [Reading], interval: Interval) async throws -> Exclusion? {
        let v = ch.validity
        guard record.status == .measuring, v.validMin != nil || v.validMax != nil || v.stuckPolls != nil || v.maxRatePerMinute != nil else {
            return nil
        }
        var history = polls
        if let n = v.stuckPolls, n > 1 {
            history = try await store.readings(channel: ch.code, before: Timestamp(seconds: interval.start), limit: n - 1) + polls
        }
        let previous = v.maxRatePerMinute == nil ? nil : try await store.lastGoodRecord(channel: ch.code, before: interval.end)
        return Validity.check(record: record, previous: previous, polls: history, policy: v)
    }

    /// Builds, writes and commits one interval. Idempotent: the same readings give the same bytes.
    func build(_ interval: Interval) async throws -> String {
        let readings = try await store.readings(in: interval)
        let byChannel = Dictionary(grouping: readings, by: \.channel)
        var records: [ChannelRecord] = []
        for ch in config.channels {
            var fallback = 0.0
            if config.station.missingValue == .last {
                fallback = try await store.lastValidRecordValue(channel: ch.code, before: interval.end) ?? 0
            }
            var record = try RecordBuilder.record(channel: ch.code, interval: interval, samples: byChannel[ch.code] ?? [], fallback: fallback,
                                                  directional: ch.averaging.kind == .vector)
            record.flag = try await plausibility(of: record, channel: ch, polls: byChannel[ch.code] ?? [], interval: interval)
            records.append(record)
        }
        let file = renderer.render(intervalEnd: interval.end, records: records)
        // A file once committed is never rewritten, whatever the clock did since.
        guard try await !store.fileExists(file.name) else {
            try await store.commitInterval(intervalEnd: interval.end, records: [], fileName: file.name, fileBytes: file.bytes,
                                           targets: [], now: wallClock.now())
            logger.warning("interval already has a file; not rebuilt", metadata: ["file": "\(file.name)"])
            return file.name
        }
        let outbox = self.outbox
        try await lane.run { _ in try outbox.write(name: file.name, bytes: file.bytes) }
        try await store.commitInterval(intervalEnd: interval.end, records: records, fileName: file.name, fileBytes: file.bytes,
                                       targets: config.targets.filter { $0.products.contains("5m") }.map(\.name), now: wallClock.now())
        for s in signals { s.notify() }
        let faults = records.filter { $0.status == .fault }.map(\.channel)
        logger.info("file ready", metadata: ["file": "\(file.name)", "channels": "\(records.count)",
                                             "faults": "\(faults.isEmpty ? "none" : faults.joined(separator: ","))"])
        return file.name
    }
}
