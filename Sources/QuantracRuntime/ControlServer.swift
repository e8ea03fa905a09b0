import Foundation
import Logging
import QuantracCore
import ServiceLifecycle

/// The control API: HTTP over a Unix socket (`data_dir/control.sock`, mode 0660 so a group can be given
/// access), served by `HTTPServer`. `GET /status` returns the status board as JSON (`quantrac status`);
/// `/` and `/metrics` answer as on the status page, so they stay reachable when the page is off
/// (`curl --unix-socket data/control.sock http://localhost/metrics`).
public struct ControlServer: Service {
    let path: String
    let routes: StatusRoutes
    let logger: Logger

    public init(path: String, routes: StatusRoutes, logger: Logger) {
        self.path = path
        self.routes = routes
        self.logger = logger
    }

    public func run() async throws {
        let listener: HTTPListener
        do {
            listener = try HTTPListener(.unix(path: path), backlog: 8)
        } catch {
            throw StartupError("control socket: \(error)")
        }
        logger.info("control API listening", metadata: ["socket": "\(path)"])
        let routes = self.routes
        await HTTPServer(name: "control", logger: logger).serve(listener) { await routes.respond(to: $0) }
    }
}
