import Foundation
import Logging
import QuantracCore
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where an HTTP server listens.
public enum HTTPEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// A Unix socket file (created mode 0660, replacing a stale one).
    case unix(path: String)
    /// An IPv4 or IPv6 literal and a TCP port (0: a free port, chosen by the kernel).
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path): return path
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// A listener that could not be opened: where, and the system's reason (`Address already in use`).
public struct HTTPListenError: Error, Sendable, CustomStringConvertible {
    public let endpoint: HTTPEndpoint
    public let reason: String
    public var description: String { "cannot listen on \(endpoint): \(reason)" }
}

/// A bound, listening stream socket (close-on-exec). For `tcp` port 0, `endpoint` holds the chosen port.
public final class HTTPListener: Sendable {
    let fd: Int32
    public let endpoint: HTTPEndpoint
    private let isShutDownState = Mutex(false)

    public init(_ endpoint: HTTPEndpoint, backlog: Int32 = 16) throws(HTTPListenError) {
        func failure(_ fd: Int32, _ reason: String? = nil) -> HTTPListenError {
            let text = reason ?? String(cString: strerror(errno))
            if fd >= 0 { Glibc.close(fd) }
            return HTTPListenError(endpoint: endpoint, reason: text)
        }
        let stream = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        switch endpoint {
        case .unix(let path):
            unlink(path)
            let fd = socket(AF_UNIX, stream, 0)
            guard fd >= 0 else { throw failure(fd) }
            guard let address = UnixSocketAddress(path) else { throw failure(fd, "path too long (max \(UnixSocketAddress.capacity) bytes)") }
            guard address.withSockaddr({ bind(fd, $0, $1) }) == 0, chmod(path, 0o660) == 0, listen(fd, backlog) == 0 else { throw failure(fd) }
            self.fd = fd
            self.endpoint = endpoint
        case .tcp(let host, let port):
            let v6 = host.contains(":")
            let fd = socket(v6 ? AF_INET6 : AF_INET, stream, 0)
            guard fd >= 0 else { throw failure(fd) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var storage = sockaddr_storage()
            let length: socklen_t
            if v6 {
                var a = sockaddr_in6()
                a.sin6_family = sa_family_t(AF_INET6)
                a.sin6_port = in_port_t(UInt16(clamping: port).bigEndian)
                guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { throw failure(fd, "\(host) is not an IPv6 address") }
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
                length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            } else {
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
                guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { throw failure(fd, "\(host) is not an IPv4 address") }
                withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
                length = socklen_t(MemoryLayout<sockaddr_in>.size)
            }
            let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
            guard bound == 0, listen(fd, backlog) == 0 else { throw failure(fd) }
            // The port actually bound (port 0 asks the kernel for a free one).
            var actual = sockaddr_storage()
            var actualLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &actualLength) } }
            let boundPort = withUnsafeBytes(of: &actual) { raw in
                v6 ? raw.load(as: sockaddr_in6.self).sin6_port : raw.load(as: sockaddr_in.self).sin_port
            }
            self.fd = fd
            self.endpoint = .tcp(host: host, port: Int(UInt16(bigEndian: boundPort)))
        }
    }

    /// Whether `shutdown()` was called.
    var isShutDown: Bool { isShutDownState.withLock { $0 } }

    /// Wakes the thread blocked in accept(2) (it then ends) and removes a Unix socket file. Idempotent;
    /// the descriptor itself is closed when the last user lets go of the listener.
    public func shutdown() {
        let first = isShutDownState.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        if case .unix(let path) = endpoint { unlink(path) }
    }

    deinit { Glibc.close(fd) }
}

/// A small HTTP/1.x server for read-only pages: one accept thread, and one thread per connection up to
/// `Limits.maxConnections` (beyond that a connection gets `503` at once), so a slow or stalled client
/// holds only its own thread, and for at most the read and write timeouts. One request per connection
/// (`Connection: close`); only `GET` and `HEAD` (`405` otherwise); a malformed head gets `400`, an
/// oversized one `431`, a head not complete in time `408`.
///
/// Socket I/O blocks only those dedicated threads. The handler is async and runs on the caller's task
/// group (the cooperative pool), so it may await the database; a connection thread waits for its answer.
public struct HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    public struct Limits: Sendable {
        /// Connections served at once.
        public var maxConnections = 16
        /// Largest request head (request line and header fields).
        public var maxHeadBytes = 8192
        /// Time a client has to send its complete request head.
        public var readTimeout: Duration = .seconds(5)
        /// Time one `send` may block on a client that does not read.
        public var writeTimeout: Duration = .seconds(10)
        /// Time the handler has before the client gets `503`.
        public var handlerTimeout: Duration = .seconds(20)

