import Foundation
import Modbus
#if canImport(Glibc)
import Glibc
#endif

/// What a bus thread needs from a Modbus master: read registers, (re)connect, close. The libmodbus
/// `ModbusClient` (TCP, RTU) and `RTUOverTCPClient` both provide it, with the same `ModbusError` codes.
protocol RegisterClient: AnyObject {
    var isConnected: Bool { get }
    func connect() throws(ModbusError)
    func close()
    func setResponseTimeout(_ timeout: Duration)
    func readHoldingRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16]
    func readInputRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16]
}

extension ModbusClient: RegisterClient {}

/// A Modbus RTU master whose frames travel unchanged over a TCP connection, as serial device servers
/// ("raw TCP"/"TCP server" mode) and cellular DTUs expect. libmodbus 3.1.6 has no such backend, so the
/// framing is `RTUFrame` and the socket is a plain POSIX one.
///
/// Every call blocks the calling thread (up to the response timeout); use it only from the thread of the
/// bus lane that owns it. Not `Sendable` on purpose. Before each request, bytes still waiting on the
/// socket (a late answer to a request that timed out) are discarded, so answers cannot get out of step.
public final class RTUOverTCPClient {
    public let host: String
    public let port: Int
    private var fd: Int32 = -1
    private var timeout: Duration = .seconds(1)

    public var isConnected: Bool { fd >= 0 }

    /// Does not connect.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    deinit { close() }

    /// Response timeout of one request; also the connect timeout.
    public func setResponseTimeout(_ timeout: Duration) { self.timeout = timeout }

    /// Opens the TCP connection (`getaddrinfo`, non-blocking `connect`, `poll` up to the timeout).
    public func connect() throws(ModbusError) {
        if fd >= 0 { return }
        let context = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw ModbusError(code: .connection, function: "getaddrinfo", context: context, message: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var lastError = ModbusError(code: .connection, function: "connect", context: context, message: "no address")
        var ai: UnsafeMutablePointer<addrinfo>? = list
        while let a = ai {
            ai = a.pointee.ai_next
            let s = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), a.pointee.ai_protocol)
            if s < 0 { lastError = Self.error(errno, "socket", context); continue }
            _ = fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(s, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 {
                fd = s
                return
            }
            var err = errno
            if err == EINPROGRESS {
                switch wait(s, for: Int16(POLLOUT), until: ContinuousClock.now + timeout) {
                case .ready:
                    var soError: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(s, SOL_SOCKET, SO_ERROR, &soError, &len)
                    if soError == 0 {
                        fd = s
                        return
                    }
                    err = soError
                case .timedOut: err = ETIMEDOUT
                case .failed(let e): err = e
                }
            }
            Glibc.close(s)
            lastError = Self.error(err, "connect", context)
            // A connect timeout says the host is unreachable, not that the answer was late.
            if err == ETIMEDOUT {
                lastError = ModbusError(code: .connection, function: "connect", context: context, message: "no answer within \(timeout)")
            }
        }
        throw lastError
    }

    /// Closes the connection; the next request connects again.
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Reads `count` (1…125) holding registers (function 3) from `slave` (1…247) at zero-based `address`.
    public func readHoldingRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try read(slave: slave, function: 3, address: address, count: count)
    }

    /// Reads `count` (1…125) input registers (function 4) from `slave` (1…247) at zero-based `address`.
    public func readInputRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try read(slave: slave, function: 4, address: address, count: count)
    }

    private func read(slave: Int, function: UInt8, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        let context = "slave \(slave), address \(address), count \(count)"
        let fn = "rtu_over_tcp_read(\(function))"
        guard (1...125).contains(count), (0...0xFFFF).contains(address), address + count <= 0x10000, (1...247).contains(slave) else {
            throw ModbusError(code: .invalidArgument, function: fn, context: context,
                              message: "count must be 1…125, address 0…65535, slave 1…247")
        }
        try connect()
        do throws(ModbusError) {
            try discardInput(context: context)
            try sendAll(RTUFrame.readRequest(slave: UInt8(slave), function: function, address: UInt16(address), count: UInt16(count)), context: context)
            let deadline = ContinuousClock.now + timeout
            var buffer: [UInt8] = []
            while true {
                switch try RTUFrame.parseReadAnswer(buffer, slave: UInt8(slave), function: function, count: count, context: context) {
                case .registers(let registers): return registers
                case .needMore: break
                }
                switch wait(fd, for: Int16(POLLIN), until: deadline) {
                case .timedOut:
                    throw ModbusError(code: .timeout, function: fn, context: context,
                                      message: buffer.isEmpty ? "no answer within \(timeout)" : "incomplete answer (\(buffer.count) bytes) within \(timeout)")
                case .failed(let e): throw Self.error(e, "poll", context)
                case .ready: break
                }
                var chunk = [UInt8](repeating: 0, count: 512)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n == 0 { throw ModbusError(code: .connection, function: "recv", context: context, message: "connection closed by the peer") }
                if n < 0 {
                    let e = errno
                    if e == EAGAIN || e == EINTR { continue }
                    throw Self.error(e, "recv", context)
                }
                buffer += chunk.prefix(n)
            }
        } catch {
            if error.code.needsReconnect { close() }
            throw error
        }
    }

    /// Reads and drops whatever is already waiting on the socket.
    private func discardInput(context: String) throws(ModbusError) {
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }
            if n == 0 { throw ModbusError(code: .connection, function: "recv", context: context, message: "connection closed by the peer") }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK { return }
            if e == EINTR { continue }
            throw Self.error(e, "recv", context)
        }
    }

    private func sendAll(_ bytes: [UInt8], context: String) throws(ModbusError) {
        var sent = 0
        let deadline = ContinuousClock.now + timeout
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            let e = errno
            if e == EAGAIN || e == EWOULDBLOCK || e == EINTR {
                if case .timedOut = wait(fd, for: Int16(POLLOUT), until: deadline) {
                    throw ModbusError(code: .timeout, function: "send", context: context, message: "socket not writable within \(timeout)")
                }
                continue
            }
            throw Self.error(e, "send", context)
        }
    }

    private enum Readiness { case ready, timedOut, failed(Int32) }

    /// `poll` on one descriptor until `deadline` (EINTR retried).
    private func wait(_ s: Int32, for events: Int16, until deadline: ContinuousClock.Instant) -> Readiness {
        while true {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return .timedOut }
            let (sec, atto) = remaining.components
            let ms = Int32(clamping: max(1, sec * 1000 + atto / 1_000_000_000_000_000))
            var p = pollfd(fd: s, events: events, revents: 0)
            let rc = poll(&p, 1, ms)
            if rc > 0 {
                // POLLERR/POLLHUP count as ready: the following recv/getsockopt reports what happened.
                return .ready
            }
            if rc == 0 { continue }  // re-check the deadline
            let e = errno
            if e == EINTR { continue }
            return .failed(e)
        }
    }

    static func error(_ err: Int32, _ function: String, _ context: String) -> ModbusError {
        let message = String(cString: strerror(err))
        // Any socket failure other than a timeout puts the connection in doubt: re-open it.
        return ModbusError(code: err == ETIMEDOUT ? .timeout : .connection, function: function, context: context, message: message)
    }
}

extension RTUOverTCPClient: RegisterClient {}
