import Curl
import Foundation
import QuantracConfig
import QuantracCore

/// SFTP through libcurl (libssh2) on a dedicated thread that keeps one easy handle, so the SSH connection
/// is reused between files.
///
/// The server must present a host key of `target.hostKeyType` whose SHA-256 fingerprint is
/// `target.hostKeySHA256`; any other server is refused before authentication (`.authentication`).
/// Authentication by private key and/or password, never an agent or `~/.ssh` files.
///
/// Publishing by rename uploads `NAME.part`, then sends `*rm DIR/NAME` and `rename DIR/NAME.part DIR/NAME`
/// (absolute paths). OpenSSH's SFTP server (protocol version 3) refuses to rename onto an existing file, so
/// the old file is removed first; the `*` makes a missing file harmless. For a re-sent file this replacement
/// is not atomic: between the two commands the receiver sees no `NAME`. A first delivery is atomic.
public final class SFTPUploader: Uploader {
    private let lane: BlockingLane<CurlEasy>
    private let target: TargetConfig
    private let credentials: TargetCredentials
    private let targetPath: String
    private let hostKeyHint: HostKeyTypeHint

    /// `credentials` were read at start (`TargetCredentials.load`); `targetPath` names the target in
    /// messages (`target[0]`). Throws when the target has no `hostKeySHA256` or the host key type hint
    /// file cannot be created.
    public init(target: TargetConfig, credentials: TargetCredentials, targetPath: String) throws(SFTPSetupError) {
        guard target.hostKeySHA256 != nil else {
            throw SFTPSetupError(description: "\(targetPath).host_key_sha256 is missing; unknown SSH servers are refused")
        }
        self.target = target
        self.credentials = credentials
        self.targetPath = targetPath
        hostKeyHint = try HostKeyTypeHint(host: target.host, port: target.effectivePort, type: target.hostKeyType)
        lane = BlockingLane(name: "target-\(target.name)") { CurlEasy() }
    }

    public func shutdown() { lane.shutdown() }

    public var taskExecutor: (any TaskExecutor)? { lane }

    public func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError) {
        var dir = directory.hasPrefix("/") ? directory : "/" + directory
        if !dir.hasSuffix("/") { dir += "/" }
        let rename = target.publish == .rename
        let remoteName = rename ? name + ".part" : name
        if (dir + name).contains(where: { $0.isWhitespace || $0 == "\"" || $0 == "'" || $0 == "\\" }) {
            throw UploadError(kind: .rejected, message: "\(dir)\(name) contains spaces or quotes, which SFTP commands cannot carry")
        }
        var upload = CurlUpload(url: "sftp://\(target.authority)\(FTPUploader.percentEncode(dir + remoteName))", bytes: bytes)
        upload.user = target.user
        upload.password = credentials.password
        upload.sshPrivateKeyFile = credentials.privateKeyFile
        upload.sshHostKeySHA256 = target.hostKeySHA256
        upload.sshKnownHostsFile = hostKeyHint.path
        upload.connectTimeout = target.connectTimeout
        if rename { upload.postQuote = ["*rm \(dir)\(name)", "rename \(dir)\(remoteName) \(dir)\(name)"] }
        let request = upload, hint = hostKeyHint
        do {
            // `hint` keeps the known_hosts file open while curl may read it.
            try await lane.run { curl in try withExtendedLifetime(hint) { try curl.perform(request) } }
        } catch let error as CurlError {
            if error.code == .sessionSetupFailed {
                throw UploadError(kind: .transient, message: "SSH session with \(target.authority) could not be set up: \(error); "
                                  + "if this persists, check that the server has a \(target.hostKeyType.rawValue) host key "
                                  + "(\(targetPath).host_key_type)")
            }
            throw UploadError.classify(error, target: target, targetPath: targetPath, remoteName: remoteName, finalName: name,
                                       path: dir + remoteName)
        } catch {
            throw UploadError(kind: .transient, message: "upload to \(target.authority) interrupted: \(error)")
        }
    }
}

/// An SFTP target that cannot be set up (at start).
public struct SFTPSetupError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// A one-line known_hosts file `[host]:port TYPE AAAA…` that makes curl offer only `TYPE` as host key
/// algorithm. libssh2 1.10 would otherwise negotiate the server's ECDSA key whenever it has one, and the
/// configured fingerprint (of another key type) would never match. curl compares only the SHA-256
/// fingerprint when one is set; the key in this line is a placeholder (the type's name, base64-encoded).
///
/// The file is created with `mkstemp` in the temporary directory and unlinked at once: it lives only as
/// long as this object holds it open, and curl reads it through `/proc/self/fd/N`.
final class HostKeyTypeHint: Sendable {
    /// `/proc/self/fd/N`, for `CURLOPT_SSH_KNOWNHOSTS`.
    let path: String
    private let fd: Int32

    init(host: String, port: Int, type: TargetConfig.HostKeyType) throws(SFTPSetupError) {
        // Real keys start with the algorithm name as an SSH string (uint32 length + bytes).
        let name = Array(type.rawValue.utf8)
        let blob = [0, 0, 0, UInt8(name.count)] + name
        let line = "[\(host)]:\(port) \(type.rawValue) \(Data(blob).base64EncodedString())\n"
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("quantrac-known-hosts-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw SFTPSetupError(description: "cannot create a temporary file in \(NSTemporaryDirectory()): \(String(cString: strerror(errno)))")
        }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            close(fd)
            throw SFTPSetupError(description: "cannot write the known_hosts hint: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        path = "/proc/self/fd/\(fd)"
    }

    deinit { close(fd) }
}
