import Foundation
import Processing
import QuantracConfig
import QuantracCore
import Reporting
import Storage

/// The status page as one HTML document: inline CSS, inline SVG, a meta refresh; no script and no
/// external resource, so it works on a station screen without internet. Laid out for 1280×800; labels
/// in Vietnamese and English; UTF-8.
struct StatusPageHTML {
    let data: StatusPageData
    let config: StationConfig

    var offset: UTCOffset { config.station.utcOffset }
    var now: Int64 { data.now.milliseconds }

    func render() -> String {
        let s = data.snapshot
        var html = """
            <!DOCTYPE html>
            <html lang="vi"><head><meta charset="utf-8">
            <meta http-equiv="refresh" content="\(max(1, config.statusPage.refresh.wholeMilliseconds / 1000))">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="icon" href="data:,">
            <title>\(e(s.station)) · Quantrac</title>
            <style>\(Self.css)</style></head><body>
            <header><div><div class="station">\(e(s.station))</div>
            <div class="sub">\(e(Self.kindName(config.station.kind))) · running since \(e(local(s.startedMs)))</div></div>
            <div class="right"><div class="clock" data-now-ms="\(now)">\(e(local(now)))</div>
            <div class="sub">UTC\(offset) · refreshes every \(config.statusPage.refresh.wholeMilliseconds / 1000) s</div></div></header>

            """
        html += alarms()
        html += "<main>\n<div class=\"col\">\n" + liveTable() + hourlyTable() + "</div>\n<div class=\"col side\">\n"
        if config.station.kind == .ambientAir { html += aqiPanel() }
        html += deliveryPanel() + systemPanel() + "</div>\n" + charts() + "</main>\n"
        html += "<footer>Quantrac · <a href=\"/metrics\">/metrics</a> · <a href=\"/status\">/status</a> (JSON) · "
            + "read-only page generated \(e(local(now)))</footer>\n</body></html>\n"
        return html
    }

    // MARK: sections

    func alarms() -> String {
        let list = StatusAlarm.list(data, config: config)
        guard !list.isEmpty else {
            return "<section class=\"alarms ok\" id=\"alarms\" data-count=\"0\"><span class=\"tag\">✓</span> Không có cảnh báo · No alarms</section>\n"
        }
        var out = "<section class=\"alarms\" id=\"alarms\" data-count=\"\(list.count)\"><div class=\"alarms-title\">Cảnh báo · Alarms</div><ul>"
        for a in list { out += "<li class=\"\(a.severity.cssClass)\">\(e(a.text))</li>" }
        return out + "</ul></section>\n"
    }

    func liveTable() -> String {
        let s = data.snapshot
        let hourly = latest(data.hourly), daily = latest(data.daily)
        var out = """
            <section class="panel"><h2>Số liệu tức thời · Live values</h2>
            <table class="live" id="live"><thead><tr>
            <th>Thông số<small>Parameter</small></th><th class="num">Giá trị<small>Value</small></th><th>Đơn vị<small>Unit</small></th>
            <th>Trạng thái<small>Status</small></th><th class="num">Cập nhật<small>Age</small></th>
            <th class="num">TB 1 giờ<small>1 h average</small></th><th class="num">TB 24 giờ<small>24 h average</small></th></tr></thead><tbody>

            """
        let stale = max(3 * config.station.pollInterval.wholeMilliseconds, 30_000)
        for c in s.channels {
            let decimals = decimalsOf(c.code)
            let value = c.value.map { RegulatorFileRenderer.format($0, decimals: decimals) } ?? "–"
            let age = c.timeMs.map { now - $0 }
            out += "<tr data-channel=\"\(e(c.code))\" data-status=\"\(e(c.statusCode))\"" + (c.timeMs.map { " data-time-ms=\"\($0)\"" } ?? "") + ">"
            out += "<td class=\"code\">\(e(c.code))</td>"
            out += "<td class=\"num value\"" + (c.value.map { " data-value=\"\($0)\"" } ?? "") + ">\(value)</td>"
            out += "<td class=\"unit\">\(e(c.unit))</td>"
            out += "<td>" + statusPill(c.statusCode) + (c.reason.map { "<div class=\"reason\">\(e($0))</div>" } ?? "") + "</td>"
            out += "<td class=\"num age\(age.map { $0 > stale ? " stale" : "" } ?? "")\">\(age.map(Self.age) ?? "–")</td>"
            out += "<td class=\"num\">\(averageCell(hourly[c.code], decimals: decimals, label: "hour ending"))</td>"
            out += "<td class=\"num\">\(averageCell(daily[c.code], decimals: decimals, label: "day ending"))</td></tr>\n"
        }
        return out + "</tbody></table></section>\n"
    }

