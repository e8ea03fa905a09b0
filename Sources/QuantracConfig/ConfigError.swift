/// One problem in a configuration, named by its key path (`channel[3].byte_order`).
public struct ConfigIssue: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// A configuration that failed to load: every problem found, section by section ([station], [[bus]],
/// [[channel]], [[target]], then checks across tables).
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]

    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
