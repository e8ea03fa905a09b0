import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Reporting
import Storage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The status page and `/metrics` of a real daemon polling `quantrac-sim`: fetched over HTTP, rendered
/// in headless Chromium (Debian's package), and compared with what the daemon stored. Three hours of
/// history are written into the database before the daemon starts (as after a restart), so the daemon
/// computes real hourly averages and VN_AQI from it at start; live values, faults, the calibration
/// window and the failing target all come from the running daemon.
@Suite(.serialized, .ownThread)
struct StatusPageTests {
    static let recordSeconds: Int64 = 20

    /// The station: ambient air, one Modbus TCP bus; CO sits on slave 9, which the simulator leaves
    /// unanswered (02); `province` is an FTP server that is down (its backlog grows).
    func stationTOML(dataDir: URL, simPort: Int, receiver: URL, deadFTPPort: Int, passwordFile: URL, listen: String) -> String {
        """
        [station]
        prefix = "HN_QTMT_KHI001"
        kind = "ambient-air"
        data_dir = "\(dataDir.path)"
        record_interval = "\(Self.recordSeconds)s"
        poll_interval = "2s"
        record_delay = "2s"
        [[bus]]
        name = "lan"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        port = \(simPort)
        timeout = "300ms"
        [[channel]]
        code = "PM2,5"
        unit = "µg/Nm3"
        bus = "lan"
        address = 0
        type = "float32"
        [[channel]]
        code = "PM10"
        unit = "µg/Nm3"
        bus = "lan"
        address = 2
        type = "float32"
        limit_1h = 100
        [[channel]]
        code = "NO2"
        unit = "µg/Nm3"
        bus = "lan"
        address = 4
        type = "float32"
        [[channel]]
        code = "Temp"
        unit = "°C"
        bus = "lan"
        address = 6
        type = "int16"
        scale = 0.1
        decimals = 1
        [[channel]]
        code = "CO"
        unit = "µg/Nm3"
        bus = "lan"
        slave = 9
        address = 0
        type = "float32"
        decimals = 0
        [[target]]
        name = "local"
        url = "file://\(receiver.path)"
        [[target]]
        name = "province"
        url = "ftp://127.0.0.1:\(deadFTPPort)/in"
        user = "station"
        password_file = "\(passwordFile.path)"
        retry_max = "5s"
        [status_page]
        listen = "\(listen)"
        refresh = "30s"
        """
    }

    /// The seeded history: `(value, status)` of `code` for the record ending at `end`; `start` is where
    /// the three seeded hours begin. Hour 0: PM2,5 calibrated for 30 minutes (its average is incomplete);
    /// hour 1: every analyzer faulty for 10 minutes; hour 2: PM10 above its hourly limit.
    static func seeded(_ code: String, end: Int64, start: Int64) -> (Double, InstrumentStatus) {
        let phase = Double(end % 7200) / 7200 * 2 * .pi
        let hour = (end - start - 1) / 3600, minute = (end - start - 1) % 3600 / 60
        if hour == 1 && (20..<30).contains(minute) { return (0, .fault) }
        switch code {
        case "PM2,5": return hour == 0 && (10..<40).contains(minute) ? (80, .calibrating) : (35 + 12 * sin(phase), .measuring)
        case "PM10": return ((hour == 2 ? 120 : 60) + 15 * sin(phase), .measuring)
        case "NO2": return (40 + 8 * sin(phase + 1), .measuring)
        case "Temp": return (28 + 2 * sin(phase + 2), .measuring)
        default: return (1000 + 200 * sin(phase + 3), .measuring)
        }
    }

