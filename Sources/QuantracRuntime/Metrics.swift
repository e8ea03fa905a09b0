import Foundation
import QuantracConfig
import QuantracCore

/// Renders the status board in the Prometheus text exposition format (version 0.0.4) for `/metrics`:
/// channel values and statuses, per-device polls and errors, per-bus poll latency, per-target backlog,
/// storage, disk use, clock synchronisation and steps. Pure: the board and the time go in, text comes out.
public struct MetricsRenderer: Sendable {
    let station: String
    let kind: String
    let wallClock: any WallClock

    public init(config: StationConfig, wallClock: any WallClock) {
        station = config.station.prefix
        kind = config.station.kind.rawValue
        self.wallClock = wallClock
    }

    public func render(_ s: StatusBoard.Snapshot) -> String {
        let now = wallClock.now().milliseconds
        var out = MetricsText()
        out.family("quantrac_info", .gauge, "The station this logger serves (always 1).")
        out.sample("quantrac_info", ["station": station, "kind": kind], 1)
        out.family("quantrac_start_time_seconds", .gauge, "When the daemon started (Unix time).")
        out.sample("quantrac_start_time_seconds", [:], Double(s.startedMs) / 1000)

        out.family("quantrac_channel_value", .gauge, "Last polled value of each channel, in its unit (absent while it has none).")
        for c in s.channels {
            if let v = c.value { out.sample("quantrac_channel_value", ["channel": c.code, "unit": c.unit, "bus": c.bus], v) }
        }
        out.family("quantrac_channel_status", .gauge, "Instrument status of the last reading: 0 measuring (00), 1 calibrating (01), 2 fault (02).")
        for c in s.channels {
            if let code = Int(c.statusCode) { out.sample("quantrac_channel_status", ["channel": c.code], Double(code)) }
        }
        out.family("quantrac_channel_age_seconds", .gauge, "Seconds since the channel's last reading.")
        for c in s.channels {
            if let t = c.timeMs { out.sample("quantrac_channel_age_seconds", ["channel": c.code], Double(max(0, now - t)) / 1000) }
        }

        out.family("quantrac_device_polls_total", .counter, "Ticks in which the device was polled, since start.")
        for b in s.buses {
            for (device, n) in b.deviceCounters.byDevice() {
                out.sample("quantrac_device_polls_total", ["bus": b.name, "device": device], Double(n.polls))
            }
        }
        out.family("quantrac_device_errors_total", .counter, "Ticks in which at least one channel of the device came back 02 (no answer, exception, analyzer fault).")
        for b in s.buses {
            for (device, n) in b.deviceCounters.byDevice() {
                out.sample("quantrac_device_errors_total", ["bus": b.name, "device": device], Double(n.errors))
            }
        }
        out.family("quantrac_device_health", .gauge, "1 for the device's current health state (online, suspect, offline, recovering).")
        for b in s.buses {
            for (device, state) in b.devices.byDevice() {
                out.sample("quantrac_device_health", ["bus": b.name, "device": device, "state": state], 1)
            }
        }
        out.family("quantrac_device_response_seconds", .gauge, "Time the device's requests took in its last poll (a timeout counts in full).")
        for b in s.buses {
            for (device, seconds) in b.deviceResponseSeconds.byDevice() {
                out.sample("quantrac_device_response_seconds", ["bus": b.name, "device": device], seconds)
            }
        }
        out.family("quantrac_bus_poll_latency_seconds", .summary, "Time from each tick's scheduled instant until every channel of the bus was read.")
        for b in s.buses where b.pollCount > 0 {
            out.sample("quantrac_bus_poll_latency_seconds_sum", ["bus": b.name], Double(b.pollMsSum) / 1000)
            out.sample("quantrac_bus_poll_latency_seconds_count", ["bus": b.name], Double(b.pollCount))
        }
        out.family("quantrac_bus_last_poll_latency_seconds", .gauge, "Poll latency of the bus's last tick.")
        for b in s.buses {
            if let ms = b.lastPollMs { out.sample("quantrac_bus_last_poll_latency_seconds", ["bus": b.name], Double(ms) / 1000) }
        }
        out.family("quantrac_bus_last_tick_age_seconds", .gauge, "Seconds since the bus's last tick.")
        for b in s.buses {
            if let t = b.lastTickMs { out.sample("quantrac_bus_last_tick_age_seconds", ["bus": b.name], Double(max(0, now - t)) / 1000) }
        }
        out.family("quantrac_bus_fault_channels", .gauge, "Channels of the bus that were 02 in its last tick.")
        for b in s.buses { out.sample("quantrac_bus_fault_channels", ["bus": b.name], Double(b.faultChannels)) }

        out.family("quantrac_target_backlog_files", .gauge, "Files waiting in the target's queue.")
        for t in s.targets { out.sample("quantrac_target_backlog_files", ["target": t.name], Double(t.pending)) }
        out.family("quantrac_target_last_success_timestamp_seconds", .gauge, "When the target last received a file (Unix time).")
        for t in s.targets {
            if let ms = t.lastSuccessMs { out.sample("quantrac_target_last_success_timestamp_seconds", ["target": t.name], Double(ms) / 1000) }
        }
        out.family("quantrac_target_failing", .gauge, "1 while the head of the target's queue has failed and is being retried.")
        for t in s.targets { out.sample("quantrac_target_failing", ["target": t.name], t.pending > 0 && t.lastError != nil ? 1 : 0) }
        out.family("quantrac_target_parked", .gauge, "1 while the target's queue is parked (login refused; needs the configuration fixed or `quantrac outbox retry`).")
        for t in s.targets { out.sample("quantrac_target_parked", ["target": t.name], t.parked == nil ? 0 : 1) }

        out.family("quantrac_storage_failing", .gauge, "1 while readings cannot be stored (disk full, read-only).")
        out.sample("quantrac_storage_failing", [:], s.storageError == nil ? 0 : 1)
        out.family("quantrac_readings_held_in_memory", .gauge, "Readings waiting in memory for the database.")
        out.sample("quantrac_readings_held_in_memory", [:], Double(s.readingsHeldInMemory))
        out.family("quantrac_file_build_failing", .gauge, "1 while the last attempt to build a regulator file failed.")
        out.sample("quantrac_file_build_failing", [:], s.fileError == nil ? 0 : 1)
        if let used = s.diskUsedBytes, let capacity = s.diskCapacityBytes {
            out.family("quantrac_disk_used_bytes", .gauge, "Bytes used by data_dir (or the file system holding it when no disk_budget is set).")
            out.sample("quantrac_disk_used_bytes", [:], Double(used))
            out.family("quantrac_disk_capacity_bytes", .gauge, "disk_budget, or the size of the file system holding data_dir.")
            out.sample("quantrac_disk_capacity_bytes", [:], Double(capacity))
            out.family("quantrac_disk_alarm", .gauge, "0 below 80 % of the capacity, 1 from 80 %, 2 from 95 %.")
            let f = Double(used) / Double(max(1, capacity))
            out.sample("quantrac_disk_alarm", [:], f >= 0.95 ? 2 : f >= 0.80 ? 1 : 0)
        }

        if let clock = s.clock {
            out.family("quantrac_clock_synchronized", .gauge, "1 when the system clock is synchronised (NTP), 0 when not (absent when unknown).")
            if let synced = clock.synchronized { out.sample("quantrac_clock_synchronized", ["source": clock.source], synced ? 1 : 0) }
            if let ms = clock.maxErrorMs {
                out.family("quantrac_clock_max_error_seconds", .gauge, "The kernel's maximum error of the system clock (adjtimex maxerror).")
                out.sample("quantrac_clock_max_error_seconds", [:], Double(ms) / 1000)
            }
            if let ms = clock.estimatedErrorMs {
                out.family("quantrac_clock_estimated_error_seconds", .gauge, "The kernel's estimated error of the system clock (adjtimex esterror).")
                out.sample("quantrac_clock_estimated_error_seconds", [:], Double(ms) / 1000)
            }
        }
        out.family("quantrac_clock_steps_total", .counter, "Steps of the wall clock seen since start (compared with the monotonic clock).")
        out.sample("quantrac_clock_steps_total", [:], Double(s.clockSteps))
        out.family("quantrac_calibrations_active", .gauge, "Calibration windows in effect (running or recovering).")
        out.sample("quantrac_calibrations_active", [:], Double(s.calibrations.count))
        return out.text
    }
}

/// Prometheus text format 0.0.4: `# HELP` and `# TYPE` once per family, then its samples.
struct MetricsText {
    enum Kind: String { case gauge, counter, summary }

    private(set) var text = ""

    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text += "# HELP \(name) \(help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
        text += "# TYPE \(name) \(kind.rawValue)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(separator: ",") + "}"
        }
        text += " \(Self.format(value))\n"
    }

    /// Label values escape backslash, double quote and line feed.
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.15g", v)  // 30.4, not 30.400000000000002 (a float32 register scaled by 0.1)
    }
}
