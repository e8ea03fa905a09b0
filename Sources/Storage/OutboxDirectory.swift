import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The exact bytes of every regulator file: `data_dir/outbox/` while any target still needs it,
/// `data_dir/sent/` once every target has it. Files are written as `name.tmp`, fsynced, renamed and
/// the directory fsynced, so a crash leaves either the whole file or none of it.
public struct OutboxDirectory: Sendable {
    public let outbox: String
    public let sent: String

    public init(dataDir: String) throws {
        outbox = (dataDir as NSString).appendingPathComponent("outbox")
        sent = (dataDir as NSString).appendingPathComponent("sent")
        for dir in [outbox, sent] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
    }

    /// Removes `*.tmp` files a crash left mid-write (never published). Only the daemon, at start.
    public func removeStaleTemporaries() {
        let e = FileManager.default.enumerator(atPath: outbox)
        while let name = e?.nextObject() as? String {
            if name.hasSuffix(".tmp") { try? FileManager.default.removeItem(atPath: (outbox as NSString).appendingPathComponent(name)) }
        }
    }

    /// Writes `bytes` as `outbox/name` atomically and durably (blocking file I/O; small files).
    /// `name` may carry a product folder (`1h/NAME`), created as needed.
    public func write(name: String, bytes: [UInt8]) throws {
        let path = (outbox as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Self.writeDurably(bytes: bytes, to: path)
    }

    /// The bytes of a file, from the outbox or, once delivered, from the sent directory.
    public func read(name: String) throws -> [UInt8] {
        for dir in [outbox, sent] {
            let path = (dir as NSString).appendingPathComponent(name)
            if let data = FileManager.default.contents(atPath: path) { return Array(data) }
        }
        throw POSIXError(.ENOENT, "\(name) is in neither \(outbox) nor \(sent)")
    }

    /// Moves a delivered file to the sent directory (rename + directory fsyncs). Idempotent.
    public func archive(name: String) throws {
        let from = (outbox as NSString).appendingPathComponent(name)
        let to = (sent as NSString).appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: from) else { return }
        let toDir = (to as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: toDir, withIntermediateDirectories: true)
        guard rename(from, to) == 0 else { throw POSIXError(errno, "rename \(from) → \(to)") }
        try Self.fsyncDirectory(toDir)
        try Self.fsyncDirectory((from as NSString).deletingLastPathComponent)
    }

    /// Moves several delivered files to the sent directory: every rename first, then one fsync per
    /// directory involved (not two per file). Idempotent.
    public func archive(names: [String]) throws {
        var dirs: [String] = []
        for name in names {
            let from = (outbox as NSString).appendingPathComponent(name)
            let to = (sent as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: from) else { continue }
            let toDir = (to as NSString).deletingLastPathComponent
            if !dirs.contains(toDir) {
                try FileManager.default.createDirectory(atPath: toDir, withIntermediateDirectories: true)
                dirs.append(toDir)
            }
            guard rename(from, to) == 0 else { throw POSIXError(errno, "rename \(from) → \(to)") }
            let fromDir = (from as NSString).deletingLastPathComponent
            if !dirs.contains(fromDir) { dirs.append(fromDir) }
        }
        for dir in dirs { try Self.fsyncDirectory(dir) }
    }

    /// Writes `path.tmp`, fsyncs it, renames it over `path` and fsyncs the directory.
    public static func writeDurably(bytes: [UInt8], to path: String, temporarySuffix: String = ".tmp") throws {
        let tmp = path + temporarySuffix
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(errno, "open \(tmp)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw POSIXError(e, "write \(tmp)")
            }
            written += n
        }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            throw POSIXError(e, "fsync \(tmp)")
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw POSIXError(errno, "rename \(tmp) → \(path)") }
        try fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    public static func fsyncDirectory(_ dir: String) throws {
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(errno, "open \(dir)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw POSIXError(errno, "fsync \(dir)") }
    }
}

extension POSIXError {
    init(_ code: Int32, _ what: String) {
        self.init(POSIXErrorCode(rawValue: code) ?? .EIO, userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(code)))"])
    }
    init(_ code: POSIXErrorCode, _ what: String) {
        self.init(code, userInfo: [NSLocalizedDescriptionKey: what])
    }
}

extension OutboxDirectory {
    /// Deletes a delivered file from `sent/` (retention). Files in `outbox/` are never touched here.
    public func removeSent(name: String) throws {
        let path = (sent as NSString).appendingPathComponent(name)
        if unlink(path) != 0 && errno != ENOENT { throw POSIXError(errno, "unlink \(path)") }
    }
}
