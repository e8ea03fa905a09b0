import Foundation
import Synchronization
import Logging
import QuantracConfig
import QuantracCore
import ServiceLifecycle
import Storage

/// Wakes a sleeping queue soon after a new file is committed (checked every 100 ms while waiting).
public final class OutboxSignal: Sendable {
    private let generation = Mutex<UInt64>(0)

    public init() {}

    public func notify() { generation.withLock { $0 &+= 1 } }

    /// Waits until `notify()` is called or `timeout` passes; returns early on cancellation.
    func wait(timeout: Duration) async {
        let start = generation.withLock { $0 }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: min(.milliseconds(100), deadline - ContinuousClock.now))
            if generation.withLock({ $0 }) != start { return }
        }
    }
}

/// The queue of one target: uploads pending files strictly oldest first (FIFO by interval), never skips or
/// drops one, retries with exponential backoff and jitter, and archives a file once every target has it.
public struct TransmissionService: Service {
    let target: TargetConfig
    let station: Station
    let uploader: any Uploader
    let store: Store
    let outbox: OutboxDirectory
    let signal: OutboxSignal
    let wallClock: any WallClock
    let logger: Logger
    let board: StatusBoard?

    public init(target: TargetConfig, station: Station, uploader: any Uploader, store: Store, outbox: OutboxDirectory,
                signal: OutboxSignal, wallClock: any WallClock, logger: Logger, board: StatusBoard? = nil) {
        self.board = board
        self.target = target
        self.station = station
        self.uploader = uploader
        self.store = store
        self.outbox = outbox
        self.signal = signal
        self.wallClock = wallClock
        var logger = logger
        logger[metadataKey: "target"] = "\(target.name)"
        self.logger = logger
    }

    /// Remote directory for a file: the target's template expanded for the file's interval (local date)
    /// and product (`5m`, or the folder of an average file: `1h/NAME` → `1h`).
    func directory(for entry: OutboxEntry) -> String {
        // The date of the interval's *data*: a file stamped 00:00 belongs to the day before.
        let civil = CivilTime(epochSeconds: entry.intervalEnd - 1, offset: station.utcOffset)
        let product = entry.file.contains("/") ? String(entry.file.prefix { $0 != "/" }) : "5m"
        return target.directory(prefix: station.prefix, stationCode: station.stationCode, time: civil)
            .replacingOccurrences(of: "{product}", with: product)
    }

    /// Files taken from the head of the queue at a time.
    static let batchSize = 256
    /// Uploads are acknowledged together: one database commit and one directory fsync for every
    /// `acknowledgeFiles` files, or for what was uploaded in `acknowledgeEvery`. An acknowledgement runs
    /// while the next files upload (one at a time, in queue order; the batch ends only when all are
    /// done), so a backlog drains at the speed of the link rather than of the disk's fsyncs. A crash
    /// before a file's acknowledgement re-sends it (same name, same bytes): at most two acknowledgements'
    /// worth of files.
    static let acknowledgeFiles = 64
    static let acknowledgeEvery: Duration = .seconds(1)

    public func run() async throws {
        defer { uploader.shutdown() }
        // On the upload thread when the uploader offers it: each upload is then a call on the same thread,
        // not a hand-off there and back (see `Uploader.taskExecutor`).
        if let executor = uploader.taskExecutor {
            try await withTaskExecutorPreference(executor) { try await queueLoop() }
        } else {
            try await queueLoop()
        }
    }

