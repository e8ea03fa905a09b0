import QuantracConfig
import Testing

/// `[status_page]`: on by default at 127.0.0.1:8080; `listen` takes IP literals only.
struct StatusPageConfigTests {
    static let minimal = """
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
        address = 0
        type = "float32"
        """

    @Test func onByDefaultOnLoopback8080() throws {
        let page = try ConfigLoader.parse(Self.minimal).statusPage
        #expect(page.enabled && page.host == "127.0.0.1" && page.port == 8080 && page.refresh == .seconds(30))
        #expect(page.listen == "127.0.0.1:8080")
    }

    @Test func switchedOffOrMoved() throws {
        let off = try ConfigLoader.parse(Self.minimal + "\n[status_page]\nenabled = false\n").statusPage
        #expect(!off.enabled)
        let moved = try ConfigLoader.parse(Self.minimal + "\n[status_page]\nlisten = \"0.0.0.0:0\"\nrefresh = \"10s\"\n").statusPage
        #expect(moved.host == "0.0.0.0" && moved.port == 0 && moved.refresh == .seconds(10))
    }

    @Test(arguments: [
        ("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:80", "::1", 80), ("localhost:9100", "127.0.0.1", 9100),
        ("0.0.0.0:0", "0.0.0.0", 0), ("[fe80::1]:65535", "fe80::1", 65535),
    ])
    func listenAddresses(_ text: String, _ host: String, _ port: Int) {
        let parsed = StatusPageConfig.parseListen(text)
        #expect(parsed?.host == host && parsed?.port == port)
    }

    @Test(arguments: ["8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:8080", "[::1]8080", "station.local:80",
                      "256.0.0.1:80", "127.0.0.1:-1", "127.0.0.1:８０", "[127.0.0.1]:80"])
    func rejectedListenAddresses(_ text: String) {
        #expect(StatusPageConfig.parseListen(text) == nil, "\(text)")
    }
}
