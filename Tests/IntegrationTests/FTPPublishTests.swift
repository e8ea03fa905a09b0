import Foundation
import QuantracConfig
import QuantracTesting
import Testing
import Transmission

/// libcurl uploads against a real FTP server: publish by rename, direct, refused rename, bad login.
@Suite(.serialized, .ownThread)
struct FTPPublishTests {
    func target(port: Int, publish: String, dir: URL) throws -> TargetConfig {
        try ConfigLoader.parse("""
            [station]
            prefix = "HN_ABCD_NUO001"
            kind = "wastewater"
            data_dir = "\(dir.path)"
            [[bus]]
            name = "a"
            transport = "modbus-tcp"
            host = "127.0.0.1"
            [[channel]]
            code = "COD"
            unit = "mg/L"
            bus = "a"
            address = 0
            type = "float32"
            [[target]]
            name = "dept"
            url = "ftp://127.0.0.1:\(port)/in/{station}"
            user = "station"
            publish = "\(publish)"
            """).targets[0]
    }

    @Test func renamePublishesWithoutHalfFilesAndCreatesDirectories() async throws {
        let dir = try makeTemporaryDirectory("ftp-rename")
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw", in: dir)
        defer { ftp.stop() }
        let uploader = FTPUploader(target: try target(port: ftp.port, publish: "rename", dir: dir), password: "pw", targetPath: "target[0]")
        defer { uploader.shutdown() }
        let bytes = Array("COD\t41.20\tmg/L\t20260315103500\t00\r\n".utf8)
        try await uploader.upload(name: "A.txt", bytes: bytes, directory: "/in/NUO001/2026/03/15")
        try await uploader.upload(name: "A.txt", bytes: bytes, directory: "/in/NUO001/2026/03/15")  // again onto the same name
        try await uploader.upload(name: "B.txt", bytes: bytes, directory: "/in/NUO001/2026/03/15")
        let folder = dir.appendingPathComponent("root/in/NUO001/2026/03/15")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["A.txt", "B.txt"])
        #expect(try Data(contentsOf: folder.appendingPathComponent("A.txt")) == Data(bytes))
        let log = ftp.process.stderrText
        #expect(log.contains("A.txt.part") && log.contains("RNTO"))
    }

    @Test func refusedRenameSaysToUseDirectAndDirectWorks() async throws {
        let dir = try makeTemporaryDirectory("ftp-norename")
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw", allowRename: false, in: dir)
        defer { ftp.stop() }
        let rename = FTPUploader(target: try target(port: ftp.port, publish: "rename", dir: dir), password: "pw", targetPath: "target[0]")
        defer { rename.shutdown() }
        do {
            try await rename.upload(name: "A.txt", bytes: [65], directory: "/in")
            Issue.record("a refused rename must fail")
        } catch {
            #expect(error.kind == .rejected)
            #expect(error.message.contains("refused to rename A.txt.part to A.txt"))
            #expect(error.message.contains("set target[0].publish = \"direct\""))
        }
        let direct = FTPUploader(target: try target(port: ftp.port, publish: "direct", dir: dir), password: "pw", targetPath: "target[0]")
        defer { direct.shutdown() }
        try await direct.upload(name: "A.txt", bytes: [65, 66], directory: "/in")
        #expect(try Data(contentsOf: dir.appendingPathComponent("root/in/A.txt")) == Data([65, 66]))
    }

    @Test func wrongPasswordIsAnAuthenticationFailureAndDownServerIsTransient() async throws {
        let dir = try makeTemporaryDirectory("ftp-auth")
        let ftp = try FTPPeer.start(root: dir.appendingPathComponent("root"), user: "station", password: "pw", in: dir)
        let uploader = FTPUploader(target: try target(port: ftp.port, publish: "rename", dir: dir), password: "wrong", targetPath: "target[0]")
        defer { uploader.shutdown() }
        do {
            try await uploader.upload(name: "A.txt", bytes: [65], directory: "/in")
            Issue.record("a wrong password must fail")
        } catch {
            #expect(error.kind == .authentication, "\(error.message)")
        }
        ftp.stop()
        do {
            try await uploader.upload(name: "A.txt", bytes: [65], directory: "/in")
            Issue.record("a stopped server must fail")
        } catch {
            #expect(error.kind == .transient, "\(error.message)")
        }
    }
}
