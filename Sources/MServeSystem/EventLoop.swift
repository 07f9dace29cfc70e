import CEvent

#if canImport(Glibc)
    import Glibc
#endif

/// A libevent event_base with Swift closures as callbacks.
///
/// This file and CEvHTTPShim are where C forces a compromise on Swift 6: libevent wants
/// `@convention(c)` functions with a `void *` context, so each event keeps an `EventHandle` whose
/// unretained pointer is that context, and the loop keeps the handle alive until it is cancelled.
/// Everything here runs on the thread that runs the loop, except `activate()`, which model threads
/// call to wake it (libevent is set up for pthreads before the base is created).
public final class EventLoop {
    public let base: OpaquePointer
    private var retained: [ObjectIdentifier: EventHandle] = [:]
    /// Priorities: 0 for what must not wait (signals, control pipes), 1 for the default (HTTP I/O),
    /// 2 for work that may wait until the ready I/O is handled.
    public static let priorities: Int32 = 3

    public init() throws {
        evthread_use_pthreads()
        event_set_log_callback(EventLoop.libeventLog)
        // The changelist folds epoll_ctl calls for one descriptor within a loop iteration (a write
        // event armed and disarmed again costs nothing).  Its caveat, descriptors duplicated with
        // dup(), does not apply: mserve never dups a watched descriptor.
        let cfg = event_config_new()
        defer { event_config_free(cfg) }
        event_config_set_flag(cfg, Int32(EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST.rawValue))
        guard let base = event_base_new_with_config(cfg) else { throw SystemError("event_base_new failed") }
        event_base_priority_init(base, EventLoop.priorities)
        self.base = base
    }

    /// Adopts the base of a forked parent so that it can be released in the child.
    package init(adopting base: OpaquePointer) { self.base = base }

    /// How bad a message of libevent's own is.
    public enum Severity: Sendable { case debug, warning, error }
    /// Where libevent's own messages go; set by the process that owns the logs (else standard error).
    nonisolated(unsafe) public static var log: ((Severity, String) -> Void)?

    private static let libeventLog: event_log_cb = { severity, msg in
        guard let msg else { return }
        let text = String(cString: msg)
        // After fork the worker's new base adds signals while libevent's global signal count still
        // remembers the master's freed base; the warning about it is expected and harmless.
        if text.hasPrefix("Added a signal to event base") { return }
        let level: Severity = severity >= EVENT_LOG_ERR ? .error : (severity >= EVENT_LOG_WARN ? .warning : .debug)
        if let log = EventLoop.log { log(level, "libevent: \(text)") } else { printError("libevent: \(text)") }
    }

    private static let trampoline: event_callback_fn = { _, what, arg in
        guard let arg else { return }
        Unmanaged<EventHandle>.fromOpaque(arg).takeUnretainedValue().fire(what)
    }

    private func make(fd: Int32, flags: Int32, priority: Int32?, _ handler: @escaping (Int16) -> Void) -> EventHandle {
        let handle = EventHandle(loop: self, handler: handler)
        let ctx = Unmanaged.passUnretained(handle).toOpaque()
        handle.event = event_new(base, fd, Int16(flags), EventLoop.trampoline, ctx)
        if let priority { event_priority_set(handle.event, Int32(priority)) }
        retained[ObjectIdentifier(handle)] = handle
        return handle
    }

    func release(_ handle: EventHandle) { retained.removeValue(forKey: ObjectIdentifier(handle)) }

    @discardableResult
    public func onSignal(_ signal: Signal, _ handler: @escaping () -> Void) -> EventHandle { onSignal(signal.number, handler) }

    @discardableResult
    public func onSignal(_ signo: Int32, _ handler: @escaping () -> Void) -> EventHandle {
        let h = make(fd: signo, flags: Int32(EV_SIGNAL | EV_PERSIST), priority: 0) { _ in handler() }
        event_add(h.event, nil)
        return h
    }

    @discardableResult
    public func onReadable(_ fd: Int32, _ handler: @escaping () -> Void) -> EventHandle {
        let h = make(fd: fd, flags: Int32(EV_READ | EV_PERSIST), priority: 0) { _ in handler() }
        event_add(h.event, nil)
        return h
    }

