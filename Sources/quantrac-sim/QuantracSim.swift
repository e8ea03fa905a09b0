import ArgumentParser
import Foundation
import Modbus
import QuantracConfig
import QuantracCore
#if canImport(Glibc)
import Glibc
#endif

/// Simulated analyzers for demos, tests and soak runs: serves the devices of a station configuration over
/// Modbus TCP, Modbus RTU and ASCII (line protocol, Bayern-Hessen) on pseudo-terminals, with waveforms,
/// status registers and a timeline of faults taken from a scenario file (`--scenario`), or plausible
/// moving values and no faults (`--config`).
@main
struct QuantracSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantrac-sim",
        abstract: "Simulated analyzers: serve a station's devices over Modbus TCP/RTU and ASCII, with scripted faults.",
        discussion: """
            With --scenario, the scenario names the station file and says how each bus is served (TCP port, \
            a new pseudo-terminal, or a device), how each channel's value moves and which faults each device \
            has when (see README.md, "quantrac-sim"). With --config, every modbus-tcp bus is served at its \
            port (or --port) and a serial bus on the device --rtu names, with typical moving values.

            Prints one line `READY <bus> <port-or-device>` per served bus on stdout once everything listens \
            (scenario time 0), one line per fault start and end on stderr, then serves until SIGTERM or SIGINT.
            """)

    @Option(name: .long, help: "Scenario file (TOML): the station to serve, endpoints, waveforms, faults.")
    var scenario: String?

    @Option(name: .long, help: "Station configuration (TOML) to serve with typical values and no faults.")
    var config: String?

    @Option(name: .long, help: "--config: serve a serial bus on a device: BUS=PATH (repeatable), e.g. rs485=/tmp/ttyA.")
    var rtu: [String] = []

    @Option(name: .long, help: "Serve a TCP bus on another port: BUS=PORT (repeatable; 0 picks a free port).")
    var port: [String] = []

    @Option(name: .long, help: "--config: never answer these slaves (an absent analyzer), e.g. 9 (repeatable).")
    var absent: [Int] = []

    @Option(name: .long, help: "Write the station file the daemon should use: the served one with each served bus's port or device.")
    var stationOut: String?

    @Option(name: .long, help: "With --station-out: set [station] data_dir in the written file.")
    var dataDir: String?

    @Flag(name: .long, help: "Serve the scenario's waveforms and statuses, but none of its faults.")
    var noFaults = false

    @Flag(name: .long, help: "Log every request and how it was answered on stderr (with a millisecond time).")
    var trace = false

    @Option(name: .long, help: "Run scenario time this many times faster than the wall clock (faults, sine and ramp periods).")
    var speed: Double = 1

    mutating func validate() throws {
        guard (scenario == nil) != (config == nil) else { throw ValidationError("give exactly one of --scenario FILE and --config FILE") }
        if scenario != nil, !rtu.isEmpty || !absent.isEmpty {
            throw ValidationError("--rtu and --absent go with --config; a scenario says this in its [[bus]] and [[device]] tables")
        }
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be a positive number") }
        if dataDir != nil, stationOut == nil { throw ValidationError("--data-dir needs --station-out") }
    }

    mutating func run() throws {
        let plan = try loadScenario()
        // Signals are handled by sigwait on the main thread; the bus threads inherit the blocked mask.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let buses = try serve(plan)
        guard !buses.isEmpty else { throw ValidationError("nothing to serve: no bus is served (modbus-tcp buses, or serial buses on --rtu BUS=PATH)") }
        if let stationOut { try writeStation(plan, buses: buses, to: stationOut) }
        let clock = SimClock(speed: speed)
        for bus in buses {
            let runner = BusRunner(bus: bus, clock: clock)
            let thread = Thread { runner.run() }
            thread.name = "sim-\(bus.name)"
            thread.start()
        }
        for bus in buses { SimLog.stdout("READY \(bus.name) \(bus.address)") }
        var signal: Int32 = 0
        sigwait(&signals, &signal)
        for bus in buses { bus.stop() }
    }

    /// The scenario file, or the `--config` defaults.
    func loadScenario() throws -> Scenario {
        var ports: [String: Int] = [:]
        for (bus, value) in try Self.pairs(port, "--port") {
            guard let p = Int(value), (0...65535).contains(p) else { throw ValidationError("--port \(bus)=\(value): not a port number") }
            ports[bus] = p
        }
        if let scenario {
            var plan: Scenario
            do { plan = try ScenarioLoader.load(path: scenario) } catch {
                FileHandle.standardError.write(Data("\(scenario): \(error.issues.count) problem\(error.issues.count == 1 ? "" : "s")\n\(error)\n".utf8))
                throw ExitCode(78)
            }
            for (bus, p) in ports {
                guard case .modbusTCP? = plan.station.bus(named: bus)?.transport else {
                    throw ValidationError("--port \(bus)=\(p): not a modbus-tcp bus of \(plan.stationFile)")
                }
                plan.endpoints[bus] = .tcp(port: p)
            }
            return plan
        }
        let path = config ?? ""
        let station: StationConfig
        do { station = try ConfigLoader.load(path: path) } catch {
            throw ValidationError("configuration \(path) is invalid:\n\(error)")
        }
        let serial = try Self.pairs(rtu, "--rtu")
        for bus in Array(serial.keys) + Array(ports.keys) where station.bus(named: bus) == nil {
            throw ValidationError("\(bus) is not a [[bus]] of \(path) (known: \(station.buses.map(\.name).joined(separator: ", ")))")
        }
        return ScenarioLoader.defaults(for: station, file: path, serial: serial, ports: ports, absent: Set(absent))
    }

    /// Opens every served bus (listening sockets, pseudo-terminals, devices).
    func serve(_ plan: Scenario) throws -> [any ServedBus] {
        var buses: [any ServedBus] = []
        let trace = RequestTrace(enabled: self.trace)
        for bus in plan.station.buses {
            let models = plan.devices(onBus: bus.name).map { DeviceModel(device: $0, scenario: plan, faultsEnabled: !noFaults) }
            let endpoint = plan.endpoints[bus.name] ?? .off
            func line() throws -> SerialLine? {
                switch endpoint {
                case .pty(let link): return try SerialLine(ptyLink: link)
                case .device(let path):
                    switch bus.transport {
                    case .modbusRTU(_, let baud, let parity, let dataBits, let stopBits), .asciiSerial(_, let baud, let parity, let dataBits, let stopBits, _):
                        return try SerialLine(device: path, baud: baud, parity: parity, dataBits: dataBits, stopBits: stopBits)
                    default: return nil
                    }
                default: return nil
                }
            }
            switch bus.transport {
            case .modbusTCP(let host, _):
                guard case .tcp(let port) = endpoint else { continue }
                do {
                    buses.append(try ModbusTCPBus(name: bus.name, host: host, port: port, models: models, trace: trace))
                } catch {
                    throw ValidationError("bus \(bus.name): cannot listen on \(host):\(port): \(error)")
                }
            case .modbusRTU:
                guard let line = try line() else { continue }
                buses.append(RTUBus(name: bus.name, line: line, models: models, trace: trace))
            case .asciiSerial(_, _, _, _, _, let proto):
                if proto == .line, models.contains(where: { $0.device.answers.isEmpty }) {
                    SimLog.event("bus=\(bus.name): not served: a line-protocol analyzer needs answer templates from a scenario")
                    continue
                }
                guard let line = try line() else { continue }
                buses.append(TextBus(name: bus.name, proto: proto, line: line, models: models, channels: plan.station.channels, trace: trace))
            case .modbusRTUOverTCP:
                SimLog.event("bus=\(bus.name): not served (modbus-rtu-over-tcp is not simulated)")
            }
        }
        return buses
    }

    /// The station file with each served bus's port (TCP) or device (a new pseudo-terminal), written
    /// atomically before the `READY` lines.
    func writeStation(_ plan: Scenario, buses: [any ServedBus], to path: String) throws {
        guard let text = try? String(contentsOfFile: plan.stationFile, encoding: .utf8) else {
            throw ValidationError("cannot read \(plan.stationFile)")
        }
        var file = StationFile(text)
        for bus in buses {
            switch plan.endpoints[bus.name] {
            case .tcp?: file.setBus(bus.name, "port", bus.address)
            case .pty?: file.setBus(bus.name, "device", StationFile.quoted(bus.address))
            default: break  // a device: the daemon opens the other end, which only the caller knows
            }
        }
        if let dataDir { file.setStation("data_dir", StationFile.quoted(dataDir)) }
        let tmp = path + ".tmp"
        do {
            try Data(file.text.utf8).write(to: URL(fileURLWithPath: tmp))
        } catch {
            throw ValidationError("cannot write \(tmp): \(error.localizedDescription)")
        }
        guard rename(tmp, path) == 0 else { throw ValidationError("cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))") }
    }

    static func pairs(_ values: [String], _ option: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for v in values {
            guard let eq = v.firstIndex(of: "="), eq != v.startIndex else { throw ValidationError("\(option) \(v): expected BUS=VALUE") }
            out[String(v[..<eq])] = String(v[v.index(after: eq)...])
        }
        return out
    }
}

/// Scenario time: the monotonic time since the simulator started serving, times `speed`.
struct SimClock: Sendable {
    let start = ContinuousClock.now
    let speed: Double

    var now: Duration {
        let elapsed = ContinuousClock.now - start
        return speed == 1 ? elapsed : .seconds(elapsed.inSimSeconds * speed)
    }
}

/// Runs one served bus forever on its own thread.
final class BusRunner: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `bus` is created on the main thread before the runner's thread
    // starts and then used by that thread only, except `stop()` at exit (which only closes sockets and
    // removes links; the process ends right after).
    let bus: any ServedBus
    let clock: SimClock

    init(bus: any ServedBus, clock: SimClock) {
        self.bus = bus
        self.clock = clock
    }

    func run() {
        while true { bus.step(at: clock.now, wall: Date().timeIntervalSince1970) }
    }
}
