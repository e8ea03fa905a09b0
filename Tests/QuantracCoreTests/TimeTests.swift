import QuantracCore
import Testing

struct TimeTests {
    let vn = UTCOffset(seconds: 7 * 3600)

    @Test func civilTimeRoundTrips() {
        for t: Int64 in [0, 951_782_400, 1_773_545_700, 4_102_444_800, -86_400, 1_709_164_800] {
            let c = CivilTime(epochSeconds: t, offset: vn)
            #expect(CivilTime.epochSeconds(year: c.year, month: c.month, day: c.day, hour: c.hour, minute: c.minute, second: c.second, offset: vn) == t)
        }
        // 2024-02-29 (leap day) 12:34:56 in Vietnam.
        let t = CivilTime.epochSeconds(year: 2024, month: 2, day: 29, hour: 12, minute: 34, second: 56, offset: vn)
        #expect(CivilTime(epochSeconds: t, offset: vn).compactStamp == "20240229123456")
        #expect(CivilTime(epochSeconds: t, offset: UTCOffset(seconds: 0)).compactStamp == "20240229053456")
    }

    @Test func offsetsParse() {
        #expect(UTCOffset(parsing: "+07:00")?.seconds == 25_200)
        #expect(UTCOffset(parsing: "-03:30")?.seconds == -12_600)
        #expect(UTCOffset(parsing: "+0545")?.seconds == 20_700)
        #expect(UTCOffset(parsing: "Z")?.seconds == 0)
        for bad in ["07:00", "+7", "+25:00", "+07:60", "+07-00", ""] { #expect(UTCOffset(parsing: bad) == nil, "\(bad)") }
        #expect(UTCOffset(seconds: -12_600).description == "-03:30")
    }

    @Test func gridAlignsToLocalMidnightAndIsHalfOpen() {
        let grid = IntervalGrid(lengthSeconds: 300, offset: vn)
        let t1035 = CivilTime.epochSeconds(year: 2026, month: 3, day: 15, hour: 10, minute: 35, offset: vn)
        let i = grid.interval(containing: Timestamp(seconds: t1035 - 1))
        #expect(i.end == t1035 && i.start == t1035 - 300)
        // A sample exactly on the boundary belongs to the next interval.
        #expect(grid.interval(containing: Timestamp(seconds: t1035)).start == t1035)
        #expect(grid.isBoundary(t1035) && !grid.isBoundary(t1035 + 1))
        // Hourly grid at +05:45 still aligns to local midnight.
        let np = UTCOffset(seconds: 20_700)
        let hour = IntervalGrid(lengthSeconds: 3600, offset: np)
        let end = hour.interval(containing: Timestamp(seconds: 1_773_545_700)).end
        #expect(CivilTime(epochSeconds: end, offset: np).minute == 0)
        #expect(grid.nextBoundary(after: Timestamp(milliseconds: t1035 * 1000 + 1)).seconds == t1035 + 300)
    }

    @Test func timestampsBeforeTheEpochRoundDown() {
        #expect(Timestamp(milliseconds: -1).seconds == -1)
        #expect(Timestamp(milliseconds: 1999).seconds == 1)
    }
}

struct BlockingLaneTests {
    final class Counter { var n = 0 }

    @Test func runsJobsInOrderOnItsOwnThread() async throws {
        let lane = BlockingLane<Counter>(name: "test-lane") { Counter() }
        var results: [Int] = []
        for _ in 0..<50 {
            results.append(try await lane.run { c in c.n += 1; return c.n })
        }
        #expect(results == Array(1...50))
        // Every job runs on one and the same dedicated thread.
        var threads: Set<UInt> = []
        for _ in 0..<20 { threads.insert(try await lane.run { _ in UInt(pthread_self()) }) }
        #expect(threads.count == 1)
        lane.shutdown()
        await #expect(throws: CancellationError.self) { try await lane.run { _ in 1 } }
    }

    @Test func isATaskExecutorForItsOwnThread() async throws {
        let lane = BlockingLane<Counter>(name: "exec-lane") { Counter() }
        let laneThread = try await lane.run { _ in UInt(pthread_self()) }
        let (here, jobs) = try await withTaskExecutorPreference(lane) {
            // The task's own code and the jobs it submits run on the lane thread, in order.
            var jobs: [Int] = []
            for _ in 0..<10 { jobs.append(try await lane.run { c in c.n += 1; return c.n }) }
            return (UInt(pthread_self()), jobs)
        }
        #expect(here == laneThread)
        #expect(jobs == Array(1...10))
        // After shutdown a task that prefers the lane still runs (on the global executor).
        lane.shutdown()
        let after = await withTaskExecutorPreference(lane) { await Task.yield(); return 42 }
        #expect(after == 42)
    }

    @Test func propagatesErrors() async {
        struct Boom: Error {}
        let lane = BlockingLane<Void>(name: "err") { () }
        await #expect(throws: Boom.self) { try await lane.run { _ in throw Boom() } }
    }
}

import Foundation
