import MServePOSIX
/// The logs of one process, with the loop that flushes them.
final class ProcessLogs: @unchecked Sendable {
    let logger: Logger
    let accessLog: AccessLog?

    init(logger: Logger, accessLog: AccessLog?) {
        self.logger = logger
        self.accessLog = accessLog
    }

    var files: [LogFile] { [logger.file] + (accessLog.map { [$0.file] } ?? []) }

    /// How long a line may wait in memory.  Writing at most every 50 ms (or at 64 KiB) costs a few
    /// system calls a second instead of one per line; a file write costs more than a whole request.
    static let flushInterval = 0.05

    /// Buffered lines are written by a timer on the process's loop.
    func attach(to loop: EventLoop) {
        EventLoop.log = { [logger] severity, text in
            logger.log(severity == .error ? .error : (severity == .warning ? .warning : .debug), text)
        }
        let timer = loop.timer { [self] in flush() }
        let box = UncheckedBox(timer)
        for f in files { f.setScheduler { box.value.arm(ProcessLogs.flushInterval) } }
    }

    func detach() { for f in files { f.setScheduler(nil) } }
    func flush() { for f in files { f.flush() } }

    func reopen() {
        for f in files {
            do { try f.reopen() } catch { logger.error("cannot reopen log: \(error)") }
        }
    }
}
