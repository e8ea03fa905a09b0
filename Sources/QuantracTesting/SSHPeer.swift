import Foundation
import QuantracCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Command-line tools

/// Runs a short-lived tool (`ssh-keygen`, `openssl`, `sh -c …`) to completion and returns its stdout.
/// Throws with the tool's output if it exits non-zero or runs longer than `timeout`. Logs go to `dir`.
@discardableResult
public func runTool(_ executable: String, _ arguments: [String], in dir: URL, label: String? = nil,
                    timeout: Duration = .seconds(30)) throws -> String {
    guard let url = TestProcess.findExecutable(executable) else {
        throw TestHarnessError("\(executable) not found (apt-get install openssh-client openssh-server openssl)")
    }
    let process = try TestProcess(executable: url, arguments: arguments, logDirectory: dir,
                                  label: label ?? url.lastPathComponent)
    guard let status = process.waitForExit(timeout: timeout) else {
        process.stop()
        throw TestHarnessError("\(process.label) did not finish within \(timeout)\n" + process.logReport())
    }
    guard status == 0 else {
        throw TestHarnessError("\(process.label) failed (\(process.exitDescription))\n" + process.logReport())
    }
    return process.stdoutText
}

// MARK: - SSH

/// An OpenSSH server (`/usr/sbin/sshd -D -e`) on 127.0.0.1 with its own configuration, host keys and
/// authorized keys under `dir`, serving SFTP through `internal-sftp` (which logs every open, remove and
/// rename at INFO). Logins as the user running the tests: with `clientKey`, or by password (refused
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
    /// Private key (ed25519, no passphrase, mode 0600) whose public half is in `authorizedKeysFile`.
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
                "Subsystem sftp internal-sftp -l INFO",
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

    /// sshd's log so far.
    public var log: String { process.stderrText }

    /// Number of successful logins in the log so far (one per SSH connection).
    public var acceptedLogins: Int {
        log.split(separator: "\n").filter { $0.contains("Accepted publickey") || $0.contains("Accepted password") }.count
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
