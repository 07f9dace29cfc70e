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

/// Creates `path` and its missing parents with `mode`; an existing directory is left as it is.
public func makeDirectory(_ path: String, mode: UInt32) throws(SystemError) {
    if path.isEmpty { return }
    var st = stat()
    if stat(path, &st) == 0 {
        guard st.st_mode & S_IFMT == S_IFDIR else { throw SystemError("\(path) exists and is not a directory") }
        return
    }
    if let slash = path.lastIndex(of: "/"), slash != path.startIndex { try makeDirectory(String(path[..<slash]), mode: mode) }
    guard mkdir(path, mode_t(mode)) == 0 || errno == EEXIST else { throw SystemError("cannot create \(path)", errno: errno) }
}

/// The names in a directory, but for those that begin with a dot; none if it cannot be read.
public func directoryEntries(_ path: String) -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if !name.hasPrefix(".") { names.append(name) }
    }
    return names
}

public func fileExists(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0
}

/// Appends `text` to the file at `path`, creating it with `mode` if it is not there.
public func appendToFile(_ path: String, _ text: String, mode: UInt32) throws(SystemError) {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, mode_t(mode))
    guard fd >= 0 else { throw SystemError("cannot open \(path)", errno: errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard n == bytes.count else { throw SystemError("cannot write \(path)", errno: errno) }
}
