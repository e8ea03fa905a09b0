import QuantracConfig

/// One channel's place inside a grouped read: where its registers start and how to turn them into a value
/// (or, for a status field, into the instrument status).
public struct FieldDecoder: Sendable {
    public enum Role: Sendable {
        case value
        /// The analyzer's status word for the channel.
        case status(StatusRegister)
    }

    /// Index of the channel in `StationConfig.channels` (file line order).
    public let channelIndex: Int
    public let role: Role
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
        // Every register span to read: each channel's value, and its status word when it has one.
        var spans: [Span] = []
        for (index, ch) in channels.enumerated() where ch.bus == bus.name {
            spans.append(Span(channelIndex: index, channel: ch, register: ch.register, address: ch.address, count: ch.type.registerCount, role: .value))
            if let st = ch.statusRegister {
                spans.append(Span(channelIndex: index, channel: ch, register: st.register, address: st.address, count: 1, role: .status(st)))
            }
        }
        let keyed = Dictionary(grouping: spans) { SlaveKey(slave: $0.channel.slave, register: $0.register) }
        var reads: [RegisterRead] = []
        for key in keyed.keys.sorted() {
            let sorted = keyed[key]!.sorted { ($0.address, $0.channelIndex) < ($1.address, $1.channelIndex) }
            var start = -1, end = -1
            var pending: [Span] = []
            func flush() {
                guard !pending.isEmpty else { return }
                let fields = pending.map { span in
                    let ch = span.channel
                    return FieldDecoder(channelIndex: span.channelIndex, role: span.role, code: ch.code, offset: span.address - start, count: span.count,
                                        codec: RegisterCodec(type: ch.type, byteOrder: ch.byteOrder), scale: ch.scale, valueOffset: ch.offset)
                }
                reads.append(RegisterRead(slave: key.slave, register: key.register, address: start, count: end - start, fields: fields))
                pending = []
            }
            for span in sorted {
                let spanEnd = span.address + span.count
                if !pending.isEmpty, !bus.oneRequestPerField, span.address <= end, max(end, spanEnd) - start <= bus.maxRegistersPerRead {
                    end = max(end, spanEnd)
                } else {
                    flush()
                    start = span.address
                    end = spanEnd
                }
                pending.append(span)
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

/// A register span one channel needs read.
private struct Span {
    let channelIndex: Int
    let channel: ChannelConfig
    let register: RegisterKind
    let address: Int
    let count: Int
    let role: FieldDecoder.Role
}

private struct SlaveKey: Hashable, Comparable {
    let slave: Int
    let register: RegisterKind
    static func < (a: SlaveKey, b: SlaveKey) -> Bool {
        (a.slave, a.register == .holding ? 0 : 1) < (b.slave, b.register == .holding ? 0 : 1)
    }
}
