import Foundation

/// An HTTP/1.x request head, as much of it as a small read-only server needs. Bodies are not read.
public struct HTTPRequest: Sendable, Hashable {
    /// `GET`, `HEAD` … (case-sensitive, as RFC 9110 says).
    public var method: String
    /// The path, percent-decoded, without the query (`/`, `/metrics`).
    public var path: String
    /// Query parameters (`?hours=6` → `["hours": "6"]`), percent-decoded; the last of repeated names wins.
    public var query: [String: String]
    /// `HTTP/1.0` or `HTTP/1.1`.
    public var version: String
    /// Header fields by lower-cased name (repeated fields joined with ", ").
    public var headers: [String: String]

    public init(method: String, path: String, query: [String: String] = [:], version: String = "HTTP/1.1", headers: [String: String] = [:]) {
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
    }

    /// Why a request head was refused; each maps to a status code.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public let status: Int
        public let reason: String
        public var description: String { "\(status): \(reason)" }
    }

    /// The index just past the blank line ending the head (`CRLF CRLF`, or bare `LF LF`), or nil.
    public static func headEnd(in bytes: [UInt8]) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 10 {
                if i + 1 < bytes.count, bytes[i + 1] == 10 { return i + 2 }
                if i + 2 < bytes.count, bytes[i + 1] == 13, bytes[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// Parses a complete request head (request line, header fields, blank line).
    public static func parse(head: ArraySlice<UInt8>) -> Result<HTTPRequest, ParseError> {
        // Lines are split on the bytes: as Characters, "\r\n" is one grapheme and would not split on "\n".
        var lines: [String] = []
        for raw in head.split(separator: 10, omittingEmptySubsequences: false) {
            guard let line = String(validating: raw.last == 13 ? raw.dropLast() : raw, as: UTF8.self) else {
                return .failure(ParseError(status: 400, reason: "the request is not UTF-8"))
            }
            lines.append(line)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let requestLine = lines.first else { return .failure(ParseError(status: 400, reason: "empty request")) }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(ParseError(status: 400, reason: "the request line is not METHOD TARGET VERSION")) }
        let method = String(parts[0])
        guard !method.isEmpty, method.utf8.allSatisfy({ isTokenByte($0) }) else { return .failure(ParseError(status: 400, reason: "bad method")) }
        let version = String(parts[2])
        guard version.hasPrefix("HTTP/") else { return .failure(ParseError(status: 400, reason: "bad protocol version")) }
        guard version == "HTTP/1.0" || version == "HTTP/1.1" else { return .failure(ParseError(status: 505, reason: "only HTTP/1.0 and HTTP/1.1")) }
        var target = Substring(parts[1])
        // absolute-form (`http://host/path`), as proxies send it.
        if target.hasPrefix("http://") || target.hasPrefix("https://"), let scheme = target.range(of: "://") {
            let afterScheme = target[scheme.upperBound...]
            target = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        guard target.hasPrefix("/"), target.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return .failure(ParseError(status: 400, reason: "bad request target"))
        }
        let rawPath = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        guard let path = percentDecode(rawPath) else { return .failure(ParseError(status: 400, reason: "bad percent-encoding in the path")) }
        var query: [String: String] = [:]
        if let q = target.firstIndex(of: "?") {
            for pair in target[target.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = percentDecode(kv[0], plusIsSpace: true),
                      let value = kv.count == 2 ? percentDecode(kv[1], plusIsSpace: true) : "" else {
                    return .failure(ParseError(status: 400, reason: "bad percent-encoding in the query"))
                }
                query[name] = value
            }
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let first = line.first, first != " ", first != "\t" else {
                return .failure(ParseError(status: 400, reason: "folded header lines are not accepted"))
            }
            guard let colon = line.firstIndex(of: ":") else { return .failure(ParseError(status: 400, reason: "a header line has no colon")) }
            let name = line[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy({ isTokenByte($0) }) else { return .failure(ParseError(status: 400, reason: "bad header name")) }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let key = name.lowercased()
            headers[key] = headers[key].map { "\($0), \(value)" } ?? value
        }
        return .success(HTTPRequest(method: method, path: path, query: query, version: version, headers: headers))
    }

    /// RFC 9110 `tchar`.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    /// `%XX` decoding (and `+` as space in queries); nil for a bad escape or bytes that are not UTF-8.
    static func percentDecode(_ s: Substring, plusIsSpace: Bool = false) -> String? {
        var out: [UInt8] = []
        var bytes = s.utf8.makeIterator()
        while let b = bytes.next() {
            if b == UInt8(ascii: "%") {
                guard let h = bytes.next(), let l = bytes.next(), let hi = hexValue(h), let lo = hexValue(l) else { return nil }
                out.append(hi << 4 | lo)
            } else if plusIsSpace && b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// A complete response; always sent with `Connection: close` (one request per connection).
public struct HTTPResponse: Sendable, Hashable {
    public var status: Int
    public var contentType: String
    /// Extra header fields (`Allow`, `Cache-Control` …).
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [String: String] = [:], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    public static func text(_ status: Int, _ text: String, headers: [String: String] = [:]) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", headers: headers, body: Array(text.utf8))
    }

    /// The standard reason phrase of the status codes this server sends.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    /// The bytes on the wire; for `HEAD` the head only (with the length the body would have).
    public func serialized(headOnly: Bool = false, version: String = "HTTP/1.1") -> [UInt8] {
        var head = "\(version == "HTTP/1.0" ? "HTTP/1.0" : "HTTP/1.1") \(status) \(Self.reason(status))\r\n"
        head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (headOnly ? [] : body)
    }
}
