import Acquisition
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import QuantracRuntime
import QuantracTesting
import Storage
import Testing

/// Clock steps never overwrite, duplicate or re-time a file; each step is journaled.
struct ClockStepTests {
    let config: StationConfig
    let t0: Int64

    init() throws {
        let dir = NSTemporaryDirectory() + "quantrac-clock-\(UUID().uuidString)"
        config = try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir)"
            record_interval = "10s"
            poll_interval = "1s"
            record_delay = "1s"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            timeout = "500ms"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "a"
            address = 0
            type = "float32"
            """)
        t0 = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, hour: 10, minute: 0, offset: config.station.utcOffset)
    }

    func readings(from: Int64, count: Int, value: Double) -> [Reading] {
        (0..<count).map { Reading(channel: "COD", time: Timestamp(seconds: from + Int64($0)), value: value, status: .measuring) }
    }

    @Test func backwardStepNeverRebuildsOrRetimesAFile() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: config.station.dataDir + "/q.sqlite")
        let outbox = try OutboxDirectory(dataDir: config.station.dataDir)
        let clock = ManualWallClock(Timestamp(seconds: t0 + 12))
        let service = RecordService(config: config, store: store, outbox: outbox, progress: AcquisitionProgress(), signals: [],
                                    wallClock: clock, logger: Logger(label: "test"))
        try await store.append(readings(from: t0, count: 10, value: 5))
        let first = try #require(try await service.buildNextReady())
        #expect(first == "HN_ABCD_NUO001_20260315100010.txt")
        let bytes = try outbox.read(name: first)

        // The clock jumps back an hour; polling goes on with earlier timestamps, some inside the built interval.
        clock.set(Timestamp(seconds: t0 - 3600 + 12))
        try await store.append(readings(from: t0 - 3600, count: 10, value: 7))
        try await store.append(readings(from: t0 + 2, count: 3, value: 99))
        #expect(try await service.buildNextReady() == nil, "nothing is built for times at or before the last file")
        #expect(try outbox.read(name: first) == bytes, "the built file is untouched")
        #expect(try await store.records(intervalEnd: t0 + 10).map(\.value) == [5])

        // Once the clock passes the last built interval again, files continue on the grid.
        clock.set(Timestamp(seconds: t0 + 22))
        try await store.append(readings(from: t0 + 10, count: 10, value: 6))
        #expect(try await service.buildNextReady() == "HN_ABCD_NUO001_20260315100020.txt")
        let files = try FileManager.default.contentsOfDirectory(atPath: outbox.outbox).sorted()
        #expect(files == ["HN_ABCD_NUO001_20260315100010.txt", "HN_ABCD_NUO001_20260315100020.txt"])
    }

    @Test func forwardStepInventsNothing() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: config.station.dataDir + "/q.sqlite")
        let outbox = try OutboxDirectory(dataDir: config.station.dataDir)
        let clock = ManualWallClock(Timestamp(seconds: t0 + 12))
        let service = RecordService(config: config, store: store, outbox: outbox, progress: AcquisitionProgress(), signals: [],
                                    wallClock: clock, logger: Logger(label: "test"))
        try await store.append(readings(from: t0, count: 10, value: 5))
        _ = try await service.buildNextReady()
        clock.set(Timestamp(seconds: t0 + 3600 + 12))
        try await store.append(readings(from: t0 + 3600, count: 10, value: 5))
        #expect(try await service.buildNextReady() == "HN_ABCD_NUO001_20260315110010.txt")
        #expect(try await service.buildNextReady() == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox.outbox).count == 2, "no file for the skipped hour")
    }

    @Test func stepsAreJournaled() async throws {
        try FileManager.default.createDirectory(atPath: config.station.dataDir, withIntermediateDirectories: true)
        let store = try Store(path: config.station.dataDir + "/q.sqlite")
        let clock = ManualWallClock(Timestamp(seconds: t0))
        let board = StatusBoard(station: "x", startedMs: 0, channels: [], buses: [], targets: [])
        // The manual clock stands still while real time passes: a loaded machine could see a few seconds'
        // "step" every tick; a 10 s threshold keeps the test about the one-hour step.
        let watch = ClockWatch(wallClock: clock, store: store, logger: Logger(label: "test"), threshold: .seconds(10), board: board)
        let task = Task { try await watch.run() }
        try await Task.sleep(for: .milliseconds(1300))
        clock.set(Timestamp(seconds: t0 - 3600))
        try await waitUntilAsync(timeout: .seconds(30), what: "a journaled clock step") {
            try await store.journalEntries().contains { $0.kind == "clock.step" }
        }
        task.cancel()
        let entry = try #require(try await store.journalEntries().first { $0.kind == "clock.step" })
        #expect(entry.detail.hasPrefix("wall clock stepped by -3"))
        #expect(board.snapshot().lastClockStep == entry.detail)
    }
}
