#if canImport(Glibc)
import Glibc
#endif

/// A filled-in `sockaddr_un`: a socket file path, or an abstract name written `@name` (leading NUL).
/// Shared by the control socket (server and client) and the systemd notification socket.
public struct UnixSocketAddress {
    private let storage: sockaddr_un
    /// The exact address length: an abstract name is just its bytes, a path carries its NUL.
    public let length: socklen_t
    /// Longest name that fits `sun_path`.
    public static let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Nil when the name does not fit (`capacity` bytes).
    public init?(_ path: String) {
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count <= Self.capacity else { return nil }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        storage = addr
        length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length (for bind, connect, sendto).
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: storage) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
