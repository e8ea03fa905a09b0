import Foundation

/// An implicit-TLS FTP server (`Tests/Fixtures/ftps_implicit_server.py`, pyftpdlib) on 127.0.0.1: TLS from
/// the first byte, then FTP with TLS required on control and data, one user whose home is `root`.
public final class ImplicitFTPSPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: every stored property is an immutable `let` of a Sendable type.

    /// The server process; its stderr logs sessions, STOR, RNFR and RNTO.
    public let process: TestProcess
    public let port: Int
    public let root: URL

    private init(process: TestProcess, port: Int, root: URL) {
        self.process = process
        self.port = port
        self.root = root
    }

    deinit { process.stop() }

    /// Starts the server on a free port with `certificate` (PEM) and its `key`; logs go to `dir`.
    public static func start(root: URL, user: String, password: String, certificate: URL, key: URL,
                             in dir: URL) throws -> ImplicitFTPSPeer {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let process = try TestProcess.python(
            script: Repository.fixtures.appendingPathComponent("ftps_implicit_server.py"),
            arguments: ["--port", "0", "--root", root.path, "--user", user, "--password", password,
                        "--certfile", certificate.path, "--keyfile", key.path],
            logDirectory: dir)
        let line = try process.waitForLine(prefix: "READY ", timeout: .seconds(20))
        guard let port = Int(line.dropFirst("READY ".count).trimmingCharacters(in: .whitespaces)) else {
            process.stop()
            throw TestHarnessError("ftps_implicit_server: malformed ready line \"\(line)\"\n" + process.logReport())
        }
        return ImplicitFTPSPeer(process: process, port: port, root: root)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 2 s). Safe to call more than once.
    public func stop() { process.stop() }
}
