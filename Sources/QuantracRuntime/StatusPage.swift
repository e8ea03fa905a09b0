import Foundation
import Logging
import QuantracConfig
import QuantracCore
import ServiceLifecycle
import Storage

/// The local status page: live values from the status board, and from the database (read through
/// GRDB's reader connections, never on the cooperative pool) the last 24 hours of records, the latest
/// hourly and daily averages and the VN_AQI. Rendered as one self-contained HTML document.
public struct StatusPage: Sendable {
    let config: StationConfig
    let store: Store
    let board: StatusBoard
    let wallClock: any WallClock

    public init(config: StationConfig, store: Store, board: StatusBoard, wallClock: any WallClock) {
        self.config = config
        self.store = store
        self.board = board
        self.wallClock = wallClock
    }

    public func render() async -> String {
        StatusPageHTML(data: await gather(), config: config).render()
    }

    /// Reads what the page shows. A database error still gives a page: live values, and the error.
    func gather() async -> StatusPageData {
        let now = wallClock.now()
        var data = StatusPageData(snapshot: board.snapshot(), now: now)
        let t = now.seconds
        do {
            for ch in config.channels {
                data.records[ch.code] = try await store.records(channel: ch.code, after: t - 86_400, through: t)
            }
            data.hourly = try await store.averages(period: "1h", after: t - 7 * 3600, through: t)
            data.daily = try await store.averages(period: "24h", after: t - 2 * 86_400, through: t)
            if config.station.kind == .ambientAir {
                data.aqiHourly = try await store.aqi(period: "1h", after: t - 3 * 3600, through: t).last
                data.aqiDaily = try await store.aqi(period: "24h", after: t - 2 * 86_400, through: t).last
            }
        } catch {
            data.historyError = "\(error)"
        }
        return data
    }
}

/// Everything one rendering of the page shows.
struct StatusPageData {
    var snapshot: StatusBoard.Snapshot
    var now: Timestamp
    /// Records of the last 24 hours per channel code, oldest first.
    var records: [String: [ChannelRecord]] = [:]
    /// Hourly averages of the last 7 hours and daily averages of the last 2 days, all channels.
    var hourly: [StoredAverage] = []
    var daily: [StoredAverage] = []
    var aqiHourly: StoredAQI?
    var aqiDaily: StoredAQI?
    /// Why the history could not be read.
    var historyError: String?
}

/// Serves the status page and `/metrics` on `[status_page] listen`. A listener that cannot be opened
/// (port taken, address not on this machine) is logged as an error and the daemon goes on without the
/// page: acquisition never depends on it.
public struct StatusPageServer: Service {
    let config: StatusPageConfig
    let routes: StatusRoutes
    let logger: Logger

    public init(config: StatusPageConfig, routes: StatusRoutes, logger: Logger) {
        self.config = config
        self.routes = routes
        self.logger = logger
    }

    public func run() async throws {
        let listener: HTTPListener
        do {
            listener = try HTTPListener(.tcp(host: config.host, port: config.port))
        } catch {
            logger.error("status page disabled: \(error); polling and delivery go on (set [status_page] listen to a free port, or enabled = false)")
            try? await gracefulShutdown()
            return
        }
        logger.notice("status page listening", metadata: ["url": "http://\(listener.endpoint)/"])
        let routes = self.routes
        await HTTPServer(name: "status-page", logger: logger).serve(listener) { await routes.respond(to: $0) }
    }
}
