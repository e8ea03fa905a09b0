import Modbus

/// Modbus RTU framing (Modbus over Serial Line v1.02 §2.5): `slave function data… crcLo crcHi`, as
/// carried unchanged by serial device servers and cellular DTUs over TCP. Only what Quantrac reads:
/// functions 3 (holding) and 4 (input registers), their answers and exception answers.
public enum RTUFrame {
    /// CRC-16/MODBUS: polynomial 0xA001 (reflected 0x8005), initial value 0xFFFF. Sent low byte first.
    public static func crc16<C: Collection>(_ bytes: C) -> UInt16 where C.Element == UInt8 {
        var crc: UInt16 = 0xFFFF
        for b in bytes {
            crc ^= UInt16(b)
            for _ in 0..<8 {
                crc = crc & 1 != 0 ? (crc >> 1) ^ 0xA001 : crc >> 1
            }
        }
        return crc
    }

    /// `bytes` followed by their CRC, low byte first.
    public static func withCRC(_ bytes: [UInt8]) -> [UInt8] {
        let crc = crc16(bytes)
        return bytes + [UInt8(crc & 0xFF), UInt8(crc >> 8)]
    }

    /// A read request: `slave function addrHi addrLo countHi countLo crcLo crcHi` (8 bytes).
    public static func readRequest(slave: UInt8, function: UInt8, address: UInt16, count: UInt16) -> [UInt8] {
        withCRC([slave, function, UInt8(address >> 8), UInt8(address & 0xFF), UInt8(count >> 8), UInt8(count & 0xFF)])
    }

    /// What the bytes received so far amount to.
    public enum ReadAnswer: Sendable, Hashable {
        /// Not complete: at least this many bytes in total are needed.
        case needMore(Int)
        /// A complete, valid answer carrying `count` registers.
        case registers([UInt16])
    }

    /// Parses the answer to a read of `count` registers with `function` (3 or 4) from `slave`. The
    /// length follows from the function: an exception answer (function + 0x80) is 5 bytes, a normal one
    /// `3 + byteCount + 2`. Throws the same `ModbusError` codes as the libmodbus path: `.exception(e)`
    /// for an exception answer, `.crc` for a bad CRC, `.invalidResponse` for a wrong slave, function or
    /// byte count. `context` names the request in errors.
    public static func parseReadAnswer(_ buffer: [UInt8], slave: UInt8, function: UInt8, count: Int,
                                       context: String) throws(ModbusError) -> ReadAnswer {
        let fn = "rtu_over_tcp_read(\(function))"
        func invalid(_ why: String) -> ModbusError { ModbusError(code: .invalidResponse, function: fn, context: context, message: why) }
        guard buffer.count >= 2 else { return .needMore(5) }
        guard buffer[0] == slave else { throw invalid("answer from slave \(buffer[0]), expected \(slave)") }
        if buffer[1] == function | 0x80 {
            guard buffer.count >= 5 else { return .needMore(5) }
            try checkCRC(buffer[..<5], fn: fn, context: context)
            if let e = ModbusException(rawValue: buffer[2]) {
                throw ModbusError(code: .exception(e), function: fn, context: context, message: e.description)
            }
            throw invalid("unknown exception code \(buffer[2])")
        }
        guard buffer[1] == function else { throw invalid("answer with function \(buffer[1]), expected \(function)") }
        guard buffer.count >= 3 else { return .needMore(5) }
        let byteCount = Int(buffer[2])
        guard byteCount == 2 * count else { throw invalid("answer carries \(byteCount) bytes, expected \(2 * count)") }
        let total = 3 + byteCount + 2
        guard buffer.count >= total else { return .needMore(total) }
        try checkCRC(buffer[..<total], fn: fn, context: context)
        return .registers((0..<count).map { UInt16(buffer[3 + 2 * $0]) << 8 | UInt16(buffer[4 + 2 * $0]) })
    }

    private static func checkCRC(_ frame: ArraySlice<UInt8>, fn: String, context: String) throws(ModbusError) {
        let body = frame.dropLast(2)
        let crc = crc16(body)
        let got = UInt16(frame[frame.endIndex - 2]) | UInt16(frame[frame.endIndex - 1]) << 8
        guard crc == got else {
            throw ModbusError(code: .crc, function: fn, context: context,
                              message: "CRC received 0x\(String(got, radix: 16, uppercase: true)) != computed 0x\(String(crc, radix: 16, uppercase: true))")
        }
    }
}
