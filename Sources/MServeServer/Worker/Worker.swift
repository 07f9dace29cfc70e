import MServe
import MServeSystem

/// A worker process: its own event loop and HTTP server on its slot's sockets, its own instance of
/// every model.  It reports to the master through a pipe (`WorkerMessage`).
final class Worker {
    let slot: Int
    let settings: ServerSettings
    let registry: ModelRegistry
    let routes: [Route]
    /// With --preload, the master's models, shared copy-on-write.
    let preloaded: [LoadedModel]?
    let logs: ProcessLogs
    let scoreboard: Scoreboard?
    let scoreboardRecord: Int?
    let listenFDs: [Int32]
    let masterPipe: Int32
    /// No other worker serves: accept while the models load (see run()).
    let answerWhileLoading: Bool
    private var stopping = false

    init(
        slot: Int, settings: ServerSettings, registry: ModelRegistry, routes: [Route], preloaded: [LoadedModel]?,
        logs: ProcessLogs, scoreboard: Scoreboard?, scoreboardRecord: Int?, listenFDs: [Int32], masterPipe: Int32,
        answerWhileLoading: Bool
    ) {
        self.answerWhileLoading = answerWhileLoading
        self.scoreboard = scoreboard
        self.scoreboardRecord = scoreboardRecord
        self.slot = slot
        self.settings = settings
        self.registry = registry
        self.routes = routes
        self.preloaded = preloaded
        self.logs = logs
        self.listenFDs = listenFDs
        self.masterPipe = masterPipe
    }

    /// Runs until told to stop; returns the process's exit code.
    func run() -> Int32 {
        // Signals are the defaults here (ChildProcess.fork reset them).  libevent writes without MSG_NOSIGNAL: a client that vanished must not kill the worker.
        Signal.brokenPipe.ignore()
        logs.logger.processChanged()
        let logger = logs.logger
        let loop: EventLoop
        do {
            loop = try EventLoop()
        } catch {
            logger.critical("worker cannot start its event loop: \(error)")
            return ExitCode.workerBootError
        }
        logs.attach(to: loop)
        defer { logs.detach() }

        // Where no other worker serves (at boot), the server accepts at once: while the models load (on
        // a thread of their own, so the loop answers), /healthz is 200, /readyz 503, and requests to
        // the models wait for them.  A worker that replaces one (HUP, max-requests, a crash while
        // others serve) accepts only once loaded, so that the serving workers take what comes.
        let tls: TLSContext?
        do { tls = try settings.tlsContext() } catch {
            logger.critical("worker cannot load its TLS files: \(error)")
            return ExitCode.workerBootError
        }
        let server = HTTPServer(loop: loop, limits: settings.serving.httpLimits, tls: tls)
        let observer = RequestObserver(
            logger: logger, accessLog: logs.accessLog, logBodyLimit: settings.serving.logBodyLimit,
            accessLogFormat: settings.accessLogformat.isEmpty ? nil : try? AccessLogFormat(parsing: settings.accessLogformat),
            scoreboard: scoreboard, scoreboardRecord: scoreboardRecord)
        let loading = LoadingDispatcher(
            settings: settings.serving,
            context: HandlerContext(
                logger: logger, slot: slot, settings: settings.serving,
                models: [], server: server, observer: observer))
        server.delegate = loading
        if answerWhileLoading { for fd in listenFDs { server.accept(fd: fd) } }

        loop.onSignal(.terminate) { [unowned self, unowned server] in stopGracefully(server) }
        loop.onSignal(.interrupt) { [unowned self, unowned loop] in stopNow(loop) }
        loop.onSignal(.quit) { [unowned self, unowned loop] in stopNow(loop) }
        loop.onSignal(.user1) { [unowned self] in logs.reopen() }
        loop.onSignal(.hangup) {}  // the master handles reloads
        // The heartbeat comes from the loop itself: a loop that is stuck stops it.
        loop.after(Arbiter.heartbeatInterval(timeout: settings.timeout), repeating: true) { [unowned self] in tellMaster(.heartbeat) }

        var exitCode = ExitCode.ok
        /// The models are there: serve them.
        func serve(_ models: [LoadedModel]) {
            let full: Dispatcher
            do {
                full = try WorkerAssembly.dispatcher(
                    models: models, settings: settings.serving, routes: routes, loop: loop, server: server, observer: observer,
                    logger: logger, slot: slot, knownModels: registry.entries, scoreboard: scoreboard,
                    scoreboardRecord: scoreboardRecord)
            } catch {
                logger.critical("the models cannot be served: \(error)")
                exitCode = ExitCode.workerBootError
                return loop.stop()
            }
            // A model thread taking a job from the queue tells no one: the split of running and
            // waiting is published with the heartbeat too (`show models`).
            let served = full.context.models
            loop.after(Arbiter.heartbeatInterval(timeout: settings.timeout), repeating: true) {
                for m in served {
                    if let g = m.generative {
                        let load = g.load
                        observer.modelLoad(model: m.metricsIndex, running: load.running, waiting: load.waiting)
                        observer.generationLoad(model: m.metricsIndex, load)
                    } else if let runner = m.runner {
                        let (running, waiting) = runner.load
                        observer.modelLoad(model: m.metricsIndex, running: running, waiting: waiting)
                    }
                }
            }
            if settings.maxRequests > 0 {
                let limit = settings.maxRequests + Int.random(in: 0...settings.maxRequestsJitter)
                full.requestLimit = limit
                full.onRequestLimit = { [unowned self, unowned server] in
                    logs.logger.info("worker reached max-requests (\(limit)); recycling")
                    // The master starts the replacement at once; this one finishes what it has.
                    tellMaster(.maxRequests)
                    stopGracefully(server)
                }
            }
            // The server's delegate stays the loading dispatcher, which now hands every request to
            // the full one (no delegate swapped under the server).
            loading.loaded(full)
            if !answerWhileLoading { for fd in listenFDs { server.accept(fd: fd) } }
            if let scoreboard, let r = scoreboardRecord { scoreboard.setState(r, .ready) }
            tellMaster(.serving)
        }

        if let preloaded {
            serve(preloaded)
        } else {
            let loaded = Handoff<Result<[LoadedModel], ModelLoadError>>()
            let done = loop.userEvent {
                switch loaded.take() {
                case .success(let models)?:
                    serve(models)
                case .failure(let error)?:
                    logger.critical(error.message)
                    exitCode = ExitCode.modelLoadError
                    loop.stop()
                case nil:
                    break
                }
            }
            let (settings, registry, slot) = (settings, registry, slot)
            let wake = UncheckedBox(done)
            let load: @Sendable () -> Void = {
                loaded.put(
                    Result { () throws(ModelLoadError) in try ModelLoader.load(settings.serving, registry: registry, slot: slot, logger: logger) })
                wake.value.activate()
            }
            do {
                try NativeThread.start(load)
            } catch {
                // Out of threads (RLIMIT_NPROC): load here, as before the loop runs.
                logger.warning("loading the models on the loop (\(error)); the worker answers nothing meanwhile")
                load()
            }
        }
        withExtendedLifetime(loading) { loop.run() }
        logs.flush()
        return exitCode
    }

