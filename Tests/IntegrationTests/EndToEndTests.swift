import FieldBus
import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Testing

/// The foundation scenario against real peers: a pymodbus TCP server, a pymodbus RTU server on a socat
/// pty pair, the real `quantracd`, and a pyftpdlib server on loopback.
@Suite(.serialized, .ownThread)
struct EndToEndTests {
    static let prefix = "HN_ABCD_NUO001"

    /// What the servers hold, and how each channel's line must read.
    struct Expected {
        let code: String
        let value: String
        let status: String
    }

    static func registers(_ type: ValueType, _ order: ByteOrder, _ value: Double) -> [UInt16] {
        RegisterCodec(type: type, byteOrder: order).encode(value)
    }

    static func config(dir: URL, tcpPort: Int, rtuDevice: String, ftpPort: Int, passwordFile: URL) -> String {
        """
        [station]
        prefix = "\(prefix)"
        kind = "wastewater"
        data_dir = "\(dir.appendingPathComponent("data").path)"
        record_interval = "4s"
        poll_interval = "1s"
        record_delay = "3s"

        [[bus]]
        name = "lan"
        transport = "modbus-tcp"
        host = "127.0.0.1"
        port = \(tcpPort)
        timeout = "300ms"

        [[bus]]
        name = "rs485"
        transport = "modbus-rtu"
        device = "\(rtuDevice)"
        baud = 9600
        parity = "none"
        timeout = "300ms"

        [[channel]]
        code = "Flow"
        unit = "m3/h"
        bus = "lan"
        slave = 1
        address = 0
        type = "float32"

        [[channel]]
        code = "Temp"
        unit = "°C"
        bus = "lan"
        slave = 1
        address = 2
        type = "int16"
        scale = 0.1
        decimals = 1

        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "lan"
        slave = 1
        address = 3
        type = "float32"
        byte_order = "CDAB"

        [[channel]]
        code = "TOC"
        unit = "mg/L"
        bus = "lan"
        slave = 1
        register = "input"
        address = 10
        type = "float64"
        byte_order = "DCBA"
        decimals = 3

        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "rs485"
        slave = 2
        address = 0
        type = "float32"
        byte_order = "BADC"

        [[channel]]
        code = "TN"
        unit = "mg/L"
        bus = "rs485"
        slave = 2
        register = "input"
        address = 4
        type = "uint32"
        scale = 0.001
        decimals = 3

        [[channel]]
        code = "NH4"
        unit = "mg/L"
        bus = "rs485"
        slave = 9
        address = 0
        type = "uint16"

        [[target]]
        name = "dept"
        url = "ftp://127.0.0.1:\(ftpPort)/in/{station}/{yyyy}/{MM}/{dd}"
        user = "station"
        password_file = "\(passwordFile.path)"
        retry_max = "2s"
        """
    }

    static let expected = [
        Expected(code: "Flow", value: "123.46", status: "00"),
        Expected(code: "Temp", value: "-12.3", status: "00"),
        Expected(code: "TSS", value: "18.52", status: "00"),
        Expected(code: "TOC", value: "15.125", status: "00"),
        Expected(code: "COD", value: "41.20", status: "00"),
        Expected(code: "TN", value: "1234.567", status: "00"),
        Expected(code: "NH4", value: "0.00", status: "02"),
    ]

