import FieldBus
import Modbus
import Testing

/// Modbus RTU framing for RTU over TCP, against frames from the specification's examples and from pymodbus.
struct RTUFramingTests {
    @Test func crcMatchesKnownFrames() {
        // The classic "read 10 holding registers of slave 1 from 0" and "read 1" requests.
        #expect(RTUFrame.readRequest(slave: 1, function: 3, address: 0, count: 10) == [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD])
        #expect(RTUFrame.readRequest(slave: 1, function: 3, address: 0, count: 1) == [0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x84, 0x0A])
        // Answers captured from pymodbus 3.16 serving RTU framing over TCP.
        #expect(RTUFrame.withCRC([0x03, 0x03, 0x06, 0x41, 0xF6, 0xE9, 0x79, 0x00, 0x07]).suffix(2) == [0x5B, 0x56])
        #expect(RTUFrame.withCRC([0x03, 0x83, 0x02]).suffix(2) == [0x61, 0x31])
        #expect(RTUFrame.crc16([UInt8]()) == 0xFFFF)
    }

    static let answer: [UInt8] = [0x03, 0x03, 0x06, 0x41, 0xF6, 0xE9, 0x79, 0x00, 0x07, 0x5B, 0x56]

    func parse(_ b: [UInt8], slave: UInt8 = 3, function: UInt8 = 3, count: Int = 3) throws(ModbusError) -> RTUFrame.ReadAnswer {
        try RTUFrame.parseReadAnswer(b, slave: slave, function: function, count: count, context: "test")
    }

    @Test func decodesRegistersOnceTheFrameIsComplete() throws {
        #expect(try parse(Self.answer) == .registers([0x41F6, 0xE979, 0x0007]))
        #expect(try parse([]) == .needMore(5))
        #expect(try parse([0x03]) == .needMore(5))
        #expect(try parse([0x03, 0x03]) == .needMore(5))
        for cut in 3..<Self.answer.count {
            #expect(try parse(Array(Self.answer.prefix(cut))) == .needMore(11), "cut at \(cut)")
        }
        // Trailing bytes (a second, late frame) do not disturb the first.
        #expect(try parse(Self.answer + [0x03, 0x03]) == .registers([0x41F6, 0xE979, 0x0007]))
    }

    @Test func exceptionAnswersGiveTheSameCodesAsLibmodbus() throws {
        #expect(throws: ModbusError(code: .exception(.illegalDataAddress), function: "", context: "", message: "")) {
            try parse([0x03, 0x83, 0x02, 0x61, 0x31])
        }
        #expect(try parse([0x03, 0x83, 0x02]) == .needMore(5))
        let gateway = RTUFrame.withCRC([0x03, 0x84, 0x0B])
        #expect(throws: ModbusError(code: .exception(.gatewayTargetFailedToRespond), function: "", context: "", message: "")) {
            try parse(gateway, function: 4)
        }
        do {
            _ = try parse([0x03, 0x83, 0x02, 0x61, 0x31])
        } catch {
            #expect(error.code.description == "exception illegal data address")
        }
    }

    @Test func corruptOrForeignFramesAreRefused() {
        var bad = Self.answer
        bad[4] ^= 0x01
        #expect(throws: ModbusError(code: .crc, function: "", context: "", message: "")) { try parse(bad) }
        #expect(throws: ModbusError(code: .crc, function: "", context: "", message: "")) { try parse([0x03, 0x83, 0x02, 0x61, 0x32]) }
        // Another slave, another function, a wrong byte count, an unknown exception code.
        #expect(throws: ModbusError(code: .invalidResponse, function: "", context: "", message: "")) { try parse([0x04, 0x03, 0x06]) }
        #expect(throws: ModbusError(code: .invalidResponse, function: "", context: "", message: "")) { try parse([0x03, 0x04, 0x06]) }
        #expect(throws: ModbusError(code: .invalidResponse, function: "", context: "", message: "")) { try parse([0x03, 0x03, 0x04]) }
        #expect(throws: ModbusError(code: .invalidResponse, function: "", context: "", message: "")) { try parse(RTUFrame.withCRC([0x03, 0x83, 0x09])) }
    }

    @Test func clientRefusesBadArgumentsBeforeConnecting() {
        let client = RTUOverTCPClient(host: "127.0.0.1", port: 1)
        #expect(throws: ModbusError(code: .invalidArgument, function: "", context: "", message: "")) {
            try client.readHoldingRegisters(slave: 0, address: 0, count: 1)
        }
        #expect(throws: ModbusError(code: .invalidArgument, function: "", context: "", message: "")) {
            try client.readInputRegisters(slave: 1, address: 0, count: 126)
        }
        #expect(!client.isConnected)
    }

    @Test func aRefusedConnectionIsAConnectionError() {
        // Port 1 on loopback: nothing listens, the kernel refuses at once.
        let client = RTUOverTCPClient(host: "127.0.0.1", port: 1)
        client.setResponseTimeout(.milliseconds(200))
        #expect(throws: ModbusError(code: .connection, function: "", context: "", message: "")) { try client.connect() }
    }
}
