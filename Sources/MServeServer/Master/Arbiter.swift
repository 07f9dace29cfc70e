import MServe
import MServeSystem

/// The master's decisions, without side effects: an event goes in with the time it happened, the
/// actions it calls for come out, and `Master` performs them (fork, kill, close, log).  Every event
/// ends in one `reconcile` step, as gunicorn's loop ends every wake-up in murder-then-manage: spawn
/// the one missing worker, steer, finish a boot or a reload, stop the loop once a stop is done.
///
/// Slots: worker slot `s` serves through the sockets of slot `s`; a slot has at most one current
/// worker (its others are retiring).  A reload starts a new generation; a slot's old-generation
/// worker retires once the new one is forked, or stays (adopted) when the fork fails.
public struct Arbiter: Sendable {
    public struct Limits: Equatable, Sendable {
        public var workers: Int
        /// Seconds a serving worker may go unheard (--timeout), and a booting one unready (--boot-timeout).
        public var timeout: Double
        public var bootTimeout: Double
        public var gracefulTimeout: Double
        /// On TERM, how long readiness answers 503 while everything is still served (--drain-seconds).
        public var drainSeconds: Double
        /// How long a retiring worker may take to finish what it has (--retire-timeout).
        public var retireTimeout: Double

        public init(
            workers: Int, timeout: Double, bootTimeout: Double, gracefulTimeout: Double, drainSeconds: Double = 0,
            retireTimeout: Double = 300
        ) {
            self.workers = workers
            self.timeout = timeout
            self.bootTimeout = bootTimeout
            self.gracefulTimeout = gracefulTimeout
            self.drainSeconds = drainSeconds
            self.retireTimeout = retireTimeout
        }
    }

    /// `draining`: a TERM arrived while serving; readiness answers 503 so that balancers' checks
    /// take the server out, and everything is served as before until `drainSeconds` have passed.
    public enum Phase: Equatable, Sendable { case booting, running, draining, stopping }

    public struct Worker: Equatable, Sendable {
        public let pid: Int32
        public let slot: Int
        /// The reload generation whose settings it runs (or adopted after a failed fork).
        public var generation: Int
        public let started: Double
        public var lastHeard: Double
        public var ready = false
        /// When it was told to exit (reload, scale-down, max-requests; its --retire-timeout runs
        /// from then): its exit is not a failure to replace.
        public var retiredAt: Double?
        public var retiring: Bool { retiredAt != nil }
        public var abortedAt: Double?
        /// Why it is being replaced, for the restart counters.
        public var reason: Scoreboard.RestartReason = .crashed
    }

    public enum Event: Equatable, Sendable {
        /// The sockets of the first `limits.workers` slots are open: start the workers.
        case boot(at: Double)
        case spawned(slot: Int, pid: Int32, at: Double)
        /// The master could not open the slot's sockets or fork (and logged why).
        case spawnFailed(slot: Int, at: Double)
        case message(pid: Int32, WorkerMessage, at: Double)
        case exited(pid: Int32, ChildStatus, at: Double)
        /// Time passed: the master's timer fires at `nextWake`.
        case tick(at: Double)
        /// HUP with the re-read settings' limits.
        case reload(Limits, at: Double)
        /// TTIN (+1), TTOU (-1).
        case scale(by: Int, at: Double)
        /// TERM (graceful), INT and QUIT (quick).
        case stop(graceful: Bool, at: Double)
        /// USR1: the master reopened its logs; the workers reopen theirs.
        case reopenLogs
        /// `worker kill PID` on the control socket: that worker drains and exits while its
        /// replacement starts.
        case replace(pid: Int32, at: Double)
    }

    public enum Signal: Equatable, Sendable {
        /// TERM (finish in-flight requests), QUIT (exit now), ABRT (stuck: leave a backtrace),
        /// KILL, USR1 (reopen logs).
        case terminate, quit, abort, kill, reopenLogs
    }

    public enum Notification: Equatable, Sendable { case ready, reloading, draining, stopping }

