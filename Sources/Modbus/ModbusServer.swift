import CModbus
#if canImport(Glibc)
import Glibc
#endif

/// A read (or other) request as a server received it, for deciding how to answer.
public struct ModbusServerRequest: Sendable, Hashable {
    /// Unit identifier (slave id) the request is for.
    public let unit: UInt8
    /// Function code (3 read holding registers, 4 read input registers …).
    public let function: UInt8
    /// Zero-based start address (the first two data bytes of the request).
    public let address: Int
    /// Register or coil count (the next two data bytes).
    public let count: Int
}

/// How a server answers one request.
public enum ModbusServerReply: Sendable, Hashable {
    /// The normal answer from the unit's register map (libmodbus `modbus_reply`; addresses beyond the map
    /// get exception 2, illegal data address).
    case registers
    /// An exception answer with this code (`modbus_reply_exception`).
    case exception(ModbusException)
    /// No answer at all: the client times out.
    case silence
    /// These bytes instead of an answer.
    case garbage([UInt8])
}

/// A libmodbus Modbus TCP server (`modbus_tcp_listen`, `modbus_receive`, `modbus_reply`) that serves one
/// register map per unit id, accepts any number of clients and multiplexes them with `poll(2)`.
///
/// Each request is first shown to `decide`, which may answer it normally, with an exception, with
/// garbage or not at all (a simulated analyzer's faults). `close()` and `reopen()` take the listening
/// socket away and back on the same port (a power cycle).
/// Blocking: `serve(for:)` blocks the calling thread up to the given time; use one thread per server,
/// and only that thread.
public final class ModbusServer {
    private var ctx: OpaquePointer
    private let host: String
    private var listenSocket: Int32 = -1
    private var clients: [Int32] = []
    private var mappings: [UInt8: UnsafeMutablePointer<modbus_mapping_t>] = [:]
    /// The TCP port actually bound (the one asked for, or the free port picked for 0).
    public private(set) var boundPort: Int
    /// Requests for a unit id that has no map are answered with this exception (nil: not at all).
    public var unknownUnitException: ModbusException? = .gatewayTargetFailedToRespond
    /// Decides how each request for a known unit is answered; nil answers every request normally.
    public var decide: ((ModbusServerRequest) -> ModbusServerReply)?

    /// Whether the server listens (false between `close()` and `reopen()`).
    public var isOpen: Bool { listenSocket >= 0 }

    /// A TCP server listening on `host:port` (`modbus_new_tcp` + `modbus_tcp_listen`). Port 0 picks a free port.
    public init(tcpHost host: String, port: Int) throws(ModbusError) {
        self.host = host
        ctx = try Self.context(host: host, port: port)
        boundPort = port
        // If this throws, deinit frees the context: every stored property is set by now.
        try listen()
    }

    deinit {
        close()
        for (_, m) in mappings { modbus_mapping_free(m) }
        modbus_free(ctx)
    }

    private static func context(host: String, port: Int) throws(ModbusError) -> OpaquePointer {
        guard let made = modbus_new_tcp(host, Int32(port)) else {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_new_tcp", context: "\(host):\(port)")
        }
        return made
    }

    private func listen() throws(ModbusError) {
        listenSocket = modbus_tcp_listen(ctx, 16)
        if listenSocket == -1 {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_tcp_listen", context: "\(host):\(boundPort)")
        }
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenSocket, $0, &len) }
        }
        boundPort = Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Closes the listening socket and every client connection: new connections are refused, open ones
    /// see the server go away.
    public func close() {
        for fd in clients { Glibc.close(fd) }
        clients = []
        if listenSocket >= 0 { Glibc.close(listenSocket) }
        listenSocket = -1
    }

    /// Listens again on `boundPort` after `close()` (SO_REUSEADDR, so a port in TIME_WAIT is fine).
    public func reopen() throws(ModbusError) {
        guard listenSocket < 0 else { return }
        let fresh = try Self.context(host: host, port: boundPort)
        modbus_free(ctx)
        ctx = fresh
        try listen()
    }

    /// Declares (or resizes) the register map of one unit id; registers start at address 0.
    public func define(unit: UInt8, holdingCount: Int, inputCount: Int) {
        if let old = mappings[unit] { modbus_mapping_free(old) }
        mappings[unit] = modbus_mapping_new(0, 0, Int32(holdingCount), Int32(inputCount))
    }

    /// Writes registers into a unit's map (values served from the next request on).
    public func set(unit: UInt8, holding values: [UInt16], at address: Int) {
        guard let m = mappings[unit] else { return }
        for (i, v) in values.enumerated() where address + i < Int(m.pointee.nb_registers) {
            m.pointee.tab_registers[address + i] = v
        }
    }

    public func set(unit: UInt8, input values: [UInt16], at address: Int) {
        guard let m = mappings[unit] else { return }
        for (i, v) in values.enumerated() where address + i < Int(m.pointee.nb_input_registers) {
            m.pointee.tab_input_registers[address + i] = v
        }
    }

    /// Serves requests until `timeout` has passed (bounded by `poll(2)`), then returns so the caller can
    /// update registers. Errors from one client close that client only. While closed, just waits.
    public func serve(for timeout: Duration) {
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard listenSocket >= 0 else {
            _ = poll(nil, 0, ms)
            return
        }
        var fds = [pollfd(fd: listenSocket, events: Int16(POLLIN), revents: 0)]
        fds += clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let n = poll(&fds, nfds_t(fds.count), ms)
        guard n > 0 else { return }
        if fds[0].revents & Int16(POLLIN) != 0 {
            var s = listenSocket
            let client = modbus_tcp_accept(ctx, &s)
            if client >= 0 { clients.append(client) }
        }
        var closed: Set<Int32> = []
        for pfd in fds.dropFirst() where pfd.revents != 0 {
            modbus_set_socket(ctx, pfd.fd)
            if !handleOne(socket: pfd.fd) { closed.insert(pfd.fd) }
        }
        for fd in closed { Glibc.close(fd) }
        clients.removeAll { closed.contains($0) }
    }

    /// Receives and answers one request; false when the client is gone or sent garbage.
    private func handleOne(socket: Int32) -> Bool {
        var query = [UInt8](repeating: 0, count: Int(quantrac_modbus_tcp_max_adu_length()))
        let rc = query.withUnsafeMutableBufferPointer { modbus_receive(ctx, $0.baseAddress) }
        if rc == 0 { return true }
        if rc < 0 { return false }
        let header = Int(modbus_get_header_length(ctx))
        let unit = header > 0 ? query[header - 1] : 0
        guard let mapping = mappings[unit] else {
            if let exception = unknownUnitException {
                return query.withUnsafeBufferPointer { modbus_reply_exception(ctx, $0.baseAddress, UInt32(exception.rawValue)) } >= 0
            }
            return true
        }
        func word(_ i: Int) -> Int { i + 1 < Int(rc) ? Int(query[i]) << 8 | Int(query[i + 1]) : 0 }
        let request = ModbusServerRequest(unit: unit, function: query[header], address: word(header + 1), count: word(header + 3))
        switch decide?(request) ?? .registers {
        case .registers:
            return query.withUnsafeBufferPointer { modbus_reply(ctx, $0.baseAddress, rc, mapping) } >= 0
        case .exception(let e):
            return query.withUnsafeBufferPointer { modbus_reply_exception(ctx, $0.baseAddress, UInt32(e.rawValue)) } >= 0
        case .silence:
            return true
        case .garbage(let bytes):
            return bytes.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } >= 0
        }
    }
}