    /// A persistent read or write event at the default priority, not yet enabled.
    public func ioEvent(_ fd: Int32, write: Bool, _ handler: @escaping () -> Void) -> EventHandle {
        make(fd: fd, flags: Int32((write ? EV_WRITE : EV_READ) | EV_PERSIST), priority: nil) { _ in handler() }
    }

    /// A timer; with `repeating` it fires every `seconds` until cancelled, else once, after which
    /// it is released.
    @discardableResult
    public func after(
        _ seconds: Double, repeating: Bool = false, priority: Int32? = nil,
        _ handler: @escaping () -> Void
    ) -> EventHandle {
        let h = make(fd: -1, flags: repeating ? Int32(EV_PERSIST) : 0, priority: priority) { _ in handler() }
        h.releaseAfterFiring = !repeating
        h.interval = seconds
        h.arm()
        return h
    }

    /// A one-shot timer that is kept to be armed again and again (`arm(seconds)`), until cancelled.
    public func timer(_ handler: @escaping () -> Void) -> EventHandle {
        make(fd: -1, flags: 0, priority: nil) { _ in handler() }
    }

    /// An event fired by `activate()`, which other threads may call: how model threads wake the loop.
    public func userEvent(_ handler: @escaping () -> Void) -> EventHandle {
        make(fd: -1, flags: 0, priority: nil) { _ in handler() }
    }

    /// Runs until stopped, or until nothing is left to wait for.  After each batch of ready events
    /// the batch-end work runs, before the loop waits again.
    public func run() {
        while true {
            let result = event_base_loop(base, EVLOOP_ONCE)
            endBatch()
            if result != 0 || event_base_got_break(base) != 0 || event_base_got_exit(base) != 0 { return }
        }
    }
    /// Handles what is ready now, without waiting (for tests that drive a loop by hand).
    public func runOnce() {
        event_base_loop(base, EVLOOP_NONBLOCK)
        endBatch()
    }
    /// Waits until something is ready, at most `seconds`, and handles it (tests that wait for a
    /// model thread without spinning).
    public func runOnce(waitingUpTo seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        event_base_loopexit(base, &tv)
        event_base_loop(base, EVLOOP_ONCE)
        endBatch()
    }

    /// Work for the end of every batch of ready events: the HTTP server sends what the batch's
    /// requests were answered with here, all at once.
    public func atBatchEnd(_ work: @escaping () -> Void) { batchEnd.append(work) }
    private var batchEnd: [() -> Void] = []

    private func endBatch() {
        for work in batchEnd { work() }
    }
    public func stop() { event_base_loopbreak(base) }

    /// In a forked child: the parent's loop must be re-initialised, then freed (shared/DESIGN.md).
    package func abandonAfterFork() {
        event_reinit(base)
        for h in Array(retained.values) { h.cancel() }
        event_base_free(base)
    }
}

public final class EventHandle {
    /// Set right after the handle is made (the handle is the event's callback context); nil once cancelled.
    fileprivate var event: OpaquePointer?
    private weak var loop: EventLoop?
    private let handler: (Int16) -> Void
    fileprivate var interval: Double = 0
    fileprivate var releaseAfterFiring = false

    fileprivate init(loop: EventLoop, handler: @escaping (Int16) -> Void) {
        self.loop = loop
        self.handler = handler
    }

    fileprivate func fire(_ what: Int16) {
        handler(what)
        if releaseAfterFiring { cancel() }
    }

    /// (Re)starts a timer with its interval.
    public func arm(_ seconds: Double? = nil) {
        if let seconds { interval = seconds }
        var tv = timeval(tv_sec: Int(interval), tv_usec: Int((interval - Double(Int(interval))) * 1e6))
        event_add(event, &tv)
    }

    /// Thread-safe (libevent is set up for pthreads): marks the event active on its loop.
    public func activate() { event_active(event, Int32(EV_TIMEOUT), 0) }

    /// Thread-safe: a timer due now.  Unlike `activate`, it runs only after the loop has looked for
    /// I/O again, so work that re-fires itself cannot keep one batch of events from ending.
    public func fireSoon() {
        var now = timeval()
        event_add(event, &now)
    }

    /// Adds an I/O event without a timeout.
    public func enable() { event_add(event, nil) }

    /// Stops a pending timer without releasing it; arm() starts it again.
    public func disarm() { event_del(event) }

    public func cancel() {
        guard let event else { return }
        event_del(event)
        event_free(event)
        self.event = nil
        loop?.release(self)
    }
}
