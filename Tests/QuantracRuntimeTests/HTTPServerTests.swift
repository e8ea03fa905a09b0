import Foundation
import Logging
import QuantracConfig
import QuantracCore
@testable import QuantracRuntime
import QuantracTesting
import Storage
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The request parser, the small HTTP server against raw loopback sockets (limits, timeouts, the
/// connection cap), the Prometheus text and the pieces of the status page.
struct HTTPRequestParserTests {
    func parse(_ text: String) -> Result<HTTPRequest, HTTPRequest.ParseError> {
        let bytes = Array(text.utf8)
        let end = HTTPRequest.headEnd(in: bytes) ?? bytes.count
        return HTTPRequest.parse(head: bytes[0..<end])
    }

    @Test func requestLineHeadersAndQuery() throws {
        let r = try parse("GET /chart%20x?hours=6&c=PM2%2C5&q=a+b HTTP/1.1\r\nHost: station\r\nAccept: a\r\naccept: b\r\n\r\n").get()
        #expect(r.method == "GET" && r.path == "/chart x" && r.version == "HTTP/1.1")
        #expect(r.query == ["hours": "6", "c": "PM2,5", "q": "a b"])
        #expect(r.headers["host"] == "station" && r.headers["accept"] == "a, b")
        // Bare LF line ends and absolute-form targets are accepted too.
        #expect(try parse("HEAD http://127.0.0.1:8080/metrics HTTP/1.0\n\n").get().path == "/metrics")
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400), ("GET /\r\n\r\n", 400), ("GET / HTTP/2.0\r\n\r\n", 505), ("GET / FTP/1.0\r\n\r\n", 400),
        ("GET nope HTTP/1.1\r\n\r\n", 400), ("GET /%zz HTTP/1.1\r\n\r\n", 400), ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400), ("G(T / HTTP/1.1\r\n\r\n", 400), ("GET /%C3%28 HTTP/1.1\r\n\r\n", 400),
    ])
    func refused(_ text: String, _ status: Int) {
        guard case .failure(let e) = parse(text) else {
            Issue.record("accepted: \(text.debugDescription)")
            return
        }
        #expect(e.status == status, "\(text.debugDescription): \(e)")
    }

    @Test func headEndNeedsTheBlankLine() {
        #expect(HTTPRequest.headEnd(in: Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8)) == nil)
        #expect(HTTPRequest.headEnd(in: Array("GET / HTTP/1.1\r\n\r\nbody".utf8)) == 18)
    }

    @Test func responseHeadAndHEAD() {
        let r = HTTPResponse(status: 404, contentType: "text/plain", headers: ["Allow": "GET"], body: Array("no".utf8))
        let text = String(decoding: r.serialized(version: "HTTP/1.0"), as: UTF8.self)
        #expect(text == "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\nAllow: GET\r\n\r\nno")
        #expect(String(decoding: r.serialized(headOnly: true), as: UTF8.self).hasSuffix("Allow: GET\r\n\r\n"))
    }
}

/// Holds `/slow` requests until the test opens it.
actor Gate {
    private var isOpen = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func open() {
        isOpen = true
        for w in waiting { w.resume() }
        waiting.removeAll()
    }

    var hasWaiters: Bool { !waiting.isEmpty }

    /// Returns once a request waits at the gate.
    nonisolated func waitUntilWaiting() async throws {
        try await waitUntilAsync(timeout: .seconds(30), what: "a request at the gate") { await self.hasWaiters }
    }
}

