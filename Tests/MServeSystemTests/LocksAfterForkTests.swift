import MServeSystem
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Every lock a worker uses, contended in a forked child after the parent took it on the thread
/// that forks (as the master takes its log file's lock before it forks a worker).  Synchronization's
/// Mutex fails this: its owner id is the thread id the Swift runtime cached before the fork, and the
/// child dies of SIGILL at the first contended lock.
@Suite struct LocksAfterForkTests {
    /// Forks; the child runs `contend` and exits 0 unless it crashed; returns the child's status.
    /// Other tests' threads run while this one forks: a child stuck on a lock one of them held is
    /// killed after 60 s (the test then fails) rather than hang the run.
    private func inForkedChild(_ contend: () -> Void) -> ChildStatus {
        // Made here, so that the child instantiates no generic type (a runtime lock another
        // thread may have held at the fork).
        let warm = Locked(false)
        warm.withLock { $0 = true }
        switch ChildProcess.fork() {
        case .child:
            contend()
            ChildProcess.exit(0)
        case .parent(let pid):
            var status: Int32 = 0
            let deadline = monotonicSeconds() + 60
            while waitpid(pid, &status, WNOHANG) == 0 {
                if monotonicSeconds() > deadline {
                    kill(pid, SIGKILL)
                    waitpid(pid, &status, 0)
                    Issue.record("the child did not finish within 60 s")
                    break
                }
                usleep(10_000)
            }
            return ChildStatus(waitStatus: status)
        case .failed(let error):
            Issue.record("fork failed: \(error)")
            return .exited(99)
        }
    }

    /// The forking thread and a new thread take `lock` in turn 20,000 times each, so that each of
    /// them waits for the other many times.
    private func contend(_ lock: @escaping @Sendable (() -> Void) -> Void) {
        let done = Locked(false)
        try? NativeThread.start {
            for _ in 0..<20_000 { lock { sched_yield() } }
            done.withLock { $0 = true }
        }
        for _ in 0..<20_000 { lock { sched_yield() } }
        while !done.withLock({ $0 }) { sched_yield() }
    }

    @Test func lockedValue() {
        let locked = Locked(0)
        locked.withLock { $0 += 1 }
        let status = inForkedChild { contend { body in locked.withLock { _ in body() } } }
        #expect(status == .exited(0))
    }

    @Test func conditionLock() {
        let lock = ConditionLock()
        lock.withLock {}
        let status = inForkedChild { contend { body in lock.withLock { body() } } }
        #expect(status == .exited(0))
    }

    @Test func logFile() throws {
        let path = "/tmp/mserve-lockfork-\(getpid()).log"
        defer { unlink(path) }
        let log = try LogFile(path: path, standardFD: StandardStream.error)
        log.append(Array("before the fork".utf8))
        let status = inForkedChild { contend { body in log.appendLine { _ in body() } } }
        #expect(status == .exited(0))
    }
}
