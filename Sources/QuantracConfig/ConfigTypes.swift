import Foundation
import QuantracCore

/// A validated station configuration. Every value here has passed its checks; strings are enums.
public struct StationConfig: Sendable {
    public var station: Station
    public var buses: [BusConfig]
    /// In file line order.
    public var channels: [ChannelConfig]
    public var targets: [TargetConfig]
    public var retention: Retention = Retention()
    /// The local status page and `/metrics` (`[status_page]`).
    public var statusPage = StatusPageConfig()

    public func bus(named name: String) -> BusConfig? { buses.first { $0.name == name } }
}

/// How long data is kept (circular: at least 60 days on the logger) and how much disk it may use.
public struct Retention: Sendable, Hashable {
    /// Raw polled readings.
    public var readingsDays = 35
    /// 5-minute records (and, later, averages).
    public var recordsDays = 400
    /// Delivered files in `sent/`. Files still pending for a target are never deleted.
    public var filesDays = 400
    /// Space `data_dir` may use, in bytes; nil: the file system's size. Alarms at 80 % and 95 %.
    public var diskBudgetBytes: Int64?

    public init() {}
}

public enum StationKind: String, Sendable, CaseIterable {
    case ambientAir = "ambient-air"
    case surfaceWater = "surface-water"
    case wastewater = "wastewater"
    case stackGas = "stack-gas"
}

/// What a record's value is when no valid sample exists in its interval (its status is then `02`).
public enum MissingValue: String, Sendable, CaseIterable {
    /// Write `0` (with the channel's decimals).
    case zero
    /// Write the last valid record value of the channel (0 when there never was one).
    case last
}

public enum LineEnding: String, Sendable, CaseIterable {
    case crlf, lf
    public var bytes: String { self == .crlf ? "\r\n" : "\n" }
}

public struct Station: Sendable {
    /// `<province>_<facility>_<station>`, e.g. `HN_ABCD_NUO001`.
    public var prefix: String
    public var kind: StationKind
    public var utcOffset: UTCOffset
    /// Directory of the database, outbox and sent files; relative paths are relative to the working directory.
    public var dataDir: String
    /// Length of one record interval in seconds (divides a day).
    public var recordIntervalSeconds: Int64
    public var pollInterval: Duration
    /// How long after an interval's end its record is built even if a bus has not reported past the end yet.
    public var recordDelay: Duration
    public var missingValue: MissingValue
    public var lineEnding: LineEnding
    /// Station defaults for averages' completeness (channels may override).
    public var hourMinFraction: Double = 0.75
    public var dayMinHours: Int = 18
    /// Temperature for ppb → µg/m³ conversions (°C).
    public var aqiReferenceCelsius: Double = 25
    /// Readings stay `01` this long after a calibration ends (analyzers need time to settle).
    public var calibrationRecovery: Duration = .seconds(300)
    /// How long polled readings may be held in memory before they are committed to the database together
    /// (`commit_window`): the readings at risk on power loss. Zero commits every tick.
    public var commitWindow: Duration = Station.defaultCommitWindow
    public static let defaultCommitWindow: Duration = .seconds(10)

    /// The station code: the last part of the prefix (`NUO001`).
    public var stationCode: String { String(prefix.split(separator: "_").last ?? Substring(prefix)) }

    public var grid: IntervalGrid { IntervalGrid(lengthSeconds: recordIntervalSeconds, offset: utcOffset) }
}

public enum Transport: Sendable, Hashable {
    case modbusTCP(host: String, port: Int)
    case modbusRTU(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int)
    /// An analyzer speaking a text protocol on a serial line (`ascii-serial`), read through libserialport.
    case asciiSerial(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int, protocol: TextProtocol)
    /// Modbus RTU frames (slave, function, CRC) carried as-is over a TCP connection
    /// (`modbus-rtu-over-tcp`): serial device servers in "raw TCP" mode and cellular DTUs.
    case modbusRTUOverTCP(host: String, port: Int)

    public var name: String {
        switch self {
        case .modbusTCP: return "modbus-tcp"
        case .modbusRTU: return "modbus-rtu"
        case .asciiSerial: return "ascii-serial"
        case .modbusRTUOverTCP: return "modbus-rtu-over-tcp"
        }
    }
}

