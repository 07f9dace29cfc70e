#if canImport(Glibc)
import Glibc
#endif

/// The whole of a file, as bytes or as UTF-8 text (config files, logs in tests).
public enum FileReading {
    public static func bytes(_ path: String) throws(SystemError) -> [UInt8] {
        guard let f = fopen(path, "r") else { throw SystemError("cannot read \(path)", errno: errno) }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, f)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    public static func text(_ path: String) throws(SystemError) -> String {
        let bytes = try self.bytes(path)
        guard let text = String(validating: bytes, as: UTF8.self) else { throw SystemError("\(path) is not UTF-8 text") }
        return text
    }
}
