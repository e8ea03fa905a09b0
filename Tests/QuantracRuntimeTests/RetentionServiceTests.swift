import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracRuntime
import QuantracTesting
import Storage
import Testing

struct RetentionServiceTests {
    @Test func removesOldSentFilesButNeverPendingOnes() async throws {
        let dir = NSTemporaryDirectory() + "quantrac-retention-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try Store(path: dir + "/q.sqlite")
        let outbox = try OutboxDirectory(dataDir: dir)
        let day: Int64 = 86_400
        let now = Timestamp(seconds: 1000 * day)
        for (i, age) in [500, 450, 10].enumerated() {
            let end = now.seconds - Int64(age) * day
            let name = "F\(i).txt"
            try outbox.write(name: name, bytes: [UInt8(i)])
            try await store.commitInterval(intervalEnd: end, records: [], fileName: name, fileBytes: [UInt8(i)], targets: ["t"], now: now)
        }
        // F0 delivered; F1 still pending (never deleted, however old); F2 delivered but young.
        for name in ["F0.txt", "F2.txt"] {
            #expect(try await store.markSent(file: name, target: "t", at: now))
            try outbox.archive(name: name)
            try await store.markArchived(file: name)
        }
        var retention = Retention()
        retention.diskBudgetBytes = 1 << 30
        let service = RetentionService(retention: retention, dataDir: dir, store: store, outbox: outbox,
                                       wallClock: ManualWallClock(now), logger: Logger(label: "test"), every: .seconds(3600))
        let task = Task { try await service.run() }
        try await waitUntilAsync(timeout: .seconds(30), what: "the first retention run, files removed") {
            try await store.journalEntries().contains { $0.kind == "retention" } && !FileManager.default.fileExists(atPath: outbox.sent + "/F0.txt")
        }
        task.cancel()
        #expect(!FileManager.default.fileExists(atPath: outbox.sent + "/F0.txt"))
        #expect(FileManager.default.fileExists(atPath: outbox.outbox + "/F1.txt"), "a pending file is never deleted")
        #expect(FileManager.default.fileExists(atPath: outbox.sent + "/F2.txt"))
        #expect(try await store.nextPending(target: "t")?.file == "F1.txt")
        #expect(try await store.journalEntries().first { $0.kind == "retention" }?.detail == "removed 0 readings, 0 records, 1 sent files")
    }
}