/// The text protocol of an `ascii-serial` bus.
public enum TextProtocol: String, Sendable, CaseIterable {
    /// Generic request/response: each channel sends a fixed request and picks its value out of the
    /// answer line with a regular expression.
    case line
    /// The German analyzer protocol (Bayern-Hessen, "Gesytec"): `DA` data request, `MD` answer.
    case bayernHessen = "bayern-hessen"
}

/// Block check of a `line` protocol answer: two hex digits at the end of the answer line (just before
/// the terminator), computed over every byte of the line before them.
public enum LineChecksum: String, Sendable, CaseIterable {
    case none
    /// XOR of the covered bytes.
    case xor8
    /// Sum of the covered bytes modulo 256.
    case sum8
}

/// How a channel of an `ascii-serial` bus is read.
public enum TextChannel: Sendable, Hashable {
    case line(LineChannel)
    case bayernHessen(BayernHessenChannel)
}

/// A channel of a `line` protocol bus: a fixed request, and where its value is in the answer.
public struct LineChannel: Sendable, Hashable {
    /// Bytes sent (escapes already decoded). Channels with the same request on one bus share one exchange per poll.
    public var request: [UInt8]
    /// Regular expression searched in the answer line (terminator and checksum removed), with a named
    /// group `value` and optionally a named group `status`. Validated at load.
    public var response: String
    /// End of the answer line (default CR LF).
    public var terminator: [UInt8]
    public var checksum: LineChecksum
    /// Text of the `status` group → instrument status. Empty when the pattern has no `status` group.
    public var statusMap: [String: InstrumentStatus]

    public init(request: [UInt8], response: String, terminator: [UInt8], checksum: LineChecksum, statusMap: [String: InstrumentStatus]) {
        self.request = request
        self.response = response
        self.terminator = terminator
        self.checksum = checksum
        self.statusMap = statusMap
    }
}

/// A channel of a Bayern-Hessen bus: one component of one analyzer's `MD` answer.
public struct BayernHessenChannel: Sendable, Hashable {
    /// The analyzer's address (0…999), sent as three digits in `DA<address>`.
    public var address: Int
    /// Position of the component in the `MD` answer, from 1.
    public var component: Int
    /// Status-byte bits meaning calibration or maintenance (→ `01`).
    public var calibrationMask: UInt8
    /// Status-byte bits meaning fault (→ `02`).
    public var faultMask: UInt8
    /// Error-byte bits meaning fault (→ `02`).
    public var errorMask: UInt8

    /// Defaults follow the Ecotech Serinus status bit map: bit 1 out of service, bit 2 zero mode, bit 3 span mode.
    public static let defaultCalibrationMask: UInt8 = 0x0E
    /// Bit 0: instrument off.
    public static let defaultFaultMask: UInt8 = 0x01
    /// Any error bit.
    public static let defaultErrorMask: UInt8 = 0xFF

    public init(address: Int, component: Int, calibrationMask: UInt8 = Self.defaultCalibrationMask,
                faultMask: UInt8 = Self.defaultFaultMask, errorMask: UInt8 = Self.defaultErrorMask) {
        self.address = address
        self.component = component
        self.calibrationMask = calibrationMask
        self.faultMask = faultMask
        self.errorMask = errorMask
    }
}

public enum Parity: String, Sendable, CaseIterable { case none, even, odd }

public struct BusConfig: Sendable {
    public var name: String
    public var transport: Transport
    /// Response timeout of one request.
    public var timeout: Duration
    /// Longest wait between reconnection attempts (backoff doubles from the poll interval up to this).
    public var reconnectMax: Duration
    /// Largest read request (registers); 125 is the protocol maximum.
    public var maxRegistersPerRead: Int
    /// Device quirks: wait after (re)connecting, wait between requests, one request per channel.
    public var pauseAfterConnect: Duration = .zero
    public var pauseBetweenRequests: Duration = .zero
    public var oneRequestPerField = false
    /// Consecutive failed polls after which a device is offline (then retried with backoff up to `reconnect_max`).
    public var offlineAfter = 3
}

public enum RegisterKind: String, Sendable, CaseIterable { case holding, input }

public enum ValueType: String, Sendable, CaseIterable {
    case int16, uint16, int32, uint32, float32, float64

    /// Number of 16-bit registers the type spans.
    public var registerCount: Int {
        switch self {
        case .int16, .uint16: return 1
        case .int32, .uint32, .float32: return 2
        case .float64: return 4
        }
    }
}

