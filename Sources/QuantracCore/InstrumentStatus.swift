/// The instrument state a value carries, as the regulator requires (circular §2.1, §3.4).
///
/// Maps onto the national file codes: measuring `00`, calibrating `01`, fault `02`.
public enum InstrumentStatus: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    case measuring = 0
    case calibrating = 1
    case fault = 2

    /// The two-digit code written in the regulator file.
    public var fileCode: String {
        switch self {
        case .measuring: return "00"
        case .calibrating: return "01"
        case .fault: return "02"
        }
    }

    public static func < (a: InstrumentStatus, b: InstrumentStatus) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .measuring: return "measuring"
        case .calibrating: return "calibrating"
        case .fault: return "fault"
        }
    }
}
