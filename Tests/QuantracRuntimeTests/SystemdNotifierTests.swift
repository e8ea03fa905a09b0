import Acquisition
import Foundation
import Logging
import QuantracCore
import QuantracRuntime
import ServiceLifecycle
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify protocol against a real AF_UNIX datagram socket standing in for systemd: READY after
/// the first stored tick of every bus, WATCHDOG pings only while every bus polls, STOPPING on shutdown.
@Suite(.serialized)
struct SystemdNotifierTests {
    let logger = Logger(label: "test")

    func board() -> StatusBoard {
        StatusBoard(station: "HN_ABCD_NUO001", startedMs: 0,
                    channels: [("COD", "mg/L", "a"), ("pH", "-", "b")], buses: ["a", "b"], targets: ["province"])
    }

    func tick(_ board: StatusBoard, bus: String, at ms: Int64) {
        let code = bus == "a" ? "COD" : "pH"
        board.record(bus: bus, readings: [Reading(channel: code, time: Timestamp(milliseconds: ms), value: 7, status: .measuring)])
    }

    /// Runs `notifier` in a service group, hands the test body the group, then shuts the group down gracefully.
    func withGroup(_ notifier: SystemdNotifier, _ body: (ServiceGroup) async throws -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: [.init(service: notifier)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do { try await body(group) } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            try await tasks.waitForAll()
        }
    }

    @Test func readyOnlyOnceEveryBusHasStoredATickThenWatchdogThenStopping() async throws {
        let systemd = try FakeSystemd()
        let board = board()
        let notifier = SystemdNotifier(board: board, pollInterval: .seconds(1), logger: logger,
                                       environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000"],
                                       staleAfter: .seconds(60), checkEvery: .milliseconds(20))
        try await withGroup(notifier) { group in
            let first = try #require(await systemd.next())
            #expect(first.contains("STATUS=waiting for the first poll"))
            #expect(first.contains("EXTEND_TIMEOUT_USEC=61000000"), "poll interval + stale limit")
            try await Task.sleep(for: .milliseconds(300))
            tick(board, bus: "a", at: 1_000)
            let early = await systemd.drain()
            #expect(!early.contains { $0.contains("READY=1") }, "not ready while bus b has no tick: \(early)")
            board.update { $0.storageError = "disk I/O error" }
            tick(board, bus: "b", at: 1_000)
            // READY cannot come while storage fails: the next STATUS says why it waits.
            let failing = try #require(await systemd.next { $0.contains("STATUS=cannot store readings") || $0.contains("READY=1") })
            #expect(!failing.contains("READY=1"), "\(failing)")

            board.update { $0.storageError = nil }
            let ready = try #require(await systemd.next { $0.contains("READY=1") })
            #expect(ready.contains("STATUS=2 of 2 channels measuring, outbox empty"), "\(ready)")
            // Pings keep coming (every 100 ms; counted loosely: a loaded machine delays the service's loop).
            var later: [String] = []
            let deadline = ContinuousClock.now + .seconds(10)
            while later.filter({ $0.contains("WATCHDOG=1") }).count < 3, ContinuousClock.now < deadline {
                later += await systemd.drain(for: .milliseconds(100))
            }
            #expect(later.filter { $0.contains("WATCHDOG=1") }.count >= 3, "\(later)")
            #expect(!later.contains { $0.contains("READY=1") }, "READY is sent once")

            await group.triggerGracefulShutdown()
            let last = try #require(await systemd.next { $0.contains("STOPPING=1") })
            #expect(last.contains("STATUS=stopping"))
        }
    }

    @Test func readyWaitsUntilEveryBusHasCommittedItsTick() async throws {
        let systemd = try FakeSystemd()
        let board = board()
        let progress = AcquisitionProgress()
        let notifier = SystemdNotifier(board: board, progress: progress, pollInterval: .seconds(1), logger: logger,
                                       environment: ["NOTIFY_SOCKET": systemd.path], checkEvery: .milliseconds(20))
        try await withGroup(notifier) { group in
            tick(board, bus: "a", at: 1_000)
            tick(board, bus: "b", at: 1_000)
            await progress.markStored(bus: "a", time: Timestamp(milliseconds: 1_000))
            let early = await systemd.drain(for: .milliseconds(300))
            #expect(!early.contains { $0.contains("READY=1") }, "bus b has polled but not committed: \(early)")
            await progress.markStored(bus: "b", time: Timestamp(milliseconds: 1_000))
            _ = try #require(await systemd.next { $0.contains("READY=1") })
            await group.triggerGracefulShutdown()
            _ = try #require(await systemd.next { $0.contains("STOPPING=1") })
        }
    }