    @Test func pageAndMetricsShowWhatTheDaemonStored() async throws {
        let dir = try makeTemporaryDirectory("status-page")
        let data = dir.appendingPathComponent("data"), receiver = dir.appendingPathComponent("receiver")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: receiver, withIntermediateDirectories: true)
        let passwordFile = dir.appendingPathComponent("ftp.pass")
        try "pw".write(to: passwordFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
        let deadPort = try LoopbackPort.closed()

        // The simulator serves the station (slave 9 absent) on a free port.
        let simConfig = dir.appendingPathComponent("sim.toml")
        try stationTOML(dataDir: data, simPort: 502, receiver: receiver, deadFTPPort: deadPort, passwordFile: passwordFile, listen: "127.0.0.1:0")
            .write(to: simConfig, atomically: true, encoding: .utf8)
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", simConfig.path, "--port", "lan=0", "--absent", "9"],
                                  logDirectory: dir, label: "quantrac-sim")
        defer { sim.stop() }
        let ready = try sim.waitForLine(prefix: "READY lan ", timeout: .seconds(20))
        let simPort = try #require(Int(ready.split(separator: " ").last ?? ""))
        let configFile = dir.appendingPathComponent("station.toml")
        try stationTOML(dataDir: data, simPort: simPort, receiver: receiver, deadFTPPort: deadPort, passwordFile: passwordFile, listen: "127.0.0.1:0")
            .write(to: configFile, atomically: true, encoding: .utf8)
        let config = try ConfigLoader.load(path: configFile.path)

        // Three closed hours (and the current one) of 20-second records, as a previous run would have left them.
        let now = SystemWallClock().now().seconds
        let lastEnd = now - now % Self.recordSeconds
        let hourEnd = lastEnd - lastEnd % 3600  // the offset is whole hours: local hours end on UTC hours
        let start = hourEnd - 3 * 3600
        do {
            let store = try Store(path: data.appendingPathComponent("quantrac.sqlite").path)
            var end = start + Self.recordSeconds
            while end <= lastEnd {
                let records = config.channels.map { ch in
                    let (v, status) = Self.seeded(ch.code, end: end, start: start)
                    return ChannelRecord(channel: ch.code, intervalEnd: end, value: v, status: status, validCount: 10, sampleCount: 10)
                }
                try await store.commitInterval(intervalEnd: end, records: records, fileName: "HN_QTMT_KHI001_SEED\(end).txt", fileBytes: [0x31],
                                               targets: [], now: Timestamp(seconds: end))
                end += Self.recordSeconds
            }
        }

        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", configFile.path, "--log-format", "journald"],
                                     logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        var pagePort = 0
        try await waitUntilAsync(timeout: .seconds(20), what: "the status page listening") {
            if !daemon.isRunning { throw TestHarnessError("quantracd exited\n" + daemon.logReport()) }
            guard let m = daemon.stderrText.firstMatch(of: /<5>status page listening url=http:\/\/127\.0\.0\.1:(\d+)\//) else { return false }
            pagePort = Int(m.output.1) ?? 0
            return true
        }
        let port = pagePort
        let calibrate = try TestProcess(executable: Repository.binary("quantrac"),
                                        arguments: ["calibrate", "start", "--config", configFile.path, "--channel", "NO2", "--duration", "10m",
                                                    "--reason", "span check"], logDirectory: dir, label: "calibrate")
        #expect(calibrate.waitForExit(timeout: .seconds(30)) == 0, "\(calibrate.stderrText)")

        // Everything the page should show has happened: averages and AQI computed, live values in,
        // slave 9 offline, NO2 calibrating, a file waiting for the province.
        var page = ""
        try await waitUntilAsync(timeout: .seconds(50), poll: .milliseconds(500), what: "a page with every section filled\n\(page)") {
            if !daemon.isRunning { throw TestHarnessError("quantracd exited\n" + daemon.logReport()) }
            page = try await HTTPFetch.get(port: port, "/").body
            return page.contains("id=\"hourly\"") && page.contains("data-aqi=") && page.contains("device 9 offline")
                && page.contains("<tr data-channel=\"NO2\" data-status=\"01\"") && page.contains("<tr data-channel=\"PM2,5\" data-status=\"00\"")
                && (Self.attribute("data-pending", in: Self.row("data-target=\"province\"", in: page)).flatMap(Int.init) ?? 0) >= 1
        }

        let reader = try Store(readOnlyPath: data.appendingPathComponent("quantrac.sqlite").path)
        // Live values: each row's value is the reading stored for its tick, shown with the channel's decimals.
        try await Self.checkLiveRows(in: page, config: config, store: reader, source: "HTTP")
        let co = Self.row("<tr data-channel=\"CO\"", in: page)
        #expect(co.contains("data-status=\"02\"") && co.contains("class=\"reason\""), "\(co)")

        // Hourly averages: the daemon's, recomputed here from the seeded records.
        let hourly = try #require(page.firstRange(of: "id=\"hourly\"").map { String(page[$0.lowerBound...]).components(separatedBy: "</table>")[0] })
        for ch in config.channels {
            let row = Self.row("<tr data-channel=\"\(ch.code)\"><td class=\"code\">", in: hourly)
            for h in 0..<3 {
                let end = start + Int64(h + 1) * 3600
                let samples = stride(from: end - 3600 + Self.recordSeconds, through: end, by: Int(Self.recordSeconds))
                    .map { Self.seeded(ch.code, end: $0, start: start) }.filter { $0.1 == .measuring }.map(\.0)
                let mean = samples.reduce(0, +) / Double(samples.count)
                let valid = Double(samples.count) >= 0.75 * Double(3600 / Self.recordSeconds)
                let cell = try #require(row.firstMatch(of: try Regex("data-end=\"\(end)\"><span class=\"(\\w+)\" data-valid=\"(\\w+)\" data-value=\"([-0-9.]+)\"")),
                                        "\(ch.code) hour \(h) in \(row)")
                let shown = try #require(Double(String(cell.output[3].substring ?? "")))
                #expect(abs(shown - mean) <= 0.5 * pow(10, -Double(ch.decimals)) + 1e-9, "\(ch.code) hour \(h): \(shown) vs \(mean)")
                #expect(cell.output[2].substring == (valid ? "true" : "false"), "\(ch.code) hour \(h) validity")
                let expectedClass = !valid ? "invalid" : (ch.code == "PM10" && mean > 100) ? "exceed" : "avg"
                #expect(cell.output[1].substring.map(String.init) == expectedClass, "\(ch.code) hour \(h)")
            }
        }
        // VN_AQI: the stored hourly index of the hour shown.
        let aqi = try #require(page.firstMatch(of: /data-aqi="(\d+)" data-end="(\d+)"/))
        let aqiEnd = try #require(Int64(aqi.output.2))
        let stored = try await reader.aqi(period: "1h", after: aqiEnd - 1, through: aqiEnd).first
        #expect(stored?.aqi == Int(aqi.output.1), "page AQI \(aqi.output.1) vs stored \(String(describing: stored))")

