import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Command-line tools

/// Runs a short-lived tool (`ssh-keygen`, `ssh-keyscan`, `openssl`, `sh -c …`) to completion and returns
/// its stdout. Throws with the tool's output if it exits non-zero or runs longer than `timeout` (then it
/// is killed). stdout and stderr are kept as `<label>-N.stdout` / `.stderr` in `dir`.
///
/// Uses `posix_spawnp` and `waitpid` directly rather than Foundation's `Process`: OpenSSH tools close every
/// inherited descriptor at start (`closefrom`), which defeats Foundation's child monitoring on Linux — the
/// exited `ssh-keyscan` stayed a zombie and `Process` never reported its end. The child starts with an
/// empty signal mask and default dispositions.
@discardableResult
public func runTool(_ executable: String, _ arguments: [String], in dir: URL, label: String? = nil,
                    timeout: Duration = .seconds(30)) throws -> String {
    guard let url = TestProcess.findExecutable(executable) else {
        throw TestHarnessError("\(executable) not found (apt-get install openssh-client openssh-server openssl)")
    }
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let stem = "\(label ?? url.lastPathComponent)-\(toolCounter.next())"
    let out = dir.appendingPathComponent("\(stem).stdout"), err = dir.appendingPathComponent("\(stem).stderr")
    let commandLine = ([url.path] + arguments).joined(separator: " ")

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, out.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, err.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t(), allSignals = sigset_t()
    sigemptyset(&noSignals)
    sigfillset(&allSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv: [UnsafeMutablePointer<CChar>?] = ([url.path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, url.path, &actions, &attributes, argv, environ)
    guard spawned == 0 else {
        throw TestHarnessError("cannot launch \(commandLine): \(String(cString: strerror(spawned)))")
    }
    func report() -> String {
        let stdout = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
        return "--- \(commandLine)\n--- stdout:\n\(stdout)\n--- stderr:\n\(stderr)\n--- end"
    }
    var status: Int32 = 0
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while waitpid(pid, &status, WNOHANG) == 0 {
        if ContinuousClock.now >= deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestHarnessError("\(stem) did not finish within \(timeout)\n" + report())
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
    // WIFEXITED / WEXITSTATUS are macros Swift cannot import.
    let exitedNormally = status & 0x7f == 0, exitCode = (status >> 8) & 0xff
    guard exitedNormally, exitCode == 0 else {
        throw TestHarnessError("\(stem) failed (\(exitedNormally ? "exit status \(exitCode)" : "signal \(status & 0x7f)"))\n" + report())
    }
    return (try? String(contentsOf: out, encoding: .utf8)) ?? ""
}

/// Numbers the log files of `runTool` within this test process.
private let toolCounter = ToolCounter()

private final class ToolCounter: @unchecked Sendable {
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

    /// The server process; its stderr is sshd's log (`-e`).
    public let process: TestProcess
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

    private init(process: TestProcess, port: Int, user: String, clientKey: URL, authorizedKeysFile: URL,
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
            let process = try TestProcess(executable: URL(fileURLWithPath: sshd), arguments: ["-D", "-e", "-f", config.path],
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
