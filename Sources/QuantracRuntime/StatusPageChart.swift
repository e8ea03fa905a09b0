import Foundation
import QuantracCore
import Reporting
import Storage

/// One channel's records over a time window as an inline SVG line chart, rendered on the server (no
/// script, no external resource): time axis in local time, value axis with round ticks, the `00` values
/// as a line (broken where nothing was measured), a band under the axis where records were `01`
/// (amber) or `02` (red), and the hourly limit as a dashed line when it is near the data.
struct StatusPageChart {
    let code: String
    let decimals: Int
    /// Window `[from, to]`, epoch seconds.
    let from: Int64
    let to: Int64
    let offset: UTCOffset
    /// Length of one record interval, seconds (no bucket is made narrower).
    let recordInterval: Int64
    let limit: Double?
    let records: [ChannelRecord]

    // Geometry of the viewBox.
    static let width = 400.0, height = 168.0
    static let left = 46.0, right = 392.0, top = 8.0, bottom = 136.0

    /// What one horizontal slice of the chart holds.
    struct Bucket {
        var sum = 0.0
        var count = 0
        var calibrating = false
        var fault = false
        var mean: Double? { count > 0 ? sum / Double(count) : nil }
    }

    /// The records sorted into at most 240 equal slices of the window (never narrower than one interval).
    func buckets() -> [Bucket] {
        let span = max(1, to - from)
        let n = Int(max(1, min(240, span / max(1, recordInterval))))
        var out = [Bucket](repeating: Bucket(), count: n)
        for r in records where r.intervalEnd > from && r.intervalEnd <= to {
            let i = min(n - 1, Int((r.intervalEnd - from - 1) * Int64(n) / span))
            switch r.status {
            case .measuring:
                out[i].sum += r.value
                out[i].count += 1
            case .calibrating: out[i].calibrating = true
            case .fault: out[i].fault = true
            }
        }
        return out
    }