        // Outbox and alarms.
        let province = Self.row("data-target=\"province\"", in: page)
        #expect(page.contains("Last error: upload to 127.0.0.1"), "\(province)")
        #expect(Self.attribute("data-pending", in: Self.row("data-target=\"local\"", in: page)) == "0")
        for alarm in ["CO: 02 fault", "Uploads to province failing", "Bus lan, device 9: offline", "Calibration: NO2"] {
            #expect(page.contains(alarm), "alarm \(alarm)")
        }
        // The seeded last hour is above PM10's limit (unless an hour closed while the test ran).
        let latestHour = hourly.matches(of: /data-end="(\d+)"/).compactMap { Int64($0.output.1) }.max()
        if latestHour == hourEnd { #expect(page.contains("PM10 1 h average"), "exceedance alarm") }
        // Charts: one per channel, with the day's records.
        let points = page.firstMatch(of: /data-channel="PM2,5" data-points="(\d+)"/).flatMap { Int($0.output.1) } ?? 0
        #expect(points >= 100, "PM2,5 chart has \(points) points")

        // /metrics: the same state in Prometheus text.
        let metrics = try await HTTPFetch.get(port: port, "/metrics")
        #expect(metrics.status == 200 && metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        let m = Self.samples(metrics.body)
        #expect(m["quantrac_channel_status{channel=\"NO2\"}"] == 1 && m["quantrac_channel_status{channel=\"CO\"}"] == 2)
        #expect(m["quantrac_channel_value{bus=\"lan\",channel=\"PM2,5\",unit=\"µg/Nm3\"}"] != nil)
        let polls9 = m["quantrac_device_polls_total{bus=\"lan\",device=\"9\"}"] ?? 0
        #expect(polls9 >= 3 && m["quantrac_device_errors_total{bus=\"lan\",device=\"9\"}"] == polls9, "every poll of the absent slave failed")
        #expect((m["quantrac_device_polls_total{bus=\"lan\",device=\"1\"}"] ?? 0) >= 3 && m["quantrac_device_errors_total{bus=\"lan\",device=\"1\"}"] == 0)
        #expect(m["quantrac_device_health{bus=\"lan\",device=\"9\",state=\"offline\"}"] == 1)
        // Response time per device: the absent slave cost its whole timeout (300 ms), the live one much less.
        let response9 = try #require(m["quantrac_device_response_seconds{bus=\"lan\",device=\"9\"}"])
        let response1 = try #require(m["quantrac_device_response_seconds{bus=\"lan\",device=\"1\"}"])
        #expect(response9 >= 0.29 && response9 < 1 && response1 < 0.2, "device 9 \(response9) s, device 1 \(response1) s")
        #expect((m["quantrac_bus_poll_latency_seconds_count{bus=\"lan\"}"] ?? 0) >= 3)
        #expect((m["quantrac_target_backlog_files{target=\"province\"}"] ?? 0) >= 1 && m["quantrac_target_failing{target=\"province\"}"] == 1)
        #expect(m["quantrac_target_backlog_files{target=\"local\"}"] == 0 && m["quantrac_target_last_success_timestamp_seconds{target=\"local\"}"] != nil)
        #expect((m["quantrac_disk_used_bytes"] ?? 0) > 0 && m["quantrac_calibrations_active"] == 1 && m["quantrac_storage_failing"] == 0)
        // The clock: what the kernel says, read independently (Python ctypes on adjtimex).
        let oracle = try TestProcess.python(script: Repository.fixtures.appendingPathComponent("clock_sync.py"), arguments: [], logDirectory: dir)
        _ = oracle.waitForExit(timeout: .seconds(20))
        let kernelSynced = oracle.stdoutText.hasPrefix("synchronized=1")
        #expect(m["quantrac_clock_synchronized{source=\"adjtimex\"}"] == (kernelSynced ? 1 : 0), "\(oracle.stdoutText)")
        #expect(page.contains("data-synchronized=\"\(kernelSynced)\""))
        let status = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--config", configFile.path],
                                     logDirectory: dir, label: "status")
        _ = status.waitForExit(timeout: .seconds(30))
        #expect(status.stdoutText.contains("clock:       \(kernelSynced ? "synchronised" : "NOT synchronised")"), "\(status.stdoutText)")

