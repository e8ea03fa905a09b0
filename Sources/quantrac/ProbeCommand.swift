import ArgumentParser
import FieldBus
import Foundation
import Modbus
import QuantracConfig
import QuantracCore

/// Reads raw registers like mbpoll and shows every decoding around the address, so a technician sees
/// an off-by-one or a byte-order mis-map at a glance.
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read raw registers from a device and show every decoding at A-1, A and A+1 in all four byte orders.",
        discussion: "Works standalone (like mbpoll). Refuses a serial port the running daemon owns.")

    @Option(name: .long, help: "Station configuration (TOML) that defines the bus.") var config: String
    @Option(name: .long, help: "Bus name from the configuration.") var bus: String
    @Option(name: .long, help: "Slave / unit id.") var slave: Int = 1
    @Option(name: .long, help: "holding or input.") var register: String = "holding"
    @Option(name: .long, help: "Zero-based address.") var address: Int
    @Option(name: .long, help: "Registers of interest (1-121).") var count: Int = 2
    @Flag(name: .long, help: "Print JSON.") var json = false

    struct Decoding: Encodable { let start: Int; let type: String; let byteOrder: String; let value: Double }
    struct Result: Encodable { let start: Int; let registers: [UInt16]; let decodings: [Decoding] }

    func run() async throws {
        let c = try loadConfig(config)
        guard let b = c.bus(named: bus) else { throw ValidationError("no [[bus]] named \(bus) (known: \(c.buses.map(\.name).joined(separator: ", ")))") }
        guard let kind = RegisterKind(rawValue: register) else { throw ValidationError("--register must be holding or input") }
        guard (1...121).contains(count), (0...65535).contains(address), (0...255).contains(slave) else {
            throw ValidationError("--count must be 1-121, --address 0-65535, --slave 0-255")
        }
        try refuseSerialPortsOwnedByTheDaemon(c, buses: [bus])
        let endpoint: ModbusEndpoint
        switch b.transport {
        case .modbusTCP(let host, let port): endpoint = .tcp(host: host, port: port)
        case .modbusRTU(let device, let baud, let parity, let dataBits, let stopBits):
            endpoint = .rtu(device: device, baud: baud, parity: parity == .even ? .even : parity == .odd ? .odd : .none, dataBits: dataBits, stopBits: stopBits)
        case .modbusRTUOverTCP, .asciiSerial:
            throw ValidationError("probe reads modbus-tcp and modbus-rtu buses; bus \(bus) is \(b.transport.name)")
        }
        // One register before and enough after to decode a float64 starting at A+1.
        let wideStart = max(0, address - 1)
        let span = min(125, min(65536 - wideStart, address + count + 4 - wideStart))
        let timeout = b.timeout
        let lane = BlockingLane<Void>(name: "probe") { () }
        defer { lane.shutdown() }
        let (start, registers): (Int, [UInt16])
        do {
            (start, registers) = try await lane.run { _ in
                let client = try ModbusClient(endpoint: endpoint)
                client.setResponseTimeout(timeout)
                func read(_ a: Int, _ n: Int) throws -> [UInt16] {
                    kind == .holding ? try client.readHoldingRegisters(slave: slave, address: a, count: n)
                        : try client.readInputRegisters(slave: slave, address: a, count: n)
                }
                // The widest window first; a device that refuses addresses around the asked ones gets narrower
                // ones, down to exactly the registers asked for.
                let windows = [(wideStart, span), (wideStart, address + count + 1 - wideStart), (address, count)]
                var lastError: ModbusError?
                for (a, n) in windows where n >= 1 {
                    do { return (a, try read(a, n)) } catch let e as ModbusError where e.code.exception != nil { lastError = e }
                }
                throw lastError!
            }
        } catch let e as ModbusError {
            let hint = e.code.exception == .illegalDataAddress
                ? "; the device has no \(register) registers \(address)…\(address + count - 1): check --address (zero-based) and --count, or try --register \(kind == .holding ? "input" : "holding")"
                : ""
            throw CommandFailure("\(endpoint) slave \(slave): \(e)\(hint)")
        }
        var decodings: [Decoding] = []
        for s in [address - 1, address, address + 1] where s >= start {
            for type in ValueType.allCases where s - start + type.registerCount <= registers.count {
                for order in ByteOrder.allCases where type.registerCount > 1 || !order.wordsReversed {
                    let regs = Array(registers[(s - start)..<(s - start + type.registerCount)])
                    decodings.append(Decoding(start: s, type: type.rawValue, byteOrder: order.rawValue,
                                              value: RegisterCodec(type: type, byteOrder: order).decode(regs)))
                }
            }
        }
        if json { return try printJSON(Result(start: start, registers: registers, decodings: decodings)) }
        print("\(endpoint) slave \(slave) \(register) registers \(start)…\(start + registers.count - 1) (zero-based; mbpoll -r is this + 1)")
        printTable([["ADDRESS", "HEX", "UNSIGNED", "SIGNED"]] + registers.enumerated().map { i, r in
            [String(start + i) + (start + i == address ? " <" : ""), String(format: "0x%04X", r), String(r), String(Int16(bitPattern: r))]
        })
        for s in [address - 1, address, address + 1] where decodings.contains(where: { $0.start == s && $0.type != "int16" && $0.type != "uint16" }) {
            print("\nstarting at \(s)\(s == address ? " (the address asked for)" : s < address ? " (one before: off-by-one?)" : " (one after)"):")
            let types = ValueType.allCases.filter { t in t.registerCount > 1 && decodings.contains { $0.start == s && $0.type == t.rawValue } }
            let rows = types.map { type -> [String] in
                [type.rawValue] + ByteOrder.allCases.map { order in
                    decodings.first { $0.start == s && $0.type == type.rawValue && $0.byteOrder == order.rawValue }.map { Self.format($0.value) } ?? "-"
                }
            }
            printTable([["TYPE", "ABCD", "CDAB", "BADC", "DCBA"]] + rows)
        }
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.6g", v)
    }
}