    public enum Action: Equatable, Sendable {
        /// Open the slot's sockets if need be, fork its worker, and report `spawned` or `spawnFailed`.
        case spawn(slot: Int)
        case signal(pid: Int32, Signal)
        case log(LogLevel, String)
        /// systemd's state (sd_notify), and readiness as /readyz reports it.
        case notify(Notification)
        case countRestart(Scoreboard.RestartReason)
        /// Slot `slot` (the highest) leaves service; its sockets stay open under `drain` until
        /// `closeDrained(drain)`, once its workers have taken what the kernel queued there.
        case detachSlot(Int, drain: Int)
        case closeDrained(Int)
        /// New connections go only to these slots' sockets (every slot's if empty).
        case steer(serving: Set<Int>)
        /// Stopping: the master's copies of the listening sockets go first.
        case closeAllSockets
        /// The last worker of a stop is gone: the master's loop ends with `exitCode`.
        case exitLoop
    }

    public private(set) var limits: Limits
    public private(set) var phase = Phase.booting
    public private(set) var workers: [Int32: Worker] = [:]
    public private(set) var exitCode = ExitCode.ok
    /// How many slots have sockets (the master opens the first `limits.workers` at boot).
    public private(set) var openSlots: Int
    /// The number of workers asked for (--workers, TTIN/TTOU, `worker add/remove`).
    public private(set) var desired: Int
    /// Workers forked and reloads begun since the start (`show stats`).
    public private(set) var spawnedCount = 0
    public private(set) var reloadCount = 0
    private var generation = 0
    /// A spawn was asked for and its outcome has not come back yet.
    private var spawning: Int?
    /// No spawn before this time: a fork failed, or a worker died before it served.
    private var retryAt: Double?
    /// Stopping: when the workers still there are killed.
    private var killAt: Double?
    /// Draining: when the stop begins.
    private var stopAt: Double?
    private var reload: (remaining: Set<Int>, failed: Int)?
    private var reloading = false
    private var drains: [Int: Set<Int32>] = [:]
    /// Workers killed for not serving within the boot timeout since one last started serving.
    private var bootTimeoutsInARow = 0
    private var nextDrain = 0
    /// What the sockets are steered to; nil when a socket was added or closed since (the kernel's
    /// indices moved).
    private var lastSteered: Set<Int>?

    public init(limits: Limits) {
        self.limits = limits
        desired = limits.workers
        openSlots = limits.workers
    }

    /// Seconds a stuck worker has between SIGABRT (for its backtrace) and SIGKILL.
    public static let abortGrace = 2.0
    /// Boot timeouts in a row (no worker serving in between) after which the master gives up with
    /// exit code 3, as gunicorn does for workers that cannot boot.
    public static let bootTimeoutsBeforeHalt = 3
    /// Delay before the next spawn after a fork failure or a worker that died before serving.
    public static let respawnDelay = 1.0

    /// A worker beats every `heartbeatInterval`; three missed and it is late.
    public static func heartbeatInterval(timeout: Double) -> Double { min(1.0, timeout / 4) }
    var lateAfter: Double { 3 * Arbiter.heartbeatInterval(timeout: limits.timeout) }
    private func isLate(_ w: Worker, _ now: Double) -> Bool { now - w.lastHeard > lateAfter }
    /// Serving workers taken out of the steering for being late.
    private var lateWorkers: Set<Int32> = []

    /// The next time something is due (a timeout, a retry, a kill): the master ticks then.
    public var nextWake: Double? {
        var due = [retryAt, killAt, stopAt].compactMap { $0 }
        for w in workers.values {
            if let aborted = w.abortedAt { due.append(aborted + Arbiter.abortGrace); continue }
            if phase != .stopping && workers.count > 1 && w.ready && !w.retiring && !lateWorkers.contains(w.pid) {
                due.append(w.lastHeard + lateAfter + 0.001)
            }
            if w.ready { due.append(w.lastHeard + limits.timeout) } else { due.append(w.started + limits.bootTimeout) }
            if let retired = w.retiredAt { due.append(retired + limits.retireTimeout) }
        }
        return due.min()
    }

    /// Whether any worker serves new connections (of any generation): a new worker then waits for
    /// its models before it accepts.
    public var anyServing: Bool { workers.values.contains { $0.ready && !$0.retiring } }

    /// Workers that serve new connections: ready, current, not retiring.
    public var serving: Int { workers.values.filter { $0.ready && !$0.retiring && $0.generation == generation }.count }

    /// Draining or stopping: reloads and scaling are refused.
    public var leaving: Bool { phase == .draining || phase == .stopping }

