#if canImport(Glibc)
    import Glibc
#endif

/// The master's pid file (`-p`), written at start and removed at exit.
package struct PidFile {
    package let path: String

    package init(path: String) { self.path = path }

    package func write() throws {
        let text = "\(getpid())\n"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SystemError("cannot write pid file \(path)", errno: errno) }
        defer { close(fd) }
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
    }

    package func remove() {
        // Only our own file: another master may have taken the path since.
        guard let f = fopen(path, "r") else { return }
        var buf = [CChar](repeating: 0, count: 32)
        let line = fgets(&buf, 32, f).map { String(cString: $0) }
        fclose(f)
        if let line, Int32(line.filter { $0 != "\n" && $0 != " " }) == getpid() { unlink(path) }
    }
}