        // The server's manners.
        #expect(try await HTTPFetch.get(port: port, "/nope").status == 404)
        #expect(try await HTTPFetch.get(port: port, "/", method: "POST").status == 405)
        let head = try await HTTPFetch.get(port: port, "/metrics", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty && Int(head.headers["content-length"] ?? "") ?? 0 > 1000)
        let json = try await HTTPFetch.get(port: port, "/status")
        #expect(json.headers["content-type"] == "application/json" && json.body.contains("\"station\":\"HN_QTMT_KHI001\""))

        // Headless Chromium renders the page: its DOM shows the stored values; the screenshot is kept.
        let artifacts = Repository.binary("quantracd").deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("test-artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let screenshot = artifacts.appendingPathComponent("status-page.png")
        try? FileManager.default.removeItem(at: screenshot)
        let dom = try Chromium.run(["--dump-dom", "http://127.0.0.1:\(port)/"], in: dir, label: "chromium-dom")
        #expect(dom.contains("Số liệu tức thời · Live values"), "UTF-8 text survives: \(dom.prefix(300))")
        try await Self.checkLiveRows(in: dom, config: config, store: reader, source: "Chromium")
        _ = try Chromium.run(["--screenshot=\(screenshot.path)", "--window-size=1280,800", "http://127.0.0.1:\(port)/"], in: dir, label: "chromium-shot")
        let png = try Data(contentsOf: screenshot)
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "\(png.count) bytes")
        print("StatusPageTests: screenshot \(screenshot.path) (\(png.count) bytes)")

