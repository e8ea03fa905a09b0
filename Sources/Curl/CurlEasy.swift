import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// A failed transfer: curl's result code, the server's last response code and curl's error text.
public struct CurlError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let raw: Int32
        /// DNS, refused, unreachable, timed out while connecting.
        public static let couldNotConnect = Code(raw: -1)
        /// Transfer started but stalled or exceeded the time limits.
        public static let timeout = Code(raw: -2)
        /// Login refused (FTP 530, SSH auth failure).
        public static let loginDenied = Code(raw: -3)
        /// A post-transfer command (e.g. RNFR/RNTO) was refused by the server.
        public static let quoteRefused = Code(raw: -4)
        /// The server refused the upload or a directory (permission, quota, path).
        public static let remoteRefused = Code(raw: -5)
        /// The server's identity could not be verified: TLS certificate not trusted (or wrong host name),
        /// pinned public key or SSH host key mismatch, CA file unusable.
        public static let securityFailure = Code(raw: -6)
        /// The TLS handshake broke off (reset, protocol mismatch such as implicit TLS against a plain port).
        public static let tlsHandshakeFailed = Code(raw: -7)
        /// The session could not be set up (`CURLE_FAILED_INIT`; with SFTP: the SSH handshake failed, e.g. no
        /// common host key algorithm, or the connection dropped during key exchange).
        public static let sessionSetupFailed = Code(raw: -8)
        /// TLS was required but the server does not offer it (FTP `AUTH TLS` refused).
        public static let tlsRefused = Code(raw: -9)
        /// Anything else, with curl's own code.
        public static func other(_ c: Int32) -> Code { Code(raw: c) }

        public var description: String {
            switch self {
            case .couldNotConnect: return "could not connect"
            case .timeout: return "timeout"
            case .loginDenied: return "login denied"
            case .quoteRefused: return "server refused a command"
            case .remoteRefused: return "server refused the upload"
            case .securityFailure: return "server identity not verified"
            case .tlsHandshakeFailed: return "TLS handshake failed"
            case .sessionSetupFailed: return "session setup failed"
            case .tlsRefused: return "server refused TLS"
            default: return "curl error \(raw)"
            }
        }
    }

    public let code: Code
    /// curl's numeric `CURLcode`.
    public let curlCode: Int32
    /// Last FTP/SFTP response code the server sent (0 when none).
    public let responseCode: Int
    public let message: String

    public static func == (a: CurlError, b: CurlError) -> Bool { a.code == b.code }

    public var description: String {
        responseCode > 0 ? "\(message) (server reply \(responseCode))" : message
    }

    static func map(_ c: CURLcode) -> Code {
        switch c {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_PROXY,
             CURLE_FTP_ACCEPT_FAILED, CURLE_FTP_WEIRD_PASV_REPLY, CURLE_FTP_CANT_GET_HOST,
             CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_WEIRD_SERVER_REPLY:
            return .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT, CURLE_FTP_ACCEPT_TIMEOUT: return .timeout
        case CURLE_LOGIN_DENIED: return .loginDenied
        case CURLE_QUOTE_ERROR: return .quoteRefused
        case CURLE_UPLOAD_FAILED, CURLE_REMOTE_ACCESS_DENIED, CURLE_REMOTE_DISK_FULL, CURLE_REMOTE_FILE_NOT_FOUND,
             CURLE_FTP_COULDNT_USE_REST:
            return .remoteRefused
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_ISSUER_ERROR:
            return .securityFailure
        case CURLE_USE_SSL_FAILED:
            return .tlsRefused
        case CURLE_SSL_CONNECT_ERROR, CURLE_SSL_SHUTDOWN_FAILED:
            return .tlsHandshakeFailed
        case CURLE_FAILED_INIT:
            return .sessionSetupFailed
        default: return .other(Int32(c.rawValue))
        }
    }
}