        public init() {}
    }

    /// Names the threads (`top -H`) and log lines.
    let name: String
    let limits: Limits
    let logger: Logger

    public init(name: String, limits: Limits = Limits(), logger: Logger) {
        self.name = name
        self.limits = limits
        self.logger = logger
    }

    /// Serves `listener` until graceful shutdown or cancellation, then shuts it down.
    public func serve(_ listener: HTTPListener, handler: @escaping Handler) async {
        let (requests, continuation) = AsyncStream.makeStream(of: PendingRequest.self, bufferingPolicy: .bufferingOldest(limits.maxConnections))
        let acceptor = Thread { [self] in acceptLoop(listener, requests: continuation) }
        acceptor.name = name
        acceptor.start()
        await withDiscardingTaskGroup { group in
            for await pending in requests.cancelOnGracefulShutdown() {
                group.addTask { pending.slot.fulfil(await handler(pending.request)) }
            }
        }
        continuation.finish()
        listener.shutdown()
    }

    /// A request waiting for its handler, and where its connection thread waits for the answer.
    struct PendingRequest: Sendable {
        let request: HTTPRequest
        let slot: ResponseSlot
    }

    // MARK: threads

    private func acceptLoop(_ listener: HTTPListener, requests: AsyncStream<PendingRequest>.Continuation) {
        let active = ConnectionCount()
        while !listener.isShutDown {
            let client = accept(listener.fd, nil, nil)
            if client < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: Thread.sleep(forTimeInterval: 0.1); continue  // out of descriptors: let some close
                default: return  // shut down
                }
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)  // no child process (timedatectl) inherits a connection
            guard active.enter(limit: limits.maxConnections) else {
                Self.setTimeout(client, SO_SNDTIMEO, .seconds(1))
                Self.send(client, HTTPResponse.text(503, "too many connections\n").serialized())
                close(client)
                logger.debug("connection refused: too many at once", metadata: ["server": "\(name)"])
                continue
            }
            let thread = Thread { [self] in
                serveConnection(client, requests: requests)
                close(client)
                active.leave()
            }
            thread.name = "\(name)-client"
            thread.start()
        }
    }

    /// Reads one request head, gets its answer and sends it. Runs on the connection's own thread.
    private func serveConnection(_ client: Int32, requests: AsyncStream<PendingRequest>.Continuation) {
        Self.setTimeout(client, SO_SNDTIMEO, limits.writeTimeout)
        let started = ContinuousClock.now
        let request: HTTPRequest
        switch readHead(client) {
        case .closed:
            return
        case .refused(let status, let reason):
            Self.send(client, HTTPResponse.text(status, reason + "\n").serialized())
            logger.debug("bad request", metadata: ["server": "\(name)", "status": "\(status)", "reason": "\(reason)"])
            return
        case .head(let r):
            request = r
        }
        var response: HTTPResponse
        if request.method != "GET" && request.method != "HEAD" {
            response = .text(405, "only GET and HEAD\n", headers: ["Allow": "GET, HEAD"])
        } else {
            let slot = ResponseSlot()
            if case .enqueued = requests.yield(PendingRequest(request: request, slot: slot)) {
                response = slot.wait(timeout: limits.handlerTimeout) ?? .text(503, "no answer in time\n")
            } else {
                response = .text(503, "shutting down or busy\n")
            }
        }
        Self.send(client, response.serialized(headOnly: request.method == "HEAD", version: request.version))
        logger.debug("\(request.method) \(request.path) \(response.status)", metadata: [
            "server": "\(name)", "bytes": "\(response.body.count)", "ms": "\((ContinuousClock.now - started).wholeMilliseconds)",
        ])
    }

    enum HeadResult {
        case head(HTTPRequest)
        case refused(Int, String)
        case closed
    }

    /// Reads until the blank line ending the head, within `maxHeadBytes` and `readTimeout` in total.
    private func readHead(_ client: Int32) -> HeadResult {
        let deadline = ContinuousClock.now + limits.readTimeout
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return buffer.isEmpty ? .closed : .refused(408, "request head not complete in time") }
            Self.setTimeout(client, SO_RCVTIMEO, remaining)
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { continue }  // the deadline check above decides
                return .closed
            }
            if n == 0 { return .closed }
            buffer += chunk[0..<n]
            if let end = HTTPRequest.headEnd(in: buffer) {
                guard end <= limits.maxHeadBytes else { return .refused(431, "request head larger than \(limits.maxHeadBytes) bytes") }
                switch HTTPRequest.parse(head: buffer[0..<end]) {
                case .success(let r): return .head(r)
                case .failure(let e): return .refused(e.status, e.reason)
                }
            }
            if buffer.count > limits.maxHeadBytes { return .refused(431, "request head larger than \(limits.maxHeadBytes) bytes") }
        }
    }

    static func setTimeout(_ fd: Int32, _ option: Int32, _ d: Duration) {
        let us = max(1000, d.wholeMilliseconds * 1000)
        var tv = timeval(tv_sec: Int(us / 1_000_000), tv_usec: Int(us % 1_000_000))
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends everything or gives up (client gone, or blocked past the send timeout). Never raises SIGPIPE.
    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.send(fd, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            sent += n
        }
    }
}

/// Connections being served, bounded.
final class ConnectionCount: Sendable {
    private let count = Mutex(0)

    func enter(limit: Int) -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }
}

/// Hands a handler's response from the task group to the waiting connection thread.
final class ResponseSlot: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `response` is only read or written while holding `condition`.
    private let condition = NSCondition()
    private var response: HTTPResponse?

    func fulfil(_ r: HTTPResponse) {
        condition.lock()
        response = r
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks the calling (connection) thread until the response is there or `timeout` has passed.
    func wait(timeout: Duration) -> HTTPResponse? {
        let deadline = Date(timeIntervalSinceNow: timeout.inSeconds)
        condition.lock()
        defer { condition.unlock() }
        while response == nil {
            if !condition.wait(until: deadline) { break }
        }
        return response
    }
}
