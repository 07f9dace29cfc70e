import CSystemShim

#if canImport(Glibc)
    import Glibc
#endif

/// The signals mserve handles or sends, by name.
public enum Signal: Sendable, CaseIterable {
    case hangup, interrupt, quit, terminate, abort, kill, user1, ttyIn, ttyOut, child, brokenPipe

    public var number: Int32 {
        switch self {
        case .hangup: return SIGHUP
        case .interrupt: return SIGINT
        case .quit: return SIGQUIT
        case .terminate: return SIGTERM
        case .abort: return SIGABRT
        case .kill: return SIGKILL
        case .user1: return SIGUSR1
        case .ttyIn: return SIGTTIN
        case .ttyOut: return SIGTTOU
        case .child: return SIGCHLD
        case .brokenPipe: return SIGPIPE
        }
    }

    /// Sends it to a process; false if there is no such process (any more).
    @discardableResult
    public func send(to pid: Int32) -> Bool { Glibc.kill(pid, number) == 0 }

    /// This process no longer dies of it (a worker and vanished clients' SIGPIPE).
    public func ignore() { _ = Glibc.signal(number, SIG_IGN) }
}

/// Forking workers and reaping them.
public enum ChildProcess {
    public enum ForkOutcome { case child, parent(pid: Int32), failed(SystemError) }

    /// Forks after flushing C's buffered output, so that nothing is printed twice, with the hooks
    /// registered around it.  With `parentDeath`, the child is sent that signal when this process
    /// dies (a master killed with -9 leaves no worker holding its port): set first thing in the
    /// child, then the parent's pid is checked, for a parent that died before the setting took.
    ///
    /// Every signal is blocked across the fork: the child inherits the parent's handlers (the
    /// event loop's, which write the signal's number to a socket the parent reads), so a signal
    /// sent to a child that has not yet reset them (a TTOU's TERM to a worker just booted) would
    /// reach the parent as its own TERM and stop it.  The child sets the default dispositions
    /// first, then takes the signals that arrived meanwhile, none blocked.
    public static func fork(parentDeath: Signal? = nil) -> ForkOutcome {
        fflush(nil)
        let hooks = forkHooks.withLock { $0 }
        for h in hooks { h.prepare() }
        let parent = getpid()
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        let pid = Glibc.fork()
        if pid == 0 {
            defaultSignalDispositions()
            if let signal = parentDeath {
                _ = mserve_set_parent_death_signal(signal.number)
                if getppid() != parent { raise(signal.number) }
            }
        }
        // The child starts with none blocked, as a new process would.
        if pid == 0 { sigemptyset(&previous) }
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        for h in hooks.reversed() { pid == 0 ? h.child() : h.parent() }
        if pid < 0 { return .failed(SystemError("fork failed", errno: errno)) }
        return pid == 0 ? .child : .parent(pid: pid)
    }

    /// What a library living in the process must do around a fork (an embedded interpreter's
    /// locks and threads), as pthread_atfork's three handlers: `prepare` before it, then `parent`
    /// or `child` after it, in the reverse order of registration.
    public static func onFork(
        prepare: @escaping @Sendable () -> Void, parent: @escaping @Sendable () -> Void,
        child: @escaping @Sendable () -> Void
    ) {
        forkHooks.withLock { $0.append(ForkHooks(prepare: prepare, parent: parent, child: child)) }
    }

    private struct ForkHooks: Sendable {
        let prepare: @Sendable () -> Void
        let parent: @Sendable () -> Void
        let child: @Sendable () -> Void
    }
    private static let forkHooks = Locked<[ForkHooks]>([])

    /// The next child that has exited, without waiting; nil when none has.
    public static func reap() -> (pid: Int32, status: ChildStatus)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        return pid > 0 ? (pid, ChildStatus(waitStatus: status)) : nil
    }

    /// Ends a forked child at once, without the parent's atexit handlers or buffers.
    public static func exit(_ code: Int32) -> Never { _exit(code) }
}

/// A pipe from a worker to the master: the read end is close-on-exec and stays in the master.
public struct Pipe: Sendable {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init() throws(SystemError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError("cannot create a pipe", errno: errno) }
        readEnd = fds[0]
        writeEnd = fds[1]
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
    }

    /// What one read returns: bytes, or nil at the end (the writer is gone) or on an error.
    public static func read(_ fd: Int32, max: Int = 64) -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: max)
        let n = Glibc.read(fd, &buf, buf.count)
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    public static func write(_ fd: Int32, _ byte: UInt8) {
        var b = byte
        _ = Glibc.write(fd, &b, 1)
    }
}

/// Closes a descriptor (the master's copies in a forked child, pipes of exited workers).
public func closeDescriptor(_ fd: Int32) { _ = close(fd) }

/// Standard output and error, for log files named "-".
public enum StandardStream {
    public static let output = STDOUT_FILENO
    public static let error = STDERR_FILENO
    /// Whether standard input is a terminal (an interactive prompt, a live progress line).
    public static var inputIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }
    public static var errorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

/// Exits the process (the end of an executable's main).
public func exitProcess(_ code: Int32) -> Never { exit(code) }
