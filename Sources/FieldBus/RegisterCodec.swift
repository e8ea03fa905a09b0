import QuantracConfig

/// Decodes and encodes numeric values from/to 16-bit Modbus registers, for every type and byte order.
///
/// Registers arrive as host `UInt16` values whose high byte is the first byte on the wire. A value's
/// bytes in big-endian order are A B C D (E F G H for 64-bit); the byte order names how they sit in the
/// registers: ABCD as is, CDAB words reversed, BADC bytes swapped within each word, DCBA both.
public struct RegisterCodec: Sendable {
    public let type: ValueType
    public let byteOrder: ByteOrder

    public init(type: ValueType, byteOrder: ByteOrder) {
        self.type = type
        self.byteOrder = byteOrder
    }

    /// Puts registers into big-endian word order with big-endian bytes, undoing the byte order.
    @inline(__always)
    func canonicalWords<C: Collection>(_ registers: C) -> [UInt16] where C.Element == UInt16 {
        var words = Array(registers)
        if byteOrder.wordsReversed { words.reverse() }
        if byteOrder.bytesSwapped { words = words.map { $0.byteSwapped } }
        return words
    }

    /// The raw numeric value (before scale and offset) of `type.registerCount` registers.
    public func decode<C: Collection>(_ registers: C) -> Double where C.Element == UInt16 {
        precondition(registers.count == type.registerCount, "decode needs exactly \(type.registerCount) registers")
        let w = canonicalWords(registers)
        switch type {
        case .uint16: return Double(w[0])
        case .int16: return Double(Int16(bitPattern: w[0]))
        case .uint32: return Double(UInt32(w[0]) << 16 | UInt32(w[1]))
        case .int32: return Double(Int32(bitPattern: UInt32(w[0]) << 16 | UInt32(w[1])))
        case .float32: return Double(Float(bitPattern: UInt32(w[0]) << 16 | UInt32(w[1])))
        case .float64:
            let bits = w.reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
            return Double(bitPattern: bits)
        }
    }

    /// Registers holding `value` (raw, before scale): the inverse of `decode`. Integers are rounded
    /// and clamped to the type's range.
    public func encode(_ value: Double) -> [UInt16] {
        var words: [UInt16]
        switch type {
        case .uint16: words = [UInt16(clamping: Self.rounded(value))]
        case .int16: words = [UInt16(bitPattern: Int16(clamping: Self.rounded(value)))]
        case .uint32: words = Self.split32(UInt32(clamping: Self.rounded(value)))
        case .int32: words = Self.split32(UInt32(bitPattern: Int32(clamping: Self.rounded(value))))
        case .float32: words = Self.split32(Float(value).bitPattern)
        case .float64:
            let bits = value.bitPattern
            words = (0..<4).map { UInt16(truncatingIfNeeded: bits >> (48 - 16 * UInt64($0))) }
        }
        if byteOrder.bytesSwapped { words = words.map { $0.byteSwapped } }
        if byteOrder.wordsReversed { words.reverse() }
        return words
    }

    private static func rounded(_ v: Double) -> Int64 {
        guard v.isFinite else { return 0 }
        return Int64(exactly: v.rounded()) ?? (v < 0 ? Int64.min : Int64.max)
    }

    private static func split32(_ v: UInt32) -> [UInt16] { [UInt16(v >> 16), UInt16(v & 0xFFFF)] }
}