    func hourlyTable() -> String {
        let ends = Array(Set(data.hourly.map(\.average.interval.end)).sorted().suffix(6))
        var out = "<section class=\"panel\"><h2>Trung bình giờ · Hourly averages</h2>"
        guard !ends.isEmpty else {
            return out + "<p class=\"muted\">No hourly average yet: the first is computed when an hour closes.</p></section>\n"
        }
        let byKey = Dictionary(data.hourly.map { ("\($0.channel)|\($0.average.interval.end)", $0) }, uniquingKeysWith: { a, _ in a })
        out += "<table class=\"hourly\" id=\"hourly\"><thead><tr><th>Thông số<small>Parameter</small></th>"
        for end in ends { out += "<th class=\"num\">\(e(hourMinute(end)))<small>\(e(dayMonth(end - 1)))</small></th>" }
        out += "</tr></thead><tbody>\n"
        for ch in config.channels {
            out += "<tr data-channel=\"\(e(ch.code))\"><td class=\"code\">\(e(ch.code)) <span class=\"unit\">\(e(ch.unit))</span></td>"
            for end in ends {
                out += "<td class=\"num\" data-end=\"\(end)\">\(averageCell(byKey["\(ch.code)|\(end)"], decimals: ch.decimals, label: "hour ending"))</td>"
            }
            out += "</tr>\n"
        }
        return out + "</tbody></table><p class=\"legend\"><span class=\"invalid\">12.3‡</span> incomplete (too few valid records) · "
            + "<span class=\"exceed\">12.3</span> beyond the channel's limit · n/m valid of expected records</p></section>\n"
    }

    func aqiPanel() -> String {
        var out = "<section class=\"panel\" id=\"aqi\"><h2>VN_AQI · Chỉ số chất lượng không khí</h2>"
        guard let h = data.aqiHourly, let value = h.aqi else {
            return out + "<p class=\"muted\">No hourly VN_AQI yet (it needs a closed hour with PM data).</p></section>\n"
        }
        let category = VNAQI.Category(aqi: value)
        let (r, g, b) = category.rgb
        let ink = (r * 299 + g * 587 + b * 114) / 1000 > 140 ? "#111" : "#fff"
        out += "<div class=\"aqi-box\" data-aqi=\"\(value)\" data-end=\"\(h.end)\" style=\"background:rgb(\(r),\(g),\(b));color:\(ink)\">"
            + "<div class=\"aqi-num\">\(value)</div><div><div class=\"aqi-cat\">\(e(category.rawValue))</div><div>\(e(category.english))</div></div></div>"
        out += "<div class=\"aqi-meta\">Hour ending \(e(local(h.end * 1000)))" + (h.dominant.map { " · dominant \(e($0))" } ?? "")
            + "<br>\(e(h.subIndices.replacingOccurrences(of: ",", with: ", ")))</div>"
        if let d = data.aqiDaily, let dv = d.aqi {
            let dc = VNAQI.Category(aqi: dv)
            let (dr, dg, db) = dc.rgb
            out += "<div class=\"aqi-day\"><span class=\"swatch\" style=\"background:rgb(\(dr),\(dg),\(db))\"></span>"
                + "Day ending \(e(local(d.end * 1000))): <b>\(dv)</b> \(e(dc.rawValue)) · \(e(dc.english))</div>"
        }
        return out + "</section>\n"
    }

