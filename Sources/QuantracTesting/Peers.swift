import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Repository

/// Locations inside the package checkout.
public struct Repository {
    /// The package root, found from this file's path (Sources/QuantracTesting/Peers.swift → up 3).
    public static var root: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // QuantracTesting
            .deletingLastPathComponent()  // Sources
            .deletingLastPathComponent()  // root
    }

    /// The fixture scripts: root/Tests/Fixtures.
    public static var fixtures: URL {
        root.appendingPathComponent("Tests").appendingPathComponent("Fixtures")
    }

    /// A built product: `$QUANTRAC_BIN_DIR/name` if that variable is set, else root/.build/debug/name.
    public static func binary(_ name: String) -> URL {
        if let dir = ProcessInfo.processInfo.environment["QUANTRAC_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir).appendingPathComponent(name)
        }
        return root.appendingPathComponent(".build").appendingPathComponent("debug").appendingPathComponent(name)
    }
}

// MARK: - Helpers

/// Calls `condition` every `poll` until it returns true; throws a `TestHarnessError` naming `what` and
/// the caller's location if `timeout` passes first. Errors thrown by `condition` propagate at once.
/// Blocks the calling thread: from async code with the system under test on the cooperative pool,
/// prefer `waitUntilAsync`.
public func waitUntil(
    timeout: Duration,
    poll: Duration = .milliseconds(100),
    what: String = "condition",
    fileID: String = #fileID,
    line: Int = #line,
    _ condition: () throws -> Bool
) throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
        if try condition() { return }
        if ContinuousClock.now >= deadline {
            throw TestHarnessError("timed out after \(timeout) waiting for \(what) (\(fileID):\(line))")
        }
        Thread.sleep(forTimeInterval: poll.inSeconds)
    }
}

/// `waitUntil` for async code: sleeps with `Task.sleep`, so it does not hold a cooperative thread.
public func waitUntilAsync(
    timeout: Duration,
    poll: Duration = .milliseconds(100),
    what: String = "condition",
    fileID: String = #fileID,
    line: Int = #line,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline {
            throw TestHarnessError("timed out after \(timeout) waiting for \(what) (\(fileID):\(line))")
        }
        try await Task.sleep(for: poll)
    }
}

/// Creates a fresh directory `$TMPDIR/quantrac-<label>-XXXXXX` (mkdtemp) and returns it. Not removed
/// automatically: tests keep it on failure for the logs, and delete it themselves on success if they like.
public func makeTemporaryDirectory(_ label: String) throws -> URL {
    let safe = String(label.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" }.prefix(40))
    let base = FileManager.default.temporaryDirectory.path
    var template = Array("\(base)/quantrac-\(safe)-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { buffer in
        mkdtemp(buffer.baseAddress!)
    }
    guard created != nil else {
        throw TestHarnessError("mkdtemp in \(base) failed: \(String(cString: strerror(errno)))")
    }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return URL(fileURLWithPath: path, isDirectory: true)
}

/// How long a peer may take to print READY (Python start-up on a loaded 2-core machine can be slow).
private let peerStartTimeout: Duration = .seconds(20)

/// Parses the `READY <port>` line of a fixture.
private func readyPort(of process: TestProcess) throws -> Int {
    let line = try process.waitForLine(prefix: "READY ", timeout: peerStartTimeout)
    guard let port = Int(line.dropFirst("READY ".count).trimmingCharacters(in: .whitespaces)) else {
        process.stop()
        throw TestHarnessError("\(process.label): malformed ready line \"\(line)\"\n" + process.logReport())
    }
    return port
}

/// A counter for unique file names within this test process.
private final class Counter: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `value` is only touched under `lock`.
    private let lock = NSLock()
    private var value = 0

    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

private let fileCounter = Counter()

// MARK: - Modbus

/// Register contents for `modbus_server.py`: device id → holding/input → start address → values.
/// Addresses are zero-based protocol addresses; anything not listed answers "illegal data address".
public struct ModbusSpec: Encodable, Sendable, Equatable {
    public struct Device: Encodable, Sendable, Equatable {
        /// Start address → consecutive register values.
        public var holding: [Int: [UInt16]]
        /// Start address → consecutive register values.
        public var input: [Int: [UInt16]]

        public init(holding: [Int: [UInt16]] = [:], input: [Int: [UInt16]] = [:]) {
            self.holding = holding
            self.input = input
        }
    }

    public var devices: [Int: Device]

    public init(devices: [Int: Device] = [:]) { self.devices = devices }

    /// Sets holding registers `address…` of `device` (creating the device), replacing a block that starts there.
    public mutating func setHolding(device: Int, address: Int, values: [UInt16]) {
        devices[device, default: Device()].holding[address] = values
    }

    /// Sets input registers `address…` of `device` (creating the device), replacing a block that starts there.
    public mutating func setInput(device: Int, address: Int, values: [UInt16]) {
        devices[device, default: Device()].input[address] = values
    }

    /// The JSON read by `modbus_server.py --spec`.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(self)
    }
}

