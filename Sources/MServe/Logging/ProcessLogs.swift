import MServeSystem

/// The logs of one process, with the loop that flushes them.
package final class ProcessLogs: Sendable {
    package let logger: Logger
    package let accessLog: AccessLog?

    package init(logger: Logger, accessLog: AccessLog?) {
        self.logger = logger
        self.accessLog = accessLog
    }

    package var files: [LogFile] { [logger.file] + (accessLog.map { [$0.file] } ?? []) }

    /// How long a line may wait in memory.  Writing at most every 50 ms (or at 64 KiB) costs a few
    /// system calls a second instead of one per line; a file write costs more than a whole request.
    static let flushInterval = 0.05

    /// Buffered lines are written by a timer on the process's loop.
    package func attach(to loop: EventLoop) {
        EventLoop.log = { [logger] severity, text in
            logger.log(severity == .error ? .error : (severity == .warning ? .warning : .debug), text)
        }
        let timer = loop.timer { [self] in flush() }
        let box = UncheckedBox(timer)
        for f in files { f.setScheduler { box.value.arm(ProcessLogs.flushInterval) } }
    }

    package func detach() { for f in files { f.setScheduler(nil) } }
    package func flush() { for f in files { f.flush() } }

    package func reopen() {
        for f in files {
            do { try f.reopen() } catch { logger.error("cannot reopen log: \(error)") }
        }
    }
}
