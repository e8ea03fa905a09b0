import Foundation
import QuantracConfig
import QuantracCore
import QuantracTesting
import Testing

/// `quantrac-sim` scenarios: fault timelines, status words derived from the station, key-path errors.
struct ScenarioTests {
    static let station = #"""
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "/tmp/x"
        [[bus]]
        name = "rs485"
        transport = "modbus-rtu"
        device = "/dev/ttyS0"
        [[bus]]
        name = "gas"
        transport = "ascii-serial"
        protocol = "bayern-hessen"
        device = "/dev/ttyS1"
        [[bus]]
        name = "line"
        transport = "ascii-serial"
        protocol = "line"
        device = "/dev/ttyS2"
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "rs485"
        slave = 3
        address = 0
        type = "float32"
        status_address = 10
        status_calibrating_mask = 0x0004
        status_fault = [7, 9]
        [[channel]]
        code = "TSS"
        unit = "mg/L"
        bus = "rs485"
        slave = 4
        address = 0
        type = "uint16"
        [[channel]]
        code = "SO2"
        unit = "mg/Nm3"
        bus = "gas"
        bh_address = 2
        bh_calibration_mask = 0x0C
        [[channel]]
        code = "pH"
        unit = "-"
        bus = "line"
        request = 'PH?\r'
        response = '^pH (?<value>[0-9.]+) (?<status>\w)$'
        status_map = { "M" = "measuring", "Z" = "calibrating", "C" = "calibrating", "E" = "fault" }
        """#

    /// Writes the station and the scenario into a fresh directory and loads the scenario.
    static func load(_ scenario: String) throws -> Scenario {
        let dir = try makeTemporaryDirectory("scenario-unit")
        try station.write(to: dir.appendingPathComponent("station.toml"), atomically: true, encoding: .utf8)
        let file = dir.appendingPathComponent("scenario.toml")
        try ("station = \"station.toml\"\n" + scenario).write(to: file, atomically: true, encoding: .utf8)
        return try ScenarioLoader.load(path: file.path)
    }

    static func problems(_ scenario: String) throws -> [String] {
        do {
            _ = try load(scenario)
            return []
        } catch let error as ConfigError {
            return error.issues.map(\.description)
        }
    }

    @Test func faultWindowsAreHalfOpenAndRepeat() {
        let once = SimFault(kind: .timeout, at: .seconds(30), duration: .seconds(20))
        #expect(!once.isActive(at: .milliseconds(29_999)) && once.isActive(at: .seconds(30)) && once.isActive(at: .milliseconds(49_999)))
        #expect(!once.isActive(at: .seconds(50)) && !once.isActive(at: .seconds(3630)))
        let hourly = SimFault(kind: .calibrating, at: .seconds(60), duration: .seconds(300), every: .seconds(3600))
        #expect(hourly.isActive(at: .seconds(60)) && hourly.isActive(at: .seconds(3660 + 299)) && !hourly.isActive(at: .seconds(3660 + 300)))
        #expect(hourly.isActive(at: .seconds(86_400 * 3 + 60)), "still repeating three days later")
        #expect(!hourly.isActive(at: .seconds(59)))
        #expect(hourly.summary == "calibrating for 5m at 1m every 1h")
    }

    @Test func everyDeviceGetsStatusCodesTheStationReadsRight() throws {
        // Only the line analyzer's answer is required; everything else has defaults.
        let s = try Self.load("[[channel]]\ncode = \"pH\"\nanswer = \"pH {pH} {status}\"\n")
        #expect(s.devices.map { "\($0.bus)/\($0.slave)" } == ["rs485/3", "rs485/4", "gas/2", "line/1"])
        let cod = s.devices[0]
        #expect(cod.statusCodes == [.measuring: 0, .calibrating: 4, .fault: 7], "smallest words under mask 0x0004 and values [7, 9]")
        #expect(s.devices[1].statusCodes.isEmpty, "no status register")
        #expect(s.devices[2].statusCodes == [.measuring: 0, .calibrating: 4, .fault: 1], "Bayern-Hessen status byte under its masks")
        #expect(s.devices[3].statusTexts == [.measuring: "M", .calibrating: "C", .fault: "E"], "first text in sorted order per state")
        #expect(s.endpoints["rs485"] == .pty(link: nil) && s.endpoints["gas"] == .pty(link: nil))
        #expect(s.channels["COD"]?.waveform == .typical && s.channels["COD"]?.base == 40, "COD's typical level")
    }

    @Test func aScenarioSetsEndpointsWaveformsStatusWordsAndFaults() throws {
        let s = try Self.load("""
            [[bus]]
            name = "rs485"
            link = "/tmp/quantrac-sim/rs485"
            [[bus]]
            name = "gas"
            device = "/dev/ttyUSB3"
            [[channel]]
            code = "COD"
            waveform = "sine"
            base = 40
            amplitude = 5
            period = "1h"
            span = 95
            [[channel]]
            code = "pH"
            base = 7.1
            answer = "pH {pH} {status}"
            [[device]]
            bus = "rs485"
            slave = 3
            status_calibrating = 12
            [[device.fault]]
            kind = "exception"
            code = 6
            at = "10m"
            for = "1m"
            every = "2h"
            """)
        #expect(s.endpoints["rs485"] == .pty(link: "/tmp/quantrac-sim/rs485") && s.endpoints["gas"] == .device("/dev/ttyUSB3"))
        let cod = try #require(s.channels["COD"])
        #expect(cod.waveform == .sine && cod.amplitude == 5 && cod.period == .seconds(3600) && cod.span == 95)
        #expect(s.channels["pH"]?.waveform == .constant && s.channels["pH"]?.span == 7.1)
        #expect(s.devices[0].statusCodes[.calibrating] == 12)
        #expect(s.devices[0].faults == [SimFault(kind: .exception, at: .seconds(600), duration: .seconds(60), every: .seconds(7200), exceptionCode: 6)])
        #expect(s.devices[3].answers == [Array("PH?\r".utf8): "pH {pH} {status}"])
    }

    @Test func problemsNameTheirKeyPaths() throws {
        #expect(try Self.problems("""
            [[bus]]
            name = "gas"
            port = 1502
            [[channel]]
            code = "TSS"
            waveform = "ramp"
            [[device]]
            bus = "rs485"
            slave = 3
            status_calibrating = 7
            status_fault = 4
            [[device]]
            bus = "rs485"
            slave = 4
            [[device.fault]]
            kind = "alarm"
            for = "1m"
            [[device]]
            bus = "gas"
            slave = 2
            [[device.fault]]
            kind = "exception"
            for = "1m"
            at = "soon"
            """) == [
            "bus[0].port: only applies to modbus-tcp buses; gas is ascii-serial",
            "channel[0].base: missing; waveform \"ramp\" needs base = <value>",
            "device[0].status_calibrating: 7 reads as fault under channel COD's status_* keys, not calibrating",
            "device[0].status_fault: 4 reads as calibrating under channel COD's status_* keys, not fault",
            "device[1].fault[0].kind: \"alarm\" needs a way to show a fault: device 4 of bus rs485 has no status register with status_fault or status_fault_mask",
            "device[2].fault[0].at: \"soon\" is not a duration like \"500ms\", \"10s\", \"5m\", \"1h\" or \"1d\"",
            "device[2].fault[0].kind: \"exception\" is a Modbus reply; bus gas speaks Bayern-Hessen (use timeout or garbage)",
            "no answer for the request that station channel[3] pH sends on bus line: add a [[channel]] with code = \"pH\" and answer = \"…\"",
        ])
        #expect(try Self.problems("""
            [[channel]]
            code = "pH"
            answer = "pH {PH} {status}"
            """) == ["channel[0].answer: {PH} is not the code of a channel of bus line (or {status})"])
    }

    @Test func theShippedScenariosLoad() throws {
        let dir = Repository.root.appendingPathComponent("Boards/scenarios")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".toml") }.sorted()
        #expect(names == ["ambient-air.toml", "demo.toml", "stack-gas.toml", "surface-water.toml", "wastewater.toml"])
        for name in names {
            let s = try ScenarioLoader.load(path: dir.appendingPathComponent(name).path)
            #expect(s.devices.contains { !$0.faults.isEmpty }, "\(name) has faults")
            #expect(s.devices.flatMap(\.faults).allSatisfy { $0.every != nil }, "\(name): every fault repeats, for long and accelerated runs")
        }
    }
}
