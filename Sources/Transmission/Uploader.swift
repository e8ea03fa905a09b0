import Curl
import Foundation
import QuantracConfig
import QuantracCore
import Storage

/// Why an upload failed, typed so the queue can react: retry soon, retry slowly, or wait for a fix.
public struct UploadError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Network or server trouble that will likely pass (refused, reset, timeout, stall, broken TLS handshake).
        case transient
        /// The server refused this upload (permission, rename not allowed, disk full: FTP 550/552).
        case rejected
        /// Login refused, or the server's identity could not be verified (TLS certificate not trusted, pinned
        /// public key or SSH host key mismatch, TLS refused): nothing will work until the configuration
        /// (or the server) changes.
        case authentication
    }
    public let kind: Kind
    public let message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Publishes one file into a remote directory.
public protocol Uploader: Sendable {
    /// Uploads `bytes` as `directory/name`, never leaving a partial file under `name` when publishing by rename.
    func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError)
    /// Releases the connection and its thread.
    func shutdown()
    /// The upload thread as a task executor, when the queue's own code may run on it (an upload is then
    /// a call on the same thread instead of two thread hand-offs per file); nil to stay on the cooperative pool.
    var taskExecutor: (any TaskExecutor)? { get }
}

extension Uploader {
    public var taskExecutor: (any TaskExecutor)? { nil }
}

/// FTP and FTPS through libcurl on a dedicated thread that keeps one easy handle (and so one control
/// connection, with its TLS session for FTPS).
///
/// `ftps://` targets require TLS on the control and the data connection (`CURLUSESSL_ALL`): explicit TLS
/// (`AUTH TLS` on an `ftp://` URL) by default, implicit TLS (`ftps://` URL) with `tls = "implicit"`.
/// The certificate and host name are always verified (`ca_file` or the system's CAs), plus the
/// `pinned_public_key` when set.
public final class FTPUploader: Uploader {
    private let lane: BlockingLane<CurlEasy>
    private let target: TargetConfig
    private let password: String?
    private let targetPath: String

    /// `password` is the secret itself (read at start, never logged); `targetPath` names the target in
    /// messages (`target[0]`). `target.scheme` is `.ftp` or `.ftps`.
    public init(target: TargetConfig, password: String?, targetPath: String) {
        self.target = target
        self.password = password
        self.targetPath = targetPath
        lane = BlockingLane(name: "target-\(target.name)") { CurlEasy() }
    }

    public func shutdown() { lane.shutdown() }

    public var taskExecutor: (any TaskExecutor)? { lane }

    public func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError) {
        var dir = directory.hasPrefix("/") ? directory : "/" + directory
        if !dir.hasSuffix("/") { dir += "/" }
        let rename = target.publish == .rename
        let remoteName = rename ? name + ".part" : name
        let tls = target.scheme == .ftps
        let urlScheme = tls && target.tls == .implicit ? "ftps" : "ftp"
        var upload = CurlUpload(url: "\(urlScheme)://\(target.authority)\(Self.percentEncode(dir))\(Self.percentEncode(remoteName))",
                                bytes: bytes)
        upload.user = target.user
        upload.password = password
        upload.connectTimeout = target.connectTimeout
        upload.requireTLS = tls
        upload.caFile = target.caFile
        upload.pinnedPublicKey = target.pinnedPublicKey
        if rename { upload.postQuote = ["RNFR \(remoteName)", "RNTO \(name)"] }
        let request = upload
        do {
            try await lane.run { curl in try Self.perform(request, on: curl) }
        } catch let error as CurlError {
            var loginHint = ""
            if error.code == .loginDenied, !tls {
                loginHint = error.responseCode == 550
                    ? "; a 550 reply to the login usually means the server requires TLS: use an ftps:// URL"
                    : "; if the server requires TLS, use an ftps:// URL"
            }
            throw UploadError.classify(error, target: target, targetPath: targetPath, remoteName: remoteName, finalName: name,
                                       path: dir + remoteName, loginHint: loginHint)
        } catch {
            throw UploadError(kind: .transient, message: "upload to \(target.authority) interrupted: \(error)")
        }
    }

    /// Runs `request`; after a `421` reply, once more at once on a new connection. A server that closes an
    /// idle control connection (its idle timeout) sends "421" first; curl still takes the cached connection
    /// for alive (the reply makes it readable) and reads the 421 as the answer to its first command.
    /// Publishing is idempotent, so repeating the upload is safe. Blocks: call on the lane thread.
    static func perform(_ request: CurlUpload, on curl: CurlEasy) throws(CurlError) {
        do {
            try curl.perform(request)
        } catch {
            guard error.responseCode == 421 else { throw error }
            var fresh = request
            fresh.freshConnection = true
            try curl.perform(fresh)
        }
    }

    /// A URL path's characters without `;`, `?` and `#` (built once: a character set is costly to make).
    private static let pathAllowed: CharacterSet = {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: ";?#")
        return allowed
    }()

    static func percentEncode(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: pathAllowed) ?? path
    }
}

