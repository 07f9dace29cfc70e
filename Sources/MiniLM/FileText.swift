#if canImport(Glibc)
    import Glibc
#endif

/// Whole small files (vocabulary, configuration) as text, without Foundation.
enum FileText {
    static func read(_ path: String) throws(WeightsError) -> String {
        guard let f = fopen(path, "rb") else { throw WeightsError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { fclose(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n > 0 { out.append(contentsOf: buf[0..<n]) }
            if n < buf.count {
                if ferror(f) != 0 { throw WeightsError(path, "cannot read: \(String(cString: strerror(errno)))") }
                break
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
