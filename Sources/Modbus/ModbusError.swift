import CModbus

/// A failed libmodbus call, with the function, the slave and the registers it was about.
///
/// Equal by `code`; catch sites match codes, never message text.
public struct ModbusError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Kind: Hashable, Sendable {
            case timeout, exception(UInt8), connection, invalidResponse, crc, invalidArgument, other(Int32)
        }
        fileprivate let kind: Kind

        /// No answer within the response timeout (`ETIMEDOUT`).
        public static let timeout = Code(kind: .timeout)
        /// The device answered with a Modbus exception (function code + 0x80).
        public static func exception(_ e: ModbusException) -> Code { Code(kind: .exception(e.rawValue)) }
        /// The connection could not be opened, or it broke (reset, refused, EPIPE, EBADF …).
        public static let connection = Code(kind: .connection)
        /// A response that is not a valid answer to the request (wrong length, slave, function).
        public static let invalidResponse = Code(kind: .invalidResponse)
        /// RTU frame with a bad CRC.
        public static let crc = Code(kind: .crc)
        /// The call was refused before anything was sent (bad address/count, unsupported settings).
        public static let invalidArgument = Code(kind: .invalidArgument)
        public static func other(_ errno: Int32) -> Code { Code(kind: .other(errno)) }

        /// The Modbus exception, when the device answered with one.
        public var exception: ModbusException? {
            if case .exception(let raw) = kind { return ModbusException(rawValue: raw) }
            return nil
        }

        /// True when the link itself is in doubt and should be re-opened before the next request.
        public var needsReconnect: Bool {
            switch kind {
            case .connection: return true
            case .timeout, .invalidResponse, .crc: return false
            case .exception, .invalidArgument, .other: return false
            }
        }

        public var description: String {
            switch kind {
            case .timeout: return "timeout"
            case .exception(let raw): return ModbusException(rawValue: raw).map { "exception \($0)" } ?? "exception \(raw)"
            case .connection: return "connection"
            case .invalidResponse: return "invalid response"
            case .crc: return "bad CRC"
            case .invalidArgument: return "invalid argument"
            case .other(let e): return "errno \(e)"
            }
        }
    }

    public let code: Code
    /// The libmodbus function that failed, e.g. `modbus_read_registers`.
    public let function: String
    /// Human context: slave, address, count or device.
    public let context: String
    /// libmodbus' own text for the errno (`modbus_strerror`).
    public let message: String

    public init(code: Code, function: String, context: String, message: String) {
        self.code = code
        self.function = function
        self.context = context
        self.message = message
    }

    public static func == (a: ModbusError, b: ModbusError) -> Bool { a.code == b.code }

    public var description: String {
        "\(function) (\(context)): \(code) — \(message)"
    }

    /// Builds the error from `errno` as left by the libmodbus call that just failed.
    static func fromErrno(_ err: Int32, function: String, context: String) -> ModbusError {
        let message = String(cString: modbus_strerror(err))
        let base = Int32(quantrac_modbus_enobase())
        let code: Code
        if err > base, err <= base + 0xFF, let e = ModbusException(rawValue: UInt8(err - base)) {
            code = .exception(e)
        } else if err == ETIMEDOUT {
            code = .timeout
        } else if err == Int32(quantrac_modbus_ebadcrc()) {
            code = .crc
        } else if err == Int32(quantrac_modbus_ebaddata()) || err == Int32(quantrac_modbus_emdata())
                    || err == Int32(quantrac_modbus_ebadexc()) || err == Int32(quantrac_modbus_ebadslave()) {
            code = .invalidResponse
        } else if err == EINVAL {
            code = .invalidArgument
        } else if [ECONNRESET, ECONNREFUSED, EPIPE, EBADF, ENOTCONN, EHOSTUNREACH, ENETUNREACH, ENOENT, EIO, ENXIO, EACCES, ENODEV].contains(err) {
            code = .connection
        } else {
            code = .other(err)
        }
        return ModbusError(code: code, function: function, context: context, message: message)
    }
}

/// Modbus exception codes (the byte after function code + 0x80).
public enum ModbusException: UInt8, Sendable, CustomStringConvertible {
    case illegalFunction = 1
    case illegalDataAddress = 2
    case illegalDataValue = 3
    case serverDeviceFailure = 4
    case acknowledge = 5
    case serverDeviceBusy = 6
    case negativeAcknowledge = 7
    case memoryParityError = 8
    case gatewayPathUnavailable = 10
    case gatewayTargetFailedToRespond = 11

    public var description: String {
        switch self {
        case .illegalFunction: return "illegal function"
        case .illegalDataAddress: return "illegal data address"
        case .illegalDataValue: return "illegal data value"
        case .serverDeviceFailure: return "server device failure"
        case .acknowledge: return "acknowledge"
        case .serverDeviceBusy: return "server device busy"
        case .negativeAcknowledge: return "negative acknowledge"
        case .memoryParityError: return "memory parity error"
        case .gatewayPathUnavailable: return "gateway path unavailable"
        case .gatewayTargetFailedToRespond: return "gateway target failed to respond"
        }
    }
}
