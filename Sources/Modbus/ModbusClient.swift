import CModbus
#if canImport(Glibc)
import Glibc
#endif

/// Serial line parity for Modbus RTU.
public enum SerialParity: Sendable, Hashable {
    case none, even, odd

    var cChar: CChar {
        switch self {
        case .none: return CChar(UInt8(ascii: "N"))
        case .even: return CChar(UInt8(ascii: "E"))
        case .odd: return CChar(UInt8(ascii: "O"))
        }
    }
}

/// Where a Modbus master connects to.
public enum ModbusEndpoint: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case rtu(device: String, baud: Int, parity: SerialParity, dataBits: Int, stopBits: Int)

    public var description: String {
        switch self {
        case .tcp(let host, let port): return "tcp://\(host):\(port)"
        case .rtu(let device, let baud, let parity, let dataBits, let stopBits):
            return "\(device) \(baud) \(dataBits)\(String(UnicodeScalar(UInt8(bitPattern: parity.cChar))))\(stopBits)"
        }
    }
}

/// A libmodbus master context (`modbus_t`), TCP or RTU.
///
/// Every call blocks the calling thread (up to the response timeout); use it only from the thread of
/// the bus lane that owns it. Not `Sendable` on purpose: the handle must never cross threads.
public final class ModbusClient {
    private let ctx: OpaquePointer
    public let endpoint: ModbusEndpoint
    public private(set) var isConnected = false

    /// Creates the context (`modbus_new_tcp` / `modbus_new_rtu`); does not connect.
    public init(endpoint: ModbusEndpoint) throws(ModbusError) {
        self.endpoint = endpoint
        let made: OpaquePointer?
        switch endpoint {
        case .tcp(let host, let port):
            made = modbus_new_tcp(host, Int32(port))
        case .rtu(let device, let baud, let parity, let dataBits, let stopBits):
            made = modbus_new_rtu(device, Int32(baud), parity.cChar, Int32(dataBits), Int32(stopBits))
        }
        guard let made else {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_new", context: endpoint.description)
        }
        ctx = made
        // Quantrac owns reconnection; libmodbus must never sleep inside a call to recover a link.
        modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE)
    }

    deinit {
        if isConnected { modbus_close(ctx) }
        modbus_free(ctx)
    }

    /// Opens the socket or serial device (`modbus_connect`).
    public func connect() throws(ModbusError) {
        if isConnected { return }
        if modbus_connect(ctx) == -1 {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_connect", context: endpoint.description)
        }
        isConnected = true
    }

    /// Closes the link (`modbus_close`); the next request needs `connect()` again.
    public func close() {
        if isConnected { modbus_close(ctx) }
        isConnected = false
    }

    /// Response timeout for one request (`modbus_set_response_timeout`).
    public func setResponseTimeout(_ timeout: Duration) {
        let (sec, usec) = Self.split(timeout)
        modbus_set_response_timeout(ctx, sec, usec)
    }

    /// Maximum gap between two bytes of one response (`modbus_set_byte_timeout`).
    public func setByteTimeout(_ timeout: Duration) {
        let (sec, usec) = Self.split(timeout)
        modbus_set_byte_timeout(ctx, sec, usec)
    }

    /// Reads `count` (1…125) holding registers (function 3) from `slave` at zero-based `address`.
    public func readHoldingRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try read(slave: slave, address: address, count: count, function: "modbus_read_registers", call: modbus_read_registers)
    }

    /// Reads `count` (1…125) input registers (function 4) from `slave` at zero-based `address`.
    public func readInputRegisters(slave: Int, address: Int, count: Int) throws(ModbusError) -> [UInt16] {
        try read(slave: slave, address: address, count: count, function: "modbus_read_input_registers", call: modbus_read_input_registers)
    }

    private func read(slave: Int, address: Int, count: Int, function: String,
                      call: (OpaquePointer?, Int32, Int32, UnsafeMutablePointer<UInt16>?) -> Int32) throws(ModbusError) -> [UInt16] {
        let context = "slave \(slave), address \(address), count \(count)"
        guard (1...125).contains(count), (0...0xFFFF).contains(address), address + count <= 0x10000, (0...247).contains(slave) else {
            throw ModbusError(code: .invalidArgument, function: function, context: context,
                              message: "count must be 1…125, address 0…65535, slave 0…247")
        }
        try connect()
        if modbus_set_slave(ctx, Int32(slave)) == -1 {
            throw ModbusError.fromErrno(quantrac_modbus_errno(), function: "modbus_set_slave", context: context)
        }
        var registers = [UInt16](repeating: 0, count: count)
        let rc = registers.withUnsafeMutableBufferPointer { call(ctx, Int32(address), Int32(count), $0.baseAddress) }
        if rc == -1 {
            let error = ModbusError.fromErrno(quantrac_modbus_errno(), function: function, context: context)
            if error.code.needsReconnect { close() }
            if error.code == .invalidResponse || error.code == .crc || error.code == .timeout {
                // Drop whatever late or partial bytes are still in flight so the next request starts clean.
                modbus_flush(ctx)
            }
            throw error
        }
        guard rc == count else {
            throw ModbusError(code: .invalidResponse, function: function, context: context, message: "got \(rc) registers")
        }
        return registers
    }

    static func split(_ d: Duration) -> (UInt32, UInt32) {
        let (seconds, attos) = d.components
        let usec = attos / 1_000_000_000_000
        return (UInt32(clamping: seconds), UInt32(clamping: usec))
    }
}
