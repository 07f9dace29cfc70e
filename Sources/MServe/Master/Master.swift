#if canImport(Glibc)
import Glibc
#endif

/// The arbiter (gunicorn's name): binds the sockets, forks one worker per slot, and from then on only
/// supervises.  libevent delivers signals to the loop, so each handler runs as ordinary loop code.
public final class Master {
    struct WorkerRecord {
        let pid: pid_t
        let slot: Int
        let pipe: Int32
        var pipeEvent: EventHandle?
        var ready = false
        /// Told to exit (reload or scale-down): its exit is not a failure to replace.
        var retiring = false
        let started: Double
        /// When its loop last reported (any message on the pipe), and when it was sent SIGABRT for not.
        var lastHeard: Double
        var abortedAt: Double?
        /// Its record in the scoreboard, and why it is being replaced (for the restart counters).
        let board: Int?
        var reason: Scoreboard.RestartReason = .crashed
    }

    enum Phase: Equatable { case booting, running, stopping }

    /// Replaced on HUP by what `rereadSettings` returns.
    private(set) var settings: Settings
    /// Parses the command line and config file again, for HUP.
    let rereadSettings: () throws -> Settings
    let registry: ModelRegistry
    let routes: [Route]
    let logs: ProcessLogs
    var logger: Logger { logs.logger }
    private var loop: EventLoop!
    private var listeners: Listeners!
    private var workers: [pid_t: WorkerRecord] = [:]
    private var phase = Phase.booting
    private var exitCode = ExitCode.ok
    private var killTimer: EventHandle?
    /// Mapped before the first fork, so every worker shares it.
    private var scoreboard: Scoreboard?
    /// --preload: the models, loaded once here before any fork and shared by every worker.
    private var preloaded: [ServedModel]?
    private var pidFile: PidFile?

    init(settings: Settings, rereadSettings: @escaping () throws -> Settings, registry: ModelRegistry, routes: [Route],
         logs: ProcessLogs) {
        self.settings = settings
        self.rereadSettings = rereadSettings
        self.registry = registry
        self.routes = routes
        self.logs = logs
    }

    /// Runs the server until it stops; returns the exit code.
    public func run() -> Int32 {
        do {
            if let fds = try SocketActivation.listenFDs() {
                listeners = Listeners(inherited: fds, backlog: settings.backlog)
            } else {
                let addresses = try settings.binds.map { (b) throws(ConfigError) in try BindAddress(parsing: b) }
                listeners = try Listeners(addresses: addresses, backlog: settings.backlog)
            }
            try listeners.ensureSlots(settings.workers, listening: true)
            loop = try EventLoop()
            scoreboard = try Scoreboard()
            for m in settings.models { scoreboard!.register(model: m) }
        } catch {
            logger.critical("\(error)")
            return ExitCode.failure
        }
        if let path = settings.pidfile {
            pidFile = PidFile(path: path)
            do { try pidFile!.write() } catch { logger.critical("\(error)"); return ExitCode.failure }
        }
        defer { pidFile?.remove() }

        logger.info("Starting mserve \(MServeVersion.string)")
        for a in listeners.addresses { logger.info("Listening at: http://\(a) (\(getpid()))") }
        if let mode = listeners.activationMode { logger.info("Sockets from systemd (LISTEN_FDS): \(mode); -b is ignored") }
        logger.info("Serving models: \(settings.models.joined(separator: ", ")) with \(settings.workers) workers")

        loop.onSignal(SIGCHLD) { [unowned self] in reapWorkers() }
        loop.onSignal(SIGTERM) { [unowned self] in handleSignal("term") { stop(graceful: true) } }
        loop.onSignal(SIGINT) { [unowned self] in handleSignal("int") { stop(graceful: false) } }
        loop.onSignal(SIGQUIT) { [unowned self] in handleSignal("quit") { stop(graceful: false) } }
        loop.onSignal(SIGUSR1) { [unowned self] in handleSignal("usr1") { reopenLogs() } }
        loop.onSignal(SIGHUP) { [unowned self] in handleSignal("hup") { reload() } }
        loop.onSignal(SIGTTIN) { [unowned self] in handleSignal("ttin") { scale(by: 1) } }
        loop.onSignal(SIGTTOU) { [unowned self] in handleSignal("ttou") { scale(by: -1) } }
        logs.attach(to: loop)
        defer { logs.detach() }

        // After the signal handlers: a TERM during a long preload is handled once it is done.
        if settings.preload {
            // No thread may start before fork: models start theirs in the workers (ModelRunner).
            do {
                preloaded = try ModelLoader.load(settings, registry: registry, workerID: -1, logger: logger)
            } catch {
                logger.critical("\(error.message); not starting")
                return ExitCode.modelLoadError
            }
        }
        desiredWorkers = settings.workers
        manageWorkers()
        loop.after(min(0.5, settings.timeout / 4), repeating: true) { [unowned self] in murderWorkers() }
        if let interval = SystemdNotify.watchdogInterval {
            // WatchdogSec: the master's loop proves it is alive; systemd restarts a master that stops.
            loop.after(interval, repeating: true) { SystemdNotify.send("WATCHDOG=1") }
        }
        if phase != .stopping { loop.run() }
        listeners.closeAll()
        logger.info("Shutting down: master (exit code \(exitCode))")
        return exitCode
    }

