import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Processes outside Foundation

/// A child process started with `posix_spawn` and reaped with `waitpid` by this object alone — for
/// programs that close every inherited descriptor at start (`closefrom`: sshd, ssh-keyscan).
///
/// Foundation's `Process` on Linux learns that a child ended when a socket the child inherited closes,
/// and then calls a *blocking* `waitpid` on its single process-manager thread. A child that closes that
/// socket early and keeps running (sshd) blocks the manager thread until it exits: meanwhile no other
/// `Process` in the test run is seen to end (`TestProcess.stop()` times out, exited children stay
/// zombies). Never start such programs with `Process` or `TestProcess`.
///
/// The child gets stdin `/dev/null`, stdout and stderr into `<label>.stdout` / `.stderr` in the log
/// directory, no other inherited descriptor, an empty signal mask, default signal dispositions, and its
/// own process group.
public final class SpawnedProcess: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `exit` is only touched under `lock` (and `waitpid` for `pid` is
    // only called under it); every other stored property is an immutable `let` of a Sendable type.
    private let lock = NSLock()
    private var exit: Int32?

    public let pid: pid_t
    public let label: String
    public let stdoutURL: URL
    public let stderrURL: URL
    public let commandLine: [String]

    /// Starts `executable` (a path, or a name looked up on `PATH`).
    public init(executable: String, arguments: [String], logDirectory: URL, label: String? = nil) throws {
        guard let url = TestProcess.findExecutable(executable) else {
            throw TestHarnessError("\(executable) not found (apt-get install openssh-client openssh-server openssl)")
        }
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        let label = "\(label ?? url.lastPathComponent)-\(spawnCounter.next())"
        self.label = label
        stdoutURL = logDirectory.appendingPathComponent("\(label).stdout")
        stderrURL = logDirectory.appendingPathComponent("\(label).stderr")
        commandLine = [url.path] + arguments

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        // Inherit nothing else (in particular not the sockets Foundation's `Process` watches for other children).
        let openDescriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in openDescriptors where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv: [UnsafeMutablePointer<CChar>?] = commandLine.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, url.path, &actions, &attributes, argv, environ)
        guard spawned == 0 else {
            throw TestHarnessError("cannot launch \(commandLine.joined(separator: " ")): \(String(cString: strerror(spawned)))")
        }
        self.pid = pid
    }

    deinit { stop() }

    public var stdoutText: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    public var stderrText: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// The raw `waitpid` status once the child has ended (and been reaped), else nil. Never blocks.
    public var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if exit == nil {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { exit = status }
        }
        return exit
    }

    public var isRunning: Bool { exitStatus == nil }

    /// "running", "exit status N" or "killed by signal N" (`WIFEXITED` and friends are macros Swift cannot import).
    public var exitDescription: String {
        guard let status = exitStatus else { return "running" }
        return status & 0x7f == 0 ? "exit status \((status >> 8) & 0xff)" : "killed by signal \(status & 0x7f)"
    }

    /// Whether the child exited with status 0.
    public var succeeded: Bool { exitStatus == 0 }

    /// Polls every 10 ms until the child ends or `timeout` passes; returns whether it ended.
    @discardableResult
    public func waitForExit(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while isRunning {
            if ContinuousClock.now >= deadline { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return true
    }

    /// SIGTERM to the child, up to 2 s grace, then SIGKILL to its process group; reaps it. Afterwards
    /// whatever is left in its process group (e.g. sshd's per-connection processes) is killed. Safe to
    /// call more than once.
    public func stop() {
        if isRunning {
            kill(pid, SIGTERM)
            if !waitForExit(timeout: .seconds(2)) {
                kill(-pid, SIGKILL)
                waitForExit(timeout: .seconds(10))
            }
        }
        kill(-pid, SIGKILL)  // leftovers of the group; harmless (ESRCH) when there are none
    }

    /// The command line with the child's stdout and stderr, for failure messages.
    public func logReport() -> String {
        "--- \(commandLine.joined(separator: " "))\n--- stdout:\n\(stdoutText)\n--- stderr:\n\(stderrText)\n--- end of \(label)"
    }
}

/// Runs a short-lived tool (`ssh-keygen`, `ssh-keyscan`, `openssl`, `sh -c …`) to completion as a
/// `SpawnedProcess` and returns its stdout. Throws with the tool's output if it exits non-zero or runs
/// longer than `timeout` (then it is killed). Logs stay in `dir`.
@discardableResult
public func runTool(_ executable: String, _ arguments: [String], in dir: URL, label: String? = nil,
                    timeout: Duration = .seconds(30)) throws -> String {
    let process = try SpawnedProcess(executable: executable, arguments: arguments, logDirectory: dir, label: label)
    guard process.waitForExit(timeout: timeout) else {
        process.stop()
        throw TestHarnessError("\(process.label) did not finish within \(timeout)\n" + process.logReport())
    }
    guard process.succeeded else {
        throw TestHarnessError("\(process.label) failed (\(process.exitDescription))\n" + process.logReport())
    }
    return process.stdoutText
}

/// Numbers the log files of `SpawnedProcess` within this test process.
private let spawnCounter = SpawnCounter()

private final class SpawnCounter: @unchecked Sendable {
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

// MARK: - SSH

/// An OpenSSH server (`/usr/sbin/sshd -D -e`) on 127.0.0.1 with its own configuration, host keys and
/// authorized keys under `dir`, serving SFTP through OpenSSH's `sftp-server`, which logs every open,
/// mkdir, remove and rename to `dir/sftp-server.log` (`sftpLog`). Logins as the user running the tests: with `clientKey`, or by password (refused
/// unless that account has a password sshd accepts; `UsePAM no`).
///
/// Needs `openssh-server` and `openssh-client`; as root, `/run/sshd` is created if missing.
public final class SSHPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: every stored property is an immutable `let` of a Sendable type.

    /// The server process (not a `TestProcess`: see `SpawnedProcess`); its stderr is sshd's log (`-e`).
    public let process: SpawnedProcess
    /// The listening port on 127.0.0.1.
    public let port: Int
    /// The account to log in as (the user running the tests).
    public let user: String
    /// Private key (ed25519, no passphrase, mode 0600) whose public half is in `authorizedKeysFile`
    /// (there is no `.pub` file next to it).
    public let clientKey: URL
    /// The server's `AuthorizedKeysFile`.
    public let authorizedKeysFile: URL
    /// Host key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`) → fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`).
    public let hostKeyFingerprints: [String: String]
    /// The directory holding configuration, keys and logs.
    public let directory: URL

    private init(process: SpawnedProcess, port: Int, user: String, clientKey: URL, authorizedKeysFile: URL,
                 hostKeyFingerprints: [String: String], directory: URL) {
        self.process = process
        self.port = port
        self.user = user
        self.clientKey = clientKey
        self.authorizedKeysFile = authorizedKeysFile
        self.hostKeyFingerprints = hostKeyFingerprints
        self.directory = directory
    }

    deinit { process.stop() }

    /// Generates host keys (`hostKeyTypes`, `ssh-keygen -t` names) and a client key in `dir`, writes
    /// `sshd_config`, and starts sshd on a free port; returns once it listens.
    public static func start(in dir: URL, hostKeyTypes: [String] = ["ed25519", "ecdsa"]) throws -> SSHPeer {
        let sshd = "/usr/sbin/sshd"
        guard FileManager.default.isExecutableFile(atPath: sshd) else {
            throw TestHarnessError("\(sshd) not found (apt-get install openssh-server)")
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if getuid() == 0 { try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true) }
        guard let pw = getpwuid(getuid()), let name = pw.pointee.pw_name else {
            throw TestHarnessError("cannot find the name of user \(getuid())")
        }
        let user = String(cString: name)

        var fingerprints: [String: String] = [:]
        var hostKeyLines: [String] = []
        for type in hostKeyTypes {
            let key = dir.appendingPathComponent("ssh_host_\(type)_key")
            try? FileManager.default.removeItem(at: key)
            try? FileManager.default.removeItem(at: key.appendingPathExtension("pub"))
            try runTool("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "quantrac-test-host", "-f", key.path], in: dir)
            hostKeyLines.append("HostKey \(key.path)")
            let publicKey = try String(contentsOf: key.appendingPathExtension("pub"), encoding: .utf8)
            let algorithm = String(publicKey.split(separator: " ").first ?? "")
            fingerprints[algorithm] = try fingerprint(ofPublicKey: key.appendingPathExtension("pub"), in: dir)
        }
        let clientKey = dir.appendingPathComponent("client_ed25519")
        try? FileManager.default.removeItem(at: clientKey)
        try? FileManager.default.removeItem(at: clientKey.appendingPathExtension("pub"))
        try runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "quantrac-test-client", "-f", clientKey.path], in: dir)
        let authorized = dir.appendingPathComponent("authorized_keys")
        try FileManager.default.copyItem(at: clientKey.appendingPathExtension("pub"), to: authorized)
        // Only the private key stays: the client must derive the public key from it.
        try FileManager.default.removeItem(at: clientKey.appendingPathExtension("pub"))

        var lastError: (any Error)?
        for _ in 0..<5 {
            let port = try freeTCPPort()
            let config = dir.appendingPathComponent("sshd_config")
            try ((["ListenAddress 127.0.0.1:\(port)"] + hostKeyLines + [
                "AuthorizedKeysFile \(authorized.path)",
                "UsePAM no",
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PidFile none",
                "UseDNS no",
                "LogLevel VERBOSE",
                // sftp-server (what internal-sftp runs in-process) started by the account's shell, so its
                // log (-e: stderr) can go to a file; internal-sftp logs only to syslog or to the client.
                "Subsystem sftp /usr/lib/openssh/sftp-server -e -l INFO 2>>\(dir.appendingPathComponent("sftp-server.log").path)",
            ]).joined(separator: "\n") + "\n").write(to: config, atomically: true, encoding: .utf8)
            let process = try SpawnedProcess(executable: sshd, arguments: ["-D", "-e", "-f", config.path],
                                             logDirectory: dir, label: "sshd")
            do {
                try waitUntil(timeout: .seconds(10), poll: .milliseconds(50), what: "sshd listening on \(port)") {
                    if process.stderrText.contains("Server listening on 127.0.0.1 port \(port)") { return true }
                    if !process.isRunning {
                        throw TestHarnessError("sshd exited (\(process.exitDescription))\n" + process.logReport())
                    }
                    return false
                }
                return SSHPeer(process: process, port: port, user: user, clientKey: clientKey, authorizedKeysFile: authorized,
                               hostKeyFingerprints: fingerprints, directory: dir)
            } catch {
                process.stop()
                lastError = error  // most likely the port was taken meanwhile: try another
            }
        }
        throw lastError ?? TestHarnessError("sshd did not start")
    }

    /// `SHA256:…` of a public key file, as `ssh-keygen -lf FILE` prints it.
    public static func fingerprint(ofPublicKey file: URL, in dir: URL) throws -> String {
        let line = try runTool("ssh-keygen", ["-lf", file.path], in: dir)
        guard let field = line.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") }) else {
            throw TestHarnessError("no SHA256 fingerprint in ssh-keygen output \"\(line)\"")
        }
        return String(field)
    }

    /// The fingerprint the documented procedure gives: `ssh-keyscan -p PORT -t TYPE 127.0.0.1 | ssh-keygen -lf -`.
    public func keyscanFingerprint(type: String) throws -> String {
        let scanned = try runTool("ssh-keyscan", ["-p", String(port), "-t", type, "127.0.0.1"], in: directory, label: "ssh-keyscan")
        let file = directory.appendingPathComponent("keyscan-\(type).txt")
        try scanned.write(to: file, atomically: true, encoding: .utf8)
        return try Self.fingerprint(ofPublicKey: file, in: directory)
    }

    /// sshd's log so far (connections, logins), lines ending in CR LF. Lines of the pre-authentication
    /// processes (refused logins, closed connections) may arrive late; read them after `stop()`.
    public var log: String { process.stderrText }

    /// sftp-server's log so far: one line per file operation, e.g. `rename old "/d/a.part" new "/d/a"`.
    public var sftpLog: String {
        (try? String(contentsOf: directory.appendingPathComponent("sftp-server.log"), encoding: .utf8)) ?? ""
    }

    /// Number of successful logins in the log so far (one per SSH connection); exact after `stop()`.
    public var acceptedLogins: Int {
        log.split(whereSeparator: \.isNewline).filter { $0.contains("Accepted publickey") || $0.contains("Accepted password") }.count
    }

    /// Stops sshd (SIGTERM, then SIGKILL after 2 s). Safe to call more than once.
    public func stop() { process.stop() }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed).
public func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestHarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestHarnessError("bind: \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestHarnessError("getsockname: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}
