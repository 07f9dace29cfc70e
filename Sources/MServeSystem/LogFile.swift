#if canImport(Glibc)
    import Glibc
#endif

/// A log destination shared by several processes: lines are buffered and written in whole-line
/// chunks, so the hot path costs no system call per line and lines from different workers never
/// interleave mid-line.
///
/// Regular files are opened O_APPEND, where one write() lands as a unit; pipes, sockets and ttys only
/// promise that for writes up to PIPE_BUF, so there each write() carries at most PIPE_BUF bytes of
/// complete lines.
public final class LogFile: @unchecked Sendable {
    public let path: String
    private let standardFD: Int32
    fileprivate struct State: ~Copyable {
        var fd: Int32
        var buffer = ByteWriter(capacity: LogFile.highWater + LogFile.maxLine)
        var chunkLimit: Int = Int(PIPE_BUF)
        var flushScheduled = false
        /// Set by the process's event loop: asks for a flush once the loop has handled what is
        /// ready now.  Without it (before the loop runs, or in tests) every line is written at once.
        var scheduler: (@Sendable () -> Void)?
        /// Bytes the file refused (a full disk) since writing last worked; nil while it works.
        var failing: (errno: Int32, since: Int)?
        var droppedTotal = 0
        var onDropped: (@Sendable (Int) -> Void)?
    }
    private let state: Locked<State>

    static let highWater = 64 * 1024
    /// A single line longer than this is cut, so that one request cannot flood the log.
    public static let maxLine = 16 * 1024

    /// `path` "-" means the given standard stream (stdout for access logs, stderr for the error log).
    public init(path: String, standardFD: Int32) throws {
        self.path = path
        self.standardFD = standardFD
        let fd = try LogFile.open(path, standardFD: standardFD)
        var s = State(fd: fd)
        s.chunkLimit = LogFile.chunkLimit(fd)
        state = Locked(s)
    }

    private static func open(_ path: String, standardFD: Int32) throws -> Int32 {
        if path == "-" { return standardFD }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw SystemError("cannot open log file \(path)", errno: errno) }
        return fd
    }

    private static func chunkLimit(_ fd: Int32) -> Int {
        var st = stat()
        if fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { return Int.max }
        return Int(PIPE_BUF)
    }

    public func setScheduler(_ schedule: (@Sendable () -> Void)?) {
        state.withLock { $0.scheduler = schedule }
        if schedule == nil { flush() }
    }

    private enum Next { case nothing, flush, schedule(@Sendable () -> Void) }

    /// Appends one line; `line` must not contain a newline, which is added here.
    public func append(_ line: [UInt8]) {
        appendLine { $0.append(contentsOf: line) }
    }

    /// Builds one line straight into the buffer (no intermediate array on the hot path); the newline
    /// is added here, and a line over maxLine is cut.
    package func appendLine(_ build: (inout ByteWriter) -> Void) {
        let next: Next = state.withLock { s in
            let start = s.buffer.count
            build(&s.buffer)
            if s.buffer.count - start > LogFile.maxLine {
                s.buffer.truncate(to: start + LogFile.maxLine)
                s.buffer.append("...")
            }
            s.buffer.append(0x0A)
            guard let schedule = s.scheduler, s.buffer.count < LogFile.highWater else { return .flush }
            if s.flushScheduled { return .nothing }
            s.flushScheduled = true
            return .schedule(schedule)
        }
        switch next {
        case .nothing: break
        case .flush: flush()
        case .schedule(let schedule): schedule()
        }
    }

    public func flush() {
        state.withLock { s in
            s.flushScheduled = false
            guard !s.buffer.isEmpty else { return }
            let chunkLimit = s.chunkLimit, fd = s.fd
            let failure: (errno: Int32, lost: Int)? = s.buffer.withUnsafeBytes { raw in
                var failure: (errno: Int32, lost: Int)?
                var start = 0
                while start < raw.count {
                    var end = raw.count
                    if end - start > chunkLimit {
                        // Cut after the last newline that fits; a single longer line goes alone.
                        end = start + chunkLimit
                        while end > start && raw[end - 1] != 0x0A { end -= 1 }
                        if end == start {
                            end = start
                            while end < raw.count && raw[end] != 0x0A { end += 1 }
                            end = min(end + 1, raw.count)
                        }
                    }
                    if let f = LogFile.writeAll(fd, UnsafeRawBufferPointer(rebasing: raw[start..<end])) {
                        failure = (f.errno, (failure?.lost ?? 0) + f.lost)
                    }
                    start = end
                }
                return failure
            }
            s.noteWrite(failure: failure, path: path)
            s.buffer.removeAll()
        }
    }

    /// Bytes of lines this process could not write (a full disk, a broken descriptor).
    public var droppedBytes: Int { state.withLock { $0.droppedTotal } }

    /// Called with the bytes of each chunk of lines that could not be written (for a counter).
    public func onDropped(_ count: (@Sendable (Int) -> Void)?) { state.withLock { $0.onDropped = count } }

    /// Writes everything, retrying on EINTR and short writes; gives up (dropping the rest of this
    /// chunk) only if the file refuses it (a full disk, a broken descriptor), since a logger must
    /// never take the server down.  Returns what was lost: the error and how many bytes, or nil.
    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> (errno: Int32, lost: Int)? {
        guard let base = bytes.baseAddress else { return nil }
        var done = 0
        while done < bytes.count {
            let n = write(fd, base + done, bytes.count - done)
            if n > 0 { done += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 100)
                continue
            }
            return (n < 0 ? errno : ENOSPC, bytes.count - done)
        }
        return nil
    }

    /// For logrotate: write what is buffered, then open the path anew.
    public func reopen() throws {
        flush()
        guard path != "-" else { return }
        let fd = try LogFile.open(path, standardFD: standardFD)
        state.withLock { s in
            close(s.fd)
            s.fd = fd
            s.chunkLimit = LogFile.chunkLimit(fd)
        }
    }
}

fileprivate extension LogFile.State {
    /// Counts what a write lost, and says on standard error, once, when writing starts failing and
    /// once when it works again (with how much was lost meanwhile), rather than lose lines silently.
    mutating func noteWrite(failure: (errno: Int32, lost: Int)?, path: String) {
        if let failure {
            droppedTotal += failure.lost
            onDropped?(failure.lost)
            if let f = failing {
                failing = (f.errno, f.since + failure.lost)
            } else {
                failing = (failure.errno, failure.lost)
                printError(
                    "mserve[\(getpid())]: cannot write to log \(path) (\(String(cString: strerror(failure.errno)))); "
                        + "dropping lines until it can (counted in mserve_log_bytes_dropped_total)")
            }
        } else if let f = failing {
            failing = nil
            printError("mserve[\(getpid())]: writing to log \(path) again; \(f.since) bytes of lines were dropped")
        }
    }
}