    private var desiredWorkers = 0
    private var respawnDelayed = false

    private func handleSignal(_ name: String, _ action: () -> Void) {
        logger.info("Handling signal: \(name)")
        action()
    }

    // MARK: workers

    /// Keeps one live worker in every slot below desiredWorkers.
    private func manageWorkers() {
        guard phase != .stopping else { return }
        let occupied = Set(workers.values.map(\.slot))
        for slot in 0..<desiredWorkers where !occupied.contains(slot) {
            guard spawnWorker(slot: slot) else { return manageWorkers(after: 1) }
            if phase == .stopping { return }
        }
    }

    /// At most one pending retry: a fork that keeps failing must not multiply timers.
    private var manageTimer: EventHandle?
    private func manageWorkers(after seconds: Double) {
        guard manageTimer == nil else { return }
        manageTimer = loop.after(seconds) { [unowned self] in
            manageTimer = nil
            manageWorkers()
        }
    }

    /// False when the worker could not be started (out of processes, descriptors or memory): the
    /// master lives on, serves with the workers it has, and the caller retries later.
    @discardableResult
    private func spawnWorker(slot: Int) -> Bool {
        do { try listeners.ensureSlots(slot + 1) } catch {
            logger.error("cannot open sockets for worker slot \(slot): \(error); retrying in 1 s")
            return false
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            logger.error("cannot create a worker pipe: \(SystemError("pipe", errno: errno)); retrying in 1 s")
            return false
        }
        logs.flush()
        fflush(nil)
        let board = scoreboard?.claim()
        let pid = fork()
        if pid < 0 {
            if let board { scoreboard?.release(board) }
            logger.error("\(SystemError("fork failed", errno: errno)); retrying in 1 s (slot \(slot))")
            close(fds[0]); close(fds[1])
            return false
        }
        if pid == 0 {
            // The inherited loop goes first: its events still name the descriptors closed below.
            logs.detach()
            loop.abandonAfterFork()
            close(fds[0])
            // (A socket systemd passed may be in several slots, this one's too.)
            listeners.foreignFDs(of: slot).forEach { close($0) }
            for w in workers.values { close(w.pipe) }
            let worker = Worker(slot: slot, settings: settings, registry: registry, routes: routes, preloaded: preloaded, logs: logs,
                                scoreboard: scoreboard, scoreboardRecord: board,
                                listenFDs: listeners.slots[slot], masterPipe: fds[1])
            let code = worker.run()
            logs.flush()
            _exit(code)
        }
        close(fds[1])
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        do { try listeners.listen(slot: slot) } catch { logger.error("\(error)") }
        let now = monotonicSeconds()
        if let board { scoreboard?.setPid(board, pid) }
        var record = WorkerRecord(pid: pid, slot: slot, pipe: fds[0], started: now, lastHeard: now, board: board)
        record.pipeEvent = loop.onReadable(fds[0]) { [unowned self] in readPipe(pid) }
        workers[pid] = record
        logger.info("Booting worker with pid: \(pid) (slot \(slot))")
        return true
    }

    private func readPipe(_ pid: pid_t) {
        guard var w = workers[pid] else { return }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(w.pipe, &buf, buf.count)
        if n <= 0 {
            // The worker is gone; SIGCHLD does the rest.
            w.pipeEvent?.cancel()
            w.pipeEvent = nil
            workers[pid] = w
            return
        }
        w.lastHeard = monotonicSeconds()
        workers[pid] = w
        if buf[0..<n].contains(UInt8(ascii: "M")) && !w.retiring {
            // --max-requests: a replacement in the same slot now, while this one drains.
            w.retiring = true
            w.reason = .maxRequests
            workers[pid] = w
            logger.info("Worker \(pid) (slot \(w.slot)) reached max-requests; starting its replacement")
            if phase != .stopping && w.slot < desiredWorkers { spawnWorker(slot: w.slot) }
        }
        if buf[0..<n].contains(UInt8(ascii: "R")) && !w.ready {
            w.ready = true
            workers[pid] = w
            logger.info("Worker \(pid) (slot \(w.slot)) is serving, booted in \(String(format3: monotonicSeconds() - w.started)) s")
            steer()
            let serving = workers.values.filter { $0.ready && !$0.retiring }.count
            if (phase == .booting || reloading) && serving >= desiredWorkers {
                logger.info(phase == .booting ? "All \(desiredWorkers) workers are serving" : "Reload complete: \(serving) workers serving")
                phase = .running
                scoreboard?.ready = true
                reloading = false
                SystemdNotify.send("READY=1\nSTATUS=serving \(settings.models.joined(separator: ",")) with \(desiredWorkers) workers\nMAINPID=\(getpid())")
            }
        }
    }

