import MServe
import MServeSystem

/// `mserve bench URL`: starts the client threads, shows progress on a terminal, prints the report.
public enum BenchCommand {
    public static func run(_ arguments: [String]) -> Int32 {
        BenchOptions.commandLine.run(arguments, as: "mserve bench", from: BenchOptions.Arguments()) { a, rest throws(ConfigError) in
            load(try BenchOptions.resolve(a, rest))
        }
    }

    /// Runs the load the options describe and prints its report.
    private static func load(_ given: BenchOptions) -> Int32 {
        var options = given
        // One connection first: a wrong address is said at once, not as a run of errors.
        do { Socket.close(try Socket.connectTCP(host: options.host, port: options.port)) } catch {
            printError("mserve bench: \(error)")
            return ExitCode.failure
        }
        if options.needsModel {
            do throws(ConfigError) {
                let name = try options.model(among: try ServedModels.list(options)).get()
                options.choose(model: name)
                if !options.json { printError("mserve bench: model \(name) (the server's, from /v1/models; --model to choose)") }
            } catch {
                printError("mserve bench: \(error)")
                return ExitCode.failure
            }
        }

        let start = monotonicSeconds()
        let measureFrom = start + options.warmup
        // With --requests the run ends when they are answered; the duration is then only a bound.
        let endAt = measureFrom + (options.requests == nil ? options.duration : 24 * 3600)
        let shared = BenchClient.Shared()
        let results = Locked<[BenchResult]>([])
        let done = ConditionLock()
        let threads = options.threads
        for t in 0..<threads {
            // Connections and rate are split over the threads (Poisson streams add up to one).
            let connections = options.connections / threads + (t < options.connections % threads ? 1 : 0)
            let plan = BenchClient.Plan(
                options: options, request: options.request, connections: connections,
                rate: options.rate.map { $0 / Double(threads) }, seed: options.seed &+ UInt64(t) &* 7919,
                measureFrom: measureFrom, endAt: endAt)
            do {
                try NativeThread.start {
                    let r: BenchResult
                    do { r = try BenchClient(plan: plan, shared: shared).run() } catch {
                        var failed = BenchResult()
                        failed.failures["event loop: \(error)"] = 1
                        r = failed
                    }
                    // A thread's result is also its sign of being done.
                    done.withLock {
                        results.withLock { $0.append(r) }
                        done.signal()
                    }
                }
            } catch {
                printError("mserve bench: \(error)")
                return ExitCode.failure
            }
        }
        let live = StandardStream.errorIsTerminal
        var lastAnswered = 0
        var lastTime = start
        while true {
            let finished = done.withLock {
                if results.withLock({ $0.count }) < threads { done.wait(until: monotonicSeconds() + 1) }
                return results.withLock { $0.count }
            }
            if finished == threads { break }
            if live {
                let now = monotonicSeconds()
                let answered = shared.answered.load(ordering: .relaxed)
                let phase = now < measureFrom ? "warm-up" : "\(BenchReport.text(now - measureFrom)) s"
                let rate = Double(answered - lastAnswered) / max(now - lastTime, 1e-9)
                printProgress(
                    "\r\(phase): \(answered) answered, \(BenchReport.text(rate)) requests/s now, "
                        + "\(shared.errors.load(ordering: .relaxed)) errors   ")
                lastAnswered = answered
                lastTime = now
            }
        }
        if live { printProgress("\r" + String(repeating: " ", count: 72) + "\r") }
        var total = BenchResult()
        for r in results.withLock({ $0 }) { total.merge(r) }
        let measured = min(monotonicSeconds(), endAt) - measureFrom
        let report = BenchReport(options: options, result: total, seconds: measured)
        print(options.json ? report.json.text : report.text, terminator: options.json ? "\n" : "")
        if let verdict = report.verdict {
            printError("mserve bench: \(verdict)")
            return ExitCode.failure
        }
        return ExitCode.ok
    }

    /// On standard error, so that the report on standard output stays clean for a pipe.
    private static func printProgress(_ text: String) {
        printError(text, newline: false)
    }
}