        // The daemon's log is journald's: a priority prefix on every line.
        let lines = daemon.stderrText.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.wholeMatch(of: /<[2-7]>.*/) != nil }, "\(lines.filter { $0.wholeMatch(of: /<[2-7]>.*/) == nil })")
        #expect(lines.contains { $0.hasPrefix("<5>quantracd starting") })
        #expect(daemon.stop() == 0)
    }

    /// A port already taken: the page is off with one clear error, and polling goes on. Started with
    /// stderr on a file named by `$JOURNAL_STREAM`, as systemd does, the log gets priority prefixes by itself.
    @Test func aTakenPortLeavesAcquisitionRunningAndJournalStreamSelectsPrefixes() async throws {
        let dir = try makeTemporaryDirectory("status-page-busy")
        let data = dir.appendingPathComponent("data"), receiver = dir.appendingPathComponent("receiver")
        try FileManager.default.createDirectory(at: receiver, withIntermediateDirectories: true)
        let passwordFile = dir.appendingPathComponent("ftp.pass")
        try "pw".write(to: passwordFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
        let taken = try LoopbackPort.listening()
        defer { close(taken.fd) }
        let simConfig = dir.appendingPathComponent("sim.toml")
        try stationTOML(dataDir: data, simPort: 502, receiver: receiver, deadFTPPort: 1, passwordFile: passwordFile, listen: "127.0.0.1:0")
            .write(to: simConfig, atomically: true, encoding: .utf8)
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--config", simConfig.path, "--port", "lan=0"],
                                  logDirectory: dir, label: "quantrac-sim")
        defer { sim.stop() }
        let simPort = try #require(Int(try sim.waitForLine(prefix: "READY lan ", timeout: .seconds(20)).split(separator: " ").last ?? ""))
        let configFile = dir.appendingPathComponent("station.toml")
        try stationTOML(dataDir: data, simPort: simPort, receiver: receiver, deadFTPPort: 1, passwordFile: passwordFile, listen: "127.0.0.1:\(taken.port)")
            .write(to: configFile, atomically: true, encoding: .utf8)

        let log = dir.appendingPathComponent("journal.stderr")
        #expect(FileManager.default.createFile(atPath: log.path, contents: nil))
        var st = stat()
        #expect(stat(log.path, &st) == 0)
        let daemon = try TestProcess(executable: URL(fileURLWithPath: "/bin/sh"),
                                     arguments: ["-c", "exec \"$0\" --config \"$1\" 2>>\"$2\"", Repository.binary("quantracd").path, configFile.path, log.path],
                                     environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"], logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        let text = { String(decoding: FileManager.default.contents(atPath: log.path) ?? Data(), as: UTF8.self) }
        try await waitUntilAsync(timeout: .seconds(20), what: "the bind error") { text().contains("status page disabled") }
        #expect(text().contains("<3>status page disabled: cannot listen on 127.0.0.1:\(taken.port): Address already in use; polling and delivery go on"),
                "\(text())")
        // Acquisition is not affected: live values through the control socket, and files delivered.
        try await waitUntilAsync(timeout: .seconds(40), what: "a delivered file") {
            !((try? FileManager.default.contentsOfDirectory(atPath: receiver.path)) ?? []).filter { $0.hasSuffix(".txt") }.isEmpty
        }
        let status = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--json", "--config", configFile.path],
                                     logDirectory: dir, label: "status")
        _ = status.waitForExit(timeout: .seconds(30))
        #expect(status.stdoutText.contains("\"code\":\"PM2,5\"") && status.stdoutText.contains("\"status_code\":\"00\""), "\(status.stdoutText)")
        let lines = text().split(separator: "\n")
        #expect(lines.allSatisfy { $0.wholeMatch(of: /<[2-7]>.*/) != nil }, "\(text())")
        #expect(daemon.isRunning)
    }

    // MARK: helpers

    /// Checks every live row that has a value against the reading stored at its tick.
    static func checkLiveRows(in html: String, config: StationConfig, store: Store, source: String) async throws {
        var checked = 0
        for ch in config.channels {
            let row = row("<tr data-channel=\"\(ch.code)\" data-status=", in: html)
            // A channel in fault has no value (its cell has no data-value).
            guard let time = attribute("data-time-ms", in: row).flatMap(Int64.init),
                  let cell = row.firstMatch(of: /class="num value" data-value="([^"]*)">([^<]*)</) else { continue }
            let raw = String(cell.output.1), shown = String(cell.output.2)
            // Readings reach the database within the commit window; the board has them at once.
            var readings: [Reading] = []
            try await waitUntilAsync(timeout: .seconds(30), what: "\(source): the reading of \(ch.code) at \(time) stored") {
                readings = try await store.readings(in: Interval(start: time / 1000, end: time / 1000 + 1)).filter { $0.channel == ch.code }
                return !readings.isEmpty
            }
            let stored = try #require(readings.first?.value, "\(source): no stored value of \(ch.code) at \(time)")
            #expect(Double(raw) == stored, "\(source) \(ch.code): page \(raw), database \(stored)")
            #expect(shown == RegulatorFileRenderer.format(stored, decimals: ch.decimals), "\(source) \(ch.code): shown \(shown)")
            checked += 1
        }
        #expect(checked >= 4, "\(source): \(checked) live values checked")
    }

    /// The `<tr …>…</tr>` starting at the first occurrence of `marker` ("" if absent).
    static func row(_ marker: String, in html: String) -> String {
        guard let r = html.range(of: marker) else { return "" }
        let rest = html[r.lowerBound...]
        return String(rest[..<(rest.range(of: "</tr>")?.upperBound ?? rest.endIndex)])
    }

    static func attribute(_ name: String, in text: String) -> String? {
        guard let r = text.range(of: "\(name)=\"") else { return nil }
        return String(text[r.upperBound...].prefix { $0 != "\"" })
    }

    /// Prometheus text → value by `name{labels}`.
    static func samples(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let v = Double(line[line.index(after: space)...]) else { continue }
            out[String(line[..<space])] = v
        }
        return out
    }
}