    /// Uploads the head of the queue, batch after batch, until the service stops.
    func queueLoop() async throws {
        var backoff = Duration.seconds(1)
        var failing: String?
        var storeFailing = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let batch: [OutboxEntry]
            do {
                if let reason = try await store.parkedReason(target: target.name) {
                    try await waitWhileParked(reason)
                    continue
                }
                batch = try await store.pendingEntries(target: target.name, limit: Self.batchSize)
                storeFailing = false
                await publishState()
            } catch {
                if !storeFailing { logger.error("cannot read the outbox queue: \(error)") }
                storeFailing = true
                await waitOrShutdown(.seconds(5))
                continue
            }
            guard !batch.isEmpty else {
                await waitOrShutdown(.seconds(5))
                continue
            }
            var failure: (entry: OutboxEntry, error: UploadError)?
            await withTaskGroup(of: Void.self) { acknowledgements in
                var uploaded: [OutboxEntry] = []
                var since = ContinuousClock.now
                var acknowledging = false
                for entry in batch {
                    if Task.isShuttingDownGracefully || Task.isCancelled { break }
                    do throws(UploadError) {
                        let bytes: [UInt8]
                        do { bytes = try outbox.read(name: entry.file) } catch {
                            throw UploadError(kind: .rejected, message: "local copy unreadable: \(error)")
                        }
                        try await uploader.upload(name: (entry.file as NSString).lastPathComponent, bytes: bytes, directory: directory(for: entry))
                    } catch {
                        failure = (entry, error)
                        break
                    }
                    uploaded.append(entry)
                    if failing != nil {
                        logger.notice("uploads succeed again", metadata: ["file": "\(entry.file)"])
                        failing = nil
                    }
                    backoff = .seconds(1)
                    if uploaded.count >= Self.acknowledgeFiles || ContinuousClock.now - since >= Self.acknowledgeEvery {
                        // The previous acknowledgement first: they are committed in queue order.
                        if acknowledging { await acknowledgements.next() }
                        let files = uploaded
                        // Off the upload thread: the commit and the directory fsync must not hold the uploads up.
                        acknowledgements.addTask(executorPreference: globalConcurrentExecutor) { await self.delivered(files) }
                        acknowledging = true
                        uploaded.removeAll()
                        since = ContinuousClock.now
                    }
                }
                await acknowledgements.waitForAll()
                await delivered(uploaded)
            }
            guard let (entry, error) = failure else { continue }
            try? await store.markFailed(file: entry.file, target: target.name, error: error.message, at: wallClock.now())
            if error.kind == .authentication {
                logger.error("\(error.message); queue parked until the configuration is fixed and quantracd restarted, or `quantrac outbox retry`",
                             metadata: ["file": "\(entry.file)", "kind": "\(error.kind)"])
                try? await store.park(target: target.name, reason: error.message, at: wallClock.now())
                try? await store.journal("outbox.parked", "\(target.name): \(error.message)", at: wallClock.now())
                await publishState()
                failing = Self.failureKey(error)
                continue
            }
            // Logged once per kind of failure, not per retry (curl's texts carry timings that vary).
            if failing != Self.failureKey(error) {
                logger.warning("upload failed, will retry: \(error.message)", metadata: ["file": "\(entry.file)", "kind": "\(error.kind)"])
                failing = Self.failureKey(error)
            }
            // Rejections retry slowly (at least a minute apart once backed off): the server said no.
            let cap = error.kind == .transient ? target.retryMax : max(target.retryMax, .seconds(60))
            await publishState()
            await waitForRetry(min(backoff * Double.random(in: 0.8...1.2), cap))
            backoff = min(backoff * 2, cap)
        }
    }

    /// What makes two failures "the same" for logging: their kind and text without numbers.
    static func failureKey(_ error: UploadError) -> String {
        "\(error.kind)|" + error.message.filter { !$0.isNumber }
    }

    /// Copies the queue's figures to the status board.
    private func publishState() async {
        guard let board, let q = try? await store.queueState(target: target.name) else { return }
        let parked = try? await store.parkedReason(target: target.name)
        board.target(target.name) { t in
            t.pending = q.pending
            t.oldestPending = q.oldestPending
            t.lastSuccessMs = q.lastSentMs
            t.lastError = q.lastError
            t.parked = parked ?? nil
        }
    }

    /// Marks uploaded files delivered (one transaction) and moves those every target has to `sent/`.
    private func delivered(_ entries: [OutboxEntry]) async {
        guard !entries.isEmpty else { return }
        do {
            let done = try await store.markSent(files: entries.map(\.file), target: target.name, at: wallClock.now())
            try outbox.archive(names: done)
            try await store.markArchived(files: done)
            for entry in entries { logger.debug("sent", metadata: ["file": "\(entry.file)"]) }
        } catch {
            // The uploads succeeded; at worst the files are sent again after a restart (same names, same bytes).
            logger.error("sent \(entries.count) file(s) (\(entries[0].file) …) but cannot record it: \(error)")
        }
    }

    /// Sleeps through a backoff, ending early when `quantrac outbox retry` asks for it.
    private func waitForRetry(_ d: Duration) async {
        let asked = (try? await store.retryRequested(target: target.name)) ?? nil
        let deadline = ContinuousClock.now + d
        while ContinuousClock.now < deadline, !Task.isShuttingDownGracefully, !Task.isCancelled {
            await waitOrShutdown(min(.seconds(1), deadline - ContinuousClock.now), wakeable: false)
            if let now = try? await store.retryRequested(target: target.name), now != asked { return }
        }
    }

    private func waitWhileParked(_ reason: String) async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await waitOrShutdown(.seconds(1), wakeable: false)
            if try await store.parkedReason(target: target.name) == nil {
                logger.notice("queue resumed")
                return
            }
        }
    }

    private func waitOrShutdown(_ d: Duration, wakeable: Bool = true) async {
        let signal = self.signal
        _ = await cancelWhenGracefulShutdown {
            if wakeable { await signal.wait(timeout: d) } else { try? await Task.sleep(for: d) }
        }
    }
}
