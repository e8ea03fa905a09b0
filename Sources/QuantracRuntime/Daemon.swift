import Acquisition
import FieldBus
import Foundation
import Logging
import QuantracConfig
import QuantracCore
import ServiceLifecycle
import Storage
import Transmission
#if canImport(Glibc)
import Glibc
#endif

/// A problem that stops the daemon before it starts (bad data directory, unreadable password file …).
public struct StartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The composition root: builds every service from a validated configuration and runs them in one
/// `ServiceGroup` until SIGTERM or SIGINT, then shuts them down in reverse order.
public struct Daemon {
    public let config: StationConfig
    public let logger: Logger
    public let wallClock: any WallClock
    /// The configuration file, journaled with its SHA-256 at start.
    public let configPath: String?

    public init(config: StationConfig, configPath: String? = nil, logger: Logger, wallClock: any WallClock = SystemWallClock()) {
        self.config = config
        self.configPath = configPath
        self.logger = logger
        self.wallClock = wallClock
    }

    public func run() async throws {
        let dataDir = config.station.dataDir
        do {
            try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        } catch {
            throw StartupError("station.data_dir: cannot create \(dataDir): \(error.localizedDescription)")
        }
        let lock = try DataDirLock(dataDir: dataDir)
        defer { withExtendedLifetime(lock) {} }
        let store = try Store(path: (dataDir as NSString).appendingPathComponent("quantrac.sqlite"))
        let outbox = try OutboxDirectory(dataDir: dataDir)
        outbox.removeStaleTemporaries()
        try await reconcile(store: store, outbox: outbox)
        try await journalStart(store: store)

        let progress = AcquisitionProgress()
        let board = StatusBoard(station: config.station.prefix, startedMs: wallClock.now().milliseconds,
                                channels: config.channels.map { ($0.code, $0.unit, $0.bus) },
                                buses: config.buses.map(\.name), targets: config.targets.map(\.name),
                                devices: Dictionary(config.channels.map { ($0.code, $0.slave) }, uniquingKeysWith: { a, _ in a }),
                                wallClock: wallClock)
        let calibration = CalibrationGate(recovery: config.station.calibrationRecovery)
        let routes = StatusRoutes(board: board, page: StatusPage(config: config, store: store, board: board, wallClock: wallClock),
                                  metrics: MetricsRenderer(config: config, wallClock: wallClock))
        var services: [any Service] = [ControlServer(path: (dataDir as NSString).appendingPathComponent("control.sock"), routes: routes, logger: logger)]
        if config.statusPage.enabled { services.append(StatusPageServer(config: config.statusPage, routes: routes, logger: logger)) }
        // Before the pollers: the first tick already sees the calibration windows stored in the database.
        calibration.replace(try await store.calibrations(coveringFrom: wallClock.now(), recovery: config.station.calibrationRecovery))
        services.append(CalibrationWatcher(gate: calibration, store: store, wallClock: wallClock, logger: logger, board: board,
                                           every: min(.seconds(1), config.station.pollInterval)))
        for bus in FieldDrivers.make(for: driverConfig(), logger: logger) {
            services.append(BusPoller(bus: bus, channels: config.channels, pollInterval: config.station.pollInterval,
                                      offset: config.station.utcOffset, store: store, progress: progress,
                                      wallClock: wallClock, logger: logger, board: board, calibration: calibration,
                                      commitWindow: config.station.commitWindow, recordGrid: config.station.grid))
        }
        var signals: [OutboxSignal] = []
        var senders: [any Service] = []
        for (i, target) in config.targets.enumerated() {
            let signal = OutboxSignal()
            signals.append(signal)
            senders.append(TransmissionService(target: target, station: config.station, uploader: try makeUploader(target, index: i),
                                               store: store, outbox: outbox, signal: signal, wallClock: wallClock, logger: logger, board: board))
        }
        services.append(RecordService(config: config, store: store, outbox: outbox, progress: progress, signals: signals,
                                      wallClock: wallClock, logger: logger, board: board))
        services += senders
        services.append(AveragesService(calculator: AverageCalculator(config: config, store: store), outbox: outbox,
                                        productTargets: productTargets(), signals: signals, wallClock: wallClock, logger: logger))
        services.append(RetentionService(retention: config.retention, dataDir: dataDir, store: store, outbox: outbox,
                                         wallClock: wallClock, logger: logger, board: board))
        services.append(ClockWatch(wallClock: wallClock, store: store, logger: logger, board: board))
        services.append(ClockSyncMonitor(board: board, wallClock: wallClock, logger: logger))
        // Last in the group, so first to hear of a graceful shutdown (sends STOPPING=1 at once).
        services.append(SystemdNotifier(board: board, progress: progress, pollInterval: config.station.pollInterval, logger: logger))

        logger.notice("quantracd starting", metadata: [
            "station": "\(config.station.prefix)", "buses": "\(config.buses.count)", "channels": "\(config.channels.count)",
            "targets": "\(config.targets.count)", "data_dir": "\(dataDir)",
        ])
        let group = ServiceGroup(configuration: .init(services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        try? await store.journal("daemon.stop", "stopped on request", at: wallClock.now())
        logger.notice("quantracd stopped")
    }

    /// The configuration the bus drivers see. Under an accelerated test clock (`quantracd --clock-scale`) their
    /// back-offs — monotonic, from the poll interval up to `reconnect_max` — shrink by the clock's rate like
    /// every other wait for station time; I/O timeouts stay real.
    func driverConfig() -> StationConfig {
        guard wallClock.rate != 1 else { return config }
        var c = config
        c.station.pollInterval = wallClock.realDuration(of: config.station.pollInterval, atLeast: .milliseconds(1))
        for i in c.buses.indices {
            c.buses[i].reconnectMax = wallClock.realDuration(of: c.buses[i].reconnectMax, atLeast: .milliseconds(1))
        }
        return c
    }

    /// Target names per average product (`1h`, `24h`).
    func productTargets() -> [String: [String]] {
        var out: [String: [String]] = [:]
        for t in config.targets {
            for p in t.products where p != "5m" { out[p, default: []].append(t.name) }
        }
        return out
    }

    /// Journals the configuration, the start, and the downtime since the last stored reading; a restart
    /// is also the "configuration changed" event that resumes queues parked by a refused login.
    func journalStart(store: Store) async throws {
        let now = wallClock.now()
        if let configPath, let data = FileManager.default.contents(atPath: configPath) {
            try await store.journal("config.loaded", "\(configPath) sha256 \(SHA256.hex(Array(data)))", at: now)
        }
        if let last = try await store.lastReadingTime(), now - last > config.station.pollInterval * 2 {
            try await store.journal("daemon.downtime", "no readings from \(last.milliseconds) to \(now.milliseconds) ms since the epoch "
                                    + "(\((now - last).wholeMilliseconds / 1000) s); no records are made for that time", at: now)
        }
        for target in config.targets where try await store.parkedReason(target: target.name) != nil {
            try await store.unpark(target: target.name)
        }
        try await store.journal("daemon.start", "quantracd started: \(config.buses.count) buses, \(config.channels.count) channels, "
                                + "\(config.targets.count) targets", at: now)
    }

    /// Files fully delivered before a crash but not yet moved to `sent/` are moved now.
    func reconcile(store: Store, outbox: OutboxDirectory) async throws {
        for name in try await store.deliveredButNotArchived() {
            try outbox.archive(name: name)
            try await store.markArchived(file: name)
        }
    }

    /// Builds the uploader of `target`, reading its credentials now (once; they are never logged).
    func makeUploader(_ target: TargetConfig, index: Int) throws -> any Uploader {
        let targetPath = "target[\(index)]"
        switch target.scheme {
        case .file:
            return FileUploader(target: target)
        case .ftp, .ftps, .sftp:
            let credentials: TargetCredentials
            do {
                credentials = try TargetCredentials.load(for: target, targetPath: targetPath)
            } catch {
                throw StartupError(error.description)
            }
            guard target.scheme == .sftp else {
                return FTPUploader(target: target, password: credentials.password, targetPath: targetPath)
            }
            do {
                return try SFTPUploader(target: target, credentials: credentials, targetPath: targetPath)
            } catch {
                throw StartupError(error.description)
            }
        }
    }
}

/// An exclusive `flock` on `data_dir/quantracd.lock`: two daemons never share one data directory.
final class DataDirLock {
    private let fd: Int32

    init(dataDir: String) throws {
        let path = (dataDir as NSString).appendingPathComponent("quantracd.lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StartupError("station.data_dir: cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StartupError("another quantracd already uses \(dataDir) (lock \(path) is held); stop it first")
        }
    }

    deinit { close(fd) }
}
