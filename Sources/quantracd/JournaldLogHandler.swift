import Logging
#if canImport(Glibc)
import Glibc
#endif

/// How quantracd writes its log lines to stderr.
enum LogFormat: String, CaseIterable {
    /// `journald` when stderr is connected to the journal (`$JOURNAL_STREAM` names stderr's device and
    /// inode, as systemd sets it), `plain` otherwise.
    case auto
    /// swift-log's stream format: `timestamp level label: key=value [module] message`.
    case plain
    /// One line per message with a syslog priority prefix (sd-daemon(3)): `<4>message key=value`.
    case journald

    /// `auto` resolved against the process's environment and stderr.
    func resolved(environment: [String: String]) -> LogFormat {
        guard self == .auto else { return self }
        return Self.stderrIsJournal(environment["JOURNAL_STREAM"]) ? .journald : .plain
    }

    /// Whether `JOURNAL_STREAM` (`"<device>:<inode>"`, decimal) is the file stderr is open on. A variable
    /// inherited by a process whose stderr was redirected elsewhere does not match.
    static func stderrIsJournal(_ value: String?) -> Bool {
        guard let parts = value?.split(separator: ":"), parts.count == 2,
              let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == device && UInt64(st.st_ino) == inode
    }
}

/// Writes each log message to stderr as journald reads it: the priority as a `<N>` prefix on every line
/// (journald's `SyslogLevelPrefix=yes`, the default), then the message and the metadata as sorted
/// `key=value` pairs. No timestamp: the journal adds its own.
struct JournaldLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(logLevel: Logger.Level) { self.logLevel = logLevel }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let own = event.metadata { merged.merge(own) { $1 } }
        FileHandleWriter.write(Self.format(level: event.level, message: "\(event.message)", metadata: merged))
    }

    /// `<N>message key=value …\n`; a message of several lines gives several prefixed lines.
    static func format(level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var text = message
        if !metadata.isEmpty { text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        let prefix = "<\(priority(level))>"
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { prefix + $0 }.joined(separator: "\n") + "\n"
    }

    /// syslog priorities of sd-daemon.h: 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}