    static func remoteFiles(_ root: URL) -> [URL] {
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        return (e?.allObjects as? [URL] ?? []).filter { $0.lastPathComponent.hasSuffix(".txt") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func localFiles(_ dir: URL, _ sub: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("data/\(sub)").path)) ?? [])
            .filter { $0.hasSuffix(".txt") }.sorted()
    }

    @Test func pollsBothBusesAndDeliversEveryFileInOrderThroughAnOutage() async throws {
        let dir = try makeTemporaryDirectory("e2e")
        var tcpSpec = ModbusSpec()
        tcpSpec.setHolding(device: 1, address: 0, values: Self.registers(.float32, .abcd, 123.456))
        tcpSpec.setHolding(device: 1, address: 2, values: Self.registers(.int16, .abcd, -123))
        tcpSpec.setHolding(device: 1, address: 3, values: Self.registers(.float32, .cdab, 18.52))
        tcpSpec.setInput(device: 1, address: 10, values: Self.registers(.float64, .dcba, 15.125))
        var rtuSpec = ModbusSpec()
        rtuSpec.setHolding(device: 2, address: 0, values: Self.registers(.float32, .badc, 41.2))
        rtuSpec.setInput(device: 2, address: 4, values: Self.registers(.uint32, .abcd, 1_234_567))

        let tcp = try ModbusPeer.tcp(spec: tcpSpec, in: dir)
        let pty = try PtyPair.start(in: dir)
        let rtu = try ModbusPeer.rtu(device: pty.a, spec: rtuSpec, in: dir)
        let ftpRoot = dir.appendingPathComponent("ftp")
        let ftp = try FTPPeer.start(root: ftpRoot, user: "station", password: "s3cret", in: dir)
        defer { ftp.stop(); rtu.stop(); pty.stop(); tcp.stop() }

        let passwordFile = dir.appendingPathComponent("password")
        try "s3cret\n".write(to: passwordFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
        let configFile = dir.appendingPathComponent("station.toml")
        try Self.config(dir: dir, tcpPort: tcp.port, rtuDevice: pty.b, ftpPort: ftp.port, passwordFile: passwordFile)
            .write(to: configFile, atomically: true, encoding: .utf8)

        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", configFile.path, "--log-level", "debug"],
                                     logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }

        // 1. Files arrive, one per interval, with the values the servers hold.
        try await waitUntilAsync(timeout: .seconds(30), what: "two files at the FTP server") { Self.remoteFiles(ftpRoot).count >= 2 }
        let first = Self.remoteFiles(ftpRoot)[1]  // [0] may cover a partial first interval; values are the same anyway
        let text = try String(contentsOf: first, encoding: .utf8)
        let stamp = String(first.lastPathComponent.dropFirst(Self.prefix.count + 1).prefix(14))
        let expectedText = Self.expected.map { "\($0.code)\t\($0.value)\t\(unit($0.code))\t\(stamp)\t\($0.status)\r\n" }.joined()
        #expect(text == expectedText, "daemon log:\n\(daemon.stderrText.suffix(3000))")
        #expect(first.path.contains("/in/NUO001/\(stamp.prefix(4))/\(stamp.dropFirst(4).prefix(2))/\(stamp.dropFirst(6).prefix(2))/"))
        #expect(!FileManager.default.fileExists(atPath: first.path + ".part"))

        // 2. The receiver goes away for a few intervals; files pile up locally while polling goes on.
        ftp.stop()
        let before = Self.localFiles(dir, "sent").count + Self.localFiles(dir, "outbox").count
        try await waitUntilAsync(timeout: .seconds(30), what: "three files queued while the FTP server is down") {
            Self.localFiles(dir, "outbox").count >= 3
        }
        let queued = Self.localFiles(dir, "outbox")
        #expect(Self.localFiles(dir, "sent").count + queued.count >= before + 3)

        // 3. It comes back: every missed file arrives, oldest first, byte-identical to the local copy.
        try ftp.restart()
        try await waitUntilAsync(timeout: .seconds(40), what: "the backlog delivered") {
            Self.localFiles(dir, "outbox").isEmpty && Self.remoteFiles(ftpRoot).count == Self.localFiles(dir, "sent").count
        }
        let remote = Self.remoteFiles(ftpRoot)
        let sent = Self.localFiles(dir, "sent")
        #expect(remote.map(\.lastPathComponent) == sent)
        for file in remote {
            let local = try Data(contentsOf: dir.appendingPathComponent("data/sent/\(file.lastPathComponent)"))
            #expect(try Data(contentsOf: file) == local, "\(file.lastPathComponent)")
        }
        let renamed = ftp.process.stderrText.split(separator: "\n").filter { $0.contains("RNTO") }.compactMap { line in
            line.firstMatch(of: /HN_ABCD_NUO001_\d{14}\.txt/).map { String($0.output) }
        }
        #expect(Array(renamed.prefix(queued.count)) == queued, "the backlog drains oldest first")
        #expect(renamed == renamed.sorted(), "files are published in interval order")
        // Intervals follow each other without gaps (the daemon never stopped).
        let stamps = sent.compactMap { Int64($0.dropFirst(Self.prefix.count + 1).prefix(14)) }
        #expect(Set(stamps).count == stamps.count)

        // 4. SIGTERM stops the daemon cleanly.
        #expect(daemon.stop() == 0, "exit status")
    }

    func unit(_ code: String) -> String {
        ["Flow": "m3/h", "Temp": "°C"][code] ?? "mg/L"
    }
}
