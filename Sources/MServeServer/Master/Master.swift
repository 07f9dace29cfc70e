import MServe
import MServeSystem

/// The master process: binds the sockets, forks one worker per slot, and from then on only
/// supervises.  What to do is decided by `Arbiter` (a value with no side effects); this class turns
/// signals, pipe messages, child exits and timers into its events and performs the actions it
/// returns.  libevent delivers signals to the loop, so each handler runs as ordinary loop code.
public final class Master {
    /// What the master holds for a live worker, apart from what the arbiter decides with.
    struct Child {
        let pipe: Int32
        var pipeEvent: EventHandle?
        /// Its record in the scoreboard.
        let board: Int?
    }

    /// Replaced on HUP by what `rereadSettings` returns.
    private(set) var settings: ServerSettings
    /// Parses the command line and config file again, for HUP.
    let rereadSettings: () throws -> ServerSettings
    let registry: ModelRegistry
    let routes: [Route]
    let logs: ProcessLogs
    var logger: Logger { logs.logger }
    private(set) var arbiter: Arbiter
    private(set) var children: [Int32: Child] = [:]
    /// Sockets of detached slots, until the arbiter says their workers have drained them.
    private var drains: [Int: [Int32]] = [:]
    /// Mapped before the first fork, so every worker shares it.
    private(set) var scoreboard: Scoreboard?
    /// --preload: the models, loaded once here before any fork and shared by every worker.
    private var preloaded: [LoadedModel]?
    private var pidFile: PidFile?
    private var steeringFailed = false
    private var sharingLogged = false
    let loop: EventLoop
    let listeners: Listeners
    /// `mserve ctl`'s socket (nil with --no-control-socket).
    private var control: ControlServer?
    /// HAProxy's agent port (--agent-bind) and this server's place in an HAProxy backend (--announce).
    var agent: AgentServer?
    let announcement: Announcement?
    var announced = false
    var withdrawn = false
    let startedAt = monotonicSeconds()
    /// Fires at the arbiter's next due time (a timeout, a retry, a kill).
    private var wakeTimer: EventHandle?

    /// Opens the listening sockets (or takes systemd's), the loop and the scoreboard.
    init(
        settings: ServerSettings, rereadSettings: @escaping () throws -> ServerSettings, registry: ModelRegistry, routes: [Route],
        logs: ProcessLogs
    ) throws {
        self.settings = settings
        self.rereadSettings = rereadSettings
        self.registry = registry
        self.routes = routes
        self.logs = logs
        arbiter = Arbiter(limits: settings.arbiterLimits)
        announcement = try settings.announcement()
        if let fds = try SocketActivation.listenFDs() {
            listeners = Listeners(inherited: fds, backlog: settings.backlog)
        } else {
            let addresses = try settings.binds.map { (b) throws(ConfigError) in try BindAddress(parsing: b) }
            let owner = try settings.user.map { (u) throws(SystemError) in try Identity.lookup(user: u, group: settings.group) }
            listeners = try Listeners(addresses: addresses, backlog: settings.backlog, unixMode: settings.unixSocketMode, unixOwner: owner)
        }
        try listeners.ensureSlots(settings.workers, listening: true)
        loop = try EventLoop()
        let board = try Scoreboard()
        for m in settings.serving.models { board.register(model: m) }
        self.settings.serving.apiKeys = board.keys.assignSlots(settings.serving.apiKeys)
        scoreboard = board
        for f in logs.files { f.onDropped { board.countLogBytesDropped($0) } }
        // Bound here, with the listeners, before the master gives up root (--user).
        try openAgent()
    }

