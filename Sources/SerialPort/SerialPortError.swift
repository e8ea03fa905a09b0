import CSerialPort
#if canImport(Glibc)
import Glibc
#endif

/// A failed libserialport call, with the function and the device it was about.
///
/// Equal by `code`; catch sites match codes, never message text.
public struct SerialPortError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Kind: Hashable, Sendable {
            case notFound, busy, permission, gone, invalidArgument, unsupported, memory, timeout, system(Int32)
        }
        fileprivate let kind: Kind

        /// The device does not exist or is not a serial port libserialport can use (`SP_ERR_ARG` from
        /// `sp_get_port_by_name`, or `ENOENT`/`ENXIO`/`ENODEV` from `sp_open`).
        public static let notFound = Code(kind: .notFound)
        /// Another process holds the port (our exclusive `flock`, or `EBUSY`).
        public static let busy = Code(kind: .busy)
        /// No permission to open the device (`EACCES`/`EPERM`: add the user to the `dialout` group).
        public static let permission = Code(kind: .permission)
        /// The open port stopped working (`EIO`, `EBADF`, `ENXIO` …: a USB adapter unplugged). Re-open it.
        public static let gone = Code(kind: .gone)
        /// A setting the library or the device refuses (`SP_ERR_ARG`), e.g. an unsupported baud rate.
        public static let invalidArgument = Code(kind: .invalidArgument)
        /// `SP_ERR_SUPP`: not supported by this system or device.
        public static let unsupported = Code(kind: .unsupported)
        /// `SP_ERR_MEM`.
        public static let memory = Code(kind: .memory)
        /// A write did not complete within its timeout.
        public static let timeout = Code(kind: .timeout)
        /// Any other OS error (`SP_ERR_FAIL` with this errno).
        public static func system(_ errno: Int32) -> Code { Code(kind: .system(errno)) }

        /// True when the port should be closed and opened again before the next exchange.
        public var needsReopen: Bool {
            switch kind {
            case .gone: return true
            case .system: return true
            default: return false
            }
        }

        public var description: String {
            switch kind {
            case .notFound: return "no such serial device"
            case .busy: return "device busy"
            case .permission: return "permission denied"
            case .gone: return "device gone"
            case .invalidArgument: return "invalid argument"
            case .unsupported: return "not supported"
            case .memory: return "out of memory"
            case .timeout: return "write timeout"
            case .system(let e): return "errno \(e)"
            }
        }
    }

    public let code: Code
    /// The libserialport function that failed, e.g. `sp_open`.
    public let function: String
    /// The device path (and what was being done).
    public let context: String
    /// The OS or library text (`sp_last_error_message`).
    public let message: String

    public init(code: Code, function: String, context: String, message: String) {
        self.code = code
        self.function = function
        self.context = context
        self.message = message
    }

    public static func == (a: SerialPortError, b: SerialPortError) -> Bool { a.code == b.code }

    public var description: String { "\(function) (\(context)): \(code) — \(message)" }

    /// Builds the error for a negative `sp_return`; for `SP_ERR_FAIL` reads `sp_last_error_code()` and
    /// `sp_last_error_message()`, which must be called right after the failed call.
    static func from(_ result: sp_return, function: String, context: String, opening: Bool = false) -> SerialPortError {
        switch result {
        case SP_ERR_FAIL:
            let err = sp_last_error_code()
            var message = "errno \(err)"
            if let text = sp_last_error_message() {
                message = String(cString: text).trimmingTrailingWhitespace
                sp_free_error_message(text)
            }
            return SerialPortError(code: code(errno: err, opening: opening), function: function, context: context, message: message)
        case SP_ERR_ARG:
            return SerialPortError(code: opening ? .notFound : .invalidArgument, function: function, context: context,
                                   message: opening ? "not a serial device libserialport can open" : "invalid argument")
        case SP_ERR_SUPP:
            return SerialPortError(code: .unsupported, function: function, context: context, message: "not supported by this system or device")
        case SP_ERR_MEM:
            return SerialPortError(code: .memory, function: function, context: context, message: "memory allocation failed")
        default:
            return SerialPortError(code: .system(result.rawValue), function: function, context: context, message: "unexpected result \(result.rawValue)")
        }
    }

    static func code(errno err: Int32, opening: Bool) -> Code {
        switch err {
        case ENOENT, ENODEV: return .notFound
        case ENXIO: return opening ? .notFound : .gone
        case EACCES, EPERM: return .permission
        case EBUSY, EWOULDBLOCK: return .busy
        case EIO, EBADF, EPIPE, ENOTTY: return .gone
        default: return .system(err)
        }
    }
}

extension String {
    var trimmingTrailingWhitespace: String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
