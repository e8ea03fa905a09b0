import Foundation
import QuantracConfig
import QuantracTesting
import Testing

/// `[[target]]` keys for FTPS, SFTP and credentials that need real files with real modes (golden
/// folders cannot carry file modes), and the normalised values the uploaders receive.
struct TargetConfigTests {
    static let head = """
        [station]
        prefix = "HN_ABCD_NUO001"
        kind = "wastewater"
        data_dir = "data"
        [[bus]]
        name = "plc"
        transport = "modbus-tcp"
        host = "192.168.1.10"
        [[channel]]
        code = "COD"
        unit = "mg/L"
        bus = "plc"
        address = 0
        type = "float32"
        [[target]]
        name = "province"

        """

    /// The problem lines for a target with `body`, or [] when it loads.
    func problems(_ body: String) -> [String] {
        do {
            _ = try ConfigLoader.parse(Self.head + body)
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    func target(_ body: String) throws -> TargetConfig {
        try ConfigLoader.parse(Self.head + body).targets[0]
    }

    func secretFile(_ dir: URL, _ name: String, mode: Int) throws -> String {
        let url = dir.appendingPathComponent(name)
        try "secret\n".write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        return url.path
    }

    static let hostKey = "mpiQzicrPoXgmI8nEJC+cXCXV0HGWeEvluxPIWk7lrI"

    @Test func aPasswordFileReadableByOthersIsRefusedWithTheFix() throws {
        let dir = try makeTemporaryDirectory("target-mode")
        let file = try secretFile(dir, "province.pass", mode: 0o644)
        #expect(problems("""
            url = "ftp://ftp.example.vn/in"
            user = "hn_abcd"
            password_file = "\(file)"
            """) == ["target[0].password_file: \(file) is open to other users (mode 0644); run chmod 600 \(file)"])
    }

    @Test func anyPermissionForOthersIsRefusedButGroupIsAllowed() throws {
        let dir = try makeTemporaryDirectory("target-mode-bits")
        let writable = try secretFile(dir, "w.pass", mode: 0o602)
        #expect(problems("url = \"ftp://h/in\"\npassword_file = \"\(writable)\"")
                == ["target[0].password_file: \(writable) is open to other users (mode 0602); run chmod 600 \(writable)"])
        let group = try secretFile(dir, "g.pass", mode: 0o640)
        #expect(try target("url = \"ftp://h/in\"\npassword_file = \"\(group)\"").password == .file(group))
        let owner = try secretFile(dir, "o.pass", mode: 0o400)
        #expect(try target("url = \"ftps://h/in\"\npassword_file = \"\(owner)\"").passwordFile == owner)
    }

    @Test func aKeyFileReadableByOthersIsRefused() throws {
        let dir = try makeTemporaryDirectory("target-key-mode")
        let key = try secretFile(dir, "id_ed25519", mode: 0o604)
        #expect(problems("""
            url = "sftp://sftp.example.vn/in"
            user = "hn_abcd"
            key_file = "\(key)"
            host_key_sha256 = "SHA256:\(Self.hostKey)"
            """) == ["target[0].key_file: \(key) is open to other users (mode 0604); run chmod 600 \(key)"])
    }

    @Test func aMissingPasswordFileSaysHowToCreateIt() {
        #expect(problems("url = \"ftp://h/in\"\npassword_file = \"/nonexistent/quantrac.pass\"")
                == ["target[0].password_file: cannot read /nonexistent/quantrac.pass; create it with the account's password (mode 0600)"])
    }

    @Test func onePasswordSourceOnly() throws {
        let dir = try makeTemporaryDirectory("target-two-sources")
        let file = try secretFile(dir, "p.pass", mode: 0o600)
        #expect(problems("""
            url = "ftps://ftp.example.vn/in"
            user = "hn_abcd"
            password_file = "\(file)"
            password_credential = "province"
            """) == ["target[0].password_credential: use either password_file or password_credential, not both"])
        let key = try secretFile(dir, "id", mode: 0o600)
        #expect(problems("""
            url = "sftp://sftp.example.vn/in"
            user = "hn_abcd"
            key_file = "\(key)"
            key_credential = "province-key"
            host_key_sha256 = "\(Self.hostKey)"
            """) == ["target[0].key_credential: use either key_file or key_credential, not both"])
    }

    @Test func sftpTargetIsNormalised() throws {
        let dir = try makeTemporaryDirectory("target-sftp")
        let key = try secretFile(dir, "id_ed25519", mode: 0o600)
        for written in ["SHA256:\(Self.hostKey)", Self.hostKey, Self.hostKey + "="] {
            let t = try target("""
                url = "sftp://sftp.example.vn:2222/~/in/{station}"
                user = "hn_abcd"
                key_file = "\(key)"
                password_credential = "province"
                host_key_sha256 = "\(written)"
                """)
            #expect(t.scheme == .sftp && t.host == "sftp.example.vn" && t.effectivePort == 2222)
            #expect(t.pathTemplate == "/~/in/{station}")
            #expect(t.hostKeySHA256 == Self.hostKey && t.hostKeyType == .ed25519)
            #expect(t.privateKey == .file(key) && t.password == .credential("province"))
        }
        let defaults = try target("""
            url = "sftp://[::1]/in"
            user = "u"
            key_credential = "k"
            host_key_sha256 = "\(Self.hostKey)"
            host_key_type = "ecdsa-sha2-nistp256"
            """)
        #expect(defaults.host == "::1" && defaults.port == nil && defaults.effectivePort == 22 && defaults.hostKeyType == .ecdsaP256)
    }

    @Test func ftpsTargetIsNormalised() throws {
        let pin = "sha256//Uy2vO9SZ+KbiFlPw4n1m6pnNysI/gZHOKxqB758Guhg="
        let t = try target("""
            url = "ftps://ftp.example.vn/in"
            pinned_public_key = "\(pin); sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            tls = "implicit"
            """)
        #expect(t.scheme == .ftps && t.tls == .implicit && t.effectivePort == 990 && t.caFile == nil)
        #expect(t.pinnedPublicKey == "\(pin);sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        #expect(try target("url = \"ftps://ftp.example.vn/in\"").tls == .explicit)
        #expect(problems("url = \"ftps://h/in\"\npinned_public_key = \"Uy2vO9SZ+KbiFlPw4n1m6pnNysI/gZHOKxqB758Guhg=\"")
                == ["target[0].pinned_public_key: \"Uy2vO9SZ+KbiFlPw4n1m6pnNysI/gZHOKxqB758Guhg=\" is not sha256//BASE64 (44 characters of base64 after sha256//, several joined by ';')"])
        #expect(problems("url = \"ftps://h/in\"\nca_file = \"/nonexistent/ca.pem\"")
                == ["target[0].ca_file: cannot read /nonexistent/ca.pem; it must be the PEM certificate of the authority (or the self-signed certificate) of the server"])
    }

    @Test func secureKeysOnAFileTargetDoNotApply() {
        #expect(problems("""
            url = "file:///srv/copy"
            user = "x"
            password_credential = "p"
            ca_file = "/etc/ssl/ca.pem"
            host_key_sha256 = "\(Self.hostKey)"
            """) == [
                "target[0].user: does not apply to a file:// target",
                "target[0].password_credential: does not apply to a file:// target",
                "target[0].ca_file: does not apply to a file:// target",
                "target[0].host_key_sha256: does not apply to a file:// target",
            ])
    }
}