extension UploadError {
    /// Maps a libcurl failure to what the queue must do, with a message saying what to fix.
    /// Login refusal and failed identity checks are `.authentication`; refusals of the file, a folder or
    /// the rename are `.rejected` (a refused rename says to set `publish = "direct"`); the rest is `.transient`.
    static func classify(_ error: CurlError, target: TargetConfig, targetPath: String, remoteName: String,
                         finalName: String, path: String, loginHint: String = "") -> UploadError {
        let authority = target.authority
        switch error.code {
        case .loginDenied:
            return UploadError(kind: .authentication, message: "login to \(authority) refused: \(error)\(loginHint)")
        case .securityFailure:
            let fix: String
            switch target.scheme {
            case .sftp:
                fix = "the server's \(target.hostKeyType.rawValue) host key does not match \(targetPath).host_key_sha256; "
                    + "if the receiver really changed its key, confirm the new fingerprint with them before changing the setting"
            default:
                let trust = target.caFile.map { "\(targetPath).ca_file (\($0))" }
                    ?? "\(targetPath).ca_file (not set: the system's certificate authorities are used)"
                fix = "check \(trust), \(targetPath).pinned_public_key and the host name in \(targetPath).url "
                    + "against the server's certificate"
            }
            return UploadError(kind: .authentication, message: "\(authority) could not be verified: \(error); \(fix)")
        case .tlsRefused:
            return UploadError(kind: .authentication, message: "\(authority) does not offer TLS: \(error); nothing was sent in "
                               + "plain text. Ask the receiver whether it uses implicit TLS (\(targetPath).tls = \"implicit\") or plain FTP")
        case .quoteRefused:
            return UploadError(kind: .rejected, message: "\(authority) refused to rename \(remoteName) to \(finalName): \(error); "
                               + "if this account may not rename files, set \(targetPath).publish = \"direct\"")
        case .remoteRefused:
            return UploadError(kind: .rejected, message: "\(authority) refused the upload of \(path): \(error)")
        case .tlsHandshakeFailed:
            let other = target.tls == .implicit ? "explicit" : "implicit"
            return UploadError(kind: .transient, message: "TLS handshake with \(authority) failed: \(error); "
                               + "if this persists, the server may expect \(other) TLS (\(targetPath).tls)")
        default:
            return UploadError(kind: .transient, message: "upload to \(authority) failed: \(error)")
        }
    }
}

/// A local (or mounted) directory, written like the outbox: temporary name, fsync, rename.
public final class FileUploader: Uploader {
    private let lane: BlockingLane<Void>
    private let publish: PublishMode

    public init(target: TargetConfig) {
        publish = target.publish
        lane = BlockingLane(name: "target-\(target.name)") { () }
    }

    public func shutdown() { lane.shutdown() }

    public var taskExecutor: (any TaskExecutor)? { lane }

    public func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError) {
        let publish = self.publish
        do {
            try await lane.run { _ in
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let path = (directory as NSString).appendingPathComponent(name)
                if publish == .rename {
                    try OutboxDirectory.writeDurably(bytes: bytes, to: path, temporarySuffix: ".part")
                } else {
                    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
                        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
                    }
                }
            }
        } catch {
            throw UploadError(kind: .rejected, message: "cannot write \(name) into \(directory): \(error.localizedDescription)")
        }
    }
}
