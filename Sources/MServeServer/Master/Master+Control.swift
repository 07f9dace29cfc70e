import MServe
import MServeSystem

/// What each control-socket command does in the master: the same events as the signals (TTIN,
/// TTOU, HUP, USR1, TERM, INT), and reports read from the arbiter and the scoreboard.
extension Master {
    func control(_ command: ControlCommand) -> (Result<JSON, ControlError>, then: (() -> Void)?) {
        let now = monotonicSeconds()
        switch command {
        case .help:
            return (.success(["commands": .object(ControlCommand.synopses.map { ($0.0, .string($0.1)) })]), nil)
        case .showWorkers:
            let list = arbiter.workers.values.sorted { ($0.slot, $0.pid) < ($1.slot, $1.pid) }.map { w -> JSON in
                let totals = children[w.pid]?.board.flatMap { b in scoreboard?.workerTotals(b) }
                let stats = ProcessStats.read(pid: w.pid)
                return [
                    "pid": .int(Int64(w.pid)), "slot": .int(Int64(w.slot)), "state": .string(Master.state(of: w)),
                    "generation": .int(Int64(w.generation)), "age": .double(rounded(now - w.started)),
                    "last_heartbeat": .double(rounded(now - w.lastHeard)),
                    "requests": .int(Int64(totals?.requests ?? 0)), "in_flight": .int(Int64(totals?.inFlight ?? 0)),
                    "rss_mb": .double(((Double(stats?.residentBytes ?? 0) / 1_048_576) * 10).rounded() / 10),
                    "cpu_s": .double(rounded(stats?.cpuSeconds ?? 0))
                ]
            }
            return (.success(["workers": .array(list), "count": .int(Int64(list.count))]), nil)
        case .showStats:
            return (.success(stats(now)), nil)
        case .showConfig:
            return (.success(.object(SettingTable.all.map { ($0.key, .string($0.valueText(settings))) })), nil)
        case .showListeners:
            let list = listeners.addresses.indices.map { i -> JSON in
                [
                    "address": .string(listeners.addresses[i].description),
                    "fds": .array(listeners.slots.compactMap { $0.indices.contains(i) ? .int(Int64($0[i])) : nil })
                ]
            }
            return (.success(["listeners": .array(list), "count": .int(Int64(list.count))]), nil)
        case .showModels:
            return (.success(["models": .array(settings.serving.models.map(modelReport))]), nil)
        case .workerAdd(let n):
            let previous = arbiter.desired
            handle(.scale(by: n, at: now))
            return (
                .success([
                    "added": .int(Int64(arbiter.desired - previous)), "previous": .int(Int64(previous)),
                    "total": .int(Int64(arbiter.desired))
                ]), nil
            )
        case .workerRemove(let n):
            let previous = arbiter.desired
            handle(.scale(by: -n, at: now))
            return (
                .success([
                    "removed": .int(Int64(previous - arbiter.desired)), "previous": .int(Int64(previous)),
                    "total": .int(Int64(arbiter.desired))
                ]), nil
            )
        case .workerKill(let pid):
            guard let w = arbiter.workers[pid] else { return (.failure(.failed("worker \(pid) not found")), nil) }
            guard !w.retiring else { return (.failure(.failed("worker \(pid) is already exiting")), nil) }
            handle(.replace(pid: pid, at: now))
            return (.success(["success": true, "killed": .int(Int64(pid))]), nil)
        case .reload:
            if let refused = reload() { return (.failure(.failed(refused)), nil) }
            return (.success(["status": "reloading"]), nil)
        case .reopen:
            logger.info("Control socket: reopening the logs")
            reopenLogs()
            return (.success(["status": "reopened"]), nil)
        case .shutdown(let graceful):
            logger.info("Control socket: shutdown (\(graceful ? "graceful" : "quick"))")
            // After the reply is queued: stopping closes nothing the reply needs.
            return (
                .success(["status": "shutting_down", "mode": .string(graceful ? "graceful" : "quick")]),
                { [unowned self] in handle(.stop(graceful: graceful, at: monotonicSeconds())) }
            )
        case .drain, .undrain:
            let draining = command == .drain
            guard let scoreboard else { return (.failure(.failed("no scoreboard")), nil) }
            guard !arbiter.leaving || draining else { return (.failure(.failed("the server is \(arbiter.phase): it stays drained")), nil) }
            if scoreboard.draining != draining {
                scoreboard.draining = draining
                logger.info(
                    draining
                        ? "Draining: /readyz answers 503 until undrain; requests are still served"
                        : "Undrained: /readyz answers as before")
            }
            return (.success(["draining": .bool(draining)]), nil)
        case .keysReload:
            // The keys are the workers' (inherited from the master's settings): a reload puts
            // the re-read file in force, and a bad one leaves the old keys as they are.
            guard settings.serving.keysFile != nil else { return (.failure(.failed("this server has no keys file (--keys-file)")), nil) }
            if let refused = reload() { return (.failure(.failed(refused)), nil) }
            return (.success(["status": "reloading", "keys": .int(Int64(settings.serving.apiKeys.count))]), nil)
        }
    }