/// One upload: the bytes, where they go and how to publish them.
///
/// `description` never shows the password.
public struct CurlUpload: Sendable, CustomStringConvertible {
    /// Full URL of the object to write, e.g. `ftp://127.0.0.1:2121/in/HN_X_Y_20260101000500.txt.part`
    /// or `sftp://host:22/in/HN_X_Y_20260101000500.txt.part` (SFTP paths are absolute; `/~/` is the home).
    public var url: String
    public var bytes: [UInt8]
    public var user: String?
    public var password: String?
    /// Commands sent after a successful transfer (FTP: `RNFR a`, `RNTO b`, relative to the upload directory;
    /// SFTP: `rename /d/a /d/b`, `rm /d/b`, absolute paths). A leading `*` makes curl ignore that command's failure.
    public var postQuote: [String] = []
    /// FTP: require TLS on control and data connections (`CURLOPT_USE_SSL` = `CURLUSESSL_ALL`): `AUTH TLS`
    /// on an `ftp://` URL (explicit), TLS from the start on an `ftps://` URL (implicit).
    public var requireTLS = false
    /// TLS: PEM file of trusted certificate authorities (`CURLOPT_CAINFO`); nil: the system's store.
    /// Peer and host name verification are always on.
    public var caFile: String?
    /// TLS: `sha256//BASE64` pins of the server's public key, `;`-separated (`CURLOPT_PINNEDPUBLICKEY`).
    public var pinnedPublicKey: String?
    /// SSH: base64 SHA-256 of the expected host key (`CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256`); `=` padding optional.
    public var sshHostKeySHA256: String?
    /// SSH: a known_hosts file (`CURLOPT_SSH_KNOWNHOSTS`). With libssh2, curl takes the key type of the
    /// entry for the host and port as the only host key algorithm it offers; the key itself is not compared
    /// when `sshHostKeySHA256` is set.
    public var sshKnownHostsFile: String?
    /// SSH: private key file for public key authentication (`CURLOPT_SSH_PRIVATE_KEYFILE`), without
    /// passphrase; libssh2 derives the public key from it and reads the file at each new connection.
    public var sshPrivateKeyFile: String?
    public var createMissingDirectories = true
    /// Open a new connection even if one to the same server is cached (`CURLOPT_FRESH_CONNECT`).
    public var freshConnection = false
    /// Time allowed to connect (TCP + TLS + login).
    public var connectTimeout: Duration = .seconds(10)
    /// Abort a transfer that moves less than 1 byte/s for this long.
    public var stallTimeout: Duration = .seconds(20)

    public init(url: String, bytes: [UInt8]) {
        self.url = url
        self.bytes = bytes
    }

    /// Whether `url` is an SFTP URL.
    public var isSSH: Bool { url.lowercased().hasPrefix("sftp://") }

    public var description: String {
        "\(url) (\(bytes.count) bytes, user \(user ?? "-"), password \(password == nil ? "none" : "set"))"
    }
}

/// A libcurl easy handle (`CURL *`), reused across uploads so its connection (FTP control connection with
/// its TLS session, SSH connection) stays open.
///
/// `perform` blocks the calling thread until the transfer ends; use it from a dedicated thread only.
/// Not `Sendable`: the handle belongs to the thread that made it.
public final class CurlEasy {
    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    private let handle: UnsafeMutableRawPointer
    private let multi: UnsafeMutableRawPointer
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    public init() {
        _ = Self.globalInit
        handle = curl_easy_init()
        multi = curl_multi_init()
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_multi_cleanup(multi)
        errorBuffer.deallocate()
    }