    func svg() -> String {
        let buckets = self.buckets()
        let values = buckets.compactMap(\.mean)
        let w = Self.right - Self.left, h = Self.bottom - Self.top
        let slot = w / Double(buckets.count)
        var svg = "<svg class=\"chart\" viewBox=\"0 0 \(Int(Self.width)) \(Int(Self.height))\" role=\"img\" data-channel=\"\(HTML.escape(code))\" "
            + "data-points=\"\(values.count)\" aria-label=\"\(HTML.escape(code)), \(HTML.escape(localTime(from))) – \(HTML.escape(localTime(to)))\">"
        // Value axis: round ticks around the data (and the limit when close to it).
        var low = values.min() ?? 0, high = values.max() ?? 1
        if let limit, limit >= low, limit <= high + max(abs(high - low), abs(high) * 0.25) { high = max(high, limit) }
        if high - low < 1e-9 { low -= max(1, abs(low) * 0.1); high += max(1, abs(high) * 0.1) }
        let ticks = Self.niceTicks(low: low, high: high, count: 4)
        let yMin = ticks.first ?? low, yMax = ticks.last ?? high
        func y(_ v: Double) -> Double { Self.bottom - (v - yMin) / max(1e-12, yMax - yMin) * h }
        func x(_ t: Int64) -> Double { Self.left + Double(t - from) / Double(max(1, to - from)) * w }
        let tickDecimals = Self.decimals(forStep: ticks.count > 1 ? ticks[1] - ticks[0] : 1)
        for v in ticks {
            let yy = Self.fmt(y(v))
            svg += "<line class=\"grid\" x1=\"\(Self.fmt(Self.left))\" x2=\"\(Self.fmt(Self.right))\" y1=\"\(yy)\" y2=\"\(yy)\"/>"
            svg += "<text class=\"ylabel\" x=\"\(Self.fmt(Self.left - 5))\" y=\"\(Self.fmt(y(v) + 4))\" text-anchor=\"end\">"
                + "\(RegulatorFileRenderer.format(v, decimals: tickDecimals))</text>"
        }
        // Time axis: ticks on the local clock grid, 8 at most.
        let step = Self.timeStep(span: to - from)
        let localFrom = from + Int64(offset.seconds)
        var t = (localFrom / step + (localFrom % step == 0 ? 0 : 1)) * step - Int64(offset.seconds)
        while t <= to {
            let xx = Self.fmt(x(t))
            svg += "<line class=\"tick\" x1=\"\(xx)\" x2=\"\(xx)\" y1=\"\(Self.fmt(Self.top))\" y2=\"\(Self.fmt(Self.bottom + 4))\"/>"
            svg += "<text class=\"xlabel\" x=\"\(xx)\" y=\"\(Self.fmt(Self.bottom + 26))\" text-anchor=\"middle\">\(hourMinute(t))</text>"
            t += step
        }
        svg += "<line class=\"axis\" x1=\"\(Self.fmt(Self.left))\" x2=\"\(Self.fmt(Self.right))\" y1=\"\(Self.fmt(Self.bottom))\" y2=\"\(Self.fmt(Self.bottom))\"/>"
        // The limit.
        if let limit, limit >= yMin, limit <= yMax {
            let yy = Self.fmt(y(limit))
            svg += "<line class=\"limit\" x1=\"\(Self.fmt(Self.left))\" x2=\"\(Self.fmt(Self.right))\" y1=\"\(yy)\" y2=\"\(yy)\"/>"
            svg += "<text class=\"limitlabel\" x=\"\(Self.fmt(Self.right - 2))\" y=\"\(Self.fmt(y(limit) - 3))\" text-anchor=\"end\">"
                + "limit \(RegulatorFileRenderer.format(limit, decimals: decimals))</text>"
        }
        // Status band: 01 and 02 slices under the axis.
        for (i, b) in buckets.enumerated() where b.calibrating || b.fault {
            svg += "<rect class=\"\(b.fault ? "band02" : "band01")\" x=\"\(Self.fmt(Self.left + Double(i) * slot))\" y=\"\(Self.fmt(Self.bottom + 3))\" "
                + "width=\"\(Self.fmt(max(1.5, slot)))\" height=\"5\"/>"
        }
        // The measured values: one path per run of slices with a 00 value.
        var runs: [[(Double, Double)]] = [], run: [(Double, Double)] = []
        for (i, b) in buckets.enumerated() {
            if let m = b.mean {
                run.append((Self.left + (Double(i) + 0.5) * slot, y(m)))
            } else if !run.isEmpty {
                runs.append(run)
                run = []
            }
        }
        if !run.isEmpty { runs.append(run) }
        for r in runs {
            if r.count == 1 {
                svg += "<circle class=\"dot\" cx=\"\(Self.fmt(r[0].0))\" cy=\"\(Self.fmt(r[0].1))\" r=\"1.8\"/>"
                continue
            }
            let line = r.map { "\(Self.fmt($0.0)),\(Self.fmt($0.1))" }.joined(separator: " ")
            let area = "\(Self.fmt(r[0].0)),\(Self.fmt(Self.bottom)) " + line + " \(Self.fmt(r[r.count - 1].0)),\(Self.fmt(Self.bottom))"
            svg += "<polygon class=\"area\" points=\"\(area)\"/><polyline class=\"line\" points=\"\(line)\"/>"
        }
        if values.isEmpty {
            svg += "<text class=\"empty\" x=\"\(Self.fmt((Self.left + Self.right) / 2))\" y=\"\(Self.fmt((Self.top + Self.bottom) / 2))\" "
                + "text-anchor=\"middle\">no measured record in this window</text>"
        }
        return svg + "</svg>"
    }

    func localTime(_ t: Int64) -> String { CivilTime(epochSeconds: t, offset: offset).readable }

    func hourMinute(_ t: Int64) -> String {
        let c = CivilTime(epochSeconds: t, offset: offset)
        return (c.hour < 10 ? "0" : "") + "\(c.hour):" + (c.minute < 10 ? "0" : "") + "\(c.minute)"
    }

    /// A step of the local clock giving at most 8 labels over `span` seconds.
    static func timeStep(span: Int64) -> Int64 {
        let steps: [Int64] = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400]
        return steps.first { span / $0 <= 8 } ?? 86_400
    }

    /// About `count` round values (1, 2, 2.5, 5 × 10ⁿ apart) covering `[low, high]`.
    static func niceTicks(low: Double, high: Double, count: Int) -> [Double] {
        let raw = (high - low) / Double(max(1, count - 1))
        guard raw.isFinite, raw > 0 else { return [low, high] }
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var v = floor(low / step) * step
        var out: [Double] = []
        while v < high + step * 0.999 && out.count < 12 {
            out.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return out
    }

    static func decimals(forStep step: Double) -> Int {
        guard step > 0, step.isFinite else { return 0 }
        let e = Int(floor(log10(step) + 1e-9))
        let mantissa = step / pow(10, Double(e))
        return max(0, min(6, -e + (abs(mantissa - 2.5) < 1e-6 ? 1 : 0)))
    }

    static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
}

/// Escaping for HTML text and attribute values.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
