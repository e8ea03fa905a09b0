import Foundation
import QuantracConfig
import QuantracTesting
import Testing
import Transmission

/// FTPS (pyftpdlib with TLS required) and SFTP (OpenSSH sshd) targets on loopback, through the real
/// uploaders: verified identities, typed failures, publish by rename, connection reuse, credentials.
@Suite(.serialized, .ownThread)
struct SecureTargetTests {
    static let bytes = Array("COD\t41.20\tmg/L\t20260315103500\t00\r\nTSS\t18.52\tmg/L\t20260315103500\t00\r\n".utf8)

    /// The `[[target]]` parsed from a whole configuration with `lines` as its body (after name).
    func target(_ lines: String, dir: URL) throws -> TargetConfig {
        try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.path)"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "a"
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            \(lines)
            """).targets[0]
    }

    /// A self-signed certificate for 127.0.0.1 (TESTING.md recipe): returns (cert.pem, key.pem).
    func makeCertificate(_ name: String, in dir: URL) throws -> (URL, URL) {
        let cert = dir.appendingPathComponent("\(name)-cert.pem"), key = dir.appendingPathComponent("\(name)-key.pem")
        try runTool("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key.path, "-out", cert.path,
                                "-days", "3650", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                    in: dir, label: "openssl-req-\(name)")
        return (cert, key)
    }

    /// `sha256//…` of a certificate's public key, by the pipeline Boards/README.md documents.
    func pin(of cert: URL, in dir: URL) throws -> String {
        let digest = try runTool("sh", ["-c", "openssl x509 -in '\(cert.path)' -pubkey -noout | openssl pkey -pubin -outform der "
                                        + "| openssl dgst -sha256 -binary | openssl enc -base64"], in: dir, label: "openssl-pin")
        return "sha256//" + digest.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func writeSecret(_ text: String, to url: URL, mode: Int = 0o600) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
    }

    func expectFailure(_ kind: UploadError.Kind, _ body: () async throws(UploadError) -> Void,
                       sourceLocation: SourceLocation = #_sourceLocation) async -> UploadError? {
        do {
            try await body()
            Issue.record("the upload must fail with \(kind)", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
            return error
        }
    }

    func sessions(_ ftp: FTPPeer) -> Int {
        ftp.process.stderrText.split(whereSeparator: \.isNewline).filter { $0.contains("FTP session opened") }.count
    }

    // MARK: FTPS

    @Test func ftpsVerifiedByCAFilePublishesByRenameOverOneConnection() async throws {
        let dir = try makeTemporaryDirectory("ftps-ok")
        let (cert, key) = try makeCertificate("server", in: dir)
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw",
                                    tlsCertificate: cert, tlsKey: key, in: dir)
        defer { ftp.stop() }
        let passwordFile = dir.appendingPathComponent("password")
        try writeSecret("pw\n", to: passwordFile)
        let config = try target("""
            url = "ftps://127.0.0.1:\(ftp.port)/in/{station}"
            user = "station"
            password_file = "\(passwordFile.path)"
            ca_file = "\(cert.path)"
            """, dir: dir)
        #expect(config.scheme == .ftps && config.tls == .explicit)
        let credentials = try TargetCredentials.load(for: config, targetPath: "target[0]")
        let uploader = FTPUploader(target: config, password: credentials.password, targetPath: "target[0]")
        defer { uploader.shutdown() }
        let folder = "/in/NUO001/2026/03/15"
        try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: folder)
        try await uploader.upload(name: "A.txt", bytes: Self.bytes + [65], directory: folder)  // re-send onto the same name
        try await uploader.upload(name: "B.txt", bytes: Self.bytes, directory: folder)
        let local = dir.appendingPathComponent("root").appendingPathComponent(folder)
        #expect(try FileManager.default.contentsOfDirectory(atPath: local.path).sorted() == ["A.txt", "B.txt"])
        #expect(try Data(contentsOf: local.appendingPathComponent("A.txt")) == Data(Self.bytes + [65]))
        #expect(try Data(contentsOf: local.appendingPathComponent("B.txt")) == Data(Self.bytes))
        let log = ftp.process.stderrText
        #expect(log.contains("A.txt.part") && log.contains("RNTO"))
        #expect(sessions(ftp) == 1, "three uploads must share one control connection\n\(log)")
    }

    @Test func ftpsWithAnotherCAIsAnAuthenticationFailure() async throws {
        let dir = try makeTemporaryDirectory("ftps-wrong-ca")
        let (cert, key) = try makeCertificate("server", in: dir)
        let (otherCert, _) = try makeCertificate("other", in: dir)
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw",
                                    tlsCertificate: cert, tlsKey: key, in: dir)
        defer { ftp.stop() }
        let uploader = FTPUploader(target: try target("""
            url = "ftps://127.0.0.1:\(ftp.port)/in"
            user = "station"
            ca_file = "\(otherCert.path)"
            """, dir: dir), password: "pw", targetPath: "target[0]")
        defer { uploader.shutdown() }
        let error = await expectFailure(.authentication) { () async throws(UploadError) in
            try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: "/in")
        }
        #expect(error?.message.contains("target[0].ca_file") == true)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("root/in").path))
    }

    @Test func pinnedPublicKeyMatchingWorksAndMismatchIsAnAuthenticationFailure() async throws {
        let dir = try makeTemporaryDirectory("ftps-pin")
        let (cert, key) = try makeCertificate("server", in: dir)
        let (otherCert, _) = try makeCertificate("other", in: dir)
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw",
                                    tlsCertificate: cert, tlsKey: key, in: dir)
        defer { ftp.stop() }
        func uploader(pin: String) throws -> FTPUploader {
            FTPUploader(target: try target("""
                url = "ftps://127.0.0.1:\(ftp.port)/in"
                user = "station"
                ca_file = "\(cert.path)"
                pinned_public_key = "\(pin)"
                """, dir: dir), password: "pw", targetPath: "target[0]")
        }
        let right = try uploader(pin: try pin(of: cert, in: dir))
        defer { right.shutdown() }
        try await right.upload(name: "A.txt", bytes: Self.bytes, directory: "/in")
        #expect(try Data(contentsOf: dir.appendingPathComponent("root/in/A.txt")) == Data(Self.bytes))

        let wrong = try uploader(pin: try pin(of: otherCert, in: dir))
        defer { wrong.shutdown() }
        let error = await expectFailure(.authentication) { () async throws(UploadError) in
            try await wrong.upload(name: "B.txt", bytes: Self.bytes, directory: "/in")
        }
        #expect(error?.message.contains("pinned_public_key") == true)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("root/in/B.txt").path))
    }

    @Test func plainFTPAgainstATLSRequiredServerFailsFastAsAuthentication() async throws {
        let dir = try makeTemporaryDirectory("ftps-plain-client")
        let (cert, key) = try makeCertificate("server", in: dir)
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw",
                                    tlsCertificate: cert, tlsKey: key, in: dir)
        defer { ftp.stop() }
        let uploader = FTPUploader(target: try target("""
            url = "ftp://127.0.0.1:\(ftp.port)/in"
            user = "station"
            """, dir: dir), password: "pw", targetPath: "target[0]")
        defer { uploader.shutdown() }
        let start = ContinuousClock.now
        let error = await expectFailure(.authentication) { () async throws(UploadError) in
            try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: "/in")
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(5), "took \(elapsed)")
        #expect(error?.message.contains("use an ftps:// URL") == true, "\(error?.message ?? "")")
    }

    @Test func ftpsAgainstAPlainServerIsRefusedNotSentInClear() async throws {
        let dir = try makeTemporaryDirectory("ftps-plain-server")
        let (cert, _) = try makeCertificate("server", in: dir)
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw", in: dir)
        defer { ftp.stop() }
        let uploader = FTPUploader(target: try target("""
            url = "ftps://127.0.0.1:\(ftp.port)/in"
            user = "station"
            ca_file = "\(cert.path)"
            """, dir: dir), password: "pw", targetPath: "target[0]")
        defer { uploader.shutdown() }
        let error = await expectFailure(.authentication) { () async throws(UploadError) in
            try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: "/in")
        }
        #expect(error?.message.contains("does not offer TLS") == true)
        #expect(!ftp.process.stderrText.contains("logged in"), "no login without TLS\n\(ftp.process.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("root/in").path))
    }

    @Test func implicitTLSWorksAndAnExplicitClientGivesUpWithinTheConnectTimeout() async throws {
        let dir = try makeTemporaryDirectory("ftps-implicit")
        let (cert, key) = try makeCertificate("server", in: dir)
        let ftp = try ImplicitFTPSPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw",
                                             certificate: cert, key: key, in: dir)
        defer { ftp.stop() }
        func uploader(tls: String) throws -> FTPUploader {
            FTPUploader(target: try target("""
                url = "ftps://127.0.0.1:\(ftp.port)/in"
                user = "station"
                ca_file = "\(cert.path)"
                tls = "\(tls)"
                connect_timeout = "2s"
                """, dir: dir), password: "pw", targetPath: "target[0]")
        }
        let implicit = try uploader(tls: "implicit")
        defer { implicit.shutdown() }
        try await implicit.upload(name: "A.txt", bytes: Self.bytes, directory: "/in")
        try await implicit.upload(name: "B.txt", bytes: Self.bytes, directory: "/in")
        #expect(try Data(contentsOf: dir.appendingPathComponent("root/in/A.txt")) == Data(Self.bytes))
        #expect(try Data(contentsOf: dir.appendingPathComponent("root/in/B.txt")) == Data(Self.bytes))
        #expect(ftp.process.stderrText.split(whereSeparator: \.isNewline).filter { $0.contains("FTP session opened") }.count == 1)

        // An explicit-TLS client waits for a plain banner that never comes: connect_timeout ends it.
        let explicit = try uploader(tls: "explicit")
        defer { explicit.shutdown() }
        let start = ContinuousClock.now
        _ = await expectFailure(.transient) { () async throws(UploadError) in
            try await explicit.upload(name: "C.txt", bytes: Self.bytes, directory: "/in")
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .seconds(5), "took \(elapsed)")
    }

    // MARK: SFTP

    func sftpTarget(_ ssh: SSHPeer, dir: URL, path: String, hostKey: String, extra: String = "") throws -> TargetConfig {
        try target("""
            url = "sftp://127.0.0.1:\(ssh.port)\(path)"
            user = "\(ssh.user)"
            key_file = "\(ssh.clientKey.path)"
            host_key_sha256 = "\(hostKey)"
            \(extra)
            """, dir: dir)
    }

    @Test func sftpKeyAuthPublishesByRenameIntoCreatedFoldersAndReplacesOnResend() async throws {
        let dir = try makeTemporaryDirectory("sftp-ok")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"))  // ed25519 and ECDSA host keys
        defer { ssh.stop() }
        // The documented procedure, against the running server.
        let fingerprint = try ssh.keyscanFingerprint(type: "ed25519")
        #expect(fingerprint == ssh.hostKeyFingerprints["ssh-ed25519"])
        let root = dir.appendingPathComponent("receiver")
        let config = try sftpTarget(ssh, dir: dir, path: root.path + "/{station}", hostKey: fingerprint)
        let credentials = try TargetCredentials.load(for: config, targetPath: "target[0]")
        let uploader = try SFTPUploader(target: config, credentials: credentials, targetPath: "target[0]")
        defer { uploader.shutdown() }
        let folder = root.path + "/NUO001/2026/03/15"
        try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: folder)
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/A.txt")) == Data(Self.bytes))
        try await uploader.upload(name: "A.txt", bytes: Self.bytes + [65], directory: folder)  // re-send replaces
        try await uploader.upload(name: "B.txt", bytes: Self.bytes, directory: folder)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["A.txt", "B.txt"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/A.txt")) == Data(Self.bytes + [65]))
        #expect(try Data(contentsOf: URL(fileURLWithPath: folder + "/B.txt")) == Data(Self.bytes))
        let operations = ssh.sftpLog
        #expect(operations.contains("rename old \"\(folder)/A.txt.part\" new \"\(folder)/A.txt\""), "\(operations)")
        #expect(operations.contains("remove name \"\(folder)/A.txt\""), "the re-send removes the old file first\n\(operations)")
        #expect(operations.contains("mkdir name \"\(root.path)/NUO001/2026\""), "\(operations)")
        #expect(operations.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("session opened") }.count == 1,
                "three uploads must share one SFTP session\n\(operations)")
        uploader.shutdown()
        ssh.stop()  // sshd's pre-authentication log arrives late: count logins once it has stopped
        #expect(ssh.acceptedLogins == 1, "three uploads must share one SSH connection\n\(ssh.log)")
    }

    @Test func sftpDirectPublishAndAnECDSAHostKey() async throws {
        let dir = try makeTemporaryDirectory("sftp-ecdsa")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"))
        defer { ssh.stop() }
        let fingerprint = try #require(ssh.hostKeyFingerprints["ecdsa-sha2-nistp256"])
        let root = dir.appendingPathComponent("receiver")
        let config = try sftpTarget(ssh, dir: dir, path: root.path, hostKey: fingerprint,
                                    extra: "host_key_type = \"ecdsa-sha2-nistp256\"\npublish = \"direct\"")
        let uploader = try SFTPUploader(target: config, credentials: try TargetCredentials.load(for: config, targetPath: "target[0]"),
                                        targetPath: "target[0]")
        defer { uploader.shutdown() }
        try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: root.path)
        #expect(try Data(contentsOf: root.appendingPathComponent("A.txt")) == Data(Self.bytes))
        #expect(ssh.sftpLog.contains("open \"\(root.path)/A.txt\""), "\(ssh.sftpLog)")
        #expect(!ssh.sftpLog.contains("rename"))
    }

    @Test func sftpWrongHostKeyIsAnAuthenticationFailureAndWritesNothing() async throws {
        let dir = try makeTemporaryDirectory("sftp-wrong-host")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"))
        defer { ssh.stop() }
        // The server's other key: right server, wrong type → still refused.
        let wrongKeys = [try #require(ssh.hostKeyFingerprints["ecdsa-sha2-nistp256"]), "SHA256:" + String(repeating: "A", count: 43)]
        let root = dir.appendingPathComponent("receiver")
        for wrong in wrongKeys {
            let config = try sftpTarget(ssh, dir: dir, path: root.path, hostKey: wrong)
            let uploader = try SFTPUploader(target: config, credentials: try TargetCredentials.load(for: config, targetPath: "target[0]"),
                                            targetPath: "target[0]")
            defer { uploader.shutdown() }
            let error = await expectFailure(.authentication) { () async throws(UploadError) in
                try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: root.path + "/in")
            }
            #expect(error?.message.contains("host_key_sha256") == true)
        }
        #expect(!FileManager.default.fileExists(atPath: root.path))
        ssh.stop()
        #expect(ssh.log.contains("Connection from 127.0.0.1"), "\(ssh.log)")
        #expect(ssh.acceptedLogins == 0, "\(ssh.log)")
        #expect(ssh.sftpLog.isEmpty)
    }

    @Test func sftpRefusedPasswordIsAnAuthenticationFailure() async throws {
        // sshd runs with UsePAM no: no account here has a password it accepts, so this checks that the
        // password path reaches sshd and that a refusal is typed; a successful password login is not tested.
        let dir = try makeTemporaryDirectory("sftp-password")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"))
        defer { ssh.stop() }
        let passwordFile = dir.appendingPathComponent("password")
        try writeSecret("not-the-password\n", to: passwordFile)
        let config = try target("""
            url = "sftp://127.0.0.1:\(ssh.port)\(dir.path)/receiver"
            user = "\(ssh.user)"
            password_file = "\(passwordFile.path)"
            host_key_sha256 = "\(try #require(ssh.hostKeyFingerprints["ssh-ed25519"]))"
            """, dir: dir)
        let uploader = try SFTPUploader(target: config, credentials: try TargetCredentials.load(for: config, targetPath: "target[0]"),
                                        targetPath: "target[0]")
        defer { uploader.shutdown() }
        // Twice: each attempt is a new SSH connection, and each must again pass the ed25519 host key check
        // (the known_hosts hint is re-read) before the password is refused.
        for _ in 0..<2 {
            let error = await expectFailure(.authentication) { () async throws(UploadError) in
                try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: dir.path + "/receiver")
            }
            #expect(error?.message.hasPrefix("login to 127.0.0.1:\(ssh.port) refused") == true, "\(error?.message ?? "")")
        }
        // sshd's pre-authentication processes log through its monitor, late: read the log once sshd is stopped.
        uploader.shutdown()
        ssh.stop()
        let lines = ssh.log.split(whereSeparator: \.isNewline)
        #expect(lines.filter { $0.hasPrefix("Connection from 127.0.0.1") }.count == 2, "\(ssh.log)")
        #expect(lines.filter { $0.hasPrefix("Failed password for \(ssh.user)") }.count == 2, "\(ssh.log)")
    }

    @Test func sftpServerWithoutTheConfiguredHostKeyTypeSaysSo() async throws {
        let dir = try makeTemporaryDirectory("sftp-no-ed25519")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"), hostKeyTypes: ["ecdsa"])
        defer { ssh.stop() }
        // The right ECDSA fingerprint, but host_key_type left at its default (ssh-ed25519): no common algorithm.
        let config = try sftpTarget(ssh, dir: dir, path: dir.path + "/receiver",
                                    hostKey: try #require(ssh.hostKeyFingerprints["ecdsa-sha2-nistp256"]))
        let uploader = try SFTPUploader(target: config, credentials: try TargetCredentials.load(for: config, targetPath: "target[0]"),
                                        targetPath: "target[0]")
        defer { uploader.shutdown() }
        let error = await expectFailure(.transient) { () async throws(UploadError) in
            try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: dir.path + "/receiver")
        }
        #expect(error?.message.contains("has a ssh-ed25519 host key (target[0].host_key_type)") == true, "\(error?.message ?? "")")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/receiver"))
    }

    @Test func sftpStoppedServerIsTransient() async throws {
        let dir = try makeTemporaryDirectory("sftp-down")
        let ssh = try SSHPeer.start(in: dir.appendingPathComponent("sshd"))
        let config = try sftpTarget(ssh, dir: dir, path: dir.path + "/receiver",
                                    hostKey: try #require(ssh.hostKeyFingerprints["ssh-ed25519"]))
        ssh.stop()
        let uploader = try SFTPUploader(target: config, credentials: try TargetCredentials.load(for: config, targetPath: "target[0]"),
                                        targetPath: "target[0]")
        defer { uploader.shutdown() }
        _ = await expectFailure(.transient) { () async throws(UploadError) in
            try await uploader.upload(name: "A.txt", bytes: Self.bytes, directory: dir.path + "/receiver")
        }
    }

    // MARK: Credentials

    @Test func systemdCredentialsAreReadFromTheCredentialsDirectory() throws {
        let dir = try makeTemporaryDirectory("credentials")
        let credentials = dir.appendingPathComponent("creds")
        try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
        try writeSecret("s3cret\n", to: credentials.appendingPathComponent("province-password"), mode: 0o400)
        let config = try target("""
            url = "ftps://ftp.example.vn/in"
            user = "station"
            password_credential = "province-password"
            """, dir: dir)
        #expect(config.password == .credential("province-password"))
        let loaded = try TargetCredentials.load(for: config, targetPath: "target[0]",
                                                environment: ["CREDENTIALS_DIRECTORY": credentials.path])
        #expect(loaded.password == "s3cret")
        #expect(!"\(loaded)".contains("s3cret") && !String(reflecting: loaded).contains("s3cret"))
        do {
            _ = try TargetCredentials.load(for: config, targetPath: "target[0]", environment: [:])
            Issue.record("without CREDENTIALS_DIRECTORY the credential cannot be found")
        } catch {
            #expect(error.description.hasPrefix("target[0].password_credential: CREDENTIALS_DIRECTORY is not set"))
            #expect(error.description.contains("LoadCredential=province-password:"))
        }
    }

    @Test func aPasswordFileOpenedToOthersAfterLoadingIsRefusedAtStart() throws {
        let dir = try makeTemporaryDirectory("credentials-mode")
        let passwordFile = dir.appendingPathComponent("password")
        try writeSecret("pw\n", to: passwordFile)
        let config = try target("""
            url = "ftp://ftp.example.vn/in"
            user = "station"
            password_file = "\(passwordFile.path)"
            """, dir: dir)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: passwordFile.path)
        do {
            _ = try TargetCredentials.load(for: config, targetPath: "target[0]")
            Issue.record("a password file open to others must be refused")
        } catch {
            #expect(error.description == "target[0].password_file: \(passwordFile.path) is open to other users (mode 0644); run chmod 600 \(passwordFile.path)")
        }
    }
}
