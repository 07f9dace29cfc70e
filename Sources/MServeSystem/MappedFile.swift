#if canImport(Glibc)
    import Glibc
#endif

/// A file mapped whole and read-only (model weights): never copied, its pages shared by every
/// process that maps it (the workers, and the master with --preload).  An empty file maps to no
/// bytes, for the reader to say what it expected.
public final class MappedFile: @unchecked Sendable {  // immutable once made; the mapping is read-only
    public let bytes: UnsafeRawBufferPointer

    /// The error's message names the step and the system's reason ("cannot open: No such file or
    /// directory"); the caller adds the path.
    public init(path: String) throws(SystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("cannot open: \(String(cString: strerror(errno)))", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemError("cannot stat: \(String(cString: strerror(errno)))", errno: errno) }
        let size = Int(st.st_size)
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw SystemError("cannot map: \(String(cString: strerror(errno)))", errno: errno)
        }
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