    public mutating func handle(_ event: Event) -> [Action] {
        var out: [Action] = []
        let now: Double
        switch event {
        case .boot(let at):
            now = at
        case .spawned(let slot, let pid, let at):
            now = at
            spawning = nil
            spawnedCount += 1
            workers[pid] = Worker(pid: pid, slot: slot, generation: generation, started: at, lastHeard: at)
            // A reload's new worker replaces its slot's old one, which drains and exits.
            for w in workers.values where w.slot == slot && w.generation != generation && !w.retiring {
                retire(w.pid, .reload, at, &out)
            }
            reload?.remaining.remove(slot)
        case .spawnFailed(let slot, let at):
            now = at
            spawning = nil
            if reload?.remaining.remove(slot) != nil,
                let old = workers.values.first(where: { $0.slot == slot && !$0.retiring })
            {
                // The slot keeps its old worker (and with it the old configuration).
                workers[old.pid]?.generation = generation
                reload?.failed += 1
            } else {
                retryAt = at + Arbiter.respawnDelay
            }
        case .message(let pid, let message, let at):
            now = at
            heard(pid, message, at, &out)
        case .exited(let pid, let status, let at):
            now = at
            exited(pid, status, at, &out)
        case .tick(let at):
            now = at
            murder(at, &out)
        case .reload(let next, let at):
            now = at
            guard !leaving else { return [] }
            out.append(.notify(.reloading))
            out.append(.log(.info, "Reloading: \(next.workers) new workers replace \(workers.count)"))
            limits = next
            desired = next.workers
            generation += 1
            reloadCount += 1
            reloading = true
            reload = (Set(0..<desired), 0)
            retryAt = nil
            for w in workers.values where w.slot >= desired && !w.retiring { retire(w.pid, .reload, at, &out) }
            detachSlots(from: desired, &out)
        case .scale(let delta, let at):
            now = at
            guard !leaving else { return [] }
            let target = max(1, desired + delta)
            guard target != desired else { return [.log(.info, "Keeping \(desired) worker (the minimum)")] }
            desired = target
            out.append(.log(.info, "Number of workers: \(target)"))
            for w in workers.values.sorted(by: { $0.pid < $1.pid }) where w.slot >= target && !w.retiring {
                retire(w.pid, .scaledDown, at, &out)
            }
            detachSlots(from: target, &out)
        case .stop(let graceful, let at):
            now = at
            if phase == .stopping && graceful { return [] }
            if graceful && phase == .running && limits.drainSeconds > 0 {
                phase = .draining
                stopAt = at + limits.drainSeconds
                out.append(.notify(.draining))
                out.append(
                    .log(
                        .info,
                        "Draining for \(String(seconds: limits.drainSeconds)) s: /readyz answers 503 while every request is still served; then stopping"
                    ))
            } else {
                // A second TERM while draining cuts the drain short.
                stopAt = nil
                stop(graceful: graceful, at, &out)
            }
        case .reopenLogs:
            return workers.keys.sorted().map { .signal(pid: $0, .reopenLogs) }
        case .replace(let pid, let at):
            now = at
            guard !leaving, let w = workers[pid], !w.retiring else { return [] }
            out.append(.log(.info, "Worker \(pid) (slot \(w.slot)) is being replaced (control socket)"))
            retire(pid, .replaced, at, &out)
        }
        reconcile(now, &out)
        return out
    }

    // MARK: events

    private mutating func heard(_ pid: Int32, _ message: WorkerMessage, _ at: Double, _ out: inout [Action]) {
        guard var w = workers[pid] else { return }
        w.lastHeard = at
        switch message {
        case .heartbeat:
            break
        case .maxRequests where !w.retiring:
            // Its replacement starts now (reconcile), while it drains.
            w.retiredAt = at
            w.reason = .maxRequests
            out.append(.log(.info, "Worker \(pid) (slot \(w.slot)) reached max-requests; starting its replacement"))
        case .maxRequests:
            break
        case .serving where !w.ready && w.abortedAt == nil:
            // (One already killed for its boot timeout is never counted as serving.)
            w.ready = true
            bootTimeoutsInARow = 0
            out.append(.log(.info, "Worker \(pid) (slot \(w.slot)) is serving, booted in \(String(format3: at - w.started)) s"))
        case .serving:
            break
        }
        workers[pid] = w
    }