    /// Uploads `upload.bytes` to `upload.url` (through `curl_multi_perform`), then runs `postQuote`.
    public func perform(_ upload: CurlUpload) throws(CurlError) {
        curl_easy_reset(handle)
        errorBuffer[0] = 0
        let source = UploadSource(bytes: upload.bytes)
        let unmanaged = Unmanaged.passRetained(source)
        defer { unmanaged.release() }

        var lists: [UnsafeMutablePointer<curl_slist>] = []
        defer { lists.forEach { curl_slist_free_all($0) } }

        var rc = CURLE_OK
        func set(_ result: CURLcode) { if rc == CURLE_OK { rc = result } }
        set(quantrac_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        set(quantrac_curl_setopt_string(handle, CURLOPT_URL, upload.url))
        set(quantrac_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(quantrac_curl_setopt_long(handle, CURLOPT_UPLOAD, 1))
        set(quantrac_curl_setopt_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(upload.bytes.count)))
        set(quantrac_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, { buffer, size, nitems, userdata in
            guard let buffer, let userdata else { return 0 }
            let source = Unmanaged<UploadSource>.fromOpaque(userdata).takeUnretainedValue()
            return source.read(into: buffer, max: size * nitems)
        }))
        set(quantrac_curl_setopt_pointer(handle, CURLOPT_READDATA, unmanaged.toOpaque()))
        set(quantrac_curl_setopt_long(handle, CURLOPT_FTP_CREATE_MISSING_DIRS,
                                      upload.createMissingDirectories ? Int(CURLFTP_CREATE_DIR_RETRY.rawValue) : 0))
        if upload.freshConnection { set(quantrac_curl_setopt_long(handle, CURLOPT_FRESH_CONNECT, 1)) }
        set(quantrac_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(upload.connectTimeout)))
        set(quantrac_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1))
        set(quantrac_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, Self.milliseconds(upload.stallTimeout) / 1000)))
        set(quantrac_curl_setopt_long(handle, CURLOPT_SERVER_RESPONSE_TIMEOUT, max(1, Self.milliseconds(upload.stallTimeout) / 1000)))
        if let user = upload.user { set(quantrac_curl_setopt_string(handle, CURLOPT_USERNAME, user)) }
        if let password = upload.password { set(quantrac_curl_setopt_string(handle, CURLOPT_PASSWORD, password)) }
        // TLS: verification is never switched off.
        set(quantrac_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1))
        set(quantrac_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2))
        if upload.requireTLS { set(quantrac_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue))) }
        if let caFile = upload.caFile { set(quantrac_curl_setopt_string(handle, CURLOPT_CAINFO, caFile)) }
        if let pin = upload.pinnedPublicKey { set(quantrac_curl_setopt_string(handle, CURLOPT_PINNEDPUBLICKEY, pin)) }
        if upload.isSSH {
            var auth = 0
            if upload.sshPrivateKeyFile != nil { auth |= Int(CURLSSH_AUTH_PUBLICKEY) }
            if upload.password != nil { auth |= Int(CURLSSH_AUTH_PASSWORD) }
            set(quantrac_curl_setopt_long(handle, CURLOPT_SSH_AUTH_TYPES, auth))
            if let key = upload.sshPrivateKeyFile {
                set(quantrac_curl_setopt_string(handle, CURLOPT_SSH_PRIVATE_KEYFILE, key))
                // Empty: no public key file, libssh2 derives it (otherwise curl looks for ~/.ssh/id_dsa.pub).
                set(quantrac_curl_setopt_string(handle, CURLOPT_SSH_PUBLIC_KEYFILE, ""))
            }
            if let sha256 = upload.sshHostKeySHA256 {
                set(quantrac_curl_setopt_string(handle, CURLOPT_SSH_HOST_PUBLIC_KEY_SHA256, sha256))
            }
            if let knownHosts = upload.sshKnownHostsFile {
                set(quantrac_curl_setopt_string(handle, CURLOPT_SSH_KNOWNHOSTS, knownHosts))
            }
        }
        if !upload.postQuote.isEmpty {
            var list: UnsafeMutablePointer<curl_slist>? = nil
            for command in upload.postQuote { list = curl_slist_append(list, command) }
            if let list {
                lists.append(list)
                set(quantrac_curl_setopt_slist(handle, CURLOPT_POSTQUOTE, list))
            }
        }
        if rc != CURLE_OK { throw error(rc) }
        let result = performThroughMulti()
        if result != CURLE_OK { throw error(result) }
    }

    /// Runs the transfer through the multi interface, polling every 20 ms. `curl_easy_perform` in
    /// libcurl 7.88 sometimes waits a whole second before opening an FTP data connection (seen in about
    /// one upload in five on loopback), which made draining a backlog up to ten times slower. The multi
    /// handle also keeps the connection cache, so the control connection is still reused.
    private func performThroughMulti() -> CURLcode {
        guard curl_multi_add_handle(multi, handle) == CURLM_OK else { return curl_easy_perform(handle) }
        defer { curl_multi_remove_handle(multi, handle) }
        var running: Int32 = 1
        while running > 0 {
            guard curl_multi_perform(multi, &running) == CURLM_OK else { return CURLE_FAILED_INIT }
            if running == 0 { break }
            var fds: Int32 = 0
            guard curl_multi_poll(multi, nil, 0, 20, &fds) == CURLM_OK else { return CURLE_FAILED_INIT }
        }
        var left: Int32 = 0
        var result = CURLE_OK
        while let message = curl_multi_info_read(multi, &left) {
            if message.pointee.msg == CURLMSG_DONE { result = message.pointee.data.result }
        }
        return result
    }

    private func error(_ code: CURLcode) -> CurlError {
        var response = 0
        _ = quantrac_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &response)
        let detail = String(cString: errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        var mapped = CurlError.map(code)
        if mapped == .other(Int32(code.rawValue)) || mapped == .couldNotConnect, response == 530 { mapped = .loginDenied }
        return CurlError(code: mapped, curlCode: Int32(code.rawValue), responseCode: response, message: message)
    }

    static func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Feeds the upload bytes to curl's read callback.
private final class UploadSource {
    let bytes: [UInt8]
    var offset = 0
    init(bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        let n = min(max, bytes.count - offset)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBufferPointer { src in
            UnsafeMutableRawPointer(buffer).copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}