/// Debian's Chromium, headless, with a profile of its own (parallel runs never share one).
enum Chromium {
    static func run(_ arguments: [String], in dir: URL, label: String) throws -> String {
        guard let chromium = TestProcess.findExecutable("chromium") else {
            throw TestHarnessError("chromium not found (scripts/install-deps.sh installs Debian's chromium)")
        }
        var args = ["--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--virtual-time-budget=3000",
                    "--user-data-dir=\(dir.appendingPathComponent("chromium-\(label)").path)"]
        if getuid() == 0 { args.append("--no-sandbox") }  // Chromium refuses to run as root with its sandbox
        defer { try? FileManager.default.removeItem(at: dir.appendingPathComponent("chromium-\(label)")) }  // its profile: megabytes
        let p = try TestProcess(executable: chromium, arguments: args + arguments, logDirectory: dir, label: label)
        guard p.waitForExit(timeout: .seconds(50)) == 0 else {
            p.stop()
            throw TestHarnessError("chromium \(arguments.joined(separator: " ")) failed (\(p.exitDescription))\n" + p.logReport())
        }
        return p.stdoutText
    }
}

/// A plain HTTP/1.1 request over a loopback socket, on a thread of its own.
enum HTTPFetch {
    struct Response: Sendable {
        let status: Int
        let headers: [String: String]
        let body: String
    }

    static func get(port: Int, _ path: String, method: String = "GET") async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try blockingGet(port: port, path, method: method) }) }.start()
        }
    }

    static func blockingGet(port: Int, _ path: String, method: String) throws -> Response {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestHarnessError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw TestHarnessError("connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))") }
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Length: 0\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        guard let split = bytes.firstRange(of: [13, 10, 13, 10]) else { throw TestHarnessError("no HTTP response from 127.0.0.1:\(port)\(path)") }
        let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Response(status: status, headers: headers, body: String(decoding: bytes[split.upperBound...], as: UTF8.self))
    }
}

/// Loopback ports for tests: one nobody listens on, or one held by the test.
enum LoopbackPort {
    /// A port that was free a moment ago and is closed again (connections are refused).
    static func closed() throws -> Int {
        let held = try listening()
        close(held.fd)
        return held.port
    }

    /// A listening socket on a free port; the caller closes `fd`.
    static func listening() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard ok else {
            close(fd)
            throw TestHarnessError("cannot bind a loopback port: \(String(cString: strerror(errno)))")
        }
        return (fd, Int(UInt16(bigEndian: a.sin_port)))
    }
}
