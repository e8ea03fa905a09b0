import CModbus
#if canImport(Glibc)
import Glibc
#endif

/// Register banks a simulated device serves.
public struct RegisterBank: Sendable {
    public var holding: [UInt16]
    public var input: [UInt16]
    public init(holding: [UInt16] = [], input: [UInt16] = []) {
        self.holding = holding
        self.input = input
    }
}

/// A libmodbus slave/server (`modbus_receive` + `modbus_reply`) that serves one register map per unit id.
///
/// TCP: accepts any number of clients and multiplexes them with `poll(2)`. RTU: serves a single unit id
/// on a serial device (libmodbus 3.1.6 filters RTU requests by the context's own slave id).
/// Blocking: `serve(for:)` blocks the calling thread up to the given time; use one thread per server.
public final class ModbusServer {
    private let ctx: OpaquePointer
    private var listenSocket: Int32 = -1
    private var clients: [Int32] = []
    private var mappings: [UInt8: UnsafeMutablePointer<modbus_mapping_t>] = [:]
    private let isTCP: Bool
    private var isConnected = false
    /// The TCP port actually bound (useful with port 0); nil for RTU.
    public private(set) var boundPort: Int?
    /// Requests for a unit id that has no map are answered with this exception (TCP) or ignored (RTU).
    public var unknownUnitException: ModbusException? = .gatewayTargetFailedToRespond

    /// A TCP server listening on `host:port` (`modbus_new_tcp` + `modbus_tcp_listen`). Port 0 picks a free port.
    public init(tcpHost host: String, port: Int) throws(ModbusError) {
        isTCP = true
        guard let made = modbus_new_tcp(host, Int32(port)) else {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_new_tcp", context: "\(host):\(port)")
        }
        ctx = made
        listenSocket = modbus_tcp_listen(ctx, 16)
        if listenSocket == -1 {
            // deinit frees the context: every stored property is set by now.
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_tcp_listen", context: "\(host):\(port)")
        }
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listenSocket, $0, &len) }
        }
        boundPort = Int(UInt16(bigEndian: addr.sin_port))
    }

    /// An RTU server answering as `slave` on a serial device (`modbus_new_rtu` + `modbus_connect`).
    public init(rtuDevice device: String, baud: Int, parity: SerialParity, dataBits: Int, stopBits: Int, slave: Int) throws(ModbusError) {
        isTCP = false
        guard let made = modbus_new_rtu(device, Int32(baud), parity.cChar, Int32(dataBits), Int32(stopBits)) else {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_new_rtu", context: device)
        }
        ctx = made
        modbus_set_slave(ctx, Int32(slave))
        if modbus_connect(ctx) == -1 {
            // deinit frees the context: every stored property is set by now.
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_connect", context: device)
        }
        isConnected = true
    }

    deinit {
        for fd in clients { Glibc.close(fd) }
        if listenSocket >= 0 { Glibc.close(listenSocket) }
        if !isTCP, isConnected { modbus_close(ctx) }
        for (_, m) in mappings { modbus_mapping_free(m) }
        modbus_free(ctx)
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
    /// update registers. Errors from one client close that client only.
    public func serve(for timeout: Duration) {
        let ms = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        if isTCP { serveTCP(timeoutMs: ms) } else { serveRTU(timeoutMs: ms) }
    }

    private func serveTCP(timeoutMs: Int32) {
        var fds = [pollfd(fd: listenSocket, events: Int16(POLLIN), revents: 0)]
        fds += clients.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let n = poll(&fds, nfds_t(fds.count), timeoutMs)
        guard n > 0 else { return }
        if fds[0].revents & Int16(POLLIN) != 0 {
            var s = listenSocket
            let client = modbus_tcp_accept(ctx, &s)
            if client >= 0 { clients.append(client) }
        }
        var closed: Set<Int32> = []
        for pfd in fds.dropFirst() where pfd.revents != 0 {
            modbus_set_socket(ctx, pfd.fd)
            if !handleOne() { closed.insert(pfd.fd) }
        }
        for fd in closed { Glibc.close(fd) }
        clients.removeAll { closed.contains($0) }
    }

    private func serveRTU(timeoutMs: Int32) {
        let fd = modbus_get_socket(ctx)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return }
        // A serial line has no connection to lose: after garbage or a bad frame, drop what is buffered.
        // Never after a good request: the client's next request may already be arriving.
        if !handleOne() { modbus_flush(ctx) }
    }

    /// Receives and answers one request; false when the client is gone or sent garbage.
    private func handleOne() -> Bool {
        var query = [UInt8](repeating: 0, count: Int(quantrac_modbus_tcp_max_adu_length()))
        let rc = query.withUnsafeMutableBufferPointer { modbus_receive(ctx, $0.baseAddress) }
        if rc == 0 { return true }  // request for another RTU slave: ignored
        if rc < 0 { return false }
        let header = Int(modbus_get_header_length(ctx))
        let unit = header > 0 ? query[header - 1] : 0
        if let mapping = mappings[unit] {
            return query.withUnsafeBufferPointer { modbus_reply(ctx, $0.baseAddress, rc, mapping) } >= 0
        }
        if isTCP, let exception = unknownUnitException {
            return query.withUnsafeBufferPointer { modbus_reply_exception(ctx, $0.baseAddress, UInt32(exception.rawValue)) } >= 0
        }
        return true
    }
}
