import ArgumentParser
import Foundation
import QuantracConfig
import QuantracCore
import QuantracRuntime
import Reporting
#if canImport(Glibc)
import Glibc
#endif

/// Asks the running daemon for its status over the control socket (`GET /status`).
enum ControlClient {
    struct NotRunning: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "quantracd is not running for this configuration (control socket \(path): \(reason))" }
    }

    static func get(_ request: String, socket path: String) throws -> Data {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NotRunning(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard let address = UnixSocketAddress(path) else { throw NotRunning(path: path, reason: "path too long") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let ok = address.withSockaddr { connect(fd, $0, $1) }
        guard ok == 0 else { throw NotRunning(path: path, reason: String(cString: strerror(errno))) }
        let req = Array("GET \(request) HTTP/1.0\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { write(fd, $0.baseAddress, req.count) }
        var response = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        guard let split = response.firstRange(of: [13, 10, 13, 10]) else { throw NotRunning(path: path, reason: "no answer") }
        return Data(response[split.upperBound...])
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Live status from the running daemon: channels, buses, targets, storage, disk, clock.")

    @Option(name: .long, help: "Station configuration (TOML).")
    var config: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func run() async throws {
        let c = try loadConfig(config)
        let socket = (c.station.dataDir as NSString).appendingPathComponent("control.sock")
        let data: Data
        do {
            data = try ControlClient.get("/status", socket: socket)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(3)
        }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let s = try decoder.decode(StatusBoard.Snapshot.self, from: data)
        let now = SystemWallClock().now().milliseconds
        func age(_ ms: Int64?) -> String { ms.map { "\(max(0, now - $0) / 1000)s" } ?? "-" }
        let offset = c.station.utcOffset
        print("station \(s.station), running since \(formatLocal(ms: s.startedMs, offset: offset))")
        print()
        printTable([["CHANNEL", "VALUE", "UNIT", "STATUS", "AGE", "REASON"]] + s.channels.map { ch in
            let decimals = c.channels.first { $0.code == ch.code }?.decimals ?? 2
            return [ch.code, ch.value.map { RegulatorFileRenderer.format($0, decimals: decimals) } ?? "-", ch.unit,
                    "\(ch.statusCode) \(ch.status)", age(ch.timeMs), ch.reason ?? ""]
        })
        print()
        printTable([["BUS", "LAST TICK", "POLL", "FAULT CHANNELS", "DEVICES"]] + s.buses.map { b in
            let devices = b.devices.byDevice().map { device, state in
                "\(device) \(state)" + (b.deviceResponseSeconds[device].map { " (\(Int(($0 * 1000).rounded())) ms)" } ?? "")
            }
            return [b.name, age(b.lastTickMs), b.lastPollMs.map { "\($0) ms" } ?? "-", String(b.faultChannels),
                    devices.isEmpty ? "-" : devices.joined(separator: ", ")]
        })
        print()
        printTable([["TARGET", "PENDING", "OLDEST PENDING", "LAST SUCCESS", "LAST ERROR"]] + s.targets.map {
            [$0.name + ($0.parked != nil ? " (parked)" : ""), String($0.pending), $0.oldestPending ?? "-",
             formatLocal(ms: $0.lastSuccessMs, offset: offset), $0.lastError ?? "-"]
        })
        print()
        print("last file:   \(s.lastFile ?? "-")" + (s.fileError.map { "  (building fails: \($0))" } ?? ""))
        if let e = s.storageError {
            print("STORAGE:     FAILING since \(formatLocal(ms: s.storageErrorSinceMs, offset: offset)): \(e); \(s.readingsHeldInMemory) readings held in memory")
        } else {
            print("storage:     ok")
        }
        if let used = s.diskUsedBytes, let cap = s.diskCapacityBytes {
            print("disk:        \(used / 1_048_576) MiB of \(cap / 1_048_576) MiB" + (s.diskAlarm.map { "  ALARM \($0)" } ?? ""))
        }
        print("clock:       " + (s.clock.map { "\($0.detail) [\($0.source)]" } ?? "synchronisation not checked yet"))
        print("clock steps: " + (s.clockSteps == 0 ? "none since start" : "\(s.clockSteps) since start; last: \(s.lastClockStep ?? "-")"))
        print("calibration: " + (s.calibrations.isEmpty ? "none" : s.calibrations.joined(separator: "; ")))
    }
}

/// A serial line has one owner: while quantracd runs for this configuration (its data directory lock is
/// held), commands that would open one of its serial buses are refused with what to do instead.
func refuseSerialPortsOwnedByTheDaemon(_ c: StationConfig, buses: [String]) throws {
    let devices = c.buses.filter { buses.contains($0.name) }.compactMap { b -> String? in
        switch b.transport {
        case .modbusRTU(let device, _, _, _, _), .asciiSerial(let device, _, _, _, _, _): return device
        case .modbusTCP, .modbusRTUOverTCP: return nil
        }
    }
    guard !devices.isEmpty else { return }
    let lock = (c.station.dataDir as NSString).appendingPathComponent("quantracd.lock")
    let fd = open(lock, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }  // no daemon has ever run here
    defer { close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 {
        flock(fd, LOCK_UN)
        return
    }
    throw CommandFailure("quantracd is running and owns \(devices.joined(separator: ", ")); use `quantrac read` without --direct "
                          + "(values from the daemon), or stop quantracd first")
}
