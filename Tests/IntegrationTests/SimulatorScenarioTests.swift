import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Storage
import Testing

/// The daemon against `quantrac-sim` scenarios: analyzers on Modbus TCP, on a shared RTU line and on
/// ASCII lines (pseudo-terminals the simulator creates), with status registers and scripted faults —
/// calibration, timeouts, exceptions, garbage, power cycles. Values and statuses are checked in the
/// daemon's database and in the files it delivers; fault windows come from the simulator's log.
@Suite(.serialized, .ownThread)
struct SimulatorScenarioTests {
    /// A fault window as the simulator logged it (`fault start … ms=…` / `fault end … ms=…`), epoch ms.
    struct Window {
        let start: Int64
        let end: Int64
    }

    /// One run: a station and a scenario in a fresh directory, the simulator, and the daemon.
    final class Run: @unchecked Sendable {
        // Invariant for @unchecked Sendable: every stored property is set in init and never changed;
        // TestProcess is Sendable.
        let dir: URL
        let sim: TestProcess
        /// The station file the simulator wrote for the daemon (`--station-out`).
        let station: URL
        /// Where the daemon delivers (a file:// target), when the station has one.
        let receiver: URL
        private(set) var daemon: TestProcess?
        /// The LD_PRELOAD shim for ASCII buses (libserialport cannot open a pty without it).
        let shim: URL?

        /// Writes `station` (with `DATA` and `RECEIVER` replaced by paths in the run's directory) and
        /// `scenario` (`station = "station.toml"` is prepended), starts the simulator and waits for its READY lines.
        init(_ label: String, station: String, scenario: String, buses: [String], ascii: Bool = false, trace: Bool = false) throws {
            dir = try makeTemporaryDirectory(label)
            receiver = dir.appendingPathComponent("receiver")
            try FileManager.default.createDirectory(at: receiver, withIntermediateDirectories: true)
            let stationIn = dir.appendingPathComponent("station.toml")
            try station.replacingOccurrences(of: "DATA", with: dir.appendingPathComponent("data").path)
                .replacingOccurrences(of: "RECEIVER", with: receiver.path)
                .write(to: stationIn, atomically: true, encoding: .utf8)
            let scenarioFile = dir.appendingPathComponent("scenario.toml")
            try ("station = \"station.toml\"\n" + scenario).write(to: scenarioFile, atomically: true, encoding: .utf8)
            self.station = dir.appendingPathComponent("served.toml")
            shim = ascii ? try SerialAnalyzerTests.buildShim(in: dir) : nil
            sim = try TestProcess(executable: Repository.binary("quantrac-sim"),
                                  arguments: ["--scenario", scenarioFile.path, "--station-out", self.station.path] + (trace ? ["--trace"] : []),
                                  logDirectory: dir, label: "sim")
            for bus in buses { _ = try sim.waitForLine(prefix: "READY \(bus) ", timeout: .seconds(20)) }
        }

        deinit {
            daemon?.stop()
            sim.stop()
        }

        func startDaemon() throws -> TestProcess {
            let d = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", station.path, "--log-level", "debug"],
                                    environment: shim.map { ["LD_PRELOAD": $0.path] } ?? [:], logDirectory: dir, label: "quantracd")
            daemon = d
            return d
        }

        /// Every stored reading so far, oldest first (empty before the database exists).
        func readings() async throws -> [Reading] {
            let path = dir.appendingPathComponent("data/quantrac.sqlite").path
            guard FileManager.default.fileExists(atPath: path) else { return [] }
            do {
                let store = try Store(readOnlyPath: path)
                return try await store.readings(in: Interval(start: 0, end: 4_000_000_000))
            } catch where "\(error)".contains("no such table") {
                return []  // the daemon has created the file and not yet its tables
            }
        }

        func readings(_ code: String) async throws -> [Reading] { try await readings().filter { $0.channel == code } }