/// A raw loopback client: what a browser, a scraper or a misbehaving client sends.
struct RawClient {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw TestFailure("connect to 127.0.0.1:\(port): \(reason)")
        }
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything until the server closes (or 15 s pass).
    func readAll() -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }

    /// One request on a fresh connection; the whole response.
    static func get(port: Int, _ request: String) throws -> String {
        let c = try RawClient(port: port)
        defer { c.close() }
        c.send(request)
        return c.readAll()
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs blocking socket calls on a thread of their own: the server's handler needs the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

func fetch(_ port: Int, _ request: String) async throws -> String {
    try await onThread { try RawClient.get(port: port, request) }
}

@Suite(.serialized)
struct HTTPServerTests {
    /// Runs a server with `limits` on a free loopback port around `body`; the handler echoes the path
    /// (`/slow` waits until the test opens `gate`).
    func withServer(_ limits: HTTPServer.Limits = .init(), _ body: @Sendable (Int, Gate) async throws -> Void) async throws {
        let gate = Gate()
        let listener = try HTTPListener(.tcp(host: "127.0.0.1", port: 0))
        guard case .tcp(_, let port) = listener.endpoint, port > 0 else { throw TestFailure("no port: \(listener.endpoint)") }
        let server = HTTPServer(name: "test-http", limits: limits, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await server.serve(listener) { request in
                    if request.path == "/slow" { await gate.wait() }
                    return .text(200, "path=\(request.path) query=\(request.query.sorted { $0.key < $1.key })\n")
                }
            }
            defer { group.cancelAll() }
            try await body(port, gate)
        }
        // Cancelled: the listener is shut down, new connections are refused.
        #expect(throws: (any Error).self) { _ = try RawClient(port: port) }
    }

    @Test func answersGetHeadAndRefusesTheRest() async throws {
        try await withServer { port, _ in
            let ok = try await fetch(port, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(ok.hasPrefix("HTTP/1.1 200 OK\r\n") && ok.contains("Connection: close") && ok.hasSuffix("path=/metrics query=[(key: \"x\", value: \"1\")]\n"), "\(ok)")
            let head = try await fetch(port, "HEAD / HTTP/1.0\r\n\r\n")
            #expect(head.hasPrefix("HTTP/1.0 200 OK") && head.hasSuffix("\r\n\r\n") && head.contains("Content-Length: 16\r\n"), "\(head)")
            let post = try await fetch(port, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed") && post.contains("Allow: GET, HEAD"), "\(post)")
            #expect(try await fetch(port, "HELLO\r\n\r\n").hasPrefix("HTTP/1.1 400 Bad Request"))
            let big = try await fetch(port, "GET / HTTP/1.1\r\nX-Big: \(String(repeating: "a", count: 9000))\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 431 "), "\(big.prefix(80))")
        }
    }

    @Test func aStalledClientHoldsOnlyItsOwnThreadAndIsDroppedAfterTheTimeout() async throws {
        var limits = HTTPServer.Limits()
        limits.readTimeout = .seconds(1)
        try await withServer(limits) { port, _ in
            let silent = try RawClient(port: port)
            let trickle = try RawClient(port: port)
            defer { silent.close(); trickle.close() }
            trickle.send("GET / HTTP/1.1\r\n")  // never finishes its head
            // Others are served meanwhile.
            #expect(try await fetch(port, "GET /other HTTP/1.1\r\n\r\n").contains("path=/other"))
            // The silent one is closed without an answer; the half-sent head gets 408.
            #expect(try await onThread { silent.readAll() } == "")
            #expect(try await onThread { trickle.readAll() }.hasPrefix("HTTP/1.1 408 Request Timeout"))
        }
    }

    @Test func connectionsBeyondTheCapGet503() async throws {
        var limits = HTTPServer.Limits()
        limits.maxConnections = 2
        limits.readTimeout = .seconds(10)
        try await withServer(limits) { port, _ in
            let a = try RawClient(port: port), b = try RawClient(port: port)
            let third = try await fetch(port, "GET / HTTP/1.1\r\n\r\n")
            #expect(third.hasPrefix("HTTP/1.1 503 Service Unavailable"), "\(third)")
            a.close()
            b.close()
            try await waitForAnswer(port: port)
        }
    }

    @Test func aSlowHandlerDoesNotDelayOtherRequests() async throws {
        try await withServer { port, gate in
            // /slow is answered only after /again has been: a server serving one request at a time would
            // answer /again with 503 after the handler timeout instead.
            async let slow = fetch(port, "GET /slow HTTP/1.1\r\n\r\n")
            try await gate.waitUntilWaiting()
            #expect(try await fetch(port, "GET /again HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200"))
            await gate.open()
            #expect(try await slow.contains("path=/slow"))
        }
    }

    /// Retries a plain GET until the server answers 200 (connections closed by the client are released
    /// by their threads shortly after).
    func waitForAnswer(port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try await fetch(port, "GET /again HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 200") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("no 200 within 10 s")
    }

    @Test func aTakenPortIsAClearError() throws {
        let first = try HTTPListener(.tcp(host: "127.0.0.1", port: 0))
        guard case .tcp(_, let port) = first.endpoint else { return }
        #expect {
            _ = try HTTPListener(.tcp(host: "127.0.0.1", port: port))
        } throws: { error in
            "\(error)" == "cannot listen on 127.0.0.1:\(port): Address already in use"
        }
        first.shutdown()
    }
}