    @Test func aStalledBusStopsTheWatchdogUntilItPollsAgain() async throws {
        let systemd = try FakeSystemd()
        let board = board()
        let notifier = SystemdNotifier(board: board, pollInterval: .milliseconds(50), logger: logger,
                                       environment: ["NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "100000"],
                                       staleAfter: .milliseconds(600), checkEvery: .milliseconds(10))
        try await withGroup(notifier) { group in
            // Bus a polls every 50 ms throughout; bus b polls, then hangs.
            let ticker = Task {
                var ms: Int64 = 0
                while !Task.isCancelled {
                    ms += 50
                    tick(board, bus: "a", at: ms)
                    if ms <= 250 { tick(board, bus: "b", at: ms) }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            defer { ticker.cancel() }
            _ = try #require(await systemd.next { $0.contains("READY=1") })
            let stalled = try #require(await systemd.next { $0.contains("STATUS=no poll completed recently on bus") && $0.hasSuffix("b") },
                                       "the status names the stalled bus")
            #expect(!stalled.contains("WATCHDOG=1"))
            let silent = await systemd.drain(for: .milliseconds(800))
            #expect(!silent.contains { $0.contains("WATCHDOG=1") }, "no ping while bus b is stale: \(silent)")

            tick(board, bus: "b", at: 10_000)
            #expect(await systemd.next { $0.contains("WATCHDOG=1") } != nil, "pings resume")
            await group.triggerGracefulShutdown()
            _ = try #require(await systemd.next { $0.contains("STOPPING=1") })
        }
    }

    @Test func abstractSocketNameAndNoWatchdogWithoutWatchdogUsec() async throws {
        let name = "quantrac-test-\(UUID().uuidString)"
        let systemd = try FakeSystemd(abstract: name)
        let board = board()
        let notifier = SystemdNotifier(board: board, pollInterval: .seconds(1), logger: logger,
                                       environment: ["NOTIFY_SOCKET": "@" + name], checkEvery: .milliseconds(20))
        try await withGroup(notifier) { group in
            tick(board, bus: "a", at: 1_000)
            tick(board, bus: "b", at: 1_000)
            _ = try #require(await systemd.next { $0.contains("READY=1") })
            let rest = await systemd.drain(for: .milliseconds(300))
            #expect(!rest.contains { $0.contains("WATCHDOG=1") })
            await group.triggerGracefulShutdown()
            _ = try #require(await systemd.next { $0.contains("STOPPING=1") })
        }
    }

    @Test func withoutNotifySocketItWaitsForShutdown() async throws {
        let notifier = SystemdNotifier(board: board(), pollInterval: .seconds(1), logger: logger, environment: [:])
        try await withGroup(notifier) { group in
            try await Task.sleep(for: .milliseconds(100))
            await group.triggerGracefulShutdown()
        }
    }

    @Test func watchdogIntervalFollowsSdWatchdogEnabled() {
        #expect(SystemdNotifier.pingInterval(environment: ["WATCHDOG_USEC": "60000000"]) == .seconds(30))
        #expect(SystemdNotifier.pingInterval(environment: ["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "\(getpid())"]) == .seconds(30))
        #expect(SystemdNotifier.pingInterval(environment: ["WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"]) == nil)
        #expect(SystemdNotifier.pingInterval(environment: ["WATCHDOG_USEC": "0"]) == nil)
        #expect(SystemdNotifier.pingInterval(environment: [:]) == nil)
    }
}

/// systemd's side of the notification socket: a bound AF_UNIX datagram socket (a file in a temp dir,
/// or an abstract name), read without blocking. Waits for a datagram are bounded at 30 s: long enough for a
/// loaded two-core CI machine, where every integration suite starts its peers in the first seconds (a
/// 5 s bound once missed the first STATUS there); a passing test never waits that long.
final class FakeSystemd: Sendable {
    let path: String
    let fd: Int32

    init(abstract: String? = nil) throws {
        path = abstract.map { "@" + $0 } ?? NSTemporaryDirectory() + "qn-\(UUID().uuidString.prefix(8)).sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if abstract != nil { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract == nil ? 1 : 0))
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard fd >= 0, ok == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
    }

    deinit {
        close(fd)
        if !path.hasPrefix("@") { unlink(path) }
    }

    /// The next datagram, or nil after `timeout`.
    func next(within timeout: Duration = .seconds(30)) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let message = receive() { return message }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    /// The next datagram matching `match` (others are skipped), or nil after `timeout`.
    func next(within timeout: Duration = .seconds(30), where match: (String) -> Bool) async -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, let message = await next(within: deadline - ContinuousClock.now) {
            if match(message) { return message }
        }
        return nil
    }

    /// Every datagram received during `duration` (already queued ones included).
    func drain(for duration: Duration = .zero) async -> [String] {
        var out: [String] = []
        let deadline = ContinuousClock.now + duration
        repeat {
            while let message = receive() { out.append(message) }
            if ContinuousClock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(5))
        } while true
        return out
    }

    private func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }
}