/// A pymodbus server (`Tests/Fixtures/modbus_server.py`) on TCP or on one end of a serial line.
///
/// Undefined addresses answer exception 0x02. An unknown device id gets no answer at all on RTU
/// (the master times out) and exception 0x0B (gateway target failed to respond) on TCP.
public final class ModbusPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `current` is only touched under `lock`; everything else is an
    // immutable `let` of a Sendable type.
    private let lock = NSLock()
    private var current: TestProcess
    private let arguments: [String]
    private let directory: URL

    /// The TCP port (0 for RTU).
    public let port: Int
    /// The serial device (nil for TCP).
    public let device: String?

    /// The running (or last) server process, for its logs.
    public var process: TestProcess {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    private init(process: TestProcess, arguments: [String], directory: URL, port: Int, device: String?) {
        self.current = process
        self.arguments = arguments
        self.directory = directory
        self.port = port
        self.device = device
    }

    deinit { process.stop() }

    /// Starts a Modbus TCP server on 127.0.0.1 (free port) serving `spec`; logs and the spec file go to `dir`.
    public static func tcp(spec: ModbusSpec, in dir: URL) throws -> ModbusPeer {
        let specURL = try writeSpec(spec, in: dir)
        let process = try launch(["--spec", specURL.path, "--tcp", "0"], in: dir, label: "modbus-tcp")
        let port = try readyPort(of: process)
        // Restarts reuse the port, as an outage-then-recovery test expects.
        return ModbusPeer(process: process, arguments: ["--spec", specURL.path, "--tcp", String(port)],
                          directory: dir, port: port, device: nil)
    }

    /// Starts a Modbus RTU server (9600 8N1) on `device` (e.g. `PtyPair.a`) serving `spec`.
    public static func rtu(device: String, spec: ModbusSpec, in dir: URL) throws -> ModbusPeer {
        let specURL = try writeSpec(spec, in: dir)
        let arguments = ["--spec", specURL.path, "--rtu", device, "--baud", "9600"]
        let process = try launch(arguments, in: dir, label: "modbus-rtu")
        _ = try readyPort(of: process)
        return ModbusPeer(process: process, arguments: arguments, directory: dir, port: 0, device: device)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 2 s). Safe to call more than once.
    public func stop() { process.stop() }

    /// Kills the server with SIGKILL (no goodbye on open connections).
    public func kill9() { process.kill9() }

    /// Whether the server process runs.
    public var isRunning: Bool { process.isRunning }

    /// Stops the server if it runs and starts it again with the same spec (fresh register values) on
    /// the same port or device.
    public func restart() throws {
        lock.lock()
        defer { lock.unlock() }
        current.stop()
        current = try startRetrying(label: current.label) {
            let process = try Self.launch(arguments, in: directory, label: current.label)
            _ = try readyPort(of: process)
            return process
        }
    }

    private static func launch(_ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        try TestProcess.python(
            script: Repository.fixtures.appendingPathComponent("modbus_server.py"),
            arguments: arguments,
            logDirectory: dir,
            label: label)
    }

    private static func writeSpec(_ spec: ModbusSpec, in dir: URL) throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent("modbus-spec-\(getpid())-\(fileCounter.next()).json")
        try spec.jsonData().write(to: url)
        return url
    }
}

