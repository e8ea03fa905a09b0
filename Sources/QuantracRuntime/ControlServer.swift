import Foundation
import Logging
import QuantracCore
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The control API: HTTP/1.0 over a Unix socket (`data_dir/control.sock`, mode 0660 so a group can be
/// given access), served by one dedicated thread. `GET /status` returns the status board as JSON.
public struct ControlServer: Service {
    let path: String
    let board: StatusBoard
    let logger: Logger

    public init(path: String, board: StatusBoard, logger: Logger) {
        self.path = path
        self.board = board
        self.logger = logger
    }

    public func run() async throws {
        let fd = try Self.listen(path)
        let board = self.board
        let thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return  // the listening socket was shut down
                }
                Self.serve(client, board: board)
                close(client)
            }
        }
        thread.name = "control"
        thread.start()
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        try? await gracefulShutdown()
        // Wakes the blocked accept(2) and ends the thread.
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    static func listen(_ path: String) throws -> Int32 {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartupError("control socket: \(String(cString: strerror(errno)))") }
        guard let address = UnixSocketAddress(path) else {
            close(fd)
            throw StartupError("control socket path \(path) is too long (max \(UnixSocketAddress.capacity) bytes)")
        }
        let ok = address.withSockaddr { bind(fd, $0, $1) }
        guard ok == 0, chmod(path, 0o660) == 0, Glibc.listen(fd, 8) == 0 else {
            let e = errno
            close(fd)
            throw StartupError("control socket \(path): \(String(cString: strerror(e)))")
        }
        return fd
    }

    /// Reads one request (up to the blank line, bounded, 2 s timeout) and answers it.
    static func serve(_ client: Int32, board: StatusBoard) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1024)
        while request.count < 8192 {
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { break }
            request += chunk[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] || request.suffix(2) == [10, 10] { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (code, body): (String, String)
        if line.count >= 2, line[0] == "GET", line[1] == "/status" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            code = "200 OK"
            body = (try? String(decoding: encoder.encode(board.snapshot()), as: UTF8.self)) ?? "{}"
        } else {
            code = "404 Not Found"
            body = "{\"error\":\"unknown request; use GET /status\"}"
        }
        let response = Array("HTTP/1.0 \(code)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
        var sent = 0
        while sent < response.count {
            let n = response.withUnsafeBytes { write(client, $0.baseAddress! + sent, response.count - sent) }
            if n <= 0 { break }
            sent += n
        }
    }
}
