import FieldBus
import QuantracConfig
import Testing

/// Every type × byte order, with values whose bytes are all distinct so any swap shows.
struct RegisterCodecTests {
    struct Vector: Sendable, CustomStringConvertible {
        let type: ValueType
        let value: Double
        /// Registers in ABCD, CDAB, BADC, DCBA order.
        let registers: [ByteOrder: [UInt16]]
        var description: String { "\(type) \(value)" }
    }

    static let vectors: [Vector] = [
        // 123.456f = 0x42F6E979
        Vector(type: .float32, value: Double(Float(123.456)), registers: [
            .abcd: [0x42F6, 0xE979], .cdab: [0xE979, 0x42F6], .badc: [0xF642, 0x79E9], .dcba: [0x79E9, 0xF642]]),
        // -123456789 = 0xF8A432EB
        Vector(type: .int32, value: -123_456_789, registers: [
            .abcd: [0xF8A4, 0x32EB], .cdab: [0x32EB, 0xF8A4], .badc: [0xA4F8, 0xEB32], .dcba: [0xEB32, 0xA4F8]]),
        // 3000000000 = 0xB2D05E00
        Vector(type: .uint32, value: 3_000_000_000, registers: [
            .abcd: [0xB2D0, 0x5E00], .cdab: [0x5E00, 0xB2D0], .badc: [0xD0B2, 0x005E], .dcba: [0x005E, 0xD0B2]]),
        // 123.456 = 0x405EDD2F1A9FBE77
        Vector(type: .float64, value: 123.456, registers: [
            .abcd: [0x405E, 0xDD2F, 0x1A9F, 0xBE77], .cdab: [0xBE77, 0x1A9F, 0xDD2F, 0x405E],
            .badc: [0x5E40, 0x2FDD, 0x9F1A, 0x77BE], .dcba: [0x77BE, 0x9F1A, 0x2FDD, 0x5E40]]),
        // -1234 = 0xFB2E
        Vector(type: .int16, value: -1234, registers: [.abcd: [0xFB2E], .badc: [0x2EFB]]),
        // 54321 = 0xD431
        Vector(type: .uint16, value: 54321, registers: [.abcd: [0xD431], .badc: [0x31D4]]),
    ]

    @Test(arguments: vectors)
    func decodesEveryByteOrder(_ v: Vector) {
        for (order, regs) in v.registers {
            let codec = RegisterCodec(type: v.type, byteOrder: order)
            #expect(codec.decode(regs) == v.value, "\(v.type) \(order.rawValue)")
        }
    }

    @Test(arguments: vectors)
    func encodesEveryByteOrder(_ v: Vector) {
        for (order, regs) in v.registers {
            #expect(RegisterCodec(type: v.type, byteOrder: order).encode(v.value) == regs, "\(v.type) \(order.rawValue)")
        }
    }

    @Test func signedness() {
        #expect(RegisterCodec(type: .int16, byteOrder: .abcd).decode([0x8000]) == -32768)
        #expect(RegisterCodec(type: .uint16, byteOrder: .abcd).decode([0x8000]) == 32768)
        #expect(RegisterCodec(type: .int32, byteOrder: .abcd).decode([0xFFFF, 0xFFFF]) == -1)
        #expect(RegisterCodec(type: .uint32, byteOrder: .abcd).decode([0xFFFF, 0xFFFF]) == 4_294_967_295)
    }

    @Test func roundTripsRandomValues() {
        var rng = SystemRandomNumberGenerator()
        for type in ValueType.allCases {
            for order in ByteOrder.allCases where type.registerCount > 1 || !order.wordsReversed {
                let codec = RegisterCodec(type: type, byteOrder: order)
                for _ in 0..<200 {
                    let raw = (0..<type.registerCount).map { _ in UInt16.random(in: 0...UInt16.max, using: &rng) }
                    let value = codec.decode(raw)
                    if value.isNaN { continue }
                    #expect(codec.decode(codec.encode(value)) == value, "\(type) \(order.rawValue) \(raw)")
                }
            }
        }
    }

    @Test func integerEncodingClampsAndRounds() {
        #expect(RegisterCodec(type: .uint16, byteOrder: .abcd).encode(70000) == [0xFFFF])
        #expect(RegisterCodec(type: .int16, byteOrder: .abcd).encode(-1.6) == [0xFFFE])
    }
}
