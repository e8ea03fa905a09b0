import Foundation
import QuantracConfig
#if canImport(Glibc)
import Glibc
#endif

/// Why the simulator cannot start.
struct SimError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    /// A failed system call, with `errno` read right after it.
    static func posix(_ call: String, _ what: String) -> SimError {
        SimError("\(call) \(what): \(String(cString: strerror(errno)))")
    }
}

/// The simulator's end of a serial line: the master side of a new pseudo-terminal pair (the daemon opens
/// the `/dev/pts/N` side), or an existing serial device opened raw (a real port, one end of a socat pair).
///
/// Blocking: `read(timeoutMs:)` waits up to the timeout in `poll(2)`. Used by the thread of its bus only.
final class SerialLine {
    private let fd: Int32
    /// The pty side kept open by the simulator, so the line exists while no client has it open.
    private var ptySide: Int32 = -1
    /// What the daemon must open: `/dev/pts/N`, or the device served.
    let path: String
    /// The symbolic link made to `path`, removed again by `removeLink()`.
    let link: String?

    /// A new pseudo-terminal pair: `/dev/ptmx`, unlocked (`TIOCSPTLCK`) and named (`TIOCGPTN`), the Linux
    /// calls behind `posix_openpt`/`unlockpt`/`ptsname` (which Swift's Glibc module does not export), raw,
    /// and an optional symbolic link to its `/dev/pts/N` side (a stale link is replaced; its directory is created).
    init(ptyLink link: String?) throws(SimError) {
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard master >= 0 else { throw SimError.posix("open", "/dev/ptmx") }
        fd = master
        // _IOW('T', 0x31, int) and _IOR('T', 0x30, unsigned int): the same numbers on x86-64 and arm64.
        let tiocsptlck: UInt = 0x4004_5431, tiocgptn: UInt = 0x8004_5430
        var unlock: Int32 = 0, number: UInt32 = 0
        guard ioctl(master, tiocsptlck, &unlock) == 0, ioctl(master, tiocgptn, &number) == 0 else {
            Glibc.close(master)
            throw SimError.posix("ioctl", "/dev/ptmx")
        }
        path = "/dev/pts/\(number)"
        self.link = link
        ptySide = open(path, O_RDWR | O_NOCTTY)
        guard ptySide >= 0 else {
            Glibc.close(master)
            throw SimError.posix("open", path)
        }
        var tio = termios()
        tcgetattr(ptySide, &tio)
        cfmakeraw(&tio)
        tcsetattr(ptySide, TCSANOW, &tio)
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        if let link {
            let dir = URL(fileURLWithPath: link).deletingLastPathComponent().path
            try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var info = stat()
            if lstat(link, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFLNK else {
                    Glibc.close(ptySide)
                    Glibc.close(master)
                    throw SimError("link \(link) exists and is not a symbolic link; remove it or pick another path")
                }
                unlink(link)
            }
            guard symlink(path, link) == 0 else {
                Glibc.close(ptySide)
                Glibc.close(master)
                throw SimError.posix("symlink", link)
            }
        }
    }

    /// An existing serial device, raw at the given settings (a pty ignores the speed).
    init(device: String, baud: Int, parity: Parity, dataBits: Int, stopBits: Int) throws(SimError) {
        let opened = open(device, O_RDWR | O_NOCTTY | O_NONBLOCK)
        guard opened >= 0 else { throw SimError.posix("open", device) }
        fd = opened
        path = device
        link = nil
        var tio = termios()
        if tcgetattr(fd, &tio) == 0 {
            cfmakeraw(&tio)
            let speeds: [Int: speed_t] = [1200: speed_t(B1200), 2400: speed_t(B2400), 4800: speed_t(B4800), 9600: speed_t(B9600),
                                          19200: speed_t(B19200), 38400: speed_t(B38400), 57600: speed_t(B57600), 115200: speed_t(B115200)]
            cfsetspeed(&tio, speeds[baud] ?? speed_t(B9600))
            tio.c_cflag &= ~tcflag_t(CSIZE | PARENB | PARODD | CSTOPB)
            tio.c_cflag |= tcflag_t(CLOCAL | CREAD)
            tio.c_cflag |= [5: tcflag_t(CS5), 6: tcflag_t(CS6), 7: tcflag_t(CS7)][dataBits] ?? tcflag_t(CS8)
            if parity != .none { tio.c_cflag |= tcflag_t(PARENB) }
            if parity == .odd { tio.c_cflag |= tcflag_t(PARODD) }
            if stopBits == 2 { tio.c_cflag |= tcflag_t(CSTOPB) }
            tcsetattr(fd, TCSANOW, &tio)
        }
    }

    deinit {
        if ptySide >= 0 { Glibc.close(ptySide) }
        Glibc.close(fd)
    }

    /// Removes the symbolic link, if it still points to this line.
    func removeLink() {
        guard let link else { return }
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink(link, &target, target.count - 1)
        if n > 0, String(decoding: target.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) == path { unlink(link) }
    }

    /// Bytes that arrived, waiting up to `timeoutMs` for the first; empty when none came.
    func read(timeoutMs: Int32) -> [UInt8] {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else {
            // EIO/hang-up with nobody on the other side of a device: do not spin.
            if n < 0, errno != EAGAIN, errno != EINTR { usleep(UInt32(timeoutMs) * 1000) }
            return []
        }
        return Array(buffer[..<n])
    }

    /// Writes all of `bytes` (waiting for room up to a second in total).
    func write(_ bytes: [UInt8]) {
        var sent = 0
        let deadline = ContinuousClock.now + .seconds(1)
        while sent < bytes.count, ContinuousClock.now < deadline {
            let n = bytes[sent...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                sent += n
            } else if n < 0, errno == EAGAIN || errno == EINTR {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&pfd, 1, 50)
            } else {
                return
            }
        }
    }
}