    /// gunicorn's murder_workers: a worker that has not been heard from within --timeout (or has not
    /// started serving within --boot-timeout) gets SIGABRT, so that it can leave a backtrace, and
    /// SIGKILL 2 s later if it is still there.  Reaping then replaces it.
    private func murderWorkers() {
        let now = monotonicSeconds()
        for (pid, w) in workers {
            if let aborted = w.abortedAt {
                if now - aborted > 2 { kill(pid, SIGKILL) }
                continue
            }
            if !w.ready && now - w.started > settings.bootTimeout {
                logger.critical("WORKER BOOT TIMEOUT (pid:\(pid)): not serving after \(settings.bootTimeout) s")
                workers[pid]?.reason = .bootTimeout
            } else if w.ready && now - w.lastHeard > settings.timeout {
                logger.critical("WORKER TIMEOUT (pid:\(pid))")
                workers[pid]?.reason = .timeout
            } else {
                continue
            }
            workers[pid]?.abortedAt = now
            kill(pid, SIGABRT)
        }
    }

    private func reapWorkers() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            guard let w = workers.removeValue(forKey: pid) else { continue }
            for i in draining.indices { draining[i].pids.remove(pid) }
            for d in draining where d.pids.isEmpty { listeners.closeDetached(d.fds) }
            draining.removeAll { $0.pids.isEmpty }
            w.pipeEvent?.cancel()
            close(w.pipe)
            if let board = w.board { scoreboard?.release(board) }
            if phase != .stopping { scoreboard?.countRestart(w.reason) }
            let how = ChildStatus(waitStatus: status)
            if phase == .stopping || w.retiring {
                logger.info("Worker exiting (pid: \(pid)): \(how)")
                continue
            }
            switch how {
            case .exited(ExitCode.modelLoadError):
                halt("Worker (pid:\(pid)) failed to load its models; see the error above. Shutting down.", code: ExitCode.modelLoadError)
            case .exited(ExitCode.workerBootError):
                halt("Worker (pid:\(pid)) failed to boot. Shutting down.", code: ExitCode.workerBootError)
            default:
                logger.warning("Worker (pid:\(pid)) \(how); starting a replacement in slot \(w.slot)")
                // One that dies before it serves would otherwise be forked again at once, forever.
                if !w.ready { respawnDelayed = true }
            }
        }
        steer()
        if phase == .stopping {
            if workers.isEmpty { loop.stop() }
        } else if respawnDelayed {
            respawnDelayed = false
            logger.warning("a worker died before serving; next start in 1 s")
            manageWorkers(after: 1)
        } else {
            manageWorkers()
        }
    }

    private func halt(_ message: String, code: Int32) {
        logger.critical(message)
        exitCode = code
        stop(graceful: false)
    }

    // MARK: signals

    /// TERM (graceful): workers finish in-flight requests within --graceful-timeout.
    /// INT and QUIT (quick): workers exit at once.
    private func stop(graceful: Bool) {
        if phase == .stopping && graceful { return }
        phase = .stopping
        scoreboard?.ready = false
        SystemdNotify.send("STOPPING=1\nSTATUS=stopping")
        // Our copies of the sockets go first: each worker closes its own once it has taken what the
        // kernel queued there.
        listeners.closeAll()
        let sig = graceful ? SIGTERM : SIGQUIT
        for pid in workers.keys { kill(pid, sig) }
        if workers.isEmpty { loop.stop(); return }
        killTimer?.cancel()
        killTimer = loop.after(graceful ? settings.gracefulTimeout : min(settings.gracefulTimeout, 5)) { [unowned self] in
            for pid in workers.keys {
                logger.warning("Worker (pid:\(pid)) did not exit in time; sending SIGKILL")
                kill(pid, SIGKILL)
            }
        }
    }

    private func reopenLogs() {
        logs.reopen()
        for pid in workers.keys { kill(pid, SIGUSR1) }
    }

    /// HUP: a new worker in every slot, then the old ones retire gracefully.  The sockets stay open
    /// in the master throughout, so connections queued meanwhile wait for the new workers.
    /// HUP: read the command line and config file again, start a new worker in every slot (which
    /// loads the models anew, unless --preload), and retire the old ones gracefully.  A bad config
    /// changes nothing.  Addresses, pid and log file paths need a restart.
    private func reload() {
        guard phase != .stopping else { return }
        let next: Settings
        do {
            next = try rereadSettings()
        } catch {
            logger.error("Reload refused, the running configuration stays: \(error)")
            return
        }
        for (what, changed) in [("bind", next.binds != settings.binds), ("pid", next.pidfile != settings.pidfile),
                                ("access_logfile", next.accessLogfile != settings.accessLogfile),
                                ("error_logfile", next.errorLogfile != settings.errorLogfile),
                                ("preload", next.preload != settings.preload),
                                ("models (with --preload)", settings.preload && next.models != settings.models)] where changed {
            logger.warning("Reload: \(what) changed; that takes effect on a restart only")
        }
        var applied = next
        applied.binds = settings.binds
        applied.pidfile = settings.pidfile
        applied.accessLogfile = settings.accessLogfile
        applied.errorLogfile = settings.errorLogfile
        applied.preload = settings.preload
        if settings.preload { applied.models = settings.models }
        settings = applied
        logger.level = applied.logLevel
        for m in applied.models { scoreboard?.register(model: m) }
        SystemdNotify.send("RELOADING=1\nSTATUS=reloading")
        let old = Array(workers.keys)
        logger.info("Reloading: \(applied.workers) new workers replace \(old.count)")
        desiredWorkers = applied.workers
        reloading = true
        // A slot whose new worker could not be forked keeps its old one (and the old configuration).
        let renewed = Set((0..<desiredWorkers).filter { spawnWorker(slot: $0) })
        for pid in old where renewed.contains(workers[pid]!.slot) || workers[pid]!.slot >= desiredWorkers {
            retire(pid, .reload)
        }
        detachSlots(from: desiredWorkers)
        if renewed.count < desiredWorkers { logger.error("Reload: \(desiredWorkers - renewed.count) new workers could not be started; their slots keep the old ones") }
    }

    /// Set by a reload until every new worker serves; then systemd hears READY=1 again.
    private var reloading = false

    /// TTIN adds a worker, TTOU retires the newest slot's worker (never below one).
    private func scale(by delta: Int) {
        guard phase != .stopping else { return }
        let target = max(1, desiredWorkers + delta)
        guard target != desiredWorkers else {
            logger.info("Keeping \(desiredWorkers) worker (the minimum)")
            return
        }
        desiredWorkers = target
        logger.info("Number of workers: \(target)")
        for w in workers.values where w.slot >= target { retire(w.pid, .scaledDown) }
        detachSlots(from: target)
        manageWorkers()
    }

    private func retire(_ pid: pid_t, _ reason: Scoreboard.RestartReason) {
        workers[pid]?.retiring = true
        workers[pid]?.reason = reason
        kill(pid, SIGTERM)
    }

    /// Takes the slots from `count` up out of service: new connections stop going to their sockets
    /// at once, and each socket is closed when its worker exits, after draining it, so that no
    /// connection is reset by the close (see ReuseportSteering).
    private func detachSlots(from count: Int) {
        let detached = listeners.detachSlots(from: count)
        for (offset, fds) in detached.enumerated() {
            let slot = listeners.slots.count + detached.count - 1 - offset
            let pids = Set(workers.values.filter { $0.slot == slot }.map(\.pid))
            if pids.isEmpty { listeners.closeDetached(fds) } else { draining.append((fds, pids)) }
        }
        steer()
    }

    /// Detached sockets, and the workers (of their slot) that must exit before they are closed.
    private var draining: [(fds: [Int32], pids: Set<pid_t>)] = []

    /// New connections go to the slots whose worker serves (and is not retiring).
    private func steer() {
        guard phase != .stopping else { return }
        let serving = Set(workers.values.filter { $0.ready && !$0.retiring }.map(\.slot))
        do { try listeners.steer(serving: serving) } catch {
            if !steeringFailed {
                logger.warning("\(error); the kernel hashes new connections over every socket, so one that arrives as TTOU "
                               + "closes a socket can be reset" + (Listeners.migratesRequests == false
                                   ? " (net.ipv4.tcp_migrate_req=1 prevents that: conf/sysctl-mserve.conf)" : ""))
            }
            steeringFailed = true
        }
    }
    private var steeringFailed = false
}
