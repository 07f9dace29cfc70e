import MServeSystem
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A child inherits its parent's signal handlers, and the event loop's handler writes the signal's
/// number to a socket the parent reads: a signal sent to a child before it resets them reached the
/// parent as its own (a TTOU's TERM to a worker just forked stopped the master, found under load).
@Suite struct SignalsAtForkTests {
    @Test func aSignalSentToAChildThatHasNotResetItsHandlersNeverReachesTheParent() throws {
        let loop = try EventLoop()
        var heard = 0
        let handle = loop.onSignal(SIGUSR2) { heard += 1 }
        defer { handle.cancel() }
        // As in the master, the forking thread does not block it.
        var usr2 = sigset_t(), previous = sigset_t()
        sigemptyset(&usr2)
        sigaddset(&usr2, SIGUSR2)
        pthread_sigmask(SIG_UNBLOCK, &usr2, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        switch ChildProcess.fork() {
        case .child:
            // A worker still booting (fork hooks, a loaded machine): nothing of its own yet.
            sleepThread(seconds: 1)
            ChildProcess.exit(0)
        case .parent(let pid):
            kill(pid, SIGUSR2)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            loop.runOnce(waitingUpTo: 0.2)
            #expect(heard == 0, "the child's signal was taken for the parent's")
            #expect(ChildStatus(waitStatus: status) == .signaled(SIGUSR2), "the child takes it with the default disposition")
        case .failed(let error):
            Issue.record("fork failed: \(error)")
        }
    }
}
