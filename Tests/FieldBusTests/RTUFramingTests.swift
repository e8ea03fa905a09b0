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

#if canImport(Glibc)
import Foundation
import Glibc

/// A loopback TCP peer on its own thread: for each connection, reads requests (8-byte RTU read frames)
/// and lets `answer` decide what to send back (nil: close the connection).
final class ScriptedRTUPeer: @unchecked Sendable {
    // Invariant for @unchecked Sendable: `listener` and `port` are set in init and never change; the
    // serving thread only reads them and calls `answer`, a @Sendable closure.
    let port: Int
    private let listener: Int32

    init(answer: @escaping @Sendable (_ connection: Int, _ request: [UInt8]) -> [UInt8]?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        guard bound == 0, listen(listener, 4) == 0 else { throw TestPeerError() }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread {
            var connection = 0
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                connection += 1
                var buffer: [UInt8] = []
                serving: while true {
                    var chunk = [UInt8](repeating: 0, count: 64)
                    let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    buffer += chunk.prefix(n)
                    while buffer.count >= 8 {
                        let request = Array(buffer.prefix(8))
                        buffer.removeFirst(8)
                        guard let reply = answer(connection, request) else { break serving }
                        _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                }
                close(c)
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

struct TestPeerError: Error {}

/// `RTUOverTCPClient` on a real loopback socket: answers, late answers, a peer that hangs up.
struct RTUOverTCPClientTests {
    static func registers(_ request: [UInt8], _ values: [UInt16]) -> [UInt8] {
        RTUFrame.withCRC([request[0], request[1], UInt8(2 * values.count)] + values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }

    @Test func readsDiscardsLateAnswersAndReconnectsAfterTheServerHangsUp() throws {
        let peer = try ScriptedRTUPeer { connection, request in
            let address = Int(request[2]) << 8 | Int(request[3])
            switch (connection, address) {
            case (1, 0): return Self.registers(request, [0x41F6, 0xE979])
            case (1, 1): return []                                    // no answer: the client times out…
            case (1, 2): return Self.registers([request[0], request[1]], [0x1111]) + Self.registers(request, [7])  // …the late one arrives before the next
            case (1, 3): return nil                                   // hang up
            default: return Self.registers(request, [UInt16(address)])
            }
        }
        defer { peer.stop() }
        let client = RTUOverTCPClient(host: "127.0.0.1", port: peer.port)
        client.setResponseTimeout(.milliseconds(150))
        #expect(try client.readHoldingRegisters(slave: 5, address: 0, count: 2) == [0x41F6, 0xE979])
        #expect(throws: ModbusError(code: .timeout, function: "", context: "", message: "")) {
            try client.readHoldingRegisters(slave: 5, address: 1, count: 1)
        }
        // Two frames arrive for one request: the first complete one is the answer, the second stays on
        // the socket and must be discarded before the next request.
        #expect(try client.readHoldingRegisters(slave: 5, address: 2, count: 1) == [0x1111])
        Thread.sleep(forTimeInterval: 0.05)  // the trailing frame (7) arrives and waits on the socket
        #expect(throws: ModbusError(code: .connection, function: "", context: "", message: "")) {
            try client.readInputRegisters(slave: 5, address: 3, count: 1)  // stale bytes discarded, then the peer hangs up
        }
        #expect(!client.isConnected)
        #expect(try client.readInputRegisters(slave: 5, address: 9, count: 1) == [9])  // connects again
    }
}
#endif
