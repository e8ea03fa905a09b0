import ArgumentParser
import Foundation
import GRDB
import QuantracConfig
import QuantracCore
import QuantracRuntime
import Storage

/// `quantrac-bench averages` (`make bench-averages`): recomputes every hourly, 8-hour and daily average and
/// the VN_AQI of `days` × `channels` 5-minute records through the daemon's own code path
/// (`AverageCalculator.recompute`, the real store with `synchronous = FULL`), and times a plain SQL
/// `GROUP BY` computing hourly and daily means (with a 9-of-12 count) over the same rows. Prints the
/// median of `repeats` runs of each, their ratio, and one JSON line with the figures.
struct AveragesBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "averages",
        abstract: "Recompute 400 days × 64 channels of 5-minute records; compare with a plain SQL GROUP BY.")

    @Option(help: "Days of records.") var days = 400
    @Option(help: "Channels (at least 10: six VN_AQI pollutants, wind speed and direction, flow, and plain means).") var channels = 64
    @Option(help: "Runs of each side; the median is reported.") var repeats = 3
    @Option(help: "Folder for the database (default: a new temporary folder, removed afterwards).") var dir: String?

    func validate() throws {
        guard days >= 1, channels >= 10, repeats >= 1 else { throw ValidationError("--days ≥ 1, --channels ≥ 10, --repeats ≥ 1") }
    }

    func run() async throws {
        let folder = dir ?? NSTemporaryDirectory() + "quantrac-bench-averages-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: folder) } }
        let config = try ConfigLoader.parse(Self.station(channels: channels, dataDir: folder))
        let path = folder + "/quantrac.sqlite"
        try? FileManager.default.removeItem(atPath: path)
        let firstDay = CivilTime.epochSeconds(year: 2025, month: 1, day: 1, offset: config.station.utcOffset)
        let lastDay = firstDay + Int64(days) * 86_400

        _ = try Store(path: path)  // the real schema, through the store's migrations
        let t0 = ContinuousClock.now
        let rows = try Self.generate(path: path, config: config, from: firstDay, days: days)
        print("averages: \(days) days × \(config.channels.count) channels of 5-minute records = \(rows) rows "
              + "(generated in \(Self.seconds(ContinuousClock.now - t0)))")

        let store = try Store(path: path)
        let calculator = AverageCalculator(config: config, store: store)
        var quantrac: [Duration] = []
        var sql: [Duration] = []
        var counts = (hours: 0, days: 0)
        var groups = 0
        for run in 1...repeats {
            let start = ContinuousClock.now
            counts = try await calculator.recompute(from: firstDay, to: lastDay, now: SystemWallClock().now())
            quantrac.append(ContinuousClock.now - start)
            let s = ContinuousClock.now
            groups = try Self.groupBy(path: path, utcOffset: Int64(config.station.utcOffset.seconds))
            sql.append(ContinuousClock.now - s)
            print("  run \(run): quantrac \(Self.seconds(quantrac.last!)), SQL \(Self.seconds(sql.last!))")
        }
        let stored = try await store.averages(period: "1h", after: firstDay, through: lastDay, channel: config.channels[0].code).count
        guard stored == days * 24, counts.hours == days * 24 else {
            throw ValidationError("recompute stored \(stored) hourly averages of \(config.channels[0].code), expected \(days * 24)")
        }
        let q = Self.median(quantrac), g = Self.median(sql)
        let ratio = q.inSeconds / max(g.inSeconds, 1e-9)
        print("quantrac recompute (hourly + 8-hour + daily averages, VN_AQI; \(counts.hours) hours, \(counts.days) days): median \(Self.seconds(q))")
        print("plain SQL GROUP BY (hourly and daily means of the same rows, \(groups) groups):          median \(Self.seconds(g))")
        print("ratio: \(String(format: "%.2f", ratio))×")
        let json: [String: Any] = ["bench": "averages", "days": days, "channels": config.channels.count, "rows": rows,
                                   "quantrac_s": q.inSeconds, "sql_group_by_s": g.inSeconds, "ratio": ratio, "repeats": repeats]
        print(String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self))
    }

    /// An ambient-air station: the six VN_AQI pollutants (O3 and CO with 8-hour means), wind speed and
    /// direction (speed-weighted vector mean), a flow total, and plain means up to `channels`.
    static func station(channels: Int, dataDir: String) -> String {
        var text = """
            [station]
            prefix = "HN_BENCH_KHI001"
            kind = "ambient-air"
            data_dir = "\(dataDir)"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"

            """
        var defs: [(code: String, unit: String, extra: String)] = [
            ("PM2,5", "µg/Nm3", "limit_24h = 50"), ("PM10", "µg/Nm3", ""), ("O3", "µg/Nm3", ""), ("CO", "µg/Nm3", ""),
            ("SO2", "µg/Nm3", ""), ("NO2", "µg/Nm3", "limit_1h = 200"), ("WS", "m/s", ""),
            ("WD", "deg", "average = \"vector\"\nspeed_channel = \"WS\"\nspeed_weighted = true"), ("Flow", "m3/h", "average = \"total\""),
        ]
        while defs.count < channels { defs.append(("X\(defs.count + 1)", "mg/Nm3", "valid_max = 1000")) }
        for (i, d) in defs.enumerated() {
            text += """
                [[channel]]
                code = "\(d.code)"
                unit = "\(d.unit)"
                bus = "a"
                address = \(i * 2)
                type = "float32"
                \(d.extra)

                """
        }
        return text
    }

    /// Writes `days` of 5-minute records of every channel straight into the record table (one transaction,
    /// synchronous off: this is the fixture, not the measurement). About 2 % calibrating and 1 % fault
    /// records in runs, a few range flags, and one day with the station off (no records). Returns the row count.
    static func generate(path: String, config: StationConfig, from firstDay: Int64, days: Int) throws -> Int {
        var rng = BenchRandom(seed: 0x5155_414E_5452_4143)
        let queue = try DatabaseQueue(path: path)
        let perDay = Int(86_400 / config.station.recordIntervalSeconds)
        let offDay = days > 10 ? days / 3 : -1
        let codes = config.channels.map(\.code)
        var count = 0
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = OFF")
            try db.inTransaction {
                let insert = try db.makeStatement(sql: """
                    INSERT INTO record (interval_end, channel, value, status, valid_count, sample_count, flag) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """)
                for day in 0..<days where day != offDay {
                    // Per channel and day: maybe a 30-minute calibration, maybe a fault of up to 3 h 20.
                    let windows = codes.map { _ in
                        (cal: rng.chance(0.3) ? Int.random(in: 0..<perDay, using: &rng) : -100,
                         fault: rng.chance(0.1) ? Int.random(in: 0..<perDay, using: &rng) : -100,
                         faultLength: Int.random(in: 1...40, using: &rng))
                    }
                    for i in 1...perDay {
                        let end = firstDay + Int64(day * perDay + i) * config.station.recordIntervalSeconds
                        for (c, code) in codes.enumerated() {
                            let w = windows[c]
                            let status = (w.cal..<w.cal + 6).contains(i) ? 1 : (w.fault..<w.fault + w.faultLength).contains(i) ? 2 : 0
                            let value = code == "WD" ? Double.random(in: 0..<360, using: &rng)
                                : 20 + 10 * sin(Double(end) / 7200 + Double(c)) + Double.random(in: 0...5, using: &rng)
                            let flag: String? = status == 0 && rng.chance(0.002) ? "range" : nil
                            try insert.execute(arguments: [end, code, value, status, status == 2 ? 0 : 30, 30, flag])
                            count += 1
                        }
                    }
                }
                let last = firstDay + Int64(days * perDay) * config.station.recordIntervalSeconds
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_built_interval_end', ?)", arguments: [last])
                return .commit
            }
        }
        return count
    }

    /// The baseline: hourly and daily means per channel of the valid records, with their counts and the
    /// 9-of-12 rule, every row fetched. Returns the number of groups.
    static func groupBy(path: String, utcOffset: Int64) throws -> Int {
        var config = Configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: config)
        return try queue.read { db in
            var groups = 0
            var checksum = 0.0
            for sql in [
                "SELECT channel, (interval_end + 3599) / 3600 AS h, AVG(value), COUNT(*), COUNT(*) >= 9 FROM record WHERE status = 0 AND flag IS NULL GROUP BY channel, h",
                "SELECT channel, (interval_end - 1 + \(utcOffset)) / 86400 AS d, AVG(value), COUNT(*), COUNT(*) >= 216 FROM record WHERE status = 0 AND flag IS NULL GROUP BY channel, d",
            ] {
                let rows = try Row.fetchCursor(db, sql: sql)
                while let row = try rows.next() {
                    let mean: Double = row[2]
                    checksum += mean
                    groups += 1
                }
            }
            precondition(checksum.isFinite)
            return groups
        }
    }

    static func median(_ values: [Duration]) -> Duration { values.sorted()[values.count / 2] }

    static func seconds(_ d: Duration) -> String { String(format: "%.2f s", d.inSeconds) }
}

/// SplitMix64, so the generated records are the same on every run.
struct BenchRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}
