#if canImport(Glibc)
import Glibc
#endif

enum FileHandleWriter {
    static func write(_ s: String) {
        var s = s
        s.withUTF8 { buf in _ = Glibc.write(2, buf.baseAddress, buf.count) }
    }
}
