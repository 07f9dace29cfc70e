import MServe
import MServeSystem

/// What the master tells a balancer: the agent-check line (--agent-bind) and its own membership of
/// an HAProxy backend (--announce).
extension Master {
    /// The agent port; a failure to bind it stops the start, as a bad --bind does.
    func openAgent() throws {
        guard let address = try settings.agentAddress() else { return }
        agent = try AgentServer(host: address.host, port: address.port, named: "--agent-bind \(address)", loop: loop) { [unowned self] in
            agentCheck()
        }
        logger.info("Agent check: \(agent?.address ?? "") (HAProxy: agent-check agent-port \(address.port))")
    }

    func agentCheck() -> AgentCheck {
        let state: AgentCheck.State
        switch arbiter.phase {
        case .booting: state = .starting
        case .draining: state = .draining
        case .stopping: state = .stopping
        case .running: state = scoreboard?.draining == true ? .draining : .ready
        }
        var running = 0
        var queued = 0
        for name in settings.serving.models {
            guard let index = scoreboard?.index(of: name) else { continue }
            for child in children.values {
                guard let board = child.board, let c = scoreboard?.counts(board, model: index) else { continue }
                running += Int(c.running)
                queued += Int(c.waiting)
            }
        }
        let serving = arbiter.workers.values.filter { $0.ready && !$0.retiring }.count
        let perWorker = settings.serving.models.reduce(0) { $0 + settings.serving.runtime(forModel: $1).concurrency }
        return AgentCheck(state: state, capacity: perWorker * serving, running: running, queued: queued)
    }

    /// Once every worker serves: add this server to the HAProxy backend (or take over the one an
    /// earlier run left); retried every 5 s while HAProxy cannot be reached.
    func announceIfNeeded() {
        guard let a = announcement, !announced, arbiter.phase == .running else { return }
        var failure = HAProxyRuntime.run([a.addCommand], on: a)
        if let f = failure, f.contains("Already exists") {
            failure = HAProxyRuntime.run(a.takeOverCommands, on: a)
        } else if failure == nil {
            failure = HAProxyRuntime.run(a.enableCommands, on: a)
        }
        if let failure {
            logger.error("--announce: HAProxy \(a.apiHost):\(a.apiPort): \(failure); retrying in 5 s")
            loop.after(Master.announceRetry) { [weak self] in self?.announceIfNeeded() }
            return
        }
        announced = true
        logger.info("Announced to HAProxy \(a.apiHost):\(a.apiPort) as \(a.backend)/\(a.server) at \(a.address)")
    }

    static let announceRetry = 5.0

    /// Leaving (a drain, or a stop without one): HAProxy sends nothing new.
    func withdrawAnnouncement() {
        guard let a = announcement, announced, !withdrawn else { return }
        withdrawn = true
        if let failure = HAProxyRuntime.run([a.drainCommand], on: a) {
            logger.error("--announce: \(failure)")
        } else {
            logger.info("HAProxy: \(a.backend)/\(a.server) set to drain")
        }
    }

    /// Stopped: out of the backend.
    func removeAnnouncement() {
        guard let a = announcement, announced else { return }
        announced = false
        if let failure = HAProxyRuntime.run(a.removeCommands, on: a) {
            logger.error("--announce: \(failure); the server stays in the backend in maintenance")
        } else {
            logger.info("HAProxy: \(a.backend)/\(a.server) deleted")
        }
    }
}
