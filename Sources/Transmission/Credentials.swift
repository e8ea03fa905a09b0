import Foundation
import QuantracConfig

/// A credential that cannot be used: names the key, the file and the fix. Never contains the secret.
public struct CredentialError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The secrets of one target, read once when the daemon starts (`TargetCredentials.load`).
///
/// `description` and `debugDescription` never show the password, so logging this value is harmless.
public struct TargetCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The FTP/FTPS/SFTP password: the file's (or credential's) content without line breaks at its ends.
    public let password: String?
    /// SFTP: path of the private key file, checked to be readable and to hold a private key. libssh2 reads
    /// it again for each new SSH connection (curl only takes a file name), so it must stay in place.
    public let privateKeyFile: String?

    public init(password: String?, privateKeyFile: String?) {
        self.password = password
        self.privateKeyFile = privateKeyFile
    }

    public var description: String {
        "password \(password == nil ? "none" : "set"), key file \(privateKeyFile ?? "none")"
    }

    public var debugDescription: String { description }

    /// Reads the target's password and checks its private key. `targetPath` names the target in messages
    /// (`target[0]`); `environment` supplies `CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    ///
    /// Files named in the configuration are checked again for their mode (they may have changed since
    /// the configuration was loaded): a file open to other users is refused.
    public static func load(for target: TargetConfig, targetPath: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(CredentialError) -> TargetCredentials {
        var password: String?
        if let source = target.password {
            let key = source.isFile ? "password_file" : "password_credential"
            let path = try resolve(source, key: "\(targetPath).\(key)", environment: environment)
            let data = try read(path, key: "\(targetPath).\(key)", checkMode: source.isFile)
            guard let text = String(data: data, encoding: .utf8) else {
                throw CredentialError("\(targetPath).\(key): \(path) is not UTF-8 text")
            }
            let trimmed = text.trimmingCharacters(in: .newlines)
            if trimmed.isEmpty { throw CredentialError("\(targetPath).\(key): \(path) is empty; write the account's password into it") }
            password = trimmed
        }
        var keyFile: String?
        if let source = target.privateKey {
            let key = source.isFile ? "key_file" : "key_credential"
            let path = try resolve(source, key: "\(targetPath).\(key)", environment: environment)
            let data = try read(path, key: "\(targetPath).\(key)", checkMode: source.isFile)
            guard String(decoding: data.prefix(200), as: UTF8.self).contains("PRIVATE KEY-----") else {
                throw CredentialError("\(targetPath).\(key): \(path) is not a private key file "
                                      + "(expected -----BEGIN OPENSSH PRIVATE KEY----- or PEM, from ssh-keygen -t ed25519 -N '')")
            }
            keyFile = path
        }
        return TargetCredentials(password: password, privateKeyFile: keyFile)
    }

    private static func resolve(_ source: TargetConfig.SecretSource, key: String,
                                environment: [String: String]) throws(CredentialError) -> String {
        switch source {
        case .file(let path):
            return path
        case .credential(let name):
            guard let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty else {
                throw CredentialError("\(key): CREDENTIALS_DIRECTORY is not set; run quantracd as a systemd service with "
                                      + "LoadCredential=\(name):/path/to/secret in its unit, or use a file key instead")
            }
            return (dir as NSString).appendingPathComponent(name)
        }
    }

    private static func read(_ path: String, key: String, checkMode: Bool) throws(CredentialError) -> Data {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CredentialError("\(key): cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o777
        if checkMode, mode & 0o007 != 0 {
            throw CredentialError("\(key): \(path) is open to other users (mode \(octal(mode))); run chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CredentialError("\(key): cannot read \(path) (permission denied for this user?)")
        }
        return data
    }
}

/// `0644`-style octal of a permission mode.
private func octal(_ mode: mode_t) -> String {
    let digits = String(mode, radix: 8)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

extension TargetConfig.SecretSource {
    var isFile: Bool {
        if case .file = self { return true }
        return false
    }
}