    /// Runs the server until it stops; returns the exit code.
    public func run() -> Int32 {
        if let path = settings.pidfile {
            let file = PidFile(path: path)
            do { try file.write() } catch { logger.critical("\(error)"); return ExitCode.failure }
            pidFile = file
        }
        defer { pidFile?.remove() }
        if let user = settings.user {
            // The sockets, log files and pid file are open: from here on, the unprivileged user.
            do {
                let identity = try Identity.lookup(user: user, group: settings.group)
                try identity.become()
                logger.info("Running as user \(user) (uid \(identity.uid)), group \(settings.group ?? "of the user") (gid \(identity.gid))")
            } catch {
                logger.critical("cannot run as --user \(user): \(error)")
                return ExitCode.failure
            }
        }

        logger.info("Starting mserve \(MServeVersion.string)")
        for a in listeners.addresses {
            logger.always("Listening at: \(a.unixPath != nil ? "" : settings.certfile == nil ? "http://" : "https://")\(a) (\(currentProcessID()))")
        }
        if let mode = listeners.activationMode { logger.info("Sockets from systemd (LISTEN_FDS): \(mode); -b is ignored") }
        logger.info("Serving models: \(settings.serving.models.joined(separator: ", ")) with \(counted(settings.workers, "worker"))")

        loop.onSignal(.child) { [unowned self] in reapWorkers() }
        loop.onSignal(.terminate) { [unowned self] in handleSignal("term", .stop(graceful: true, at: monotonicSeconds())) }
        loop.onSignal(.interrupt) { [unowned self] in handleSignal("int", .stop(graceful: false, at: monotonicSeconds())) }
        loop.onSignal(.quit) { [unowned self] in handleSignal("quit", .stop(graceful: false, at: monotonicSeconds())) }
        loop.onSignal(.user1) { [unowned self] in
            logger.info("Handling signal: usr1")
            reopenLogs()
        }
        loop.onSignal(.hangup) { [unowned self] in
            logger.info("Handling signal: hup")
            reload()
        }
        loop.onSignal(.ttyIn) { [unowned self] in handleSignal("ttin", .scale(by: 1, at: monotonicSeconds())) }
        loop.onSignal(.ttyOut) { [unowned self] in handleSignal("ttou", .scale(by: -1, at: monotonicSeconds())) }
        logs.attach(to: loop)
        defer { logs.detach() }
        guard openControlSocket() else { return ExitCode.failure }
        defer { control?.close() }
        defer { agent?.close() }

        // After the signal handlers: a TERM during a long preload is handled once it is done.
        if settings.preload {
            // No thread may start before fork: models start theirs in the workers (ModelRunner).
            do {
                preloaded = try ModelLoader.load(settings.serving, registry: registry, slot: -1, logger: logger)
            } catch {
                logger.critical("\(error.message); not starting")
                return ExitCode.modelLoadError
            }
        }
        wakeTimer = loop.timer { [unowned self] in handle(.tick(at: monotonicSeconds())) }
        if let interval = SystemdNotify.watchdogInterval {
            // WatchdogSec: the master's loop proves it is alive; systemd restarts a master that stops.
            loop.after(interval, repeating: true) { SystemdNotify.send("WATCHDOG=1") }
        }
        if handle(.boot(at: monotonicSeconds())) { loop.run() }
        listeners.closeAll()
        removeAnnouncement()
        logger.info("Shutting down: master (exit code \(arbiter.exitCode))")
        return arbiter.exitCode
    }

    func reopenLogs() {
        logs.reopen()
        handle(.reopenLogs)
    }

    /// The control socket: a path given by the operator must work; the default one may be taken
    /// by another server on this machine, and then this one runs without.
    private func openControlSocket() -> Bool {
        let environment = ProcessEnvironment.variables()
        guard let path = settings.controlSocketPath(environment: environment, bound: listeners.addresses.first?.description ?? "") else {
            return true
        }
        let explicit = settings.controlSocket != nil
        do {
            if !explicit, let slash = path.lastIndex(of: "/") {
                try makeDirectory(String(path[..<slash]), mode: 0o700)
            }
            control = try ControlServer(path: path, mode: settings.controlSocketMode, loop: loop, logger: logger) { [unowned self] in
                control($0)
            }
            logger.info("Control socket: \(path) (mserve ctl -s \(path))")
            return true
        } catch {
            if explicit {
                logger.critical("--control-socket: \(error)")
                return false
            }
            logger.warning("no control socket: \(error) (--control-socket PATH chooses another)")
            return true
        }
    }

    private func handleSignal(_ name: String, _ event: Arbiter.Event) {
        logger.info("Handling signal: \(name)")
        handle(event)
    }

    /// Feeds one event to the arbiter and performs what it returns (a spawn's outcome is fed back
    /// at once); then sets the timer for the arbiter's next due time.  False once the loop must end.
    @discardableResult
    func handle(_ event: Arbiter.Event) -> Bool {
        var pending = arbiter.handle(event)[...]
        var running = true
        while let action = pending.popFirst() {
            switch action {
            case .spawn(let slot):
                let outcome = spawnWorker(slot: slot)
                pending.append(contentsOf: arbiter.handle(outcome))
            case .signal(let pid, let signal):
                Master.posixSignal(signal).send(to: pid)
            case .log(let level, let message):
                logger.log(level, message)
            case .notify(.ready):
                scoreboard?.ready = true
                SystemdNotify.send(
                    "READY=1\nSTATUS=serving \(settings.serving.models.joined(separator: ",")) with \(counted(settings.workers, "worker"))\nMAINPID=\(currentProcessID())"
                )
                announceIfNeeded()
            case .notify(.reloading):
                SystemdNotify.send("RELOADING=1\nSTATUS=reloading")
            case .notify(.draining):
                scoreboard?.draining = true
                SystemdNotify.send("STOPPING=1\nSTATUS=draining")
                withdrawAnnouncement()
            case .notify(.stopping):
                scoreboard?.ready = false
                SystemdNotify.send("STOPPING=1\nSTATUS=stopping")
                withdrawAnnouncement()
            case .countRestart(let reason):
                scoreboard?.countRestart(reason)
            case .detachSlot(let slot, let drain):
                drains[drain] = listeners.detachSlot(slot)
            case .closeDrained(let drain):
                listeners.closeDetached(drains.removeValue(forKey: drain) ?? [])
            case .steer(let serving):
                steer(serving)
            case .closeAllSockets:
                // Our copies go first: each worker closes its own once it has taken what the kernel
                // queued there.
                listeners.closeAll()
            case .exitLoop:
                loop.stop()
                running = false
            }
        }
        if let due = arbiter.nextWake { wakeTimer?.arm(max(0.001, due - monotonicSeconds())) } else { wakeTimer?.disarm() }
        return running
    }

    static func posixSignal(_ signal: Arbiter.Signal) -> Signal {
        switch signal {
        case .terminate: return .terminate
        case .quit: return .quit
        case .abort: return .abort
        case .kill: return .kill
        case .reopenLogs: return .user1
        }
    }

    // MARK: workers

    /// Forks the worker of `slot`.  A failure (out of processes, descriptors or memory) is logged;
    /// the master lives on with the workers it has and the arbiter retries later.
    private func spawnWorker(slot: Int) -> Arbiter.Event {
        let failed = Arbiter.Event.spawnFailed(slot: slot, at: monotonicSeconds())
        do { try listeners.ensureSlots(slot + 1) } catch {
            logger.error("cannot open sockets for worker slot \(slot): \(error); retrying in 1 s")
            return failed
        }
        if let sharing = listeners.sharing, !sharingLogged {
            sharingLogged = true
            logger.warning(sharing)
        }
        let pipe: Pipe
        do { pipe = try Pipe() } catch {
            logger.error("cannot create a worker pipe: \(error); retrying in 1 s")
            return failed
        }
        logs.flush()
        let board = scoreboard?.claim()
        let pid: Int32
        switch ChildProcess.fork(parentDeath: .kill) {
        case .failed(let error):
            if let board { scoreboard?.release(board) }
            logger.error("\(error); retrying in 1 s (slot \(slot))")
            closeDescriptor(pipe.readEnd)
            closeDescriptor(pipe.writeEnd)
            return failed
        case .child:
            // The inherited loop goes first: its events still name the descriptors closed below.
            logs.detach()
            loop.abandonAfterFork()
            control?.closeDescriptorsAfterFork()
            agent?.closeDescriptorAfterFork()
            closeDescriptor(pipe.readEnd)
            // (A socket systemd passed may be in several slots, this one's too.)
            listeners.foreignFDs(of: slot).forEach(closeDescriptor)
            for c in children.values { closeDescriptor(c.pipe) }
            let worker = Worker(
                slot: slot, settings: settings, registry: registry, routes: routes, preloaded: preloaded, logs: logs,
                scoreboard: scoreboard, scoreboardRecord: board,
                listenFDs: listeners.slots[slot], masterPipe: pipe.writeEnd,
                answerWhileLoading: !arbiter.anyServing)
            let code = worker.run()
            logs.flush()
            ChildProcess.exit(code)
        case .parent(let child):
            pid = child
        }
        closeDescriptor(pipe.writeEnd)
        do { try listeners.listen(slot: slot) } catch { logger.error("\(error)") }
        if let board { scoreboard?.setWorker(board, pid: pid, slot: slot, started: monotonicSeconds()) }
        var child = Child(pipe: pipe.readEnd, board: board)
        child.pipeEvent = loop.onReadable(pipe.readEnd) { [unowned self] in readPipe(pid) }
        children[pid] = child
        logger.info("Booting worker with pid: \(pid) (slot \(slot))")
        return .spawned(slot: slot, pid: pid, at: monotonicSeconds())
    }

    private func readPipe(_ pid: Int32) {
        guard let child = children[pid] else { return }
        guard let bytes = Pipe.read(child.pipe) else {
            // The worker is gone; SIGCHLD does the rest.
            child.pipeEvent?.cancel()
            children[pid]?.pipeEvent = nil
            return
        }
        let now = monotonicSeconds()
        // Any byte is a sign of life, even one this master does not know.
        let messages = WorkerMessage.decode(bytes)
        for m in messages.isEmpty ? [.heartbeat] : messages { handle(.message(pid: pid, m, at: now)) }
    }

    private func reapWorkers() {
        while let (pid, status) = ChildProcess.reap() {
            if let child = children.removeValue(forKey: pid) {
                child.pipeEvent?.cancel()
                closeDescriptor(child.pipe)
                if let board = child.board { scoreboard?.release(board) }
            }
            handle(.exited(pid: pid, status, at: monotonicSeconds()))
        }
    }

    /// HUP: read the command line and config file again, start a new worker in every slot (which
    /// loads the models anew, unless --preload), and retire the old ones gracefully.  A bad config
    /// changes nothing.  Addresses, pid and log file paths need a restart.  The sockets stay open in
    /// the master throughout, so connections queued meanwhile wait for the new workers.
    @discardableResult
    func reload() -> String? {
        guard !arbiter.leaving else { return "the server is \(arbiter.phase)" }
        let next: ServerSettings
        do {
            next = try rereadSettings()
        } catch {
            logger.error("Reload refused, the running configuration stays: \(error)")
            return "reload refused, the running configuration stays: \(error)"
        }
        var applied = next
        for s in SettingTable.all where s.reload == .restart && !s.isSame(next, settings) {
            logger.warning("Reload: \(s.key) changed; that takes effect on a restart only")
            s.keepRunning(&applied, from: settings)
        }
        if settings.preload && next.serving.models != settings.serving.models {
            // Preloaded models are the master's: new ones would need a restart.
            logger.warning("Reload: models (with --preload) changed; that takes effect on a restart only")
            applied.serving.models = settings.serving.models
        }
        if let board = scoreboard { applied.serving.apiKeys = board.keys.assignSlots(applied.serving.apiKeys) }
        settings = applied
        logger.level = applied.logLevel
        for m in applied.serving.models { scoreboard?.register(model: m) }
        handle(.reload(applied.arbiterLimits, at: monotonicSeconds()))
        return nil
    }

    /// New connections go to the slots whose worker serves (and is not retiring).
    private func steer(_ serving: Set<Int>) {
        do { try listeners.steer(serving: serving) } catch {
            if !steeringFailed {
                logger.warning(
                    "\(error); the kernel hashes new connections over every socket, so one that arrives as TTOU "
                        + "closes a socket can be reset"
                        + (Listeners.migratesRequests == false
                            ? " (net.ipv4.tcp_migrate_req=1 prevents that: conf/sysctl-mserve.conf)" : ""))
            }
            steeringFailed = true
        }
    }
}

extension ServerSettings {
    /// What the arbiter decides with.
    var arbiterLimits: Arbiter.Limits {
        Arbiter.Limits(
            workers: workers, timeout: timeout, bootTimeout: bootTimeout, gracefulTimeout: gracefulTimeout,
            drainSeconds: drainSeconds, retireTimeout: retireTimeout)
    }
}
