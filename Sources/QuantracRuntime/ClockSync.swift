import Foundation
import Logging
import QuantracCore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Whether the system clock is synchronised, from the kernel's NTP state (`adjtimex(2)` with `modes = 0`,
/// read-only) or, where the kernel state may not be read (systemd's `ProtectClock=yes` denies the
/// call), from `timedatectl show --property=NTPSynchronized`.
public enum ClockSyncProbe {
    /// The kernel's clock discipline state.
    public struct Kernel: Sendable, Hashable {
        /// `STA_UNSYNC` clear: a time daemon (chrony, systemd-timesyncd, ntpd) disciplines the clock.
        public var synchronized: Bool
        /// `maxerror` and `esterror`, in microseconds (the kernel caps `maxerror` at 16 s).
        public var maxErrorMicroseconds: Int
        public var estimatedErrorMicroseconds: Int
    }

    /// `STA_UNSYNC` of `<linux/timex.h>`.
    static let staUnsync: Int32 = 0x0040
    /// `TIME_ERROR`, the return value of `adjtimex` for an unsynchronised clock.
    static let timeError: Int32 = 5

    /// Reads the kernel state with `adjtimex(2)`; nil with the errno when the call is refused (`EPERM`
    /// under a seccomp filter) or unavailable. Does not block.
    ///
    /// `<sys/timex.h>` is not part of Swift's Glibc module, so the function is looked up with `dlsym` and
    /// `struct timex` is read at its Linux offsets, which follow from the size of `long` (LP64 and ILP32):
    /// `modes` (int) at 0, then `offset`, `freq`, `maxerror`, `esterror` (long), `status` (int).
    public static func kernel() -> Result<Kernel, ProbeError> {
        typealias AdjTimex = @convention(c) (UnsafeMutableRawPointer) -> Int32
        guard let symbol = dlsym(nil, "adjtimex") else { return .failure(ProbeError(reason: "adjtimex is not available")) }
        let adjtimex = unsafeBitCast(symbol, to: AdjTimex.self)
        let size = 512  // struct timex is 208 bytes on LP64
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)  // modes = 0: read only
        let state = adjtimex(buffer)
        if state < 0 { return .failure(ProbeError(reason: "adjtimex: \(String(cString: strerror(errno)))")) }
        let long = MemoryLayout<Int>.size
        let maxError = buffer.load(fromByteOffset: 3 * long, as: Int.self)
        let estError = buffer.load(fromByteOffset: 4 * long, as: Int.self)
        let status = buffer.load(fromByteOffset: 5 * long, as: Int32.self)
        return .success(Kernel(synchronized: status & staUnsync == 0 && state != timeError,
                               maxErrorMicroseconds: maxError, estimatedErrorMicroseconds: estError))
    }

    /// Why the kernel state could not be read.
    public struct ProbeError: Error, Sendable, Hashable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    /// Runs `timedatectl show --property=NTPSynchronized --value` (at most `timeout`) and reads its
    /// answer. Blocks the calling thread: call it on a lane, never on the cooperative pool.
    public static func timedatectl(timeout: Duration = .seconds(3)) -> Bool? {
        let candidates = ["/usr/bin/timedatectl", "/bin/timedatectl"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["show", "--property=NTPSynchronized", "--value"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return process.terminationStatus == 0 ? parseTimedatectl(text) : nil
    }

    /// `yes` → true, `no` → false, anything else → nil.
    public static func parseTimedatectl(_ text: String) -> Bool? {
        switch text.trimmingCharacters(in: .whitespacesAndNewlines) {
        case "yes": return true
        case "no": return false
        default: return nil
        }
    }

    /// The board's clock state from a kernel reading (or its failure) and, if asked, timedatectl's answer.
    public static func state(kernel: Result<Kernel, ProbeError>, timedatectl: Bool??, at now: Timestamp) -> StatusBoard.ClockState {
        switch kernel {
        case .success(let k):
            let maxMs = Int64(k.maxErrorMicroseconds / 1000), estMs = Int64(k.estimatedErrorMicroseconds / 1000)
            let detail = k.synchronized
                ? "synchronised (kernel: max error \(formatMs(maxMs)), estimated error \(formatMs(estMs)))"
                : "NOT synchronised (kernel: STA_UNSYNC set, max error \(formatMs(maxMs))): check chrony or systemd-timesyncd"
            return .init(synchronized: k.synchronized, source: "adjtimex", maxErrorMs: maxMs, estimatedErrorMs: estMs,
                         detail: detail, checkedMs: now.milliseconds)
        case .failure(let e):
            switch timedatectl {
            case .some(.some(true)):
                return .init(synchronized: true, source: "timedatectl", detail: "synchronised (timedatectl: NTPSynchronized=yes)",
                             checkedMs: now.milliseconds)
            case .some(.some(false)):
                return .init(synchronized: false, source: "timedatectl",
                             detail: "NOT synchronised (timedatectl: NTPSynchronized=no): check chrony or systemd-timesyncd", checkedMs: now.milliseconds)
            default:
                return .init(synchronized: nil, source: "none", detail: "unknown (\(e.reason); timedatectl gave no answer)", checkedMs: now.milliseconds)
            }
        }
    }

    static func formatMs(_ ms: Int64) -> String { ms >= 10_000 ? "\(ms / 1000) s" : "\(ms) ms" }
}

/// Checks the clock's synchronisation every `every` (first at start), publishes it on the status board
/// and logs each change once (warning when it is lost, notice when it is back).
public struct ClockSyncMonitor: Service {
    let board: StatusBoard
    let wallClock: any WallClock
    let logger: Logger
    let every: Duration

    public init(board: StatusBoard, wallClock: any WallClock, logger: Logger, every: Duration = .seconds(60)) {
        self.board = board
        self.wallClock = wallClock
        self.logger = logger
        self.every = every
    }

    public func run() async throws {
        // timedatectl is a child process: it runs on its own thread, and only where adjtimex is refused.
        var lane: BlockingLane<Void>?
        defer { lane?.shutdown() }
        var last: Bool??
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let kernel = ClockSyncProbe.kernel()
            var answer: Bool??
            if case .failure = kernel {
                let l = lane ?? BlockingLane(name: "clock-sync") {}
                lane = l
                answer = .some((try? await l.run { _ in ClockSyncProbe.timedatectl() }) ?? nil)
            }
            let state = ClockSyncProbe.state(kernel: kernel, timedatectl: answer, at: wallClock.now())
            board.update { $0.clock = state }
            if last.map({ $0 != state.synchronized }) ?? true {
                switch state.synchronized {
                case .some(false): logger.warning("system clock: \(state.detail)", metadata: ["source": "\(state.source)"])
                case .some(true) where last != nil: logger.notice("system clock: \(state.detail)", metadata: ["source": "\(state.source)"])
                default: logger.info("system clock: \(state.detail)", metadata: ["source": "\(state.source)"])
                }
                last = .some(state.synchronized)
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: every) }
        }
    }
}
