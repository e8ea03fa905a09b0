import Foundation
import Logging
import QuantracConfig
import QuantracCore
import ServiceLifecycle
import Storage

/// Applies the retention periods at start and every hour, and raises disk alarms at 80 % and 95 % of
/// the disk budget (or of the file system when no budget is set). Never deletes an unsent file.
public struct RetentionService: Service {
    let retention: Retention
    let dataDir: String
    let store: Store
    let outbox: OutboxDirectory
    let wallClock: any WallClock
    let logger: Logger
    let every: Duration
    let board: StatusBoard?

    public init(retention: Retention, dataDir: String, store: Store, outbox: OutboxDirectory, wallClock: any WallClock,
                logger: Logger, every: Duration = .seconds(3600), board: StatusBoard? = nil) {
        self.board = board
        self.retention = retention
        self.dataDir = dataDir
        self.store = store
        self.outbox = outbox
        self.wallClock = wallClock
        self.logger = logger
        self.every = every
    }

    public func run() async throws {
        let lane = BlockingLane<Void>(name: "retention") { () }
        defer { lane.shutdown() }
        var alarm = DiskAlarm.ok
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await runOnce(lane: lane)
                let (used, capacity) = try await lane.run { [dataDir, retention] _ in try Self.diskUse(dataDir: dataDir, budget: retention.diskBudgetBytes) }
                let level = DiskAlarm(used: used, capacity: capacity)
                board?.update { $0.diskUsedBytes = used; $0.diskCapacityBytes = capacity; $0.diskAlarm = level == .ok ? nil : "\(level)" }
                if level != alarm {
                    let text = "data_dir uses \(used / 1_048_576) MiB of \(capacity / 1_048_576) MiB (\(Int(Double(used) * 100 / Double(max(1, capacity)))) %): \(level)"
                    if level == .ok { logger.notice("\(text)") } else { logger.warning("\(text)") }
                    try await store.journal("disk.alarm", text, at: wallClock.now())
                    alarm = level
                }
            } catch {
                logger.error("retention run failed: \(error)")
            }
            try? await cancelWhenGracefulShutdown { [every, wallClock] in try await Task.sleep(for: wallClock.realDuration(of: every, atLeast: .milliseconds(20))) }
        }
    }

    func runOnce(lane: BlockingLane<Void>) async throws {
        let now = wallClock.now()
        let day: Int64 = 86_400
        let result = try await store.applyRetention(readingsBefore: now.seconds - Int64(retention.readingsDays) * day,
                                                    recordsBefore: now.seconds - Int64(retention.recordsDays) * day,
                                                    filesBefore: now.seconds - Int64(retention.filesDays) * day, at: now)
        let outbox = self.outbox
        let files = result.files
        try await lane.run { _ in for name in files { try outbox.removeSent(name: name) } }
        if result.readings + result.records + result.files.count > 0 {
            logger.info("retention", metadata: ["readings": "\(result.readings)", "records": "\(result.records)", "files": "\(result.files.count)"])
        }
    }

    /// Bytes used, and the capacity they are measured against: with a budget, the sizes of the files under
    /// `dataDir` against it (a walk of the tree); without one, the file system's use against its size (statvfs).
    static func diskUse(dataDir: String, budget: Int64?) throws -> (Int64, Int64) {
        guard let budget else {
            var fs = statvfs()
            guard statvfs(dataDir, &fs) == 0 else { return (0, Int64.max) }
            let total = Int64(fs.f_blocks) * Int64(fs.f_frsize)
            let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
            return (total - free, total)
        }
        var used: Int64 = 0
        if let e = FileManager.default.enumerator(atPath: dataDir) {
            while let name = e.nextObject() as? String {
                if let size = (e.fileAttributes?[.size] as? NSNumber)?.int64Value { used += size } else {
                    let attrs = try? FileManager.default.attributesOfItem(atPath: (dataDir as NSString).appendingPathComponent(name))
                    used += (attrs?[.size] as? NSNumber)?.int64Value ?? 0
                }
            }
        }
        return (used, budget)
    }
}

enum DiskAlarm: CustomStringConvertible {
    case ok, high, critical

    init(used: Int64, capacity: Int64) {
        let f = Double(used) / Double(max(1, capacity))
        self = f >= 0.95 ? .critical : f >= 0.80 ? .high : .ok
    }

    var description: String {
        switch self {
        case .ok: return "below 80 %"
        case .high: return "above 80 % (alarm)"
        case .critical: return "above 95 % (critical alarm)"
        }
    }
}
