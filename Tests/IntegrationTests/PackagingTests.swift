import Foundation
import QuantracTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The systemd unit and the Debian package as they reach a gateway.
///
/// There is no systemd running here (no /run/systemd/system), so the unit is checked offline with
/// `systemd-analyze`, and the installed daemon is started the way the unit starts it (service user,
/// dialout group, the installed configuration, `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` set) with a test
/// socket standing in for systemd.
@Suite(.serialized, .ownThread)
struct PackagingTests {
    static let unit = Repository.root.appendingPathComponent("Systemd/quantracd.service")

    /// Runs a command to completion; stdout and stderr are in the returned process's log files.
    @discardableResult
    func run(_ executable: String, _ arguments: [String], in dir: URL, label: String, environment: [String: String] = [:],
             timeout: Duration = .seconds(120)) throws -> TestProcess {
        let url = try #require(TestProcess.findExecutable(executable), "\(executable) is not installed")
        let p = try TestProcess(executable: url, arguments: arguments, environment: environment, logDirectory: dir, label: label)
        if p.waitForExit(timeout: timeout) == nil {
            p.stop()
            throw TestHarnessError("\(label) did not finish within \(timeout)\n" + p.logReport())
        }
        return p
    }

    func systemdAnalyze() throws -> String {
        guard let path = TestProcess.findExecutable("systemd-analyze")?.path else {
            throw TestHarnessError("systemd-analyze is missing: apt-get install systemd (scripts/install-deps.sh does)")
        }
        return path
    }

    @Test func unitIsRatedTwoOrLowerBySystemdAnalyzeSecurity() throws {
        let dir = try makeTemporaryDirectory("unit-security")
        let analyze = try run(try systemdAnalyze(), ["security", "--offline=yes", "--no-pager", "--threshold=20", Self.unit.path],
                              in: dir, label: "security")
        let text = analyze.stdoutText + analyze.stderrText
        let line = try #require(text.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(text)")
        let score = try #require(line.split(separator: " ").compactMap { Double($0) }.first, "\(line)")
        #expect(score <= 2.0, "\(line)")
        #expect(analyze.exitStatus == 0, "systemd-analyze --threshold=20 (2.0) fails: \(line)")
    }

