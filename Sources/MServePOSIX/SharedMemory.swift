#if canImport(Glibc)
import Glibc
#endif

/// Anonymous memory mapped shared: made before fork, the same bytes in the master and every worker.
public final class SharedMemory: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int

    public init(size: Int) throws(SystemError) {
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { throw SystemError("cannot map \(size) bytes of shared memory", errno: errno) }
        base = p
        self.size = size
    }

    deinit { munmap(base, size) }
}
