import Acquisition
import Foundation
import Logging
import QuantracCore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Tells systemd how the daemon is doing (`sd_notify(3)`, spoken directly on `$NOTIFY_SOCKET`, no libsystemd):
///
/// - `READY=1` once every bus has polled and stored its first tick (the status board has a tick for every
///   bus and no storage error, and `AcquisitionProgress` has the tick committed), so `systemctl start`
///   returns when data really flows;
/// - `WATCHDOG=1` every `WatchdogSec/2` (from `$WATCHDOG_USEC`), but only while every bus has completed a
///   poll recently — within `max(3 × poll_interval, 30 s)`, measured on the monotonic clock. A bus thread
///   stuck in a C call stops the pings and systemd restarts the service;
/// - `STOPPING=1` as soon as graceful shutdown begins (this service is the last one in the group, so it is
///   the first to hear of it);
/// - `STATUS=` a one-line summary whenever it changes (shown by `systemctl status`).
///
/// Without `$NOTIFY_SOCKET` (not started by systemd) it only waits for shutdown. Never ends on its own
/// before shutdown: a notification that cannot be sent is logged once and the daemon goes on.
public struct SystemdNotifier: Service {
    let board: StatusBoard
    let progress: AcquisitionProgress?
    let pollInterval: Duration
    let logger: Logger
    let environment: [String: String]
    /// A bus whose last completed poll is older than this withholds the watchdog ping.
    let staleAfter: Duration
    /// How often the status board is looked at.
    let checkEvery: Duration

    /// - Parameters:
    ///   - progress: the bus pollers' committed ticks; nil: the status board alone decides READY.
    ///   - environment: where `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` are read (the process environment).
    ///   - staleAfter: nil: `max(3 × pollInterval, 30 s)`.
    ///   - checkEvery: period of the status-board check (1 s); tests use less.
    public init(board: StatusBoard, progress: AcquisitionProgress? = nil, pollInterval: Duration, logger: Logger,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                staleAfter: Duration? = nil, checkEvery: Duration = .seconds(1)) {
        self.board = board
        self.progress = progress
        self.pollInterval = pollInterval
        self.logger = logger
        self.environment = environment
        self.staleAfter = staleAfter ?? max(pollInterval * 3, .seconds(30))
        self.checkEvery = checkEvery
    }

    /// Half of `$WATCHDOG_USEC`, or nil when systemd supervises no watchdog for this process
    /// (unset, not a positive number, or `$WATCHDOG_PID` names another process), as `sd_watchdog_enabled(3)`.
    public static func pingInterval(environment: [String: String]) -> Duration? {
        guard let raw = environment["WATCHDOG_USEC"], let usec = Int64(raw), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], let p = Int32(pid), p != getpid() { return nil }
        return .microseconds(usec) / 2
    }

    public func run() async throws {
        guard let address = environment["NOTIFY_SOCKET"], !address.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        let socket: NotifySocket
        do {
            socket = try NotifySocket(address: address)
        } catch {
            logger.warning("cannot notify systemd: \(error)")
            try? await gracefulShutdown()
            return
        }
        let ping = Self.pingInterval(environment: environment)
        var sendFailed = false
        func send(_ message: String) {
            do {
                try socket.send(message)
                if sendFailed { logger.notice("systemd notifications are delivered again") }
                sendFailed = false
            } catch {
                if !sendFailed { logger.warning("cannot notify systemd: \(error)") }
                sendFailed = true
            }
        }

        let clock = ContinuousClock()
        // A bus without channels never records a tick: it is not waited for.
        let initial = board.snapshot()
        let buses = Set(initial.buses.map(\.name).filter { bus in initial.channels.contains { $0.bus == bus } })
        var liveness = BusLiveness(buses: buses.sorted(), start: clock.now)
        var ready = false
        var withheld = false
        var lastStatus = ""
        var nextPing = clock.now
        let firstTickAllowance = pollInterval + staleAfter
        // systemd's start timeout (90 s by default) is stretched to cover a long poll interval.
        var extend: String? = "EXTEND_TIMEOUT_USEC=\(firstTickAllowance.wholeMilliseconds * 1000)"
        logger.debug("notifying systemd", metadata: ["socket": "\(address)", "watchdog": "\(ping.map { "\($0)" } ?? "off")"])

        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            var snapshot = board.snapshot()
            snapshot.buses.removeAll { !buses.contains($0.name) }
            let now = clock.now
            liveness.observe(snapshot.buses, at: now)
            var message: [String] = []
            if let e = extend {
                message.append(e)
                extend = nil
            }
            if !ready, snapshot.buses.allSatisfy({ $0.lastTickMs != nil }), snapshot.storageError == nil, await committed(buses) {
                ready = true
                message.append("READY=1")
                logger.info("first poll of every bus stored; ready")
            }
            if let ping, now >= nextPing {
                let stale = liveness.stale(at: now, after: staleAfter)
                if stale.isEmpty {
                    message.append("WATCHDOG=1")
                    if withheld { logger.notice("every bus polls again; watchdog pings resumed") }
                    withheld = false
                } else if !withheld {
                    withheld = true
                    logger.error("watchdog ping withheld: bus \(stale.joined(separator: ", ")) completed no poll for more than \(staleAfter); systemd will restart the service")
                }
                nextPing = now + ping
            }
            let status = Self.status(snapshot, ready: ready, stale: liveness.stale(at: now, after: staleAfter))
                .split(whereSeparator: \.isNewline).joined(separator: " ")
            if status != lastStatus {
                message.append("STATUS=\(status)")
                lastStatus = status
            }
            if !message.isEmpty { send(message.joined(separator: "\n")) }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: checkEvery) }
        }
        send("STOPPING=1\nSTATUS=stopping")
        logger.debug("told systemd: stopping")
    }

    /// Whether every one of `buses` has committed a tick to the database (true without `progress`).
    func committed(_ buses: Set<String>) async -> Bool {
        guard let progress else { return true }
        return await progress.lowWatermark(buses: buses.sorted()) != nil
    }

    /// The one-line `STATUS=` text: what the daemon waits for, or how its channels and queues are.
    static func status(_ s: StatusBoard.Snapshot, ready: Bool, stale: [String]) -> String {
        if let error = s.storageError { return "cannot store readings (\(s.readingsHeldInMemory) held in memory): \(error)" }
        if !stale.isEmpty { return "no poll completed recently on bus \(stale.joined(separator: ", "))" }
        if !ready {
            let waiting = s.buses.filter { $0.lastTickMs == nil }.map(\.name)
            return "waiting for the first poll of bus \(waiting.joined(separator: ", "))"
        }
        let faults = s.channels.filter { $0.statusCode == "02" }.count
        let pending = s.targets.map(\.pending).reduce(0, +)
        let parked = s.targets.filter { $0.parked != nil }.map(\.name)
        var text = "\(s.channels.count - faults) of \(s.channels.count) channels measuring"
        text += pending == 0 ? ", outbox empty" : ", \(pending) file\(pending == 1 ? "" : "s") pending"
        if !parked.isEmpty { text += ", target \(parked.joined(separator: ", ")) parked" }
        if let alarm = s.diskAlarm { text += ", disk: \(alarm)" }
        return text
    }
}