/// Byte order of a multi-register value, named by the positions of the big-endian bytes A B C D.
/// ABCD big-endian; CDAB word-swapped; BADC byte-swapped within words; DCBA little-endian.
/// For 64-bit values the same rule applies per word (CDAB → words reversed: GH EF CD AB).
public enum ByteOrder: String, Sendable, CaseIterable {
    case abcd = "ABCD", cdab = "CDAB", badc = "BADC", dcba = "DCBA"

    /// Whether registers appear in reverse order (low word first).
    public var wordsReversed: Bool { self == .cdab || self == .dcba }
    /// Whether the two bytes inside each register are swapped.
    public var bytesSwapped: Bool { self == .badc || self == .dcba }
}

public struct ChannelConfig: Sendable {
    /// Parameter symbol written in the file (`COD`, `PM2,5`).
    public var code: String
    public var unit: String
    public var bus: String
    public var slave: Int
    public var register: RegisterKind
    /// Zero-based protocol address.
    public var address: Int
    public var type: ValueType
    public var byteOrder: ByteOrder
    public var scale: Double
    public var offset: Double
    public var decimals: Int
    /// How hourly and daily averages are formed, their completeness thresholds and limits.
    public var averaging = AveragePolicy()
    /// Plausibility checks that exclude records from averages (never from the 5-minute files).
    public var validity = ValidityPolicy()
    /// For `average = "vector"`: the code of the paired wind-speed channel.
    public var speedChannel: String?
    /// The VN_AQI pollutant this channel measures (ambient air), and the factor to µg/m³.
    public var aqiPollutant: AQIPollutant?
    public var aqiFactor: Double = 1
    /// Also compute 8-hour rolling means (O3, CO).
    public var rolling8h = false
    /// The analyzer's status register, mapped to calibrating/fault (nil: the channel is measuring when it answers).
    public var statusRegister: StatusRegister?
    /// How the channel is read on an `ascii-serial` bus (nil on Modbus buses). Such a channel has no
    /// registers: `register`, `address`, `type` and `byte_order` keep neutral values, and `slave` is the
    /// Bayern-Hessen address (1 for the line protocol).
    public var text: TextChannel?
}

/// An analyzer status word read with the channel, mapped to the instrument status.
/// Fault wins over calibrating; anything else is measuring.
public struct StatusRegister: Sendable, Hashable {
    public enum Match: Sendable, Hashable {
        /// The word equals one of these values.
        case values(Set<UInt16>)
        /// Any of these bits is set.
        case mask(UInt16)

        public func matches(_ word: UInt16) -> Bool {
            switch self {
            case .values(let v): return v.contains(word)
            case .mask(let m): return word & m != 0
            }
        }
    }

    public var register: RegisterKind
    public var address: Int
    public var calibrating: [Match]
    public var fault: [Match]

    public init(register: RegisterKind, address: Int, calibrating: [Match], fault: [Match]) {
        self.register = register
        self.address = address
        self.calibrating = calibrating
        self.fault = fault
    }

    public func status(of word: UInt16) -> InstrumentStatus {
        if fault.contains(where: { $0.matches(word) }) { return .fault }
        if calibrating.contains(where: { $0.matches(word) }) { return .calibrating }
        return .measuring
    }
}

public enum PublishMode: String, Sendable, CaseIterable {
    /// Upload as `<name>.part`, then rename on the server: the receiver never sees half a file.
    case rename
    /// Upload the final name directly (for accounts that may not rename).
    case direct
}

/// How files reach a target: `ftp://` plain FTP, `ftps://` FTP over TLS (explicit by default),
/// `sftp://` SSH file transfer, `file://` a local or mounted folder.
public enum TargetScheme: String, Sendable, CaseIterable { case ftp, ftps, sftp, file }

public struct TargetConfig: Sendable {
    /// How an `ftps://` target starts TLS.
    public enum FTPSMode: String, Sendable, CaseIterable {
        /// Connect in plain text, then `AUTH TLS` before logging in (RFC 4217; port 21 by default).
        case explicit
        /// TLS from the first byte (the old "port 990" style).
        case implicit
    }