    func deliveryPanel() -> String {
        let s = data.snapshot
        var out = "<section class=\"panel\" id=\"delivery\"><h2>Truyền dữ liệu · Delivery</h2>"
        if s.targets.isEmpty {
            out += "<p class=\"muted\">No [[target]]: files are only kept in data_dir.</p>"
        } else {
            out += "<table class=\"targets\"><thead><tr><th>Target</th><th class=\"num\">Chờ gửi<small>Waiting</small></th>"
                + "<th>Gửi thành công<small>Last success</small></th></tr></thead><tbody>"
            for t in s.targets {
                let state = t.parked != nil ? "bad" : t.pending > 0 && t.lastError != nil ? "bad" : t.pending > 1 ? "cal" : "ok"
                out += "<tr data-target=\"\(e(t.name))\" data-pending=\"\(t.pending)\"><td class=\"code\">\(e(t.name))"
                    + (t.parked != nil ? " <span class=\"pill s02\">parked</span>" : "") + "</td>"
                    + "<td class=\"num\"><span class=\"count \(state)\">\(t.pending)</span></td>"
                    + "<td>\(t.lastSuccessMs.map { e(local($0)) + " <span class=\"muted\">(\(Self.age(now - $0)) ago)</span>" } ?? "–")</td></tr>"
                if let err = t.lastError, t.pending > 0 {
                    out += "<tr class=\"sub\"><td colspan=\"3\"><span class=\"reason\">Last error: \(e(err))</span>"
                        + (t.oldestPending.map { "<br><span class=\"muted\">oldest waiting: \(e($0))</span>" } ?? "") + "</td></tr>"
                }
            }
            out += "</tbody></table>"
        }
        out += "<div class=\"kv\"><span>Last file</span><span class=\"mono\">\(e(s.lastFile ?? "–"))</span></div>"
        return out + "</section>\n"
    }

    func systemPanel() -> String {
        let s = data.snapshot
        var out = "<section class=\"panel\" id=\"system\"><h2>Hệ thống · System</h2>"
        out += "<div class=\"kv\"><span>Lưu trữ · Storage</span><span>"
            + (s.storageError.map { "<span class=\"pill s02\">failing</span> \(e($0))" } ?? "<span class=\"pill s00\">ok</span>") + "</span></div>"
        if let used = s.diskUsedBytes, let capacity = s.diskCapacityBytes {
            let percent = Double(used) * 100 / Double(max(1, capacity))
            let level = percent >= 95 ? "bad" : percent >= 80 ? "cal" : "ok"
            out += "<div class=\"kv\"><span>Ổ đĩa · Disk</span><span>\(Self.bytes(used)) of \(Self.bytes(capacity)) "
                + "(\(String(format: "%.0f", percent)) %)<span class=\"bar\"><span class=\"fill \(level)\" style=\"width:\(String(format: "%.1f", min(100, percent)))%\"></span></span></span></div>"
        }
        out += "<div class=\"kv\" id=\"clock\"><span>Đồng hồ · Clock</span><span>"
        if let clock = s.clock {
            switch clock.synchronized {
            case .some(true): out += "<span class=\"pill s00\" data-synchronized=\"true\">Đã đồng bộ · synchronised</span>"
            case .some(false): out += "<span class=\"pill s02\" data-synchronized=\"false\">Chưa đồng bộ · NOT synchronised</span>"
            case .none: out += "<span class=\"pill s--\" data-synchronized=\"unknown\">unknown</span>"
            }
            out += "<div class=\"muted small\">\(e(clock.detail)) · \(e(clock.source))</div>"
        } else {
            out += "<span class=\"muted\">not checked yet</span>"
        }
        out += "<div class=\"muted small\">\(s.clockSteps == 0 ? "no step since start" : "\(s.clockSteps) step(s) since start; last: \(e(s.lastClockStep ?? ""))")</div></span></div>"
        for b in s.buses {
            out += "<div class=\"kv\" data-bus=\"\(e(b.name))\"><span>Bus \(e(b.name))</span><span>last poll "
                + (b.lastTickMs.map { "\(Self.age(now - $0)) ago" } ?? "–")
                + (b.lastPollMs.map { " · took \($0) ms" } ?? "") + "<br>"
            for (device, state) in b.devices.byDevice() {
                let css = state == "online" ? "ok" : state == "offline" ? "bad" : "cal"
                let counters = (b.deviceCounters[device].map { " \($0.errors)/\($0.polls) failed" } ?? "")
                    + (b.deviceResponseSeconds[device].map { ", last response \(Int(($0 * 1000).rounded())) ms" } ?? "")
                out += "<span class=\"dev \(css)\" title=\"\(e(state))\(e(counters))\">device \(e(device)) \(e(state))</span> "
            }
            out += "</span></div>"
        }
        out += "<div class=\"kv\"><span>Hiệu chuẩn · Calibration</span><span>"
            + (s.calibrations.isEmpty ? "none" : s.calibrations.map { e($0) }.joined(separator: "<br>")) + "</span></div>"
        return out + "</section>\n"
    }

    func charts() -> String {
        let to = data.now.seconds
        let interval = config.station.recordIntervalSeconds
        // The last 24 hours, or since the first record when the station is younger (at least one hour).
        let first = data.records.values.compactMap { $0.first?.intervalEnd }.min()
        var from = to - 86_400
        if let first { from = max(from, (first - interval) - (first - interval + Int64(offset.seconds)) % 3600) }
        from = min(from, to - 3600)
        let title = to - from >= 86_400 ? "Biểu đồ 24 giờ · Last 24 hours"
            : to - from <= 3600 ? "Biểu đồ · Last hour (the station has less history)" : "Biểu đồ · Since \(hourMinute(from)) (the station has less than 24 h of history)"
        let recordName = interval % 60 == 0 ? "\(interval / 60)-minute records" : "\(interval)-second records"
        var out = "<section class=\"panel wide\" id=\"charts\"><h2>\(e(title)) <span class=\"legend\">\(recordName) · "
            + "<span class=\"key line\"></span> 00 measured <span class=\"key b01\"></span> 01 calibration <span class=\"key b02\"></span> 02 fault</span></h2><div class=\"charts\">"
        for ch in config.channels {
            let live = data.snapshot.channels.first { $0.code == ch.code }
            let chart = StatusPageChart(code: ch.code, decimals: ch.decimals, from: from, to: to, offset: offset, recordInterval: interval,
                                        limit: ch.averaging.limit1h, records: data.records[ch.code] ?? [])
            out += "<figure><figcaption><b>\(e(ch.code))</b> <span class=\"unit\">\(e(ch.unit))</span>"
            if let live, let v = live.value {
                out += "<span class=\"last s\(e(live.statusCode))\">\(RegulatorFileRenderer.format(v, decimals: ch.decimals))</span>"
            }
            out += "</figcaption>" + chart.svg() + "</figure>"
        }
        return out + "</div></section>\n"
    }

    // MARK: pieces

    func statusPill(_ code: String) -> String {
        let text: String
        switch code {
        case "00": text = "00 Đang đo · measuring"
        case "01": text = "01 Hiệu chuẩn · calibrating"
        case "02": text = "02 Lỗi · fault"
        default: text = "no value yet"
        }
        return "<span class=\"pill s\(e(code))\">\(e(text))</span>"
    }

    func averageCell(_ a: StoredAverage?, decimals: Int, label: String) -> String {
        guard let a else { return "<span class=\"muted\">–</span>" }
        let end = local(a.average.interval.end * 1000)
        let count = "\(a.average.validCount)/\(a.average.expectedCount)"
        guard let v = a.average.value else {
            return "<span class=\"invalid\" title=\"\(e(label)) \(e(end)): no valid record\">n/a</span><small>\(count)</small>"
        }
        let text = RegulatorFileRenderer.format(v, decimals: decimals)
        let css = !a.average.isValid ? "invalid" : a.average.exceeds ? "exceed" : "avg"
        return "<span class=\"\(css)\" data-valid=\"\(a.average.isValid)\" data-value=\"\(text)\" title=\"\(e(label)) \(e(end))"
            + (a.average.isValid ? "" : ": incomplete") + "\">\(text)\(a.average.isValid ? "" : "‡")</span><small>\(count)</small>"
    }

    /// The newest average per channel.
    func latest(_ list: [StoredAverage]) -> [String: StoredAverage] {
        Dictionary(list.map { ($0.channel, $0) }, uniquingKeysWith: { $0.average.interval.end >= $1.average.interval.end ? $0 : $1 })
    }

    func decimalsOf(_ code: String) -> Int { config.channels.first { $0.code == code }?.decimals ?? 2 }

    func e(_ s: String) -> String { HTML.escape(s) }

    func local(_ ms: Int64) -> String { CivilTime(epochSeconds: ms / 1000, offset: offset).readable }

    func hourMinute(_ seconds: Int64) -> String {
        let c = CivilTime(epochSeconds: seconds, offset: offset)
        return (c.hour < 10 ? "0" : "") + "\(c.hour):" + (c.minute < 10 ? "0" : "") + "\(c.minute)"
    }

    func dayMonth(_ seconds: Int64) -> String {
        let c = CivilTime(epochSeconds: seconds, offset: offset)
        return (c.day < 10 ? "0" : "") + "\(c.day)/" + (c.month < 10 ? "0" : "") + "\(c.month)"
    }

    /// `4 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
    static func age(_ ms: Int64) -> String {
        let s = max(0, ms) / 1000
        if s < 120 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min" }
        if s < 86_400 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        return "\(s / 86_400) d \(s % 86_400 / 3600) h"
    }

    static func bytes(_ n: Int64) -> String {
        n >= 1 << 30 ? String(format: "%.1f GiB", Double(n) / Double(1 << 30)) : "\(n / 1_048_576) MiB"
    }

    static func kindName(_ kind: StationKind) -> String {
        switch kind {
        case .ambientAir: return "Trạm không khí xung quanh · ambient air station"
        case .surfaceWater: return "Trạm nước mặt · surface water station"
        case .wastewater: return "Trạm nước thải · wastewater station"
        case .stackGas: return "Trạm khí thải · stack emission station"
        }
    }

    static let css = """
        :root{--ok:#166534;--okbg:#dcfce7;--cal:#92400e;--calbg:#fef3c7;--bad:#b91c1c;--badbg:#fee2e2;--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--head:#0c4a6e}
        *{box-sizing:border-box}
        body{margin:0;background:#f1f5f9;color:var(--ink);font:13px/1.35 "DejaVu Sans","Noto Sans","Segoe UI",Roboto,Arial,sans-serif}
        header{background:var(--head);color:#fff;padding:8px 18px;display:flex;justify-content:space-between;align-items:center}
        header .station{font-size:20px;font-weight:700;letter-spacing:.02em}
        header .sub{font-size:12px;opacity:.85}
        header .right{text-align:right}
        header .clock{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}
        .alarms{margin:10px 18px 0;padding:8px 12px;border-radius:6px;background:#fff;border:1px solid var(--line);border-left:6px solid var(--bad)}
        .alarms.ok{border-left-color:#16a34a;color:var(--ok);font-weight:600}
        .alarms .tag{display:inline-block;width:18px}
        .alarms-title{font-weight:700;font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--bad);margin-bottom:2px}
        .alarms ul{margin:0;padding:0;list-style:none;columns:2;column-gap:24px}
        .alarms li{padding:1px 0 1px 16px;position:relative;break-inside:avoid}
        .alarms li:before{content:"";position:absolute;left:2px;top:6px;width:8px;height:8px;border-radius:50%}
        .alarms li.crit:before{background:#dc2626}.alarms li.warn:before{background:#f59e0b}.alarms li.info:before{background:#3b82f6}
        .alarms li.crit{font-weight:600;color:var(--bad)}
        main{display:grid;grid-template-columns:minmax(0,1fr) 390px;gap:10px;padding:10px 18px}
        .col{display:flex;flex-direction:column;gap:10px;min-width:0}
        .panel{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 12px}
        .wide{grid-column:1/-1}
        h2{margin:0 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#334155}
        h2 .legend{float:right;text-transform:none;letter-spacing:0;font-weight:400;color:var(--muted)}
        table{border-collapse:collapse;width:100%}
        th{font-size:11px;font-weight:600;color:#334155;text-align:left;padding:3px 6px;border-bottom:2px solid var(--line);vertical-align:bottom}
        th small{display:block;font-weight:400;color:var(--muted)}
        td{padding:4px 6px;border-bottom:1px solid var(--line);vertical-align:middle}
        tr:last-child td{border-bottom:0}
        .num{text-align:right;font-variant-numeric:tabular-nums}
        td.code{font-weight:700;white-space:nowrap}
        td.value{font-size:19px;font-weight:700}
        .unit{color:var(--muted);font-weight:400}
        td small{display:block;color:var(--muted);font-size:10px}
        .pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;font-weight:600;white-space:nowrap}
        .s00{color:var(--ok);background:var(--okbg)}.s01{color:var(--cal);background:var(--calbg)}.s02{color:var(--bad);background:var(--badbg)}
        .s--{color:var(--muted);background:#f3f4f6}
        .reason{color:var(--bad);font-size:11px}
        .age.stale{color:var(--bad);font-weight:700}
        .invalid{color:#9ca3af;font-style:italic}.exceed{color:var(--bad);font-weight:700}
        .muted{color:var(--muted)}.small{font-size:11px}
        .legend{font-size:11px;color:var(--muted);margin:4px 0 0}
        .kv{display:flex;justify-content:space-between;gap:10px;padding:4px 0;border-bottom:1px solid var(--line)}
        .kv:last-child{border-bottom:0}
        .kv>span:first-child{color:#334155;font-weight:600;white-space:nowrap}
        .kv>span:last-child{text-align:right}
        .mono{font-family:"DejaVu Sans Mono",monospace;font-size:11px}
        .bar{display:block;width:160px;height:6px;background:#e5e7eb;border-radius:3px;margin:3px 0 0 auto;overflow:hidden}
        .fill{display:block;height:100%}.fill.ok{background:#16a34a}.fill.cal{background:#f59e0b}.fill.bad{background:#dc2626}
        .count{display:inline-block;min-width:26px;text-align:center;padding:0 6px;border-radius:999px;font-weight:700}
        .count.ok{background:var(--okbg);color:var(--ok)}.count.cal{background:var(--calbg);color:var(--cal)}.count.bad{background:var(--badbg);color:var(--bad)}
        .dev{display:inline-block;font-size:11px;padding:0 6px;border-radius:999px;margin:1px 0}
        .dev.ok{background:var(--okbg);color:var(--ok)}.dev.cal{background:var(--calbg);color:var(--cal)}.dev.bad{background:var(--badbg);color:var(--bad)}
        .aqi-box{display:flex;align-items:center;gap:14px;border-radius:6px;padding:6px 12px}
        .aqi-num{font-size:38px;font-weight:800}
        .aqi-cat{font-size:17px;font-weight:700}
        .aqi-meta,.aqi-day{font-size:11px;color:var(--muted);margin-top:4px}
        .swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
        .charts{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:8px 14px}
        figure{margin:0}
        figcaption{font-size:12px;display:flex;gap:6px;align-items:baseline}
        figcaption .last{margin-left:auto;font-weight:700;padding:0 6px;border-radius:4px}
        svg.chart{width:100%;height:auto;display:block}
        .chart .grid{stroke:#eef2f7;stroke-width:1}.chart .tick{stroke:#f3f4f6;stroke-width:1}.chart .axis{stroke:#94a3b8;stroke-width:1}
        .chart text{font-size:10px;fill:#64748b}.chart .empty{fill:#9ca3af;font-style:italic}
        .chart .line{fill:none;stroke:#0369a1;stroke-width:1.6;stroke-linejoin:round}.chart .area{fill:#0369a1;fill-opacity:.08}
        .chart .dot{fill:#0369a1}.chart .band01{fill:#f59e0b}.chart .band02{fill:#dc2626}
        .chart .limit{stroke:#dc2626;stroke-width:1;stroke-dasharray:4 3}.chart .limitlabel{fill:#dc2626}
        .key{display:inline-block;width:14px;height:6px;margin:0 3px 0 8px;vertical-align:1px}
        .key.line{background:#0369a1;height:2px}.key.b01{background:#f59e0b}.key.b02{background:#dc2626}
        footer{padding:4px 18px 14px;color:var(--muted);font-size:11px}
        footer a{color:#0369a1}
        """
}
