import ArgumentParser
import FieldBus
import Foundation
import Modbus
import QuantracConfig
import QuantracCore
#if canImport(Glibc)
import Glibc
#endif

/// Simulated analyzers for demos and tests: serves the registers a station configuration reads, over
/// Modbus TCP (every modbus-tcp bus, at its host and port) and Modbus RTU (on a device path you give,
/// e.g. one end of a socat pty pair), with values that move plausibly.
@main
struct QuantracSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantrac-sim",
        abstract: "Serve a station's analyzers over Modbus TCP/RTU with moving values.",
        discussion: """
            Prints one line `READY <bus> <port>` per served bus on stdout once it listens, then serves until \
            SIGTERM or SIGINT. Over RTU one unit id per device is served (the first slave of the bus).
            """)

    @Option(name: .long, help: "Station configuration (TOML) whose channels to serve.")
    var config: String

    @Option(name: .long, help: "Serve an RTU bus on a device: BUS=PATH (repeatable), e.g. rs485=/tmp/ttyA.")
    var rtu: [String] = []

    @Option(name: .long, help: "Serve a TCP bus on another port: BUS=PORT (repeatable; 0 picks a free port).")
    var port: [String] = []

    @Option(name: .long, help: "Do not answer these slaves (simulate an absent analyzer), e.g. 9 (repeatable).")
    var absent: [Int] = []

    mutating func run() throws {
        let station: StationConfig
        do { station = try ConfigLoader.load(path: config) } catch {
            throw ValidationError("configuration \(config) is invalid:\n\(error)")
        }
        let rtuDevices = try Self.pairs(rtu, "--rtu")
        let portOverrides = try Self.pairs(port, "--port").mapValues { v -> Int in
            guard let p = Int(v), (0...65535).contains(p) else { return -1 }
            return p
        }
        // Signals are handled by sigwait on the main thread; servers run on their own threads.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)

        var served = 0
        for bus in station.buses {
            let channels = station.channels.filter { $0.bus == bus.name && !absent.contains($0.slave) }
            let server: ModbusServer
            var units = Set(channels.map { UInt8($0.slave) })
            switch bus.transport {
            case .modbusTCP(let host, let busPort):
                let p = portOverrides[bus.name] ?? busPort
                guard p >= 0 else { throw ValidationError("--port \(bus.name): not a port number") }
                server = try ModbusServer(tcpHost: host, port: p)
            case .modbusRTU(_, let baud, let parity, let dataBits, let stopBits):
                guard let device = rtuDevices[bus.name] else { continue }
                let slave = channels.map(\.slave).min() ?? 1
                units = [UInt8(slave)]
                let p: SerialParity = parity == .even ? .even : parity == .odd ? .odd : .none
                server = try ModbusServer(rtuDevice: device, baud: baud, parity: p, dataBits: dataBits, stopBits: stopBits, slave: slave)
            case .modbusRTUOverTCP, .asciiSerial:
                continue  // not simulated (yet)
            }
            for unit in units {
                let mine = channels.filter { UInt8($0.slave) == unit }
                let holding = mine.filter { $0.register == .holding }.map { $0.address + $0.type.registerCount }.max() ?? 0
                let input = mine.filter { $0.register == .input }.map { $0.address + $0.type.registerCount }.max() ?? 0
                server.define(unit: unit, holdingCount: holding, inputCount: input)
            }
            let served_ = channels.filter { units.contains(UInt8($0.slave)) }
            let runner = SimulatedBus(server: server, channels: served_)
            let thread = Thread { runner.serveForever() }
            thread.name = "sim-\(bus.name)"
            thread.start()
            FileHandle.standardOutput.write(Data("READY \(bus.name) \(server.boundPort ?? 0)\n".utf8))
            served += 1
        }
        guard served > 0 else { throw ValidationError("nothing to serve: no modbus-tcp bus, and no --rtu BUS=PATH given") }
        var signal: Int32 = 0
        sigwait(&set, &signal)
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

/// One served bus: its server and the waveforms of its channels; lives on one thread.
final class SimulatedBus: @unchecked Sendable {
    // Invariant for @unchecked Sendable: used only by the thread that runs serveForever().
    let server: ModbusServer
    let channels: [(ChannelConfig, Waveform, RegisterCodec)]

    init(server: ModbusServer, channels: [ChannelConfig]) {
        self.server = server
        self.channels = channels.enumerated().map { i, ch in
            (ch, Waveform(code: ch.code, seed: i), RegisterCodec(type: ch.type, byteOrder: ch.byteOrder))
        }
    }

    func serveForever() {
        var lastUpdate = -1.0
        while true {
            let now = Date().timeIntervalSince1970
            if now - lastUpdate >= 1 {
                update(at: now)
                lastUpdate = now
            }
            server.serve(for: .milliseconds(100))
        }
    }

    func update(at t: Double) {
        for (ch, wave, codec) in channels {
            let raw = (wave.value(at: t) - ch.offset) / ch.scale
            let regs = codec.encode(raw)
            switch ch.register {
            case .holding: server.set(unit: UInt8(ch.slave), holding: regs, at: ch.address)
            case .input: server.set(unit: UInt8(ch.slave), input: regs, at: ch.address)
            }
        }
    }
}
