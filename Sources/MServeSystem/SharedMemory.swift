import CSystemShim

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

/// Atomic operations on a 64-bit word of shared memory, for counters that several processes
/// change (per-key limits).
public enum SharedAtomic {
    public static func load(_ p: UnsafeMutablePointer<UInt64>) -> UInt64 { mserve_atomic_load(p) }
    @discardableResult
    public static func add(_ p: UnsafeMutablePointer<UInt64>, _ delta: Int64) -> UInt64 { mserve_atomic_add(p, delta) }
    public static func compareExchange(_ p: UnsafeMutablePointer<UInt64>, expected: UInt64, desired: UInt64) -> Bool {
        mserve_atomic_cas(p, expected, desired) != 0
    }
}
