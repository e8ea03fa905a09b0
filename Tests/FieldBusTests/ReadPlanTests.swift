import FieldBus
import QuantracConfig
import Testing

struct ReadPlanTests {
    func config(_ channels: String, maxRegs: Int = 125) throws -> StationConfig {
        try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/tmp/x"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            max_registers_per_read = \(maxRegs)
            [[bus]]
            name = "b"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            \(channels)
            """)
    }

    func channel(_ code: String, bus: String = "a", slave: Int = 1, register: String = "holding", address: Int, type: String = "uint16") -> String {
        """
        [[channel]]
        code = "\(code)"
        unit = "u"
        bus = "\(bus)"
        slave = \(slave)
        register = "\(register)"
        address = \(address)
        type = "\(type)"

        """
    }

    @Test func groupsContiguousRegistersOfOneSlave() throws {
        let c = try config(channel("A", address: 0, type: "float32") + channel("B", address: 2) + channel("C", address: 3, type: "float64")
                           + channel("D", address: 10) + channel("E", slave: 2, address: 0) + channel("F", register: "input", address: 0)
                           + channel("G", bus: "b", address: 0))
        let plans = ReadPlan.plans(for: c)
        let a = plans[0].reads.map { "\($0.slave)/\($0.register.rawValue)@\($0.address)x\($0.count):\($0.fields.map(\.code).joined())" }
        #expect(a == ["1/holding@0x7:ABC", "1/holding@10x1:D", "1/input@0x1:F", "2/holding@0x1:E"])
        #expect(plans[1].reads.map(\.count) == [1])
        #expect(plans[0].reads[0].fields.map(\.offset) == [0, 2, 3])
    }

    @Test func neverExceedsTheRequestLimit() throws {
        let channels = (0..<100).map { channel("C\($0)", address: $0 * 2, type: "float32") }.joined()
        let c = try config(channels)
        let reads = ReadPlan.plans(for: c)[0].reads
        #expect(reads.allSatisfy { $0.count <= 125 })
        #expect(reads.map(\.count) == [124, 76])
        let small = try config(channels, maxRegs: 10)
        #expect(ReadPlan.plans(for: small)[0].reads.allSatisfy { $0.count <= 10 })
        #expect(ReadPlan.plans(for: small)[0].reads.flatMap(\.fields).count == 100)
    }

    @Test func decodesFieldsWithScaleAndOffset() throws {
        let c = try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "/tmp/x"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "Temp"
            unit = "°C"
            bus = "a"
            address = 5
            type = "int16"
            scale = 0.1
            offset = -40
            """)
        let field = ReadPlan.plans(for: c)[0].reads[0].fields[0]
        #expect(abs(field.value(from: [UInt16(bitPattern: 695)]) - 29.5) < 1e-9)
    }
}
