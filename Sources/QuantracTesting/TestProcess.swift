import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the test harness, with everything a failing test should print (peer logs included).
public struct TestHarnessError: Error, CustomStringConvertible, LocalizedError {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
    public var errorDescription: String? { message }
}

/// A child process started by a test: a peer (Python fixture, socat) or a binary under test.
///
/// stdout and stderr go to files `<label>.stdout` / `<label>.stderr` in the log directory (a numeric
/// suffix keeps restarts apart), so a test can print them on failure. stdin is `/dev/null`.
///
/// Foundation's `Process` gives the child the signal mask of the launching thread (swift-corelibs-foundation
/// issue 4772); Dispatch and Swift-concurrency worker threads block SIGTERM/SIGINT and nearly everything
/// else, so children launched from a test would ignore SIGTERM. `TestProcess` empties the launching
/// thread's mask around `Process.run()`, so every child starts with no blocked signals, as under
/// systemd (the fixture scripts also unblock signals themselves).
///
/// `stop()` sends SIGTERM, waits up to 2 s, then SIGKILL, and waits until Foundation has reaped the
/// child. `deinit` calls `stop()`.
public final class TestProcess: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `process` (not Sendable) is configured and launched in `init`,
    // before `self` is shared, and never touched again (it is kept only so Foundation keeps monitoring
    // the child); afterwards only the immutable `pid` is used. The exit status is recorded by Foundation's
    // termination handler in `state`, which guards it with a lock. Every other stored property is an
    // immutable `let` of a Sendable type.
    private let process: Process
    private let state = ExitState()

    /// Process id of the child.
    public let pid: Int32
    /// Whether the child leads its own process group (Foundation's `Process` does that on Linux).
    private let ownGroup: Bool
    /// Label used for the log file names and in error messages.
    public let label: String
    /// The file receiving the child's stdout.
    public let stdoutURL: URL
    /// The file receiving the child's stderr.
    public let stderrURL: URL
    /// The program and its arguments as launched (for messages).
    public let commandLine: [String]

    /// Launches `executable` with `arguments`.
    /// - Parameters:
    ///   - environment: variables added to (or overriding) this test process's environment.
    ///   - workingDirectory: the child's current directory (default: inherited).
    ///   - logDirectory: where `<label>.stdout` and `<label>.stderr` are created.
    ///   - label: file-name stem and name in messages (default: the executable's file name).
    public init(
        executable: URL,
        arguments: [String] = [],
        environment: [String: String] = [:],
        workingDirectory: URL? = nil,
        logDirectory: URL,
        label: String? = nil
    ) throws {
        let label = label ?? executable.lastPathComponent
        self.label = label
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let (stdoutURL, stdoutHandle, stderrURL, stderrHandle) = try Self.createLogFiles(label: label, in: logDirectory)
        self.stdoutURL = stdoutURL
        self.stderrURL = stderrURL
        defer {
            try? stdoutHandle.close()
            try? stderrHandle.close()
        }

        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        commandLine = [executable.path] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdoutHandle
        process.standardError = stderrHandle

        let state = self.state
        process.terminationHandler = { finished in
            state.record(status: finished.terminationStatus, reason: finished.terminationReason)
        }
        do {
            try Self.withEmptySignalMask { try process.run() }
        } catch {
            throw TestHarnessError("cannot launch \(([executable.path] + arguments).joined(separator: " ")): \(error)")
        }
        self.process = process
        self.pid = process.processIdentifier
        self.ownGroup = getpgid(process.processIdentifier) == process.processIdentifier
    }

    deinit {
        stop()
    }

    // MARK: - Output

    /// Everything the child has written to stdout so far.
    public var stdoutText: String { Self.read(stdoutURL) }

    /// Everything the child has written to stderr so far.
    public var stderrText: String { Self.read(stderrURL) }

    /// Blocks until stdout has a complete line starting with `prefix` and returns that line (without the
    /// newline). Throws, with the child's stdout and stderr in the message, if the timeout passes or the
    /// child exits first.
    public func waitForLine(prefix: String, timeout: Duration) throws -> String {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let exitedBefore = exitStatus != nil
            if let line = Self.completeLines(of: stdoutText).first(where: { $0.hasPrefix(prefix) }) {
                return line
            }
            if exitedBefore {
                throw TestHarnessError(
                    "\(label) exited (\(exitDescription)) before printing a line starting with \"\(prefix)\"\n"
                        + logReport())
            }
            if ContinuousClock.now >= deadline {
                throw TestHarnessError(
                    "\(label) printed no line starting with \"\(prefix)\" within \(timeout) "
                        + "(\(isRunning ? "still running" : exitDescription))\n" + logReport())
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    /// The command line plus the current stdout and stderr, for failure messages.
    public func logReport() -> String {
        """
        --- \(label): \(commandLine.joined(separator: " "))
        --- stdout (\(stdoutURL.path)):
        \(stdoutText)
        --- stderr (\(stderrURL.path)):
        \(stderrText)
        --- end of \(label)
        """
    }

    // MARK: - Lifecycle

    /// Whether the child has not been reaped yet.
    public var isRunning: Bool { exitStatus == nil }

    /// The exit status once the child has ended: its exit code, or the signal number if a signal killed it.
    public var exitStatus: Int32? {
        state.withLock { $0?.status }
    }

    /// Whether a signal ended the child (`nil` while it runs).
    public var wasKilledBySignal: Bool? {
        state.withLock { exit in exit.map { $0.reason == .uncaughtSignal } }
    }

    /// "running", "exit status N" or "killed by signal N".
    public var exitDescription: String {
        state.withLock { exit in
            guard let exit else { return "running" }
            return exit.reason == .uncaughtSignal ? "killed by signal \(exit.status)" : "exit status \(exit.status)"
        }
    }

    /// Waits up to `timeout` for the child to end; returns its exit status, or `nil` if it still runs.
    @discardableResult
    public func waitForExit(timeout: Duration) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: max(0, timeout.inSeconds))
        state.condition.lock()
        defer { state.condition.unlock() }
        while state.exit == nil {
            if !state.condition.wait(until: deadline) { break }
        }
        return state.exit?.status
    }

    /// Sends `signal` to the child if it still runs. Returns whether it was sent.
    @discardableResult
    public func send(signal: Int32) -> Bool {
        state.withLock { exit in
            // Under the lock the termination handler cannot record an exit meanwhile. The pid stays ours
            // until Foundation reaps it, just before the handler runs (a negligible window for pid reuse).
            guard exit == nil else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// SIGTERM, up to 2 s grace, then SIGKILL; returns once the child has been reaped. Returns the exit
    /// status (`nil` only if even SIGKILL did not end it within 10 s). Afterwards anything the child left
    /// behind in its process group is killed too. Safe to call more than once.
    @discardableResult
    public func stop() -> Int32? {
        send(signal: SIGTERM)
        if let status = waitForExit(timeout: .seconds(2)) {
            killLeftovers()
            return status
        }
        return kill9()
    }

    /// SIGKILL to the child and its process group (a crash, no cleanup), then waits until the child has
    /// been reaped.
    @discardableResult
    public func kill9() -> Int32? {
        state.withLock { exit in
            if exit == nil && kill(-pid, SIGKILL) != 0 { kill(pid, SIGKILL) }
        }
        let status = waitForExit(timeout: .seconds(10))
        if status != nil { killLeftovers() }
        return status
    }

    /// Foundation starts each child in its own process group (pgid = pid). Once the child has been
    /// reaped, SIGKILL whatever remains in that group (grandchildren it did not stop), once.
    private func killLeftovers() {
        state.withLockedState { state in
            guard state.exit != nil, !state.leftoversKilled else { return }
            state.leftoversKilled = true
            if ownGroup { kill(-pid, SIGKILL) }
        }
    }

    // MARK: - Python fixtures

    /// Runs `python3` (from `$QUANTRAC_PYTHON`, else `PATH`) on a fixture script. The log files are named
    /// after the script (`modbus_server.stdout`, …).
    public static func python(
        script: URL,
        arguments: [String],
        logDirectory: URL,
        environment: [String: String] = [:],
        label: String? = nil
    ) throws -> TestProcess {
        guard let python = python3 else {
            throw TestHarnessError("python3 not found on PATH (or set QUANTRAC_PYTHON)")
        }
        guard FileManager.default.fileExists(atPath: script.path) else {
            throw TestHarnessError("fixture script \(script.path) does not exist")
        }
        return try TestProcess(
            executable: python,
            arguments: ["-u", script.path] + arguments,
            environment: environment,
            logDirectory: logDirectory,
            label: label ?? script.deletingPathExtension().lastPathComponent)
    }

    /// The first executable named `name` on `PATH`, or `nil`.
    public static func findExecutable(_ name: String) -> URL? {
        if name.contains("/") {
            return FileManager.default.isExecutableFile(atPath: name) ? URL(fileURLWithPath: name) : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    /// The Python interpreter for fixtures: `$QUANTRAC_PYTHON`, else `python3` on `PATH`.
    public static var python3: URL? {
        if let explicit = ProcessInfo.processInfo.environment["QUANTRAC_PYTHON"], !explicit.isEmpty {
            return findExecutable(explicit)
        }
        return findExecutable("python3")
    }

    // MARK: - Private

    /// Runs `body` with this thread's signal mask emptied, then restores it. `posix_spawn` (inside
    /// `Process.run`) gives the child the calling thread's mask; Dispatch and Swift-concurrency worker
    /// threads block nearly every signal, so without this a child cannot be stopped with SIGTERM.
    /// A process-directed signal arriving in this short window may be handled on this thread instead of
    /// another: harmless, since dispositions are process-wide.
    private static func withEmptySignalMask<T>(_ body: () throws -> T) rethrows -> T {
        var empty = sigset_t()
        var saved = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        return try body()
    }

    /// Creates `<label>[-N].stdout` and `.stderr` exclusively (O_EXCL), so restarts and parallel peers
    /// in one directory never share a file.
    private static func createLogFiles(label: String, in directory: URL) throws
        -> (URL, FileHandle, URL, FileHandle)
    {
        for attempt in 1...1000 {
            let stem = attempt == 1 ? label : "\(label)-\(attempt)"
            let outURL = directory.appendingPathComponent("\(stem).stdout")
            let errURL = directory.appendingPathComponent("\(stem).stderr")
            let outFD = open(outURL.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if outFD < 0 {
                if errno == EEXIST { continue }
                throw TestHarnessError("cannot create \(outURL.path): \(String(cString: strerror(errno)))")
            }
            let errFD = open(errURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if errFD < 0 {
                let message = String(cString: strerror(errno))
                close(outFD)
                throw TestHarnessError("cannot create \(errURL.path): \(message)")
            }
            return (outURL, FileHandle(fileDescriptor: outFD, closeOnDealloc: true),
                    errURL, FileHandle(fileDescriptor: errFD, closeOnDealloc: true))
        }
        throw TestHarnessError("too many log files for \(label) in \(directory.path)")
    }

    private static func read(_ url: URL) -> String {
        guard let data = FileManager.default.contents(atPath: url.path) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Lines terminated by a newline (a partly written last line is not returned).
    private static func completeLines(of text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeLast()  // the text after the last newline: empty or incomplete
        return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
    }

}

/// The child's exit, recorded once by Foundation's termination handler (which runs on a Foundation thread).
// Invariant for @unchecked Sendable: `exit` and `leftoversKilled` are only read or written while holding
// `condition`.
private final class ExitState: @unchecked Sendable {
    let condition = NSCondition()
    var exit: (status: Int32, reason: Process.TerminationReason)?
    var leftoversKilled = false

    func record(status: Int32, reason: Process.TerminationReason) {
        condition.lock()
        if exit == nil { exit = (status, reason) }
        condition.broadcast()
        condition.unlock()
    }

    func withLock<T>(_ body: (inout (status: Int32, reason: Process.TerminationReason)?) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(&exit)
    }

    func withLockedState<T>(_ body: (ExitState) throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body(self)
    }
}
