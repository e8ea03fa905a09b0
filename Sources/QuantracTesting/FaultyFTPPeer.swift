import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fault-injecting pyftpdlib server (`Tests/Fixtures/faulty_ftp_server.py`) on 127.0.0.1 with one
/// user whose home is `root`. It behaves like `FTPPeer` in mode `.ok`; `setMode(_:)` switches the fault
/// at runtime (the server re-reads a control file on every command and every 0.1 s).
///
/// The server writes one `EVENT` line per command of interest (PASS, STOR, RNFR, RNTO) and per fault
/// action to stderr; `events()` parses them, e.g. to count upload attempts over a window.
public final class FaultyFTPPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `current` and `earlier` are only touched under `lock`;
    // everything else is an immutable `let` of a Sendable type.

    /// What the server does, see the fixture's documentation.
    public enum Mode: String, Sendable, CaseIterable {
        /// Behave like `ftp_server.py`.
        case ok
        /// Accept STOR, receive a few bytes, then reset the data and control connections.
        case drop
        /// Answer STOR with 550.
        case reject550 = "550"
        /// Answer STOR with 552 (storage allocation exceeded).
        case reject552 = "552"
        /// Answer PASS with 530; sessions logged in before are closed (FIN) once idle.
        case refuseLogin530 = "530"
        /// Accept STOR (150), then neither read the data nor answer until the mode changes.
        case stall
        /// Behave like `.ok`, but close every idle logged-in session with "421 Control connection timed
        /// out." (a server's idle timeout): a cached control connection is never usable.
        case idle421
    }

    /// One `EVENT` line of the server log.
    public struct Event: Sendable, Hashable, CustomStringConvertible {
        /// Unix time, seconds.
        public let time: Double
        /// The mode in force when it happened (raw value).
        public let mode: String
        /// PASS, STOR, RNFR, RNTO, REFUSED, DROP, STALL, RESUME, KICK, CLOSED, START.
        public let what: String
        /// The command's argument (path) if any.
        public let argument: String
        /// `key=value` fields (`bytes`, `stalled`, `after`).
        public let fields: [String: String]

        public var description: String { "\(time) mode=\(mode) \(what) \(argument) \(fields)" }
    }

    private let lock = NSLock()
    private var current: TestProcess
    private var earlier: [TestProcess] = []
    private let baseArguments: [String]
    private let directory: URL

    /// The control port; the same after `restart()`.
    public let port: Int
    /// The user's home directory.
    public let root: URL
    public let user: String
    public let password: String
    /// The file holding the current mode.
    public let controlFile: URL

    /// The running (or last) server process, for its logs.
    public var process: TestProcess {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    private init(process: TestProcess, baseArguments: [String], directory: URL, port: Int, root: URL,
                 user: String, password: String, controlFile: URL) {
        self.current = process
        self.baseArguments = baseArguments
        self.directory = directory
        self.port = port
        self.root = root
        self.user = user
        self.password = password
        self.controlFile = controlFile
    }

    deinit { process.stop() }

    /// Starts the server in `mode`; `port` 0 picks a free one. Logs and the control file go to `dir`.
    public static func start(root: URL, user: String, password: String, mode: Mode = .ok, allowRename: Bool = true,
                             port: Int = 0, in dir: URL) throws -> FaultyFTPPeer {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let control = dir.appendingPathComponent("faulty-ftp-mode-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try writeMode(mode, to: control)
        var arguments = ["--root", root.path, "--user", user, "--password", password, "--control", control.path]
        if !allowRename { arguments.append("--no-rename") }
        let process = try launch(arguments + ["--port", String(port)], in: dir)
        let actual = try faultyReadyPort(of: process)
        return FaultyFTPPeer(process: process, baseArguments: arguments, directory: dir, port: actual, root: root,
                             user: user, password: password, controlFile: control)
    }

    /// Switches the behaviour; effective for the next command the server receives (and within 0.1 s for
    /// stalled transfers and idle sessions). The control file is replaced atomically.
    public func setMode(_ mode: Mode) throws {
        try Self.writeMode(mode, to: controlFile)
    }

    /// The mode currently written in the control file.
    public var mode: Mode {
        let text = (try? String(contentsOf: controlFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        return Mode(rawValue: text) ?? .ok
    }

    /// Stops the server (SIGTERM, then SIGKILL after 2 s). Safe to call more than once.
    public func stop() { process.stop() }

    /// Whether the server process runs.
    public var isRunning: Bool { process.isRunning }

    /// Stops the server if it runs and starts it again on the same port, keeping the mode.
    public func restart() throws {
        lock.lock()
        defer { lock.unlock() }
        current.stop()
        earlier.append(current)
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while true {
            do {
                let process = try Self.launch(baseArguments + ["--port", String(port)], in: directory)
                let got = try faultyReadyPort(of: process)
                guard got == port else {
                    process.stop()
                    throw TestHarnessError("faulty_ftp_server restarted on port \(got), expected \(port)")
                }
                current = process
                return
            } catch {
                if ContinuousClock.now >= deadline { throw error }
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// The stderr of every server process started so far (restarts included), oldest first.
    public var fullLog: String {
        lock.lock()
        let all = earlier + [current]
        lock.unlock()
        return all.map(\.stderrText).joined(separator: "\n")
    }

    /// Every `EVENT` line logged so far, oldest first.
    public func events() -> [Event] {
        fullLog.split(separator: "\n").compactMap { line -> Event? in
            guard line.hasPrefix("EVENT ") else { return nil }
            let parts = line.split(separator: " ").map(String.init)
            guard parts.count >= 4, let time = Double(parts[1]), parts[2].hasPrefix("mode=") else { return nil }
            var argument = ""
            var fields: [String: String] = [:]
            for p in parts.dropFirst(4) {
                if let eq = p.firstIndex(of: "="), !p.contains("/") {
                    fields[String(p[..<eq])] = String(p[p.index(after: eq)...])
                } else if argument.isEmpty {
                    argument = p
                }
            }
            return Event(time: time, mode: String(parts[2].dropFirst(5)), what: parts[3], argument: argument, fields: fields)
        }
    }

    /// Final names published by a successful RNTO, in order (from pyftpdlib's own log: `RNTO <path> 250`).
    public func published() -> [String] {
        fullLog.split(separator: "\n").compactMap { line -> String? in
            guard !line.hasPrefix("EVENT "), let r = line.range(of: "RNTO ") else { return nil }
            let rest = line[r.upperBound...].split(separator: " ")
            guard rest.count >= 2, rest.last == "250" else { return nil }
            return String(rest.dropLast().joined(separator: " ").split(separator: "/").last ?? "")
        }
    }

    private static func writeMode(_ mode: Mode, to url: URL) throws {
        let tmp = url.appendingPathExtension("tmp")
        try Data((mode.rawValue + "\n").utf8).write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else {
            throw TestHarnessError("rename \(tmp.path) → \(url.path): \(String(cString: strerror(errno)))")
        }
    }

    private static func launch(_ arguments: [String], in dir: URL) throws -> TestProcess {
        try TestProcess.python(
            script: Repository.fixtures.appendingPathComponent("faulty_ftp_server.py"),
            arguments: arguments,
            logDirectory: dir,
            label: "faulty_ftp_server")
    }
}

/// Parses the `READY <port>` line of the fixture (Python start-up on a loaded machine can be slow).
private func faultyReadyPort(of process: TestProcess) throws -> Int {
    let line = try process.waitForLine(prefix: "READY ", timeout: .seconds(20))
    guard let port = Int(line.dropFirst("READY ".count).trimmingCharacters(in: .whitespaces)) else {
        process.stop()
        throw TestHarnessError("\(process.label): malformed ready line \"\(line)\"\n" + process.logReport())
    }
    return port
}