/// When each bus last completed a poll, on the monotonic clock: a new `lastTickMs` on the status board
/// means a new poll, whatever the wall clock did. A bus that has not polled yet counts from `start`.
struct BusLiveness {
    private var seen: [String: Int64?]
    private var changed: [String: ContinuousClock.Instant]

    init(buses: [String], start: ContinuousClock.Instant) {
        seen = Dictionary(uniqueKeysWithValues: buses.map { ($0, nil) })
        changed = Dictionary(uniqueKeysWithValues: buses.map { ($0, start) })
    }

    mutating func observe(_ buses: [StatusBoard.BusState], at now: ContinuousClock.Instant) {
        for bus in buses where seen[bus.name] != nil && seen[bus.name] != .some(bus.lastTickMs) {
            seen[bus.name] = .some(bus.lastTickMs)
            changed[bus.name] = now
        }
    }

    /// The buses (in name order) with no completed poll within `limit` before `now`.
    func stale(at now: ContinuousClock.Instant, after limit: Duration) -> [String] {
        changed.filter { now - $0.value > limit }.map(\.key).sorted()
    }
}

/// A problem talking to `$NOTIFY_SOCKET`.
public struct NotifyError: Error, CustomStringConvertible, Equatable {
    public enum Code: Sendable, Equatable { case badAddress, socket, send }
    public let code: Code
    public let description: String

    init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }

    public static func == (a: NotifyError, b: NotifyError) -> Bool { a.code == b.code }
}

/// An `AF_UNIX` datagram socket aimed at systemd's notification socket. `@name` is an abstract socket
/// (leading NUL byte), `/path` a socket file. Sends never block (`MSG_DONTWAIT`). Closed in `deinit`.
final class NotifySocket {
    private let fd: Int32
    private let address: UnixSocketAddress

    init(address path: String) throws {
        guard let first = path.utf8.first, first == UInt8(ascii: "/") || first == UInt8(ascii: "@") else {
            throw NotifyError(.badAddress, "NOTIFY_SOCKET=\(path) is neither a path nor an abstract socket name (@…)")
        }
        guard let addr = UnixSocketAddress(path) else {
            throw NotifyError(.badAddress, "NOTIFY_SOCKET=\(path) is longer than \(UnixSocketAddress.capacity) bytes")
        }
        address = addr
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw NotifyError(.socket, "socket(AF_UNIX, SOCK_DGRAM): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Sends `message` as one datagram (`sendto(2)`, non-blocking).
    func send(_ message: String) throws {
        let bytes = Array(message.utf8)
        let sent = address.withSockaddr { sa, length in
            bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT), sa, length) }
        }
        guard sent == bytes.count else {
            let reason = sent < 0 ? String(cString: strerror(errno)) : "short write (\(sent) of \(bytes.count) bytes)"
            throw NotifyError(.send, "sendto \(message.prefix(while: { $0 != "=" })): \(reason)")
        }
    }
}
