import Foundation
import QuantracConfig
import QuantracCore

/// The regulator's data file for one interval (circular §3.1–3.4): its name and exact bytes.
public struct RegulatorFile: Sendable, Hashable {
    /// `<prefix>_<yyyyMMddHHmmss>.txt`.
    public let name: String
    public let intervalEnd: Int64
    public let bytes: [UInt8]
}

/// Renders regulator files: one line per channel in configuration order,
/// `code TAB value TAB unit TAB yyyyMMddHHmmss TAB status`, fixed decimals, UTF-8 without BOM,
/// CRLF (or LF when configured), local time at the station's UTC offset.
public struct RegulatorFileRenderer: Sendable {
    public let station: Station
    public let channels: [ChannelConfig]

    public init(station: Station, channels: [ChannelConfig]) {
        self.station = station
        self.channels = channels
    }

    /// The file name for the interval ending at `intervalEnd` (epoch seconds).
    public func fileName(intervalEnd: Int64) -> String {
        "\(station.prefix)_\(CivilTime(epochSeconds: intervalEnd, offset: station.utcOffset).compactStamp).txt"
    }

    /// Renders the file; `records` must hold one record per configured channel (matched by code).
    public func render(intervalEnd: Int64, records: [ChannelRecord]) -> RegulatorFile {
        let stamp = CivilTime(epochSeconds: intervalEnd, offset: station.utcOffset).compactStamp
        let byCode = Dictionary(records.map { ($0.channel, $0) }, uniquingKeysWith: { a, _ in a })
        var text = ""
        for ch in channels {
            let r = byCode[ch.code]
            let value = r?.value ?? 0
            let status = r?.status ?? .fault
            text += ch.code + "\t" + Self.format(value, decimals: ch.decimals) + "\t" + ch.unit + "\t" + stamp + "\t"
                + status.fileCode + station.lineEnding.bytes
        }
        return RegulatorFile(name: fileName(intervalEnd: intervalEnd), intervalEnd: intervalEnd, bytes: Array(text.utf8))
    }

    /// Fixed-point decimal with `.` as separator, no grouping, no exponent, never `-0.00`.
    public static func format(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return format(0, decimals: decimals) }
        var s = String(format: "%.\(decimals)f", value)
        if s.hasPrefix("-"), s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) { s.removeFirst() }
        return s
    }
}
