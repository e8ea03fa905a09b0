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

    /// The station code: the last part of the prefix (`NUO001`).
    public var stationCode: String { String(prefix.split(separator: "_").last ?? Substring(prefix)) }

    public var grid: IntervalGrid { IntervalGrid(lengthSeconds: recordIntervalSeconds, offset: utcOffset) }
}

public enum Transport: Sendable, Hashable {
    case modbusTCP(host: String, port: Int)
    case modbusRTU(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int)

    public var name: String {
        switch self {
        case .modbusTCP: return "modbus-tcp"
        case .modbusRTU: return "modbus-rtu"
        }
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
}

public enum PublishMode: String, Sendable, CaseIterable {
    /// Upload as `<name>.part`, then rename on the server: the receiver never sees half a file.
    case rename
    /// Upload the final name directly (for accounts that may not rename).
    case direct
}

public enum TargetScheme: String, Sendable { case ftp, file }

public struct TargetConfig: Sendable {
    public var name: String
    public var scheme: TargetScheme
    /// `host` or `host:port` for FTP; empty for file://.
    public var authority: String
    /// Remote directory template with `{prefix}`, `{station}`, `{yyyy}`, `{MM}`, `{dd}`.
    public var pathTemplate: String
    public var user: String?
    public var passwordFile: String?
    public var publish: PublishMode
    public var connectTimeout: Duration
    /// Longest wait between retries after failures (backoff doubles from 1 s up to this).
    public var retryMax: Duration

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
