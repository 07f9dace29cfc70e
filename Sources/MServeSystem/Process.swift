#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes shared by master and workers, as in gunicorn: a worker that cannot boot says so with
/// its exit code, and the master stops instead of respawning it in a loop.
public enum ExitCode {
    public static let ok: Int32 = 0
    public static let failure: Int32 = 1
    public static let usage: Int32 = 2
    public static let workerBootError: Int32 = 3
    public static let modelLoadError: Int32 = 4
}

/// How a child ended, decoded from waitpid's status (the W* macros are not imported into Swift).
public enum ChildStatus: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public init(waitStatus s: Int32) {
        if s & 0x7F == 0 { self = .exited((s >> 8) & 0xFF) } else { self = .signaled(s & 0x7F) }
    }

    public var description: String {
        switch self {
        case .exited(let c): return "exited with code \(c)"
        case .signaled(let s): return "was sent \(signalName(s))"
        }
    }
}

public func signalName(_ s: Int32) -> String {
    switch s {
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    case SIGQUIT: return "SIGQUIT"
    case SIGILL: return "SIGILL"
    case SIGTRAP: return "SIGTRAP"
    case SIGABRT: return "SIGABRT"
    case SIGBUS: return "SIGBUS"
    case SIGFPE: return "SIGFPE"
    case SIGKILL: return "SIGKILL"
    case SIGUSR1: return "SIGUSR1"
    case SIGSEGV: return "SIGSEGV"
    case SIGUSR2: return "SIGUSR2"
    case SIGPIPE: return "SIGPIPE"
    case SIGALRM: return "SIGALRM"
    case SIGTERM: return "SIGTERM"
    case SIGCHLD: return "SIGCHLD"
    case SIGTTIN: return "SIGTTIN"
    case SIGTTOU: return "SIGTTOU"
    default: return "signal \(s)"
    }
}

/// Monotonic seconds, for timeouts and durations.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The default disposition of every signal the master handles (ChildProcess.fork sets them in a
/// child before it unblocks signals).
func defaultSignalDispositions() {
    for s in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGCHLD, SIGPIPE] {
        signal(s, SIG_DFL)
    }
}

/// Writes to standard error without touching C's `stderr` global (not concurrency-safe in Swift 6).
public func printError(_ message: String, newline: Bool = true) {
    let line = newline ? message + "\n" : message
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

/// This process's id (it changes in a forked worker).
public func currentProcessID() -> Int32 { getpid() }

/// Sleeps the calling thread for `seconds`, resuming after signals.
public func sleepThread(seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}

/// The process's environment variables.
public enum ProcessEnvironment {
    public static func variables() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { out[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