    /// `systemd-analyze verify` resolves ExecStart=: /usr/bin/quantracd does not exist before the package is
    /// installed, so a copy of the unit points at the freshly built daemon (everything else unchanged).
    @Test func unitVerifies() throws {
        let dir = try makeTemporaryDirectory("unit-verify")
        let unit = try String(contentsOf: Self.unit, encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/bin/quantracd --config /etc/quantrac/station.toml"))
        for key in ["Type=notify", "NotifyAccess=main", "WatchdogSec=", "RestartPreventExitStatus=78", "StateDirectory=quantrac",
                    "User=quantrac", "SupplementaryGroups=dialout", "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw"] {
            #expect(unit.contains("\n\(key)"), "the unit lacks \(key)")
        }
        let copy = dir.appendingPathComponent("quantracd.service")
        try unit.replacingOccurrences(of: "ExecStart=/usr/bin/quantracd", with: "ExecStart=\(Repository.binary("quantracd").path)")
            .write(to: copy, atomically: true, encoding: .utf8)
        let verify = try run(try systemdAnalyze(), ["verify", "--man=no", copy.path], in: dir, label: "verify")
        #expect(verify.exitStatus == 0, "\(verify.stdoutText)\(verify.stderrText)")
        // Complaints about the host's other units are not ours; any about this unit are.
        #expect(!verify.stderrText.contains("quantracd"), "warnings: \(verify.stderrText)")
    }

    /// Installs the package on this machine with dpkg, runs the installed `quantrac check` and the installed
    /// daemon as its service user, reinstalls over an edited conffile, removes and purges it, and checks
    /// that nothing is left. Root only (CI machines are disposable); refuses to touch a machine where
    /// Quantrac is already installed or its user, configuration or data exist.
    @Test(.enabled(if: getuid() == 0, "installs a package on this machine: run as root"), .timeLimit(.minutes(10)))
    func packageInstallsRunsAndPurgesCleanly() throws {
        let dir = try makeTemporaryDirectory("deb")
        // Test runs of other checkouts on this machine take turns (one dpkg database, one quantrac user).
        let lock = open("/tmp/quantrac-package-test.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(lock) }
        try waitUntil(timeout: .seconds(540), poll: .seconds(1), what: "the package test of another run to finish") {
            flock(lock, LOCK_EX | LOCK_NB) == 0
        }
        func status() throws -> String {
            let q = try run("dpkg-query", ["-W", "-f=${db:Status-Abbrev}", "quantrac"], in: dir, label: "dpkg-query")
            return q.stdoutText.trimmingCharacters(in: .whitespaces)
        }
        let leftovers = ["/etc/quantrac", "/var/lib/quantrac", "/var/log/quantrac"].filter { FileManager.default.fileExists(atPath: $0) }
        let before = try status()
        guard before.isEmpty || before.hasPrefix("un"), getpwnam("quantrac") == nil, getgrnam("quantrac") == nil, leftovers.isEmpty else {
            throw TestHarnessError("refusing to run: quantrac is installed here, or its user, group or \(leftovers) exist "
                                   + "(dpkg --purge quantrac; userdel quantrac; groupdel quantrac)")
        }
        let deb = try Self.package(log: dir)
        defer { _ = try? run("dpkg", ["--purge", "quantrac"], in: dir, label: "cleanup-purge") }

        // Install: binaries, unit, rules, conffile, user; postinst runs quantrac check and reports OK.
        let install = try run("dpkg", ["-i", deb.path], in: dir, label: "dpkg-install")
        #expect(install.exitStatus == 0, "\(install.logReport())")
        #expect(install.stdoutText.contains("quantrac: /etc/quantrac/station.toml: OK — station HN_ABCD_NUO001"), "\(install.logReport())")
        #expect(try status() == "ii")
        for path in ["/usr/bin/quantracd", "/usr/bin/quantrac", "/usr/bin/quantrac-sim", "/lib/systemd/system/quantracd.service",
                     "/lib/udev/rules.d/99-quantrac-rs485.rules", "/usr/share/quantrac/stations/ambient-air.toml",
                     "/usr/share/quantrac/boards/x86-box-usb-rs485.toml", "/usr/share/doc/quantrac/Boards/README.md"] {
            #expect(FileManager.default.fileExists(atPath: path), "\(path) is not installed")
        }
        #expect(FileManager.default.contents(atPath: "/lib/systemd/system/quantracd.service") == FileManager.default.contents(atPath: Self.unit.path))
        let conffiles = try run("dpkg-query", ["-W", "-f=${Conffiles}", "quantrac"], in: dir, label: "conffiles")
        #expect(conffiles.stdoutText.contains("/etc/quantrac/station.toml"))
        let groups = try run("id", ["-nG", "quantrac"], in: dir, label: "id")
        #expect(Set(groups.stdoutText.split(whereSeparator: \.isWhitespace)) == ["quantrac", "dialout"])
        #expect(Self.owner("/etc/quantrac/station.toml") == "root:quantrac 640")
        #expect(Self.owner("/etc/quantrac") == "root:quantrac 750")
        #expect(Self.owner("/var/lib/quantrac") == "quantrac:quantrac 750")
        let ldd = try run("ldd", ["/usr/bin/quantracd"], in: dir, label: "ldd")
        #expect(!ldd.stdoutText.contains("not found") && !ldd.stdoutText.contains("libswift"), "\(ldd.stdoutText)")

        // The installed check, as the service user, on the installed example.
        let asService = ["--reuid=quantrac", "--regid=quantrac", "--init-groups"]
        let check = try run("setpriv", asService + ["/usr/bin/quantrac", "check", "--config", "/etc/quantrac/station.toml"], in: dir, label: "check")
        #expect(check.exitStatus == 0, "\(check.logReport())")
        #expect(check.stdoutText.contains("OK — station HN_ABCD_NUO001 (wastewater), 2 buses, 6 channels"), "\(check.stdoutText)")

        // The installed daemon, started as the unit starts it, talks sd_notify to a socket standing in for systemd.
        try daemonNotifiesReadyWatchdogAndStopping(asService: asService, dir: dir)

        // Reinstalling keeps the technician's edit of the conffile.
        let edited = try #require(FileManager.default.contents(atPath: "/etc/quantrac/station.toml")) + Data("# edited on site\n".utf8)
        try edited.write(to: URL(fileURLWithPath: "/etc/quantrac/station.toml"))
        let reinstall = try run("dpkg", ["-i", deb.path], in: dir, label: "dpkg-reinstall")
        #expect(reinstall.exitStatus == 0, "\(reinstall.logReport())")
        #expect(FileManager.default.contents(atPath: "/etc/quantrac/station.toml") == edited)

        // Remove keeps configuration, data and user; purge removes everything.
        let remove = try run("dpkg", ["--remove", "quantrac"], in: dir, label: "dpkg-remove")
        #expect(remove.exitStatus == 0, "\(remove.logReport())")
        #expect(!FileManager.default.fileExists(atPath: "/usr/bin/quantracd"))
        #expect(FileManager.default.fileExists(atPath: "/etc/quantrac/station.toml"))
        #expect(FileManager.default.fileExists(atPath: "/var/lib/quantrac/quantrac.sqlite"), "remove keeps the station's data")
        #expect(getpwnam("quantrac") != nil)
        let purge = try run("dpkg", ["--purge", "quantrac"], in: dir, label: "dpkg-purge")
        #expect(purge.exitStatus == 0, "\(purge.logReport())")
        let after = try status()
        #expect(after.isEmpty || after.hasPrefix("un"), "dpkg still knows the package: \(after)")
        for path in ["/etc/quantrac", "/var/lib/quantrac", "/var/log/quantrac", "/usr/bin/quantrac", "/usr/share/quantrac",
                     "/usr/share/doc/quantrac", "/lib/systemd/system/quantracd.service", "/lib/udev/rules.d/99-quantrac-rs485.rules"] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) is left behind")
        }
        #expect(getpwnam("quantrac") == nil && getgrnam("quantrac") == nil, "the user or group is left behind")
        try? FileManager.default.removeItem(at: dir)
    }