    private mutating func exited(_ pid: Int32, _ status: ChildStatus, _ at: Double, _ out: inout [Action]) {
        guard let w = workers.removeValue(forKey: pid) else { return }
        for (drain, pids) in drains.sorted(by: { $0.key < $1.key }) where pids.contains(pid) {
            drains[drain]?.remove(pid)
            if drains[drain]?.isEmpty == true {
                drains[drain] = nil
                out.append(.closeDrained(drain))
                lastSteered = nil
            }
        }
        if phase != .stopping { out.append(.countRestart(w.reason)) }
        if phase == .stopping || w.retiring {
            out.append(.log(.info, "Worker exiting (pid: \(pid)): \(status)"))
            return
        }
        if w.reason == .bootTimeout {
            bootTimeoutsInARow += 1
            if bootTimeoutsInARow >= Arbiter.bootTimeoutsBeforeHalt {
                return halt(
                    "\(bootTimeoutsInARow) workers in a row did not serve within --boot-timeout (\(limits.bootTimeout) s); "
                        + "shutting down", ExitCode.workerBootError, at, &out)
            }
        }
        switch status {
        case .exited(ExitCode.modelLoadError):
            halt("Worker (pid:\(pid)) failed to load its models; see the error above. Shutting down.", ExitCode.modelLoadError, at, &out)
        case .exited(ExitCode.workerBootError):
            halt("Worker (pid:\(pid)) failed to boot. Shutting down.", ExitCode.workerBootError, at, &out)
        default:
            out.append(.log(.warning, "Worker (pid:\(pid)) \(status); starting a replacement in slot \(w.slot)"))
            // One that dies before it serves would otherwise be forked again at once, forever.
            if !w.ready {
                out.append(.log(.warning, "a worker died before serving; next start in 1 s"))
                retryAt = at + Arbiter.respawnDelay
            }
        }
    }

    private mutating func halt(_ message: String, _ code: Int32, _ at: Double, _ out: inout [Action]) {
        out.append(.log(.critical, message))
        exitCode = code
        stop(graceful: false, at, &out)
    }

    /// The master's sockets close first; workers then finish what they have (TERM) or exit (QUIT),
    /// and those still there at the deadline are killed.
    private mutating func stop(graceful: Bool, _ at: Double, _ out: inout [Action]) {
        phase = .stopping
        out.append(.notify(.stopping))
        out.append(.closeAllSockets)
        for pid in workers.keys.sorted() { out.append(.signal(pid: pid, graceful ? .terminate : .quit)) }
        killAt = at + (graceful ? limits.gracefulTimeout : min(limits.gracefulTimeout, 5))
    }

    /// gunicorn's murder_workers: a worker not heard from within the timeout (or not serving within
    /// the boot timeout) gets SIGABRT, so that it can leave a backtrace, and SIGKILL 2 s later.
    /// Stopping: the ones still there at the deadline are killed.
    private mutating func murder(_ now: Double, _ out: inout [Action]) {
        if let stopAt, now >= stopAt {
            self.stopAt = nil
            out.append(.log(.info, "Drained; stopping"))
            stop(graceful: true, now, &out)
        }
        if let killAt, now >= killAt {
            self.killAt = nil
            for pid in workers.keys.sorted() {
                out.append(.log(.warning, "Worker (pid:\(pid)) did not exit in time; sending SIGKILL"))
                out.append(.signal(pid: pid, .kill))
            }
        }
        for pid in workers.keys.sorted() {
            guard var w = workers[pid] else { continue }
            if let aborted = w.abortedAt {
                if now >= aborted + Arbiter.abortGrace { out.append(.signal(pid: pid, .kill)) }
                continue
            }
            if !w.ready && now >= w.started + limits.bootTimeout {
                // Still loading is not stuck: killed at once, with one line instead of a backtrace.
                out.append(.log(.critical, "WORKER BOOT TIMEOUT (pid:\(pid)): not serving after \(limits.bootTimeout) s"))
                w.reason = .bootTimeout
                w.abortedAt = now
                workers[pid] = w
                out.append(.signal(pid: pid, .kill))
                continue
            } else if w.ready && now >= w.lastHeard + limits.timeout {
                out.append(.log(.critical, "WORKER TIMEOUT (pid:\(pid))"))
                w.reason = .timeout
            } else if let retired = w.retiredAt, now >= retired + limits.retireTimeout {
                // Still finishing after --retire-timeout (a stream to a client that does not read,
                // a client that keeps pipelining): stopped now, killed if that does not end it.
                out.append(
                    .log(
                        .warning,
                        "Worker (pid:\(pid)) retired \(String(format3: now - retired)) s ago and is still busy "
                            + "(--retire-timeout \(limits.retireTimeout) s); stopping it"))
                w.abortedAt = now
                workers[pid] = w
                out.append(.signal(pid: pid, .quit))
                continue
            } else {
                continue
            }
            w.abortedAt = now
            workers[pid] = w
            out.append(.signal(pid: pid, .abort))
        }
    }

