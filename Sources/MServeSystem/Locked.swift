#if canImport(Glibc)
    import Glibc
#endif

/// A value behind a pthread mutex: the lock every thread of a worker may take.
///
/// Not Synchronization's `Mutex`: on Linux that is a priority-inheritance futex stamped with the
/// owner's thread id, which the Swift runtime caches per thread.  A worker's main thread keeps the
/// master's cached id across `fork`, so the first time another thread waits for a lock the main
/// thread holds, the kernel refuses the futex and the process dies (SIGILL).  A plain pthread mutex
/// keeps no owner that a wait depends on, and glibc renews the thread ids in the child.
public final class Locked<Value: ~Copyable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ initial: consuming sending Value) {
        value = initial
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
