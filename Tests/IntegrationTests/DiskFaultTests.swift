import FieldBus
import Foundation
import QuantracConfig
import QuantracTesting
import Storage
import Testing

/// Mounting a small tmpfs needs root (as in CI here); elsewhere the suite is skipped, saying why.
let canMount: Bool = {
    guard getuid() == 0, let dir = try? makeTemporaryDirectory("mountprobe") else { return false }
    let p = try? TestProcess(executable: URL(fileURLWithPath: "/bin/mount"), arguments: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir.path],
                             logDirectory: dir, label: "mount")
    guard p?.waitForExit(timeout: .seconds(10)) == 0 else { return false }
    _ = try? TestProcess(executable: URL(fileURLWithPath: "/bin/umount"), arguments: [dir.path], logDirectory: dir, label: "umount")
        .waitForExit(timeout: .seconds(10))
    return true
}()

/// Disk full and a read-only data directory: the daemon says so, holds readings in memory, and recovers
/// without losing what it had stored.
@Suite(.serialized, .ownThread)
struct DiskFaultTests {
    func sh(_ args: [String], in dir: URL) throws -> Int32? {
        try TestProcess(executable: URL(fileURLWithPath: args[0]), arguments: Array(args.dropFirst()), logDirectory: dir, label: "sh")
            .waitForExit(timeout: .seconds(10))
    }

    func quantracStatus(_ config: URL, in dir: URL) throws -> [String: Any] {
        let p = try TestProcess(executable: Repository.binary("quantrac"), arguments: ["status", "--json", "--config", config.path],
                                logDirectory: dir, label: "status")
        _ = p.waitForExit(timeout: .seconds(10))
        return (try JSONSerialization.jsonObject(with: Data(p.stdoutText.utf8)) as? [String: Any]) ?? [:]
    }

    @Test(.enabled(if: canMount, "needs root to mount a small tmpfs as the data directory"))
    func diskFull() async throws {
        let dir = try makeTemporaryDirectory("disk-full")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        #expect(try sh(["/bin/mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", data.path], in: dir) == 0)
        defer { _ = try? sh(["/bin/umount", "-l", data.path], in: dir) }
        let filler = data.appendingPathComponent("filler")
        try await storageFailureIsReportedHeldAndRecovered(dir: dir, environment: [:],
            fail: { _ = try self.sh(["/bin/dd", "if=/dev/zero", "of=\(filler.path)", "bs=64k"], in: dir) },  // until ENOSPC
            recover: { try FileManager.default.removeItem(at: filler) })
    }

    /// The kernel will not remount a file system read-only under a process that has files open for
    /// writing, so the read-only data directory is injected with an LD_PRELOAD shim (Tests/Fixtures/erofs_shim.c):
    /// while a trigger file exists, every write under data_dir fails with EROFS.
    @Test func readOnlyDataDirectory() async throws {
        let dir = try makeTemporaryDirectory("disk-ro")
        let shim = dir.appendingPathComponent("erofs.so")
        let gcc = try TestProcess(executable: URL(fileURLWithPath: "/usr/bin/gcc"),
                                  arguments: ["-shared", "-fPIC", "-O2", "-o", shim.path, Repository.fixtures.appendingPathComponent("erofs_shim.c").path, "-ldl"],
                                  logDirectory: dir, label: "gcc")
        #expect(gcc.waitForExit(timeout: .seconds(60)) == 0, "\(gcc.stderrText)")
        let trigger = dir.appendingPathComponent("read-only-now")
        let data = dir.appendingPathComponent("data")
        try await storageFailureIsReportedHeldAndRecovered(
            dir: dir,
            environment: ["LD_PRELOAD": shim.path, "QUANTRAC_EROFS_PREFIX": data.path, "QUANTRAC_EROFS_TRIGGER": trigger.path],
            fail: { #expect(FileManager.default.createFile(atPath: trigger.path, contents: Data())) },
            recover: { try FileManager.default.removeItem(at: trigger) })
    }

    func storageFailureIsReportedHeldAndRecovered(dir: URL, environment: [String: String],
                                                  fail: () throws -> Void, recover: () throws -> Void) async throws {
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)

        var spec = ModbusSpec()
        spec.setHolding(device: 1, address: 0, values: RegisterCodec(type: .float32, byteOrder: .abcd).encode(41.2))
        let modbus = try ModbusPeer.tcp(spec: spec, in: dir)
        defer { modbus.stop() }
        let config = dir.appendingPathComponent("station.toml")
        try """
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(data.path)"
            record_interval = "2s"
            poll_interval = "250ms"
            record_delay = "1s"
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
            name = "local"
            url = "file://\(dir.appendingPathComponent("recv").path)"
            """.write(to: config, atomically: true, encoding: .utf8)
        let daemon = try TestProcess(executable: Repository.binary("quantracd"), arguments: ["--config", config.path], environment: environment,
                                     logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        let received = { ((try? FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("recv").path)) ?? []).sorted() }
        try await waitUntilAsync(timeout: .seconds(20), what: "files before the fault") { received().count >= 2 }

        // Snapshot what was stored before the fault.
        let dbPath = data.appendingPathComponent("quantrac.sqlite").path
        let before = try await Store(readOnlyPath: dbPath).lastBuiltIntervalEnd()

        try fail()
        try await waitUntilAsync(timeout: .seconds(20), what: "quantrac status reporting the storage failure") {
            (try self.quantracStatus(config, in: dir)["storage_error"] as? String) != nil
        }
        let failing = try quantracStatus(config, in: dir)
        #expect((failing["readings_held_in_memory"] as? Int ?? 0) > 0)
        #expect(daemon.isRunning, "the daemon keeps polling")
        try await Task.sleep(for: .seconds(2))

        try recover()
        try await waitUntilAsync(timeout: .seconds(30), what: "storage recovered") {
            try self.quantracStatus(config, in: dir)["storage_error"] == nil
        }
        let count = received().count
        try await waitUntilAsync(timeout: .seconds(20), what: "files after recovery") { received().count >= count + 2 }

        // Nothing stored before the fault is lost, the held readings were stored, and it is journaled.
        let store = try Store(readOnlyPath: dbPath)
        #expect(try await (store.lastBuiltIntervalEnd() ?? 0) > (before ?? 0))
        let journal = try await store.journalEntries()
        #expect(journal.contains { $0.kind == "storage.recovered" }, "\(journal.map(\.kind))")
        #expect(daemon.stderrText.contains("cannot store readings, holding up to"))
        // A file reaches the receiver just before its delivery is recorded and it moves to sent/.
        let delivered = received().filter { $0.hasSuffix(".txt") }
        try await waitUntilAsync(timeout: .seconds(10), what: "every received file archived in sent/") {
            delivered.allSatisfy { FileManager.default.fileExists(atPath: data.appendingPathComponent("sent/\($0)").path) }
        }
        for name in delivered {
            let local = try Data(contentsOf: data.appendingPathComponent("sent/\(name)"))
            #expect(try Data(contentsOf: dir.appendingPathComponent("recv/\(name)")) == local)
        }
    }
}