    // MARK: helpers

    private mutating func retire(_ pid: Int32, _ reason: Scoreboard.RestartReason, _ at: Double, _ out: inout [Action]) {
        workers[pid]?.retiredAt = at
        workers[pid]?.reason = reason
        out.append(.signal(pid: pid, .terminate))
    }

    /// Slots from `count` up (never the first) leave service, highest first; each one's sockets are
    /// closed when the workers of that slot have exited.
    private mutating func detachSlots(from count: Int, _ out: inout [Action]) {
        while openSlots > max(count, 1) {
            openSlots -= 1
            let slot = openSlots
            let drain = nextDrain
            nextDrain += 1
            out.append(.detachSlot(slot, drain: drain))
            lastSteered = nil
            let pids = Set(workers.values.filter { $0.slot == slot }.map(\.pid))
            if pids.isEmpty { out.append(.closeDrained(drain)) } else { drains[drain] = pids }
        }
    }

    /// What every event ends with.
    private mutating func reconcile(_ now: Double, _ out: inout [Action]) {
        if phase == .stopping {
            if workers.isEmpty { out.append(.exitLoop) }
            return
        }
        // Steering follows the workers that serve, are not retiring and beat on time, of any
        // generation: a worker stopped (SIGSTOP) or stuck takes no new connections from its third
        // missed heartbeat until it beats again, instead of until --timeout kills it.  If none
        // beats on time, every serving one keeps taking them (the master may be the one late).
        let taking = workers.values.filter { $0.ready && !$0.retiring && $0.abortedAt == nil }
        let onTime = taking.filter { !isLate($0, now) }
        let steered = Set((onTime.isEmpty ? taking : onTime).map(\.slot))
        lateWorkers = lateWorkers.filter { pid in taking.contains { $0.pid == pid } }
        for w in taking.sorted(by: { $0.pid < $1.pid }) where taking.count > 1 && isLate(w, now) != lateWorkers.contains(w.pid) {
            if isLate(w, now) {
                lateWorkers.insert(w.pid)
                out.append(
                    .log(
                        .warning,
                        "Worker (pid:\(w.pid)) has not beaten for \(String(format3: now - w.lastHeard)) s; "
                            + "new connections go to the others until it does"))
            } else {
                lateWorkers.remove(w.pid)
                out.append(.log(.info, "Worker (pid:\(w.pid)) beats again; it takes new connections"))
            }
        }
        if steered != lastSteered {
            lastSteered = steered
            out.append(.steer(serving: steered))
        }
        if let r = reload, r.remaining.isEmpty {
            if r.failed > 0 {
                out.append(.log(.error, "Reload: \(r.failed) new workers could not be started; their slots keep the old ones"))
            }
            reload = nil
        }
        if (phase == .booting || reloading) && reload == nil && serving >= desired {
            out.append(
                .log(
                    .info,
                    phase == .booting
                        ? (desired == 1 ? "The 1 worker is serving" : "All \(desired) workers are serving")
                        : "Reload complete: \(counted(serving, "worker")) serving"))
            reloading = false
            // A reload that completes while draining leaves the server draining.
            if phase != .draining {
                phase = .running
                out.append(.notify(.ready))
            }
        }
        guard spawning == nil, retryAt.map({ now >= $0 }) ?? true else { return }
        retryAt = nil
        let current = Set(workers.values.filter { !$0.retiring && $0.generation == generation }.map(\.slot))
        if let slot = (0..<desired).first(where: { !current.contains($0) }) {
            spawning = slot
            openSlots = max(openSlots, slot + 1)
            out.append(.spawn(slot: slot))
        }
    }
}
