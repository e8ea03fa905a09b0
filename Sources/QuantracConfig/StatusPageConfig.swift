import Foundation

/// The local status page and `/metrics` (`[status_page]`): read-only HTTP served by the daemon on a TCP
/// address, for the station screen and a Prometheus scraper.
public struct StatusPageConfig: Sendable, Hashable {
    /// Off: no TCP listener at all (the control socket still answers `quantrac status`).
    public var enabled = true
    /// The listening address: an IPv4 or IPv6 literal (`127.0.0.1` only by default; `0.0.0.0` exposes
    /// the page on every interface).
    public var host = "127.0.0.1"
    /// TCP port, 1…65535, or 0: a free port chosen at start (logged; used by tests).
    public var port = 8080
    /// How often the page reloads itself in the browser.
    public var refresh: Duration = .seconds(30)

    public init() {}

    /// `host:port` as written in the configuration (`[::1]:8080` for IPv6).
    public var listen: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `"127.0.0.1:8080"`, `"[::1]:8080"`, `"0.0.0.0:80"` or `"localhost:8080"` (→ 127.0.0.1) into
    /// an IP literal and a port (0…65535); nil for anything else (host names are not resolved).
    public static func parseListen(_ text: String) -> (host: String, port: Int)? {
        let host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
              let port = Int(portText), (0...65535).contains(port) else { return nil }
        if host == "localhost" { return ("127.0.0.1", port) }
        var v4 = in_addr(), v6 = in6_addr()
        let literal = String(host)
        if text.hasPrefix("[") {
            return inet_pton(AF_INET6, literal, &v6) == 1 ? (literal, port) : nil
        }
        return inet_pton(AF_INET, literal, &v4) == 1 ? (literal, port) : nil
    }
}
