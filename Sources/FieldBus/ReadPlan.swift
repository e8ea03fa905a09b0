import QuantracConfig

/// One channel's place inside a grouped read: where its registers start and how to turn them into a value.
public struct FieldDecoder: Sendable {
    /// Index of the channel in `StationConfig.channels` (file line order).
    public let channelIndex: Int
    public let code: String
    /// Offset of the first register within the group's registers.
    public let offset: Int
    public let count: Int
    let codec: RegisterCodec
    let scale: Double
    let valueOffset: Double

    /// The engineering value: raw × scale + offset.
    public func value(from registers: [UInt16]) -> Double {
        codec.decode(registers[offset..<(offset + count)]) * scale + valueOffset
    }
}

/// One request on the wire: contiguous registers of one kind on one slave (at most 125).
public struct RegisterRead: Sendable {
    public let slave: Int
    public let register: RegisterKind
    public let address: Int
    public let count: Int
    public let fields: [FieldDecoder]
}

/// The compiled polling plan of one bus: grouped requests in slave and address order, decoders chosen
/// at load time so the polling path never looks at configuration strings.
public struct ReadPlan: Sendable {
    public let bus: BusConfig
    public let reads: [RegisterRead]

    /// Groups the bus's channels into requests: same slave and register kind, contiguous or overlapping
    /// registers, at most `bus.maxRegistersPerRead` registers per request.
    public init(bus: BusConfig, channels: [ChannelConfig]) {
        self.bus = bus
        let mine = channels.enumerated().filter { $0.element.bus == bus.name }
        let keyed = Dictionary(grouping: mine) { SlaveKey(slave: $0.element.slave, register: $0.element.register) }
        var reads: [RegisterRead] = []
        for key in keyed.keys.sorted() {
            let sorted = keyed[key]!.sorted { ($0.element.address, $0.offset) < ($1.element.address, $1.offset) }
            var start = -1, end = -1
            var pending: [(Int, ChannelConfig)] = []
            func flush() {
                guard !pending.isEmpty else { return }
                let fields = pending.map { index, ch in
                    FieldDecoder(channelIndex: index, code: ch.code, offset: ch.address - start, count: ch.type.registerCount,
                                 codec: RegisterCodec(type: ch.type, byteOrder: ch.byteOrder), scale: ch.scale, valueOffset: ch.offset)
                }
                reads.append(RegisterRead(slave: key.slave, register: key.register, address: start, count: end - start, fields: fields))
                pending = []
            }
            for (index, ch) in sorted {
                let chEnd = ch.address + ch.type.registerCount
                if !pending.isEmpty, ch.address <= end, max(end, chEnd) - start <= bus.maxRegistersPerRead {
                    end = max(end, chEnd)
                } else {
                    flush()
                    start = ch.address
                    end = chEnd
                }
                pending.append((index, ch))
            }
            flush()
        }
        self.reads = reads
    }

    /// One plan per bus of the station, in configuration order.
    public static func plans(for config: StationConfig) -> [ReadPlan] {
        config.buses.map { ReadPlan(bus: $0, channels: config.channels) }
    }
}

private struct SlaveKey: Hashable, Comparable {
    let slave: Int
    let register: RegisterKind
    static func < (a: SlaveKey, b: SlaveKey) -> Bool {
        (a.slave, a.register == .holding ? 0 : 1) < (b.slave, b.register == .holding ? 0 : 1)
    }
}