struct MetricsTextTests {
    @Test func familiesLabelsAndEscapes() {
        var m = MetricsText()
        m.family("quantrac_x", .gauge, "Help with a \\ backslash.")
        m.sample("quantrac_x", ["channel": "PM2,5", "unit": "µg/\"m3\"\n"], 12.5)
        m.sample("quantrac_x", [:], 3)
        #expect(m.text == """
            # HELP quantrac_x Help with a \\\\ backslash.
            # TYPE quantrac_x gauge
            quantrac_x{channel="PM2,5",unit="µg/\\"m3\\"\\n"} 12.5
            quantrac_x 3

            """)
    }

    @Test func renderedFromTheBoard() throws {
        let config = try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "data"
            [[bus]]
            name = "plc"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "plc"
            slave = 3
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            url = "file:///tmp/x"
            """)
        let clock = ManualWallClock(Timestamp(milliseconds: 1_000_000))
        let board = StatusBoard(station: "HN_ABCD_NUO001", startedMs: 0, channels: [("COD", "mg/L", "plc")], buses: ["plc"], targets: ["dept"],
                                devices: ["COD": 3], wallClock: clock)
        board.record(bus: "plc", readings: [Reading(channel: "COD", time: Timestamp(milliseconds: 999_750), value: 41.5, status: .measuring, reason: nil)])
        board.record(bus: "plc", readings: [Reading(channel: "COD", time: Timestamp(milliseconds: 999_900), value: nil, status: .fault, reason: "timeout")])
        board.target("dept") { $0.pending = 4; $0.lastError = "refused" }
        board.update { $0.lastClockStep = "step 1"; $0.clock = .init(synchronized: true, source: "adjtimex", maxErrorMs: 12, estimatedErrorMs: 1, detail: "ok", checkedMs: 0) }
        let text = MetricsRenderer(config: config, wallClock: clock).render(board.snapshot())
        for line in [
            "quantrac_device_polls_total{bus=\"plc\",device=\"3\"} 2", "quantrac_device_errors_total{bus=\"plc\",device=\"3\"} 1",
            "quantrac_bus_poll_latency_seconds_sum{bus=\"plc\"} 0.35", "quantrac_bus_poll_latency_seconds_count{bus=\"plc\"} 2",
            "quantrac_channel_status{channel=\"COD\"} 2", "quantrac_target_backlog_files{target=\"dept\"} 4", "quantrac_target_failing{target=\"dept\"} 1",
            "quantrac_clock_synchronized{source=\"adjtimex\"} 1", "quantrac_clock_max_error_seconds 0.012", "quantrac_clock_steps_total 1",
        ] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
        #expect(!text.contains("quantrac_channel_value{"), "no value while the last reading is a fault")
    }
}