    /// READY once the first poll is stored (the analyzers of the example are absent: every channel is a
    /// stored fault), WATCHDOG pings, STOPPING and exit 0 on SIGTERM; the data directory is the service user's.
    func daemonNotifiesReadyWatchdogAndStopping(asService: [String], dir: URL) throws {
        chmod(dir.path, 0o755)
        let receiver = try NotifyReceiver(path: dir.appendingPathComponent("notify.sock").path)
        let setpriv = try #require(TestProcess.findExecutable("setpriv"))
        let daemon = try TestProcess(executable: setpriv,
                                     arguments: asService + ["/usr/bin/quantracd", "--config", "/etc/quantrac/station.toml"],
                                     environment: ["NOTIFY_SOCKET": receiver.path, "WATCHDOG_USEC": "4000000"],
                                     workingDirectory: URL(fileURLWithPath: "/"), logDirectory: dir, label: "quantracd")
        defer { daemon.stop() }
        try waitUntil(timeout: .seconds(60), poll: .milliseconds(100), what: "READY=1 from the installed quantracd") {
            if !daemon.isRunning { throw TestHarnessError("quantracd exited (\(daemon.exitDescription))\n" + daemon.logReport()) }
            return receiver.received.contains("READY=1")
        }
        try waitUntil(timeout: .seconds(10), what: "WATCHDOG=1") { receiver.received.contains("WATCHDOG=1") }
        #expect(receiver.received.contains("STATUS=0 of 6 channels measuring"), "\(receiver.received)")
        daemon.send(signal: SIGTERM)
        #expect(daemon.waitForExit(timeout: .seconds(30)) == 0, "\(daemon.logReport())")
        #expect(receiver.received.contains("STOPPING=1"), "\(receiver.received)")
        #expect(Self.owner("/var/lib/quantrac/quantrac.sqlite")?.hasPrefix("quantrac:quantrac ") == true)
    }

