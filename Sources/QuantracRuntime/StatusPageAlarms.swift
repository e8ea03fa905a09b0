import Foundation
import QuantracConfig
import QuantracCore
import Reporting

/// One line of the page's alarm strip.
struct StatusAlarm: Hashable {
    enum Severity: Int, Comparable {
        case critical = 0, warning, info
        static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }
        var cssClass: String { ["crit", "warn", "info"][rawValue] }
    }

    let severity: Severity
    let text: String

    /// What needs attention, most severe first: storage and file building, disk, devices, channels in
    /// fault or silent, targets parked or failing, averages beyond their limits, the clock, calibrations.
    static func list(_ d: StatusPageData, config: StationConfig) -> [StatusAlarm] {
        let s = d.snapshot
        let now = d.now.milliseconds
        let offset = config.station.utcOffset
        var out: [StatusAlarm] = []
        func add(_ severity: Severity, _ text: String) { out.append(StatusAlarm(severity: severity, text: text)) }
        func local(_ ms: Int64) -> String { CivilTime(epochSeconds: ms / 1000, offset: offset).readable }

        if let e = s.storageError {
            add(.critical, "Readings cannot be stored since \(s.storageErrorSinceMs.map(local) ?? "?"): \(e); \(s.readingsHeldInMemory) readings held in memory")
        }
        if let e = s.fileError { add(.critical, "Files cannot be built: \(e)") }
        if let used = s.diskUsedBytes, let capacity = s.diskCapacityBytes, s.diskAlarm != nil {
            let percent = Int(Double(used) * 100 / Double(max(1, capacity)))
            add(percent >= 95 ? .critical : .warning, "Disk: \(used / 1_048_576) MiB of \(capacity / 1_048_576) MiB used (\(percent) %)")
        }
        for b in s.buses {
            for (device, state) in b.devices.byDevice() where state == "offline" || state == "suspect" {
                add(state == "offline" ? .critical : .warning, "Bus \(b.name), device \(device): \(state)")
            }
        }
        let stale = max(3 * config.station.pollInterval.wholeMilliseconds, 30_000)
        for c in s.channels {
            if c.statusCode == "02" {
                add(.warning, "\(c.code): 02 fault" + (c.reason.map { " (\($0))" } ?? ""))
            } else if let t = c.timeMs, now - t > stale {
                add(.warning, "\(c.code): no new value for \(StatusPageHTML.age(now - t))")
            } else if c.timeMs == nil, now - s.startedMs > stale {
                add(.warning, "\(c.code): no value since the daemon started")
            }
        }
        for t in s.targets {
            let waiting = "\(t.pending) file\(t.pending == 1 ? "" : "s") waiting"
            if let parked = t.parked {
                add(.critical, "Target \(t.name) is parked: \(parked) (\(waiting); fix the login, then `quantrac outbox retry`)")
            } else if t.pending > 0, let e = t.lastError {
                add(.warning, "Uploads to \(t.name) failing: \(e) (\(waiting))")
            }
        }
        let decimals = Dictionary(config.channels.map { ($0.code, $0.decimals) }, uniquingKeysWith: { a, _ in a })
        let latestHour = Dictionary(d.hourly.map { ($0.channel, $0) }, uniquingKeysWith: { $0.average.interval.end > $1.average.interval.end ? $0 : $1 })
        let latestDay = Dictionary(d.daily.map { ($0.channel, $0) }, uniquingKeysWith: { $0.average.interval.end > $1.average.interval.end ? $0 : $1 })
        for ch in config.channels {
            for (label, avg) in [("1 h", latestHour[ch.code]), ("24 h", latestDay[ch.code])] {
                guard let avg, avg.average.exceeds, let v = avg.average.value else { continue }
                add(.warning, "\(ch.code) \(label) average \(RegulatorFileRenderer.format(v, decimals: decimals[ch.code] ?? 2)) \(ch.unit) "
                    + "beyond its limit (ending \(local(avg.average.interval.end * 1000)))")
            }
        }
        if let clock = s.clock, clock.synchronized == false { add(.warning, "System clock \(clock.detail)") }
        if s.clockSteps > 0, let last = s.lastClockStep { add(.info, "Clock stepped \(s.clockSteps) time(s) since start; last: \(last)") }
        for c in s.calibrations { add(.info, "Calibration: \(c)") }
        if let e = d.historyError { add(.warning, "History unavailable: \(e)") }
        return out.enumerated().sorted { ($0.element.severity, $0.offset) < ($1.element.severity, $1.offset) }.map(\.element)
    }
}
