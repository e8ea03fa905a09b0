import CSerialPort
#if canImport(Glibc)
import Glibc
#endif

/// Line settings of a serial port (no flow control: RS-485 and 3-wire RS-232 analyzers have none).
public struct SerialSettings: Sendable, Hashable, CustomStringConvertible {
    public enum Parity: Sendable, Hashable {
        case none, even, odd
    }

    /// Speed in bit/s.
    public var baud: Int
    public var parity: Parity
    /// 5…8.
    public var dataBits: Int
    /// 1 or 2.
    public var stopBits: Int

    public init(baud: Int, parity: Parity = .none, dataBits: Int = 8, stopBits: Int = 1) {
        self.baud = baud
        self.parity = parity
        self.dataBits = dataBits
        self.stopBits = stopBits
    }

    /// `9600 8N1`.
    public var description: String {
        let p = parity == .none ? "N" : parity == .even ? "E" : "O"
        return "\(baud) \(dataBits)\(p)\(stopBits)"
    }
}

/// An open serial port (libserialport `struct sp_port`).
///
/// Every call blocks the calling thread (up to its timeout); use it only from the thread of the bus lane
/// that owns it. Not `Sendable` on purpose: the handle must never cross threads. The port is opened
/// read/write with an exclusive advisory lock (`flock`), so a second Quantrac process (the CLI while the
/// daemon runs) gets `.busy` instead of stealing answers; it is closed and freed in `deinit`.
public final class SerialPort {
    private let port: OpaquePointer
    private var isOpen = false
    /// The device path, as given.
    public let path: String
    public let settings: SerialSettings

    /// Opens `path` (`sp_get_port_by_name`, `sp_open`) and applies `settings` with flow control off
    /// (`sp_set_config`).
    public init(path: String, settings: SerialSettings) throws(SerialPortError) {
        self.path = path
        self.settings = settings
        var made: OpaquePointer?
        let found = sp_get_port_by_name(path, &made)
        guard found == SP_OK, let made else {
            throw SerialPortError.from(found, function: "sp_get_port_by_name", context: path, opening: true)
        }
        port = made
        // From here on a throw still runs deinit (self is fully initialized), which closes and frees.
        let opened = sp_open(port, SP_MODE_READ_WRITE)
        guard opened == SP_OK else {
            throw SerialPortError.from(opened, function: "sp_open", context: path, opening: true)
        }
        isOpen = true
        try lockExclusively()
        try configure(settings)
    }

    /// Closes the port (`sp_close`) and frees it (`sp_free_port`); also after a failed `init`.
    deinit {
        if isOpen { sp_close(port) }
        sp_free_port(port)
    }

    /// Writes all of `bytes` (`sp_blocking_write`), waiting at most `timeout` for the OS to accept them.
    public func write(_ bytes: [UInt8], timeout: Duration) throws(SerialPortError) {
        guard !bytes.isEmpty else { return }
        let result = bytes.withUnsafeBytes { sp_blocking_write(port, $0.baseAddress, $0.count, Self.milliseconds(timeout)) }
        if result.rawValue < 0 {
            throw SerialPortError.from(result, function: "sp_blocking_write", context: path)
        }
        if Int(result.rawValue) < bytes.count {
            throw SerialPortError(code: .timeout, function: "sp_blocking_write", context: path,
                                  message: "wrote \(result.rawValue) of \(bytes.count) bytes within \(timeout)")
        }
    }

    /// Returns as soon as some bytes are available, at most `maxCount` (`sp_blocking_read_next`); an
    /// empty array means `timeout` passed with nothing received.
    public func readAvailable(maxCount: Int = 256, timeout: Duration) throws(SerialPortError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max(1, maxCount))
        let result = buffer.withUnsafeMutableBytes { sp_blocking_read_next(port, $0.baseAddress, $0.count, Self.milliseconds(timeout)) }
        if result.rawValue < 0 {
            throw SerialPortError.from(result, function: "sp_blocking_read_next", context: path)
        }
        return Array(buffer.prefix(Int(result.rawValue)))
    }

    /// Reads exactly `count` bytes unless `timeout` passes first (`sp_blocking_read`); returns what arrived.
    public func read(count: Int, timeout: Duration) throws(SerialPortError) -> [UInt8] {
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        let result = buffer.withUnsafeMutableBytes { sp_blocking_read(port, $0.baseAddress, $0.count, Self.milliseconds(timeout)) }
        if result.rawValue < 0 {
            throw SerialPortError.from(result, function: "sp_blocking_read", context: path)
        }
        return Array(buffer.prefix(Int(result.rawValue)))
    }

    /// Discards whatever was received and not read yet (`sp_flush(SP_BUF_INPUT)`): late answers, noise.
    public func flushInput() throws(SerialPortError) {
        let result = sp_flush(port, SP_BUF_INPUT)
        if result != SP_OK { throw SerialPortError.from(result, function: "sp_flush", context: path) }
    }

    /// Waits until everything written has left the port (`sp_drain`).
    public func drain() throws(SerialPortError) {
        let result = sp_drain(port)
        if result != SP_OK { throw SerialPortError.from(result, function: "sp_drain", context: path) }
    }

    // MARK: - Private

    private func configure(_ s: SerialSettings) throws(SerialPortError) {
        var config: OpaquePointer?
        let made = sp_new_config(&config)
        guard made == SP_OK, let config else { throw SerialPortError.from(made, function: "sp_new_config", context: path) }
        defer { sp_free_config(config) }
        let parity: sp_parity = s.parity == .none ? SP_PARITY_NONE : s.parity == .even ? SP_PARITY_EVEN : SP_PARITY_ODD
        let context = "\(path) \(s)"
        // sp_new_config leaves every field "unchanged"; set the ones we own, then apply them in one call.
        for (function, result) in [
            ("sp_set_config_baudrate", sp_set_config_baudrate(config, Int32(s.baud))),
            ("sp_set_config_bits", sp_set_config_bits(config, Int32(s.dataBits))),
            ("sp_set_config_parity", sp_set_config_parity(config, parity)),
            ("sp_set_config_stopbits", sp_set_config_stopbits(config, Int32(s.stopBits))),
            ("sp_set_config_flowcontrol", sp_set_config_flowcontrol(config, SP_FLOWCONTROL_NONE)),
        ] where result != SP_OK {
            throw SerialPortError.from(result, function: function, context: context)
        }
        let applied = sp_set_config(port, config)
        if applied != SP_OK { throw SerialPortError.from(applied, function: "sp_set_config", context: context) }
    }

    /// `flock(LOCK_EX | LOCK_NB)` on the port's descriptor (`sp_get_port_handle`).
    private func lockExclusively() throws(SerialPortError) {
        var fd: Int32 = -1
        let result = sp_get_port_handle(port, &fd)
        guard result == SP_OK, fd >= 0 else { throw SerialPortError.from(result, function: "sp_get_port_handle", context: path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let err = errno
            if err == EWOULDBLOCK {
                throw SerialPortError(code: .busy, function: "flock", context: path,
                                      message: "another process has the port open (stop quantracd, or ask it)")
            }
            throw SerialPortError(code: .system(err), function: "flock", context: path, message: String(cString: strerror(err)))
        }
    }

    /// Timeouts in whole milliseconds; at least 1 ms, because 0 means "wait forever" to libserialport.
    static func milliseconds(_ d: Duration) -> UInt32 {
        let (seconds, attos) = d.components
        let ms = seconds * 1000 + attos / 1_000_000_000_000_000
        return UInt32(clamping: max(1, ms))
    }
}
