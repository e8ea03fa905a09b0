import Foundation
import QuantracCore

/// What the daemon's HTTP servers answer (control socket and status page alike):
/// `/` the status page (HTML), `/metrics` Prometheus text, `/status` the status board as JSON.
public struct StatusRoutes: Sendable {
    let board: StatusBoard
    let page: StatusPage?
    let metrics: MetricsRenderer

    /// - Parameter page: nil answers `/` with 404 (a board without a database, in tests).
    public init(board: StatusBoard, page: StatusPage?, metrics: MetricsRenderer) {
        self.board = board
        self.page = page
        self.metrics = metrics
    }

    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        switch request.path {
        case "/", "/index.html":
            guard let page else { break }
            let html = await page.render()
            return HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", headers: ["Cache-Control": "no-store"], body: Array(html.utf8))
        case "/metrics":
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                body: Array(metrics.render(board.snapshot()).utf8))
        case "/status", "/status.json":
            return HTTPResponse(status: 200, contentType: "application/json", headers: ["Cache-Control": "no-store"],
                                body: Self.json(board.snapshot()))
        default:
            break
        }
        return .text(404, "not found: \(request.path) (try /, /metrics or /status)\n")
    }

    /// The board as `quantrac status --json` prints it: snake_case keys, sorted.
    static func json(_ snapshot: StatusBoard.Snapshot) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? Array(encoder.encode(snapshot))) ?? Array("{}".utf8)
    }
}
