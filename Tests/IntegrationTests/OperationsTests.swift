import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// The operator's commands against a running daemon, a pymodbus server and a pyftpdlib receiver.
@Suite(.serialized, .ownThread)
struct OperationsTests {
    func quantrac(_ arguments: [String], in dir: URL, label: String) throws -> TestProcess {
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: arguments, logDirectory: dir, label: label)
        _ = p.waitForExit(timeout: .seconds(30))
        return p
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test func statusOutboxControlAndAuditVerify() async throws {
        let dir = try makeTemporaryDirectory("ops")
        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2))
        let modbus = try ModbusPeer.tcp(spec: spec, in: dir)
        let ftpRoot = dir.appendingPathComponent("ftp")
        let ftp = try FTPPeer.start(root: ftpRoot, user: "station", password: "pw", in: dir)
        defer { ftp.stop(); modbus.stop() }
        let passwordFile = dir.appendingPathComponent("pw")
        try "pw".write(to: passwordFile, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: passwordFile.path)
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.appendingPathComponent("data").path)"
            record_interval = "2s"
            poll_interval = "500ms"
            record_delay = "2s"
            [[bus]]
            name = "lan"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            port = \(modbus.port)
            timeout = "200ms"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "lan"
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            url = "ftp://127.0.0.1:\(ftp.port)/in"
            user = "station"
            password_file = "\(passwordFile.path)"
            retry_max = "5m"
            """.write(to: config, atomically: true, encoding: .utf8)
        let c = ["--config", config.path]
        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: c, logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        let remote = { ((try? FileManager.default.contentsOfDirectory(atPath: ftpRoot.appendingPathComponent("in").path)) ?? []).filter { $0.hasSuffix(".txt") }.sorted() }
        try await waitUntilAsync(timeout: .seconds(20), what: "a delivered file") { !remote().isEmpty }

        // status: live values from the daemon.
        let status = try quantrac(["status", "--json"] + c, in: dir, label: "status")
        #expect(status.exitStatus == 0, "\(status.stderrText)")
        let snapshot = try #require(try json(status.stdoutText) as? [String: Any])
        let channels = try #require(snapshot["channels"] as? [[String: Any]])
        #expect(channels.first?["code"] as? String == "COD" && channels.first?["status_code"] as? String == "00")
        #expect(abs((channels.first?["value"] as? Double ?? 0) - 41.2) < 1e-4)
        #expect(try quantrac(["status"] + c, in: dir, label: "status-text").stdoutText.contains("storage:     ok"))

        // The receiver goes down; files queue up; the backoff grows towards retry_max (5 minutes).
        ftp.stop()
        try await waitUntilAsync(timeout: .seconds(30), what: "three pending files") {
            let list = try self.quantrac(["outbox", "list", "--json"] + c, in: dir, label: "list")
            let rows = try self.json(list.stdoutText) as? [[String: Any]]
            return (rows?.first?["pending"] as? Int ?? 0) >= 3
        }
        let list = try #require(try json(try quantrac(["outbox", "list", "--json"] + c, in: dir, label: "list2").stdoutText) as? [[String: Any]])
        let oldest = try #require(list.first?["oldest_pending"] as? String)
        #expect((list.first?["last_error"] as? String)?.contains("upload to 127.0.0.1") == true)

        // abandon the oldest: it never reaches the receiver, and the journal says who and why.
        let abandon = try quantrac(["outbox", "abandon", oldest, "--target", "dept", "--reason", "operator test"] + c, in: dir, label: "abandon")
        #expect(abandon.exitStatus == 0, "\(abandon.stderrText)")
        let again = try quantrac(["outbox", "abandon", oldest, "--target", "dept", "--reason", "twice"] + c, in: dir, label: "abandon2")
        #expect(again.exitStatus != 0 && again.stderrText.contains("is not pending"))

        // The receiver is back; without `retry` the backoff would wait much longer than this test.
        try ftp.restart()
        try await Task.sleep(for: .seconds(3))
        let retry = try quantrac(["outbox", "retry"] + c, in: dir, label: "retry")
        #expect(retry.exitStatus == 0, "\(retry.stderrText)")
        try await waitUntilAsync(timeout: .seconds(20), what: "the queue drained after retry") {
            let rows = try self.json(try self.quantrac(["outbox", "list", "--json"] + c, in: dir, label: "list3").stdoutText) as? [[String: Any]]
            return rows?.first?["pending"] as? Int == 0
        }
        #expect(!remote().contains(oldest), "an abandoned file is never sent")

        // resend: a delivered file goes again, byte-identical, under the same name.
        let first = try #require(remote().first)
        try FileManager.default.removeItem(at: ftpRoot.appendingPathComponent("in/\(first)"))
        let stamp = String(first.dropFirst("HN_ABCD_NUO001_".count).prefix(14))
        let resend = try quantrac(["outbox", "resend", "--target", "dept", "--from", stamp, "--to", stamp] + c, in: dir, label: "resend")
        #expect(resend.stdoutText.hasPrefix("1 file(s) queued again for dept"), "\(resend.stdoutText)\(resend.stderrText)")
        try await waitUntilAsync(timeout: .seconds(20), what: "the re-sent file") { remote().contains(first) }
        #expect(try Data(contentsOf: ftpRoot.appendingPathComponent("in/\(first)"))
                == Data(contentsOf: dir.appendingPathComponent("data/sent/\(first)")))

        // The journal has it all; the chain verifies; an edited sent file is named.
        let journal = try quantrac(["audit", "journal"] + c, in: dir, label: "journal").stdoutText
        for kind in ["config.loaded", "daemon.start", "outbox.abandon", "outbox.retry", "outbox.resend"] {
            #expect(journal.contains(kind), "\(kind) in\n\(journal)")
        }
        #expect(journal.contains("operator test"))
        let verify = try quantrac(["audit", "verify"] + c, in: dir, label: "verify")
        #expect(verify.exitStatus == 0 && verify.stdoutText.hasPrefix("OK: "), "\(verify.stdoutText)")
        let sent = dir.appendingPathComponent("data/sent/\(first)")
        var bytes = try Data(contentsOf: sent)
        bytes[bytes.startIndex + 5] ^= 1
        try bytes.write(to: sent)
        let broken = try quantrac(["audit", "verify"] + c, in: dir, label: "verify-broken")
        #expect(broken.exitStatus == 2)
        #expect(broken.stdoutText.contains("(interval \(first)): the file's bytes were changed"), "\(broken.stdoutText)")

        daemon.stop()
        let stopped = try quantrac(["status"] + c, in: dir, label: "status-stopped")
        #expect(stopped.exitStatus == 3 && stopped.stderrText.contains("quantracd is not running"))
    }
}