struct StatusPagePieceTests {
    @Test func roundTicks() {
        #expect(StatusPageChart.niceTicks(low: 0.3, high: 9.6, count: 4) == [0, 5, 10])
        #expect(StatusPageChart.niceTicks(low: 142.1, high: 151.9, count: 4) == [140, 145, 150, 155])
        let small = StatusPageChart.niceTicks(low: 7.21, high: 7.29, count: 4)  // 0.05 apart
        #expect(small.count == 3 && zip(small, [7.2, 7.25, 7.3]).allSatisfy { abs($0 - $1) < 1e-9 }, "\(small)")
        #expect(StatusPageChart.decimals(forStep: 2.5) == 1 && StatusPageChart.decimals(forStep: 0.25) == 2 && StatusPageChart.decimals(forStep: 50) == 0)
    }

    @Test func bucketsSeparateStatusesAndKeepGaps() {
        let statuses: [InstrumentStatus] = [.measuring, .measuring, .calibrating, .measuring, .fault, .measuring]
        let records: [ChannelRecord] = statuses.enumerated().map { i, status in
            ChannelRecord(channel: "X", intervalEnd: Int64(i + 1) * 300, value: Double(i + 1), status: status, validCount: 1, sampleCount: 1)
        }
        let chart = StatusPageChart(code: "X", decimals: 1, from: 0, to: 1800, offset: UTCOffset(seconds: 0), recordInterval: 300, limit: nil, records: records)
        let b = chart.buckets()
        #expect(b.count == 6)
        let means: [Double?] = b.map { $0.mean }
        let expected: [Double?] = [1, 2, nil, 4, nil, 6]
        #expect(means == expected)
        #expect(b[2].calibrating && b[4].fault)
        let svg = chart.svg()
        #expect(svg.contains("data-points=\"4\"") && svg.contains("class=\"band01\"") && svg.contains("class=\"band02\""))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 1 && svg.components(separatedBy: "<circle").count - 1 == 2, "one line (1–2) and two dots (4, 6)")
    }

    @Test func ageReadsLikeAClock() {
        #expect(StatusPageHTML.age(4_000) == "4 s" && StatusPageHTML.age(600_000) == "10 min" && StatusPageHTML.age(3_900_000) == "1 h 5 min")
    }

    @Test func escaping() {
        #expect(HTML.escape("<a href=\"x\">PM2,5 & 'SO2'</a>") == "&lt;a href=&quot;x&quot;&gt;PM2,5 &amp; &#39;SO2&#39;&lt;/a&gt;")
    }
}

struct ClockSyncTests {
    @Test func kernelStateBecomesTheBoardState() {
        let synced = ClockSyncProbe.state(kernel: .success(.init(synchronized: true, maxErrorMicroseconds: 25_000, estimatedErrorMicroseconds: 300)),
                                          timedatectl: nil, at: Timestamp(milliseconds: 5))
        #expect(synced.synchronized == true && synced.source == "adjtimex" && synced.maxErrorMs == 25 && synced.detail.hasPrefix("synchronised"))
        let refused = ClockSyncProbe.state(kernel: .failure(.init(reason: "adjtimex: Operation not permitted")), timedatectl: .some(false),
                                           at: Timestamp(milliseconds: 5))
        #expect(refused.synchronized == false && refused.source == "timedatectl")
        let unknown = ClockSyncProbe.state(kernel: .failure(.init(reason: "adjtimex: Operation not permitted")), timedatectl: .some(nil),
                                           at: Timestamp(milliseconds: 5))
        #expect(unknown.synchronized == nil && unknown.detail.contains("Operation not permitted"))
        #expect(ClockSyncProbe.parseTimedatectl("yes\n") == true && ClockSyncProbe.parseTimedatectl("no") == false && ClockSyncProbe.parseTimedatectl("") == nil)
    }

    @Test func theKernelAnswersHere() throws {
        // Outside a seccomp filter adjtimex(2) with modes = 0 is allowed to everyone.
        let k = try ClockSyncProbe.kernel().get()
        #expect(k.maxErrorMicroseconds >= 0 && k.maxErrorMicroseconds <= 16_000_000)
    }
}