    /// `user:group mode` of `path`, the mode in octal (`root:quantrac 640`).
    static func owner(_ path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0, let pw = getpwuid(st.st_uid), let gr = getgrgid(st.st_gid) else { return nil }
        return "\(String(cString: pw.pointee.pw_name)):\(String(cString: gr.pointee.gr_name)) \(String(st.st_mode & 0o7777, radix: 8))"
    }

    /// The package to install: the newest `quantrac_*.deb` from `make deb` (.build/deb), from an earlier run
    /// of this test or from any other scratch folder of this checkout (`.build*/deb`), if it is newer than
    /// every source it is built from; otherwise one built now by
    /// packaging/build-deb.sh (a release build: minutes) in its own scratch folder `<scratch>-deb` — the
    /// running `swift test` holds the lock of its own scratch folder.
    static func package(log dir: URL) throws -> URL {
        let root = Repository.root
        let scratch = Repository.binary("quantrac").deletingLastPathComponent().deletingLastPathComponent()
        let ownScratch = URL(fileURLWithPath: scratch.path + "-deb")
        let scratchFolders = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
            .filter { $0.hasPrefix(".build") }.map { root.appendingPathComponent($0) }
        let candidates = Set([scratch, ownScratch] + scratchFolders)
            .map { $0.appendingPathComponent("deb") }
            .flatMap { d in ((try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? [])
                .filter { $0.hasPrefix("quantrac_") && $0.hasSuffix(".deb") }.map { d.appendingPathComponent($0) } }
        let sources = newestModification(under: ["Sources", "Package.swift", "Package.resolved", "packaging", "Systemd", "Boards", "README.md"]
            .map { root.appendingPathComponent($0) })
        if let fresh = candidates.map({ ($0, modification($0)) }).filter({ $0.1 > sources }).max(by: { $0.1 < $1.1 })?.0 {
            return fresh
        }
        let build = try TestProcess(executable: root.appendingPathComponent("packaging/build-deb.sh"), arguments: [],
                                    environment: ["SCRATCH": ownScratch.path], workingDirectory: root, logDirectory: dir, label: "build-deb")
        guard build.waitForExit(timeout: .seconds(480)) == 0,
              let last = build.stdoutText.split(separator: "\n").last, last.hasSuffix(".deb") else {
            build.stop()
            throw TestHarnessError("packaging/build-deb.sh failed\n" + build.logReport())
        }
        return URL(fileURLWithPath: String(last), relativeTo: root)
    }

    static func modification(_ url: URL) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.modificationDate] as? Date) ?? .distantPast
    }

    static func newestModification(under roots: [URL]) -> Date {
        var newest = Date.distantPast
        for root in roots {
            newest = max(newest, modification(root))
            guard let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.contentModificationDateKey]) else { continue }
            for case let url as URL in walk {
                newest = max(newest, (try? url.resourceValues(forKeys: [.contentModificationDateKey]))?.contentModificationDate ?? .distantPast)
            }
        }
        return newest
    }
}

/// systemd's end of `$NOTIFY_SOCKET`: a datagram socket file anyone may write to (the daemon runs as
/// another user), collecting messages on a thread.
final class NotifyReceiver: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `messages` is only touched under `lock`; `fd` and `path` are immutable.
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var messages: [String] = []

    init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard fd >= 0, ok == 0, chmod(path, 0o666) == 0 else { throw TestHarnessError("cannot bind \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while let self {
                let n = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { self.lock.withLock { self.messages.append(String(decoding: buffer[..<n], as: UTF8.self)) } }
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return }
            }
        }
        thread.start()
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }

    /// Every message so far, joined by newlines.
    var received: String { lock.withLock { messages.joined(separator: "\n") } }
}
