import Curl
import Foundation
import QuantracConfig
import QuantracCore
import Storage

/// Why an upload failed, typed so the queue can react: retry soon, retry slowly, or wait for a fix.
public struct UploadError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Network or server trouble that will likely pass (refused, reset, timeout).
        case transient
        /// The server refused this upload (permission, rename not allowed, disk full).
        case rejected
        /// Login refused: nothing will work until the credentials change.
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
}

/// FTP through libcurl on a dedicated thread that keeps one easy handle (and so one control connection).
public final class FTPUploader: Uploader {
    private let lane: BlockingLane<CurlEasy>
    private let target: TargetConfig
    private let password: String?
    private let targetPath: String

    /// `targetPath` names the target in messages (`target[0]`).
    public init(target: TargetConfig, password: String?, targetPath: String) {
        self.target = target
        self.password = password
        self.targetPath = targetPath
        lane = BlockingLane(name: "target-\(target.name)") { CurlEasy() }
    }

    public func shutdown() { lane.shutdown() }

    public func upload(name: String, bytes: [UInt8], directory: String) async throws(UploadError) {
        var dir = directory.hasPrefix("/") ? directory : "/" + directory
        if !dir.hasSuffix("/") { dir += "/" }
        let rename = target.publish == .rename
        let remoteName = rename ? name + ".part" : name
        var upload = CurlUpload(url: "ftp://\(target.authority)\(Self.percentEncode(dir))\(Self.percentEncode(remoteName))", bytes: bytes)
        upload.user = target.user
        upload.password = password
        upload.connectTimeout = target.connectTimeout
        if rename { upload.postQuote = ["RNFR \(remoteName)", "RNTO \(name)"] }
        let targetPath = self.targetPath, authority = target.authority, request = upload
        do {
            try await lane.run { curl in try curl.perform(request) }
        } catch let error as CurlError {
            switch error.code {
            case .loginDenied:
                throw UploadError(kind: .authentication, message: "login to \(authority) refused: \(error)")
            case .quoteRefused:
                throw UploadError(kind: .rejected, message: "\(authority) refused to rename \(remoteName) to \(name): \(error); "
                                  + "if this account may not rename files, set \(targetPath).publish = \"direct\"")
            case .remoteRefused:
                throw UploadError(kind: .rejected, message: "\(authority) refused the upload of \(dir)\(remoteName): \(error)")
            default:
                throw UploadError(kind: .transient, message: "upload to \(authority) failed: \(error)")
            }
        } catch {
            throw UploadError(kind: .transient, message: "upload to \(authority) interrupted: \(error)")
        }
    }

    static func percentEncode(_ path: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: ";?#")
        return path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
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
