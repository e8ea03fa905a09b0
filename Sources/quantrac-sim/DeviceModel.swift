import FieldBus
import Foundation
import QuantracConfig
import QuantracCore

/// How a device behaves at one moment of the scenario.
struct DeviceMoment: Equatable {
    enum Reply: Equatable {
        case normal
        /// No reply (absent, or a timeout fault).
        case silent
        case exception(UInt8)
        case garbage
        /// Powered off: TCP closes its socket, a serial analyzer is silent.
        case powerOff
    }

    var reply: Reply = .normal
    var status: InstrumentStatus = .measuring
}

/// One channel of a simulated device: its station settings and its waveform.
struct ChannelModel {
    let config: ChannelConfig
    let sim: SimChannel

    /// The value the analyzer holds (engineering units).
    func value(at t: Duration, wall: Double, status: InstrumentStatus) -> Double {
        sim.value(at: t, wall: wall, calibrating: status == .calibrating)
    }

    /// The raw number the analyzer sends (before the station's scale and offset).
    func raw(at t: Duration, wall: Double, status: InstrumentStatus) -> Double {
        (value(at: t, wall: wall, status: status) - config.offset) / config.scale
    }
}

/// A simulated device over time: which of its faults are in effect, and what follows for its replies
/// and status. Logs every fault start and end. Used by the thread of its bus only.
final class DeviceModel {
    let device: SimDevice
    let channels: [ChannelModel]
    let faultsEnabled: Bool
    private var active: [Bool]
    private(set) var moment = DeviceMoment()

    init(device: SimDevice, scenario: Scenario, faultsEnabled: Bool) {
        self.device = device
        self.faultsEnabled = faultsEnabled
        channels = scenario.station.channels.filter { $0.bus == device.bus && $0.slave == device.slave }.compactMap { ch in
            scenario.channels[ch.code].map { ChannelModel(config: ch, sim: $0) }
        }
        active = Array(repeating: false, count: device.faults.count)
        moment = Self.moment(device: device, active: active)
    }

    var slave: Int { device.slave }

    /// Re-evaluates the faults at scenario time `t`; logs the ones that start or end.
    func update(at t: Duration) {
        var changed = false
        for (i, fault) in device.faults.enumerated() {
            let now = faultsEnabled && fault.isActive(at: t)
            guard now != active[i] else { continue }
            active[i] = now
            changed = true
            SimLog.event("fault \(now ? "start" : "end") bus=\(device.bus) slave=\(device.slave) kind=\(fault.kind.rawValue) "
                         + "t=\(String(format: "%.3f", t.inSimSeconds)) ms=\(SimLog.unixMilliseconds) (\(fault.summary))")
        }
        if changed { moment = Self.moment(device: device, active: active) }
    }

    /// Power cycle beats timeout beats garbage beats exception; alarm (fault) beats calibrating.
    static func moment(device: SimDevice, active: [Bool]) -> DeviceMoment {
        let kinds = Set(device.faults.indices.filter { active[$0] }.map { device.faults[$0].kind })
        var m = DeviceMoment()
        if device.absent {
            m.reply = .silent
        } else if kinds.contains(.powerCycle) {
            m.reply = .powerOff
        } else if kinds.contains(.timeout) {
            m.reply = .silent
        } else if kinds.contains(.garbage) {
            m.reply = .garbage
        } else if let e = device.faults.indices.first(where: { active[$0] && device.faults[$0].kind == .exception }) {
            m.reply = .exception(device.faults[e].exceptionCode)
        }
        if kinds.contains(.alarm) { m.status = .fault } else if kinds.contains(.calibrating) { m.status = .calibrating }
        return m
    }

    /// The status word or byte the device shows now (its measuring code when the state cannot be shown).
    var statusCode: Int { device.statusCodes[moment.status] ?? device.statusCodes[.measuring] ?? 0 }

    /// The status text (line protocol) the device shows now.
    var statusText: String { device.statusTexts[moment.status] ?? device.statusTexts[.measuring] ?? "" }
}

/// The holding and input registers of a Modbus device, rebuilt from its channels and status.
struct RegisterImage {
    var holding: [UInt16]
    var input: [UInt16]

    /// Sized to hold every register the station reads from the device (values and status words).
    init(channels: [ChannelModel]) {
        var h = 0, i = 0
        for ch in channels {
            let end = ch.config.address + ch.config.type.registerCount
            if ch.config.register == .holding { h = max(h, end) } else { i = max(i, end) }
            if let st = ch.config.statusRegister {
                if st.register == .holding { h = max(h, st.address + 1) } else { i = max(i, st.address + 1) }
            }
        }
        holding = Array(repeating: 0, count: h)
        input = Array(repeating: 0, count: i)
    }

    mutating func refresh(_ model: DeviceModel, at t: Duration, wall: Double) {
        let status = model.moment.status
        for ch in model.channels {
            let words = RegisterCodec(type: ch.config.type, byteOrder: ch.config.byteOrder).encode(ch.raw(at: t, wall: wall, status: status))
            write(words, kind: ch.config.register, at: ch.config.address)
            if let st = ch.config.statusRegister { write([UInt16(truncatingIfNeeded: model.statusCode)], kind: st.register, at: st.address) }
        }
    }

    private mutating func write(_ words: [UInt16], kind: RegisterKind, at address: Int) {
        for (k, w) in words.enumerated() {
            if kind == .holding { holding[address + k] = w } else { input[address + k] = w }
        }
    }

    /// `count` registers from `address`, or nil when the range is outside the image.
    func read(_ kind: RegisterKind, address: Int, count: Int) -> [UInt16]? {
        let bank = kind == .holding ? holding : input
        guard count >= 1, address >= 0, address + count <= bank.count else { return nil }
        return Array(bank[address..<(address + count)])
    }
}