    static func state(of w: Arbiter.Worker) -> String {
        if w.abortedAt != nil { return "aborted" }
        if w.retiring { return "retiring" }
        return w.ready ? "serving" : "booting"
    }

    private func stats(_ now: Double) -> JSON {
        var requests = scoreboard?.retiredRequests ?? 0
        var inFlight: UInt64 = 0
        for child in children.values {
            guard let b = child.board, let t = scoreboard?.workerTotals(b) else { continue }
            requests &+= t.requests
            inFlight &+= t.inFlight
        }
        let restarts = Scoreboard.RestartReason.allCases.map { ($0.label, JSON.int(Int64(scoreboard?.restarts($0) ?? 0))) }
        return [
            "pid": .int(Int64(currentProcessID())), "listening": .array(listeners.addresses.map { .string($0.description) }),
            "uptime": .double(rounded(now - startedAt)),
            "phase": .string("\(arbiter.phase)"), "ready": .bool(scoreboard?.ready ?? false),
            "draining": .bool(scoreboard?.draining ?? false),
            "workers_current": .int(Int64(arbiter.workers.count)), "workers_serving": .int(Int64(arbiter.serving)),
            "workers_target": .int(Int64(arbiter.desired)), "workers_spawned": .int(Int64(arbiter.spawnedCount)),
            "reloads": .int(Int64(arbiter.reloadCount)), "requests": .int(Int64(requests)), "in_flight": .int(Int64(inFlight)),
            "restarts": .object(restarts), "models": .array(settings.serving.models.map { .string($0) })
        ]
    }

    /// One model: its limits, and per worker what it answered, runs and queues.
    private func modelReport(_ name: String) -> JSON {
        let runtime = settings.serving.runtime(forModel: name)
        let index = scoreboard?.index(of: name)
        var total = Scoreboard.Counts()
        let perWorker = arbiter.workers.values.sorted { ($0.slot, $0.pid) < ($1.slot, $1.pid) }.map { w -> JSON in
            let c = children[w.pid]?.board.flatMap { b in index.flatMap { scoreboard?.counts(b, model: $0) } } ?? Scoreboard.Counts()
            total.requests &+= c.requests
            total.running &+= c.running
            total.waiting &+= c.waiting
            total.batches &+= c.batches
            total.batchInputs &+= c.batchInputs
            return [
                "pid": .int(Int64(w.pid)), "slot": .int(Int64(w.slot)), "requests": .int(Int64(c.requests)),
                "running": .int(Int64(c.running)), "queued": .int(Int64(c.waiting)),
                "batches": .int(Int64(c.batches)), "batch_inputs": .int(Int64(c.batchInputs))
            ]
        }
        return [
            "name": .string(name), "concurrency": .int(Int64(runtime.concurrency)), "queue_size": .int(Int64(runtime.queueSize)),
            "requests": .int(Int64(total.requests)), "running": .int(Int64(total.running)), "queued": .int(Int64(total.waiting)),
            "batches": .int(Int64(total.batches)), "batch_inputs": .int(Int64(total.batchInputs)), "workers": .array(perWorker)
        ]
    }

    private func rounded(_ seconds: Double) -> Double { (seconds * 1000).rounded() / 1000 }
}