    private func tellMaster(_ message: WorkerMessage) {
        Pipe.write(masterPipe, message.rawValue)
    }

    /// TERM: take what the kernel already queued on our sockets, stop accepting, finish what is in
    /// flight, then exit.  The master kills us after --graceful-timeout if that takes too long.
    private func stopGracefully(_ server: HTTPServer) {
        let loop = server.loop
        guard !stopping else { return }
        stopping = true
        logs.logger.info("worker exiting gracefully (\(server.inFlight) in flight)")
        server.closing = true
        if let scoreboard, let r = scoreboardRecord { scoreboard.setState(r, .stopping) }
        let fds = server.listeningFDs
        let deadline = monotonicSeconds() + 1
        var accepting = true
        // Every 10 ms: first wait for the accept queues to empty, then for every connection to
        // close: after its next answer (which now carries Connection: close), or when idle for
        // --keep-alive; exit when none is left.
        loop.after(0.01, repeating: true) {
            if accepting {
                let queued = fds.reduce(0) { $0 + Socket.acceptQueueLength($1) }
                guard queued == 0 || monotonicSeconds() > deadline else { return }
                server.stopAccepting()
                accepting = false
            }
            if server.openConnections == 0 { loop.stop() }
        }
    }

    private func stopNow(_ loop: EventLoop) {
        logs.logger.info("worker exiting now")
        loop.stop()
    }
}

/// One value handed from a thread to the loop.
private final class Handoff<Value>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var value: Value?

    func put(_ v: Value) { lock.withLock { value = v } }
    func take() -> Value? {
        lock.withLock {
            defer { value = nil }; return value
        }
    }
}
