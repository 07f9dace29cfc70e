#if canImport(Glibc)
    import Glibc
#endif

/// A mutex with a condition variable, for the model threads' queues (Synchronization's Mutex has no
/// condition to wait on).
package final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        // Timed waits measure against the monotonic clock, which a change of the date cannot move.
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Only inside withLock.
    package func wait() { pthread_cond_wait(cond, mutex) }
    /// Only inside withLock: waits until signalled or until `deadline` (monotonicSeconds()).
    package func wait(until deadline: Double) {
        var ts = timespec(tv_sec: Int(deadline), tv_nsec: Int((deadline - deadline.rounded(.down)) * 1e9))
        pthread_cond_timedwait(cond, mutex, &ts)
    }
    package func signal() { pthread_cond_signal(cond) }
    package func broadcast() { pthread_cond_broadcast(cond) }
}

/// Starts a detached pthread running `body`.  Like EventLoop's callbacks, the entry point is a
/// non-capturing C function that gets the Swift closure through its context pointer.
package enum NativeThread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    package static func start(_ body: @escaping @Sendable () -> Void) throws {
        let ctx = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                box.body()
                return nil
            }, ctx)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(ctx).release()
            throw SystemError("cannot start a model thread", errno: rc)
        }
        pthread_detach(thread)
    }
}