        /// The fault windows the simulator logged for one device and kind (an open window ends at Int64.max).
        func windows(bus: String, slave: Int, kind: String) -> [Window] {
            var out: [Window] = []
            var open: Int64?
            for line in sim.stderrText.split(separator: "\n") where line.contains(" bus=\(bus) slave=\(slave) kind=\(kind) ") {
                guard let ms = line.split(separator: " ").first(where: { $0.hasPrefix("ms=") }).flatMap({ Int64($0.dropFirst(3)) }) else { continue }
                if line.contains("fault start") { open = ms } else if let start = open {
                    out.append(Window(start: start, end: ms))
                    open = nil
                }
            }
            if let open { out.append(Window(start: open, end: .max)) }
            return out
        }

        /// Lines `CODE value unit time status` per delivered file, oldest first.
        func files() -> [(name: String, lines: [String: (value: String, status: String)])] {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: receiver.path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
            return names.map { name in
                let text = (try? String(contentsOf: receiver.appendingPathComponent(name), encoding: .utf8)) ?? ""
                var lines: [String: (String, String)] = [:]
                for line in text.split(separator: "\r\n") {
                    let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                    if f.count == 5 { lines[f[0]] = (f[1], f[4]) }
                }
                return (name, lines)
            }
        }

        /// The simulator's and the daemon's logs, for failure messages.
        func logs() -> String { sim.logReport() + "\n" + (daemon.map { String($0.stderrText.suffix(6000)) } ?? "") }
    }

    /// Whether a reading stamped `tick` was polled inside `w`, certainly outside it, or too close to a
    /// boundary to say: a tick's poll happens within `slack` after the tick.
    enum Side { case inside, outside, boundary }

    static func side(_ tick: Timestamp, _ w: Window, slack: Int64 = 400) -> Side {
        let t = tick.milliseconds
        if t >= w.start, t + slack < w.end { return .inside }
        if t + slack < w.start || t >= w.end { return .outside }
        return .boundary
    }

    static func close(_ a: Double?, _ b: Double) -> Bool { a.map { abs($0 - b) < 1e-4 } ?? false }

    // MARK: (a) the analyzer's own status register

    @Test func analyzerStatusRegisterCalibratingMarksExactlyThoseReadingsAndFiles() async throws {
        let run = try Run("sim-status-register", station: """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "DATA"
            record_interval = "2s"
            poll_interval = "500ms"
            record_delay = "1s"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = 1
            timeout = "300ms"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            slave = 1
            address = 0
            type = "float32"
            status_address = 10
            status_calibrating = [2, 3]
            status_fault_mask = 0x8000
            [[channel]]
            code = "TSS"
            unit = "mg/L"
            bus = "lan"
            slave = 2
            address = 0
            type = "float32"
            byte_order = "CDAB"
            [[target]]
            name = "dept"
            url = "file://RECEIVER"
            """, scenario: """
            [[bus]]
            name = "lan"
            port = 0
            [[channel]]
            code = "COD"
            base = 41.2
            span = 80
            [[channel]]
            code = "TSS"
            base = 18.5
            [[device]]
            bus = "lan"
            slave = 1
            [[device.fault]]
            kind = "calibrating"
            at = "4s"
            for = "4s"
            """, buses: ["lan"])
        let daemon = try run.startDaemon()
        // Two files after the window closed carry COD 00 again.
        try await waitUntilAsync(timeout: .seconds(45), what: "files after the calibration window") {
            guard let w = run.windows(bus: "lan", slave: 1, kind: "calibrating").first, w.end != .max else { return false }
            return run.files().filter { file in Self.fileEnd(file.name) > w.end + 2000 }.count >= 2
        }
        let w = try #require(run.windows(bus: "lan", slave: 1, kind: "calibrating").first)
        #expect(w.end - w.start >= 3900 && w.end - w.start <= 4500, "the simulator keeps the 4 s window")

        let cod = try await run.readings("COD"), tss = try await run.readings("TSS")
        var calibrating = 0
        for r in cod {
            switch Self.side(r.time, w) {
            case .inside:
                #expect(r.status == .calibrating && Self.close(r.value, 80), "\(r) inside the window\n\(run.logs())")
                calibrating += 1
            case .outside:
                #expect(r.status == .measuring && Self.close(r.value, 41.2), "\(r) outside the window")
            case .boundary:
                // Value (registers 0–1) and status word (register 10) are two requests: at the very edge of
                // the window they may straddle it, as with a real analyzer.
                #expect(r.status != .fault && (Self.close(r.value, 80) || Self.close(r.value, 41.2)), "\(r)")
            }
        }
        #expect(calibrating >= 6, "a 4 s window at 500 ms polls: \(calibrating) readings certainly inside")
        #expect(cod.filter { $0.status == .calibrating }.count <= 9)
        #expect(tss.allSatisfy { $0.status == .measuring && Self.close($0.value, 18.5) }, "the other analyzer is not touched")

        // Files: COD is 01 exactly in the intervals holding a calibrating reading; TSS always 00.
        let calibratingTicks = Set(cod.filter { $0.status == .calibrating }.map { $0.time.milliseconds })
        var files01 = 0
        for file in run.files() {
            let end = Self.fileEnd(file.name), start = end - 2000
            let expected = calibratingTicks.contains { $0 >= start && $0 < end } ? "01" : "00"
            #expect(file.lines["COD"]?.status == expected, "\(file.name): COD \(file.lines["COD"].map { "\($0)" } ?? "-"), expected \(expected)")
            #expect(file.lines["TSS"]?.status == "00" && file.lines["TSS"]?.value == "18.50", "\(file.name)")
            if expected == "01" { files01 += 1 }
        }
        #expect(files01 >= 2 && files01 <= 3, "a 4 s window touches 2 or 3 two-second intervals, got \(files01)")
        #expect(daemon.isRunning)
    }

    /// The end of a file's interval (epoch ms) from its name `PREFIX_yyyyMMddHHmmss.txt` (UTC+7).
    static func fileEnd(_ name: String) -> Int64 {
        let stamp = String(name.dropLast(4).suffix(14))
        var c = DateComponents()
        c.timeZone = TimeZone(secondsFromGMT: 7 * 3600)
        c.year = Int(stamp.prefix(4))
        c.month = Int(stamp.dropFirst(4).prefix(2))
        c.day = Int(stamp.dropFirst(6).prefix(2))
        c.hour = Int(stamp.dropFirst(8).prefix(2))
        c.minute = Int(stamp.dropFirst(10).prefix(2))
        c.second = Int(stamp.dropFirst(12).prefix(2))
        let date = Calendar(identifier: .gregorian).date(from: c) ?? Date(timeIntervalSince1970: 0)
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    // MARK: (b) an absent slave on a shared RTU line

    @Test func aSilentSlaveOnASharedRTULineCostsTheOthersAtMostOneTimeoutPerCycle() async throws {
        // Slave 2 has four channels read one request each: were it asked again after its first timeout,
        // one cycle would take 4 × 300 ms > the 1 s poll interval, and ticks would be skipped.
        var channels = ""
        for (code, slave, address) in [("A", 1, 0), ("B1", 2, 0), ("B2", 2, 10), ("B3", 2, 20), ("B4", 2, 30), ("C", 3, 0)] {
            channels += "[[channel]]\ncode = \"\(code)\"\nunit = \"mg/L\"\nbus = \"rs485\"\nslave = \(slave)\naddress = \(address)\ntype = \"uint16\"\n"
        }
        let run = try Run("sim-shared-rtu", station: """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "DATA"
            record_interval = "5s"
            poll_interval = "1s"
            record_delay = "2s"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "/dev/null"
            timeout = "300ms"
            reconnect_max = "2s"
            one_request_per_field = true
            \(channels)
            """, scenario: """
            [[channel]]
            code = "A"
            base = 11
            [[channel]]
            code = "C"
            base = 31
            [[channel]]
            code = "B1"
            base = 21
            [[device]]
            bus = "rs485"
            slave = 2
            [[device.fault]]
            kind = "timeout"
            at = "0s"
            for = "8s"
            """, buses: ["rs485"], trace: true)
        let daemon = try run.startDaemon()
        try await waitUntilAsync(timeout: .seconds(40), what: "slave 2 answering again after its 8 s timeout window") {
            let b1 = try await run.readings("B1")
            return b1.contains { $0.status == .fault } && b1.suffix(3).count == 3 && b1.suffix(3).allSatisfy { $0.status == .measuring }
        }
        let all = try await run.readings()
        let a = all.filter { $0.channel == "A" }, c = all.filter { $0.channel == "C" }, b1 = all.filter { $0.channel == "B1" }
        // The others' values arrive in every cycle, correct.
        #expect(a.allSatisfy { $0.status == .measuring && $0.value == 11 } && c.allSatisfy { $0.status == .measuring && $0.value == 31 },
                "\(a.filter { $0.status != .measuring }) \(c.filter { $0.status != .measuring })\n\(run.logs())")
        let ticks = a.map(\.time.milliseconds)
        let skipped = zip(ticks, ticks.dropFirst()).map { ($1 - $0) / 1000 - 1 }.reduce(0, +)
        let deadTicks = b1.filter { $0.reason == "timeout" }.count
        #expect(deadTicks >= 3, "slave 2 was asked (and timed out) in \(deadTicks) cycles")
        // Stored ticks are one poll interval apart: no cycle overran (at most one skip for a stalled machine).
        #expect(skipped <= 1, "\(skipped) ticks skipped in \(ticks.count): \(ticks)")
        #expect(Set(all.map(\.time)).count == ticks.count, "every stored tick has slave 1's value")

        // The delay itself, per cycle, from the simulator's trace: slave 3 is asked at most one timeout
        // (300 ms, and less than two) after slave 1 in every cycle in which slave 2 was asked.
        var delays: [Int64] = []
        var first: Int64?, sawSilent = false
        for line in run.sim.stderrText.split(separator: "\n") where line.contains(" request bus=rs485 ") {
            guard let ms = line.split(separator: " ").first(where: { $0.hasPrefix("ms=") }).flatMap({ Int64($0.dropFirst(3)) }) else { continue }
            if line.contains(" slave=1 ") { first = ms; sawSilent = false }
            if line.contains(" slave=2 "), line.contains("reply=silent") { sawSilent = true }
            if line.contains(" slave=3 "), let f = first, sawSilent { delays.append(ms - f) }
        }
        #expect(delays.count >= 3, "cycles with a silent slave 2: \(delays.count)")
        #expect(delays.allSatisfy { $0 >= 250 && $0 < 600 }, "slave 3 delayed by one timeout (300 ms) per cycle, not two: \(delays) ms")
        #expect(b1.suffix(3).allSatisfy { $0.value == 21 }, "slave 2 came back by itself")
        #expect(daemon.isRunning)
    }

    // MARK: (c) garbage and exceptions

    @Test func garbageAndExceptionsFaultOnlyTheirDevice() async throws {
        var channels = ""
        for (code, bus, slave) in [("R1", "rs485", 1), ("R2", "rs485", 2), ("R3", "rs485", 3), ("T1", "lan", 1), ("T2", "lan", 2), ("T3", "lan", 3)] {
            channels += "[[channel]]\ncode = \"\(code)\"\nunit = \"mg/L\"\nbus = \"\(bus)\"\nslave = \(slave)\naddress = 0\ntype = \"float32\"\n"
        }
        var scenario = """
            [[bus]]
            name = "lan"
            port = 0

            """
        for (i, code) in ["R1", "R2", "R3", "T1", "T2", "T3"].enumerated() { scenario += "[[channel]]\ncode = \"\(code)\"\nbase = \(10 + i).5\n" }
        for (bus, slave, kind) in [("rs485", 1, "garbage"), ("rs485", 2, "exception"), ("lan", 1, "garbage"), ("lan", 2, "exception")] {
            scenario += "[[device]]\nbus = \"\(bus)\"\nslave = \(slave)\n[[device.fault]]\nkind = \"\(kind)\"\nat = \"3s\"\nfor = \"4s\"\n"
        }
        let run = try Run("sim-garbage", station: """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "DATA"
            record_interval = "5s"
            poll_interval = "500ms"
            record_delay = "2s"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "/dev/null"
            timeout = "300ms"
            reconnect_max = "1s"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = 1
            timeout = "300ms"
            reconnect_max = "1s"
            \(channels)
            """, scenario: scenario, buses: ["rs485", "lan"])
        let daemon = try run.startDaemon()
        try await waitUntilAsync(timeout: .seconds(40), what: "every channel measuring again after the 4 s fault windows") {
            guard let w = run.windows(bus: "rs485", slave: 1, kind: "garbage").first, w.end != .max else { return false }
            let last = try await run.readings().suffix(6)
            return last.count == 6 && last.allSatisfy { $0.status == .measuring && $0.time.milliseconds > w.end + 1000 }
        }
        let all = try await run.readings()
        for (i, code) in ["R1", "R2", "R3", "T1", "T2", "T3"].enumerated() {
            let bus = code.hasPrefix("R") ? "rs485" : "lan", slave = Int(String(code.last!))!
            let kind = slave == 1 ? "garbage" : "exception"
            let window = run.windows(bus: bus, slave: slave, kind: kind).first ?? Window(start: .max, end: .max)
            var faulted = 0
            for r in all where r.channel == code {
                let side = slave == 3 ? Side.outside : Self.side(r.time, window)
                if side == .outside {
                    #expect(r.status == .measuring && Self.close(r.value, Double(10 + i) + 0.5), "\(r)\n\(run.logs())")
                }
                guard r.status == .fault else { continue }
                #expect(side != .outside, "\(r) outside its device's fault window")
                faulted += 1
                if kind == "exception" {
                    #expect(r.reason == "exception server device failure", "\(r)")
                } else {
                    #expect(["bad CRC", "invalid response", "timeout"].contains(r.reason ?? ""), "garbage gives \(r.reason ?? "-")")
                }
            }
            if slave != 3 { #expect(faulted >= 5, "\(code): \(faulted) faulted readings in a 4 s window at 500 ms polls") }
        }
        #expect(daemon.isRunning, "garbage and exceptions crash nothing")
    }

    // MARK: (d) power cycles

    @Test func powerCycledDevicesComeBackWithoutARestart() async throws {
        let run = try Run("sim-power-cycle", station: """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "DATA"
            record_interval = "5s"
            poll_interval = "500ms"
            record_delay = "2s"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = 1
            timeout = "300ms"
            reconnect_max = "1s"
            [[bus]]
            name = "rs485"
            transport = "modbus-rtu"
            device = "/dev/null"
            timeout = "300ms"
            reconnect_max = "1s"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            slave = 1
            address = 0
            type = "float32"
            [[channel]]
            code = "NH4"
            unit = "mg/L"
            bus = "rs485"
            slave = 5
            address = 0
            type = "int32"
            byte_order = "CDAB"
            scale = 0.01
            """, scenario: """
            [[bus]]
            name = "lan"
            port = 0
            [[channel]]
            code = "COD"
            base = 41.25
            [[channel]]
            code = "NH4"
            base = 2.37
            [[device]]
            bus = "lan"
            slave = 1
            [[device.fault]]
            kind = "power_cycle"
            at = "3s"
            for = "3s"
            [[device]]
            bus = "rs485"
            slave = 5
            [[device.fault]]
            kind = "power_cycle"
            at = "3s"
            for = "3s"
            """, buses: ["lan", "rs485"])
        let daemon = try run.startDaemon()
        try await waitUntilAsync(timeout: .seconds(40), what: "both devices answering again after their power cycle") {
            guard let w = run.windows(bus: "lan", slave: 1, kind: "power_cycle").first, w.end != .max else { return false }
            let all = try await run.readings()
            return ["COD", "NH4"].allSatisfy { code in
                let mine = all.filter { $0.channel == code }
                return mine.contains { $0.status == .fault } && mine.suffix(3).count == 3
                    && mine.suffix(3).allSatisfy { $0.status == .measuring && $0.time.milliseconds > w.end }
            }
        }
        let all = try await run.readings()
        let cod = all.filter { $0.channel == "COD" }, nh4 = all.filter { $0.channel == "NH4" }
        let lanWindow = try #require(run.windows(bus: "lan", slave: 1, kind: "power_cycle").first)
        #expect(cod.filter { Self.side($0.time, lanWindow) == .inside }.allSatisfy { $0.status == .fault },
                "the TCP port is closed during the power cycle\n\(run.logs())")
        #expect(cod.filter { $0.status == .fault }.allSatisfy { ["connection failed", "connection lost", "connection", "timeout"].contains($0.reason ?? "") },
                "\(Set(cod.compactMap(\.reason)))")
        #expect(nh4.filter { $0.status == .fault }.allSatisfy { $0.reason == "timeout" || $0.reason?.hasPrefix("device offline") == true },
                "\(Set(nh4.compactMap(\.reason)))")
        #expect(cod.suffix(3).allSatisfy { Self.close($0.value, 41.25) } && nh4.suffix(3).allSatisfy { Self.close($0.value, 2.37) })
        #expect(daemon.isRunning && daemon.stderrText.contains("connected to tcp://127.0.0.1:"), "reconnected by itself, same process")
    }

    // MARK: (e) ASCII analyzers

    static let asciiStation = #"""
        [station]
        prefix = "HN_ABCD_KHI001"
        kind = "stack-gas"
        data_dir = "DATA"
        record_interval = "5s"
        poll_interval = "500ms"
        record_delay = "2s"
        [[bus]]
        name = "line"
        transport = "ascii-serial"
        protocol = "line"
        device = "/dev/null"
        timeout = "300ms"
        [[bus]]
        name = "gas"
        transport = "ascii-serial"
        protocol = "bayern-hessen"
        device = "/dev/null"
        timeout = "300ms"
        reconnect_max = "1s"
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "line"
        request = 'RD?\r\n'
        response = 'COD=(?<value>[-+0-9.]+);.*ST=(?<status>\w)'
        checksum = "xor8"
        status_map = { "M" = "measuring", "C" = "calibrating", "F" = "fault" }
        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "line"
        request = 'RD?\r\n'
        response = 'TSS=(?<value>[-+0-9.]+)'
        checksum = "xor8"
        scale = 2
        [[channel]]
        code = "pH"
        unit = "-"
        bus = "line"
        request = "PH?\r"
        terminator = "\r"
        response = '^pH (?<value>[0-9.]+)$'
        [[channel]]
        code = "SO2"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 1
        [[channel]]
        code = "NO"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 2
        [[channel]]
        code = "NO2"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 1
        bh_component = 3
        decimals = 5
        [[channel]]
        code = "PM10"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 2
        """#

    @Test func lineAndBayernHessenAnalyzersOnSimulatorPtys() async throws {
        let run = try Run("sim-ascii", station: Self.asciiStation, scenario: """
            [[channel]]
            code = "COD"
            base = 41.2
            span = 90
            answer = "COD={COD};TSS={TSS};ST={status}*"
            [[channel]]
            code = "TSS"
            base = 37.04
            [[channel]]
            code = "pH"
            base = 7.45
            answer = "pH {pH}"
            [[channel]]
            code = "SO2"
            base = 12.34
            span = 400
            [[channel]]
            code = "NO"
            base = 5.678
            [[channel]]
            code = "NO2"
            base = 0.04567
            [[channel]]
            code = "PM10"
            base = 45.6
            [[device]]
            bus = "line"
            [[device.fault]]
            kind = "calibrating"
            at = "3s"
            for = "3s"
            [[device]]
            bus = "gas"
            slave = 1
            [[device.fault]]
            kind = "calibrating"
            at = "3s"
            for = "3s"
            [[device]]
            bus = "gas"
            slave = 2
            [[device.fault]]
            kind = "timeout"
            at = "0s"
            for = "6s"
            """, buses: ["line", "gas"], ascii: true)
        let daemon = try run.startDaemon()
        // Analyzer 2 is silent from the start: offline, shown by `quantrac status`, while analyzer 1 is read.
        try await waitUntilAsync(timeout: .seconds(20), what: "analyzer 2 offline") { daemon.stderrText.contains("device 2 is offline") }
        let status = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--json", "--config", run.station.path],
                                     logDirectory: run.dir, label: "status")
        _ = status.waitForExit(timeout: .seconds(20))
        let compact = status.stdoutText.replacingOccurrences(of: " ", with: "")
        #expect(compact.contains("\"2\":\"offline\"") && compact.contains("\"1\":\"online\""), "\(status.stdoutText)\(status.stderrText)")

        try await waitUntilAsync(timeout: .seconds(40), what: "analyzer 2 back, calibrations over") {
            guard let w = run.windows(bus: "gas", slave: 2, kind: "timeout").first, w.end != .max else { return false }
            let pm = try await run.readings("PM10")
            return pm.suffix(2).count == 2 && pm.suffix(2).allSatisfy { $0.status == .measuring && $0.time.milliseconds > w.end }
        }
        let all = try await run.readings()
        let expected: [String: (base: Double, span: Double?)] = [
            "COD": (41.2, 90), "TSS": (37.04, nil), "pH": (7.45, nil), "SO2": (12.34, 400), "NO": (5.678, nil), "NO2": (0.04567, nil), "PM10": (45.6, nil),
        ]
        let lineWindow = try #require(run.windows(bus: "line", slave: 1, kind: "calibrating").first)
        let gasWindow = try #require(run.windows(bus: "gas", slave: 1, kind: "calibrating").first)
        for r in all {
            let (base, span) = try #require(expected[r.channel])
            if r.channel == "PM10" {
                // Silent for 6 s: faults only (timeouts, then "device offline"), then the right value again.
                #expect(r.status == .fault || (r.status == .measuring && Self.close(r.value, base)), "\(r)")
                continue
            }
            let w = ["COD", "TSS", "pH"].contains(r.channel) ? lineWindow : gasWindow
            // The line analyzer's status text belongs to COD (its status group); TSS and pH keep measuring
            // but carry the span value of the calibration (TSS) or their own (pH, no span given → base).
            let calibratingCodes: Set<String> = ["COD", "SO2", "NO", "NO2"]
            switch Self.side(r.time, w) {
            case .inside where calibratingCodes.contains(r.channel):
                #expect(r.status == .calibrating && Self.close(r.value, span ?? base), "\(r)\n\(run.logs())")
            case .outside:
                #expect(r.status == .measuring && Self.close(r.value, base), "\(r)\n\(run.logs())")
            default:
                #expect(r.status != .fault, "\(r)")
            }
        }
        let pm = all.filter { $0.channel == "PM10" }
        #expect(pm.contains { $0.reason?.hasPrefix("device offline, next try in") == true }, "an offline analyzer is not asked every poll")
        #expect(daemon.stderrText.contains("device 2 is online"), "it came back by itself")
        // While analyzer 2 was offline, analyzer 1 was read in every cycle.
        #expect(all.filter { $0.channel == "SO2" }.allSatisfy { $0.status != .fault }, "\(all.filter { $0.channel == "SO2" && $0.status == .fault })")
    }

    // MARK: shipped scenarios, errors

    static let scenarios = Repository.root.appendingPathComponent("Boards/scenarios")
    static let scenarioFiles = ((try? FileManager.default.contentsOfDirectory(atPath: scenarios.path)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()

    @Test func everyStationTemplateHasAScenario() {
        for name in ["ambient-air.toml", "surface-water.toml", "wastewater.toml", "stack-gas.toml", "demo.toml"] {
            #expect(Self.scenarioFiles.contains(name), "Boards/scenarios/\(name) is missing")
        }
    }

    /// Each shipped scenario serves its template (TCP buses moved to free ports); the station file the
    /// simulator writes passes `quantrac check` and `quantrac read` gets every channel at its level.
    @Test(arguments: scenarioFiles)
    func shippedScenarioServesItsStation(_ name: String) throws {
        let dir = try makeTemporaryDirectory("scenario-\(name)")
        let scenario = try ScenarioLoader.load(path: Self.scenarios.appendingPathComponent(name).path)
        let tcp = scenario.station.buses.filter { if case .modbusTCP = $0.transport { return true } else { return false } }.map(\.name)
        let station = dir.appendingPathComponent("station.toml")
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"),
                                  arguments: ["--scenario", Self.scenarios.appendingPathComponent(name).path, "--station-out", station.path,
                                              "--data-dir", dir.appendingPathComponent("data").path] + tcp.flatMap { ["--port", "\($0)=0"] },
                                  logDirectory: dir, label: "sim")
        defer { sim.stop() }
        for bus in scenario.station.buses { _ = try sim.waitForLine(prefix: "READY \(bus.name) ", timeout: .seconds(20)) }
        let check = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["check", "--config", station.path], logDirectory: dir, label: "check")
        #expect(check.waitForExit(timeout: .seconds(30)) == 0, "\(check.stdoutText)\(check.stderrText)")
        let read = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["read", "--json", "--config", station.path],
                                   logDirectory: dir, label: "read")
        _ = read.waitForExit(timeout: .seconds(30))
        struct Row: Decodable { let code: String; let value: Double?; let statusCode: String }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try decoder.decode([Row].self, from: Data(read.stdoutText.utf8))
        #expect(rows.map(\.code) == scenario.station.channels.map(\.code))
        for row in rows {
            let sim = try #require(scenario.channels[row.code])
            // At the start, every waveform is near its base (sine, ramp) or its typical level.
            let range = sim.waveform == .typical ? try #require(StationTemplateTests.simulatedLevels[row.code]) : (sim.base - 1)...(sim.base + 1)
            #expect(row.statusCode == "00" && range.contains(row.value ?? .nan), "\(name) \(row.code): \(row.statusCode) \(row.value ?? .nan)\n\(sim)")
        }
    }

    @Test func scenarioErrorsNameTheirKeyPaths() throws {
        let dir = try makeTemporaryDirectory("scenario-errors")
        let file = dir.appendingPathComponent("broken.toml")
        try """
            station = "\(Repository.root.appendingPathComponent("Boards/stations/wastewater.toml").path)"
            [[bus]]
            name = "rs485"
            port = 5020
            [[channel]]
            code = "CODE"
            [[device]]
            bus = "plc"
            slave = 1
            [[device.fault]]
            kind = "timout"
            for = "10s"
            [[device.fault]]
            kind = "power_cycle"
            for = "2m"
            every = "1m"
            """.write(to: file, atomically: true, encoding: .utf8)
        let sim = try TestProcess(executable: Repository.binary("quantrac-sim"), arguments: ["--scenario", file.path], logDirectory: dir, label: "sim")
        #expect(sim.waitForExit(timeout: .seconds(20)) == 78, "EX_CONFIG, like quantrac check")
        #expect(sim.stderrText == """
            \(file.path): 4 problems
            bus[0].port: only applies to modbus-tcp buses; rs485 is modbus-rtu
            channel[0].code: "CODE" is not the code of a [[channel]] of the station
            device[0].fault[0].kind: "timout" is not one of timeout, exception, garbage, power_cycle, calibrating, alarm
            device[0].fault[1].every: must be longer than for (2m), so that the fault also ends

            """, "\(sim.stderrText)")
    }
}