    /// The SSH host key algorithm an `sftp://` target must present; its SHA-256 fingerprint is `host_key_sha256`.
    /// Named as in `ssh-keyscan` output and `known_hosts` files.
    public enum HostKeyType: String, Sendable, CaseIterable {
        case ed25519 = "ssh-ed25519"
        case ecdsaP256 = "ecdsa-sha2-nistp256"
        case ecdsaP384 = "ecdsa-sha2-nistp384"
        case ecdsaP521 = "ecdsa-sha2-nistp521"

        /// The `-t` argument of `ssh-keyscan` that fetches a key of this type.
        public var keyscanType: String { self == .ed25519 ? "ed25519" : "ecdsa" }
    }

    /// Where a secret (a password, an SSH private key) comes from. Only the location is part of the
    /// configuration; the secret itself is read once when the daemon starts.
    public enum SecretSource: Sendable, Hashable {
        /// A file (mode 0600 or stricter towards other users; relative paths: working directory).
        case file(String)
        /// A systemd credential: the file `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=NAME:…` in the unit).
        case credential(String)
    }

    /// What the target receives: `5m` (the regulator's 5-minute files), `1h` and `24h` average files.
    public var products: [String] = ["5m"]
    public var name: String
    public var scheme: TargetScheme
    /// `host` or `host:port` (IPv6: `[addr]:port`) for FTP, FTPS and SFTP; empty for file://.
    public var authority: String
    /// Remote directory template with `{prefix}`, `{station}`, `{yyyy}`, `{MM}`, `{dd}`.
    /// SFTP: an absolute path on the server (`/~/…` is relative to the account's home).
    public var pathTemplate: String
    public var user: String?
    /// Where the FTP/FTPS/SFTP password comes from (`password_file` or `password_credential`).
    public var password: SecretSource?
    /// Where the SFTP private key comes from (`key_file` or `key_credential`).
    public var privateKey: SecretSource?
    /// FTPS: PEM file of the certificate authorities that may sign the server certificate; nil: the system's.
    public var caFile: String?
    /// FTPS: `sha256//BASE64` pins of the server's public key (several joined by `;`), checked in addition to the certificate.
    public var pinnedPublicKey: String?
    /// FTPS: explicit (`AUTH TLS`) or implicit TLS.
    public var tls: FTPSMode
    /// SFTP: base64 SHA-256 fingerprint of the server's host key, without `SHA256:` and without `=` padding.
    public var hostKeySHA256: String?
    /// SFTP: the host key algorithm `hostKeySHA256` belongs to.
    public var hostKeyType: HostKeyType
    public var publish: PublishMode
    public var connectTimeout: Duration
    /// Longest wait between retries after failures (backoff doubles from 1 s up to this).
    public var retryMax: Duration

    /// The password file, if the password comes from one.
    public var passwordFile: String? {
        if case .file(let path)? = password { return path }
        return nil
    }

    /// The host of `authority` (IPv6 without brackets); empty for file://.
    public var host: String { Self.split(authority: authority).host }

    /// The port written in the URL, or nil for the scheme's default.
    public var port: Int? { Self.split(authority: authority).port }

    /// The port actually used: the URL's, else 21 (FTP, explicit FTPS), 990 (implicit FTPS) or 22 (SFTP).
    public var effectivePort: Int {
        if let port { return port }
        switch scheme {
        case .file: return 0
        case .ftp: return 21
        case .ftps: return tls == .implicit ? 990 : 21
        case .sftp: return 22
        }
    }

    /// Splits `host[:port]` or `[v6]:port`; `port` is nil when absent or not a number.
    static func split(authority: String) -> (host: String, port: Int?, portText: String?) {
        var host = authority, portText: String?
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let rest = authority[authority.index(after: close)...]
            if rest.hasPrefix(":") { portText = String(rest.dropFirst()) }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = String(authority[authority.index(after: colon)...])
        }
        return (host, portText.flatMap { Int($0) }, portText)
    }

    /// The directory for a file of the interval ending at `intervalEnd`, tokens expanded.
    public func directory(prefix: String, stationCode: String, time: CivilTime) -> String {
        func pad(_ v: Int, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return pathTemplate
            .replacingOccurrences(of: "{prefix}", with: prefix)
            .replacingOccurrences(of: "{station}", with: stationCode)
            .replacingOccurrences(of: "{yyyy}", with: pad(time.year, 4))
            .replacingOccurrences(of: "{MM}", with: pad(time.month, 2))
            .replacingOccurrences(of: "{dd}", with: pad(time.day, 2))
    }
}