/// Restarting on a fixed port can race with the old socket's teardown: retry for a few seconds.
private func startRetrying(label: String, _ start: () throws -> TestProcess) throws -> TestProcess {
    let deadline = ContinuousClock.now.advanced(by: .seconds(5))
    while true {
        do {
            return try start()
        } catch {
            if ContinuousClock.now >= deadline { throw error }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }
}

// MARK: - Serial lines

/// A virtual null-modem cable: `socat -d -d pty,raw,echo=0,link=DIR/ttyA pty,raw,echo=0,link=DIR/ttyB`.
/// Whatever is written to `a` is read from `b` and vice versa. The links point to `/dev/pts/N`;
/// `resolvedA`/`resolvedB` give those paths (libserialport needs them, not the links).
public final class PtyPair: @unchecked Sendable {
    // Invariant for @unchecked Sendable: all stored properties are immutable; `TestProcess` is Sendable.
    /// Link path of one end (e.g. for the Modbus server).
    public let a: String
    /// Link path of the other end (e.g. for the master under test).
    public let b: String
    /// `a` resolved to its `/dev/pts/N` device.
    public let resolvedA: String
    /// `b` resolved to its `/dev/pts/N` device.
    public let resolvedB: String
    /// The socat process, for its logs.
    public let process: TestProcess

    /// Starts socat with links `dir/ttyA` and `dir/ttyB` and waits (polling every 50 ms, at most 5 s)
    /// until both links exist. Stale links from an earlier run are removed first.
    public static func start(in dir: URL) throws -> PtyPair {
        try PtyPair(directory: dir)
    }

    private init(directory dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        a = dir.appendingPathComponent("ttyA").path
        b = dir.appendingPathComponent("ttyB").path
        for link in [a, b] { unlink(link) }
        guard let socat = TestProcess.findExecutable("socat") else {
            throw TestHarnessError("socat not found on PATH (apt-get install socat)")
        }
        // On SIGTERM (see TestProcess about signal masks) socat removes its links on the way out.
        process = try TestProcess(
            executable: socat,
            arguments: ["-d", "-d", "pty,raw,echo=0,link=\(a)", "pty,raw,echo=0,link=\(b)"],
            logDirectory: dir,
            label: "socat")
        let (a, b, process) = (a, b, process)
        do {
            try waitUntil(timeout: .seconds(5), poll: .milliseconds(50), what: "socat links \(a), \(b)") {
                if !process.isRunning {
                    throw TestHarnessError("socat exited (\(process.exitDescription))\n" + process.logReport())
                }
                return FileManager.default.fileExists(atPath: a) && FileManager.default.fileExists(atPath: b)
            }
        } catch {
            process.stop()
            throw TestHarnessError("\(error)\n" + process.logReport())
        }
        resolvedA = URL(fileURLWithPath: a).resolvingSymlinksInPath().path
        resolvedB = URL(fileURLWithPath: b).resolvingSymlinksInPath().path
    }

    deinit { stop() }

    /// Stops socat; the links disappear. Safe to call more than once.
    public func stop() {
        process.stop()
        for link in [a, b] { unlink(link) }
    }
}

// MARK: - FTP

/// A pyftpdlib server (`Tests/Fixtures/ftp_server.py`) on 127.0.0.1 with one user whose home is `root`.
///
/// With `allowRename: false` the user lacks the rename permission: RNFR (and RNTO) get
/// "550 Not enough privileges." while uploads still work. With `tlsCertificate` the server requires
/// explicit TLS (AUTH TLS) on control and data connections.
public final class FTPPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `current` is only touched under `lock`; everything else is an
    // immutable `let` of a Sendable type.
    private let lock = NSLock()
    private var current: TestProcess
    private let baseArguments: [String]
    private let directory: URL

    /// The control port; the same after `restart()`.
    public let port: Int
    /// The user's home directory.
    public let root: URL
    public let user: String
    public let password: String

    /// The running (or last) server process, for its logs.
    public var process: TestProcess {
        lock.lock()
        defer { lock.unlock() }
        return current
    }

    /// `ftp://user:password@127.0.0.1:port/` (user and password percent-encoded).
    public var url: URL {
        var components = URLComponents()
        components.scheme = "ftp"
        components.user = user
        components.password = password
        components.host = "127.0.0.1"
        components.port = port
        components.path = "/"
        return components.url!
    }

    private init(process: TestProcess, baseArguments: [String], directory: URL, port: Int,
                 root: URL, user: String, password: String) {
        self.current = process
        self.baseArguments = baseArguments
        self.directory = directory
        self.port = port
        self.root = root
        self.user = user
        self.password = password
    }

    deinit { process.stop() }

    /// Starts the server; `port` 0 picks a free one. Logs go to `dir`.
    public static func start(
        root: URL,
        user: String,
        password: String,
        allowRename: Bool = true,
        port: Int = 0,
        tlsCertificate: URL? = nil,
        tlsKey: URL? = nil,
        in dir: URL
    ) throws -> FTPPeer {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var arguments = ["--root", root.path, "--user", user, "--password", password]
        if !allowRename { arguments.append("--no-rename") }
        if let tlsCertificate { arguments += ["--certfile", tlsCertificate.path] }
        if let tlsKey { arguments += ["--keyfile", tlsKey.path] }
        let process = try launch(arguments + ["--port", String(port)], in: dir)
        let actualPort = try readyPort(of: process)
        return FTPPeer(process: process, baseArguments: arguments, directory: dir, port: actualPort,
                       root: root, user: user, password: password)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 2 s). Safe to call more than once.
    public func stop() { process.stop() }

    /// Kills the server with SIGKILL.
    public func kill9() { process.kill9() }

    /// Whether the server process runs.
    public var isRunning: Bool { process.isRunning }

    /// Stops the server if it runs and starts it again on the same port (an outage, then recovery).
    /// Retries for up to 5 s if the port is not free yet.
    public func restart() throws {
        lock.lock()
        defer { lock.unlock() }
        current.stop()
        current = try startRetrying(label: "ftp_server") {
            let process = try Self.launch(baseArguments + ["--port", String(port)], in: directory)
            let got = try readyPort(of: process)
            guard got == port else {
                process.stop()
                throw TestHarnessError("ftp_server restarted on port \(got), expected \(port)")
            }
            return process
        }
    }

    private static func launch(_ arguments: [String], in dir: URL) throws -> TestProcess {
        try TestProcess.python(
            script: Repository.fixtures.appendingPathComponent("ftp_server.py"),
            arguments: arguments,
            logDirectory: dir,
            label: "ftp_server")
    }
}
