import MServeSystem

/// One request's inference, from the queue to its answer.
final class InferenceJob: @unchecked Sendable {
    enum State { case queued, running, done, abandoned }
    let request: InferenceRequest
    /// What it counts toward a batch: its number of inputs (1 for a model that does not batch).
    var cost = 1
    /// Guarded by the runner's lock.
    fileprivate(set) var state = State.queued
    /// Set for a client that asked for a stream: the model's `stream` runs, and `onPiece` gets
    /// each piece on the loop thread.
    let onPiece: ((JSON) -> Void)?
    /// Runs on the loop thread with the model's answer, unless the job was abandoned first.
    let completion: (Result<JSON, any Error>) -> Void
    /// Runs on the loop thread just before `completion` with the seconds the job waited in the
    /// queue and the seconds the model took (for the metrics).
    var onTimes: ((Double, Double) -> Void)?
    /// Guarded by the runner's `flow` lock: its stream's connection holds too much unsent (the loop
    /// paused it), and its pieces emitted and not yet handed to the connection.
    fileprivate var paused = false
    fileprivate var undelivered = 0
    fileprivate let queuedAt = monotonicSeconds()
    fileprivate var startedAt = 0.0
    fileprivate var finishedAt = 0.0

    init(
        request: InferenceRequest, onPiece: ((JSON) -> Void)? = nil,
        completion: @escaping (Result<JSON, any Error>) -> Void
    ) {
        self.request = request
        self.onPiece = onPiece
        self.completion = completion
    }
}

/// Runs one model in a worker: `concurrency` model threads take jobs from a queue of at most
/// `queueSize` waiting requests, so the event loop only does I/O and answers "busy" (503) at once
/// instead of letting requests wait without bound.  Results come back to the loop thread through a
/// libevent event that the model threads activate.  For a `BatchingModel` a thread takes queued
/// jobs together, up to `maxBatchSize` inputs, waiting up to `batchTimeout` for more; its queue
/// then holds at least two full batches, so that the next batches form while one runs.
package final class ModelRunner: @unchecked Sendable {
    /// The model's name (for its log lines) and the instance its threads run.
    let name: String
    let instance: any Model
    let policy: QueuePolicy
    var runtime: ModelRuntime { policy.runtime }
    private let lock = ConditionLock()
    private var queue: [InferenceJob] = []
    private var head = 0
    /// Queued jobs that are still to run (abandoned ones stay in `queue` until a thread skips them).
    private var waiting = 0
    /// Jobs running, and threads running them (equal unless the model batches).
    private var running = 0
    private var busyThreads = 0
    /// What the model threads produced, in order, for the loop to deliver.
    private enum Output { case piece(JSON), result(Result<JSON, any Error>) }
    private var outputs: [(InferenceJob, Output)] = []
    /// Inputs of each batched pass since the loop last looked, for `onBatch`.
    private var batches: [Int] = []
    /// Runs on the loop thread with the inputs of each forward pass of a batching model (metrics).
    package var onBatch: ((Int) -> Void)?
    /// Fired by the model threads (and by `deliver` to go on): a timer due at once rather than an
    /// activated event, so that it runs after the loop has looked for I/O again and ended its
    /// batch (an event activated while the loop works is run in the same batch, and a model
    /// streaming without pause kept the batch, and the answers it holds back, from ending).
    private let wake: EventHandle
    /// Loop thread only: what `deliver` took from `outputs` and has not handed on yet.  At most
    /// `deliveryBatch` are handed on per turn of the loop, the rest on the next: a model
    /// that streams a million pieces must not hold the loop (and every other client) for a second.
    private var taken: [(InferenceJob, Output)] = []
    private var takenStart = 0
    private static let deliveryBatch = 256
    /// Backpressure for streams: a model thread's `emit` waits while its job is paused or has
    /// this many pieces not yet handed to the connection, so a client that reads slowly (or not
    /// at all) holds a bounded amount of the worker's memory, not all the model can produce.
    private let flow = ConditionLock()
    private var flowWaiters = 0
    static let maxUndelivered = 512

    package convenience init(model: ServedModel, runtime: ModelRuntime, loop: EventLoop) throws {
        try self.init(name: model.name, instance: model.instance, runtime: runtime, loop: loop)
    }

    package init(name: String, instance: any Model, runtime: ModelRuntime, loop: EventLoop) throws {
        self.name = name
        self.instance = instance
        policy = QueuePolicy(runtime: runtime, batching: instance is any BatchingModel)
        // The event reaches the runner through a box filled once the runner exists.
        let target = WeakRunner()
        wake = loop.timer { target.runner?.deliver() }
        target.runner = self
        let box = UncheckedBox(instance)
        for _ in 0..<runtime.concurrency {
            // Each model thread holds the runner: they serve for the worker's whole life.
            try NativeThread.start { [self] in serve(box.value) }
        }
    }

    /// (running, waiting) now.
    package var load: (running: Int, waiting: Int) { lock.withLock { (running, waiting) } }

    /// Loop thread: queues the job, or returns false when the model is at its limit.
    func submit(_ job: InferenceJob) -> Bool {
        lock.withLock {
            guard policy.admits(busyThreads: busyThreads, waiting: waiting) else { return false }
            queue.append(job)
            waiting += 1
            lock.signal()
            return true
        }
    }

    /// Loop thread: gives up on a job, returning the state it was in.  A queued job never runs.  A
    /// running one is given up only if `evenIfRunning` (its deadline passed, or its stream's client
    /// left): its request's `cancellation` tells the model, and whatever it still returns is
    /// dropped.  A done one is left to be delivered.
    func abandon(_ job: InferenceJob, evenIfRunning: Bool) -> InferenceJob.State {
        let (was, now) = lock.withLock {
            let was = job.state
            switch was {
            case .queued:
                waiting -= 1
                job.state = .abandoned
            case .running where evenIfRunning:
                job.state = .abandoned
            case .running, .done, .abandoned:
                break
            }
            return (was, job.state)
        }
        // The model thread working on it (a generation in its prompt) hears of it at its next look.
        if now == .abandoned && was != .abandoned {
            job.request.cancellation.cancel()
            flow.withLock { flow.broadcast() }  // an emit waiting for its stream to drain gives up
        }
        return was
    }

    /// A model thread's life: take the next jobs that are still wanted, run them, hand back the results.
    private func serve(_ instance: any Model) {
        let batching = instance as? any BatchingModel
        while true {
            let jobs = lock.withLock { take() }
            let started = monotonicSeconds()
            var results: [Result<JSON, any Error>]
            if let batching, jobs[0].onPiece == nil {
                for job in jobs { job.startedAt = started }
                let serving = ServingRequest(recordID: jobs.count == 1 ? jobs[0].request.recordID : nil, model: name)
                results = ServingRequest.$current.withValue(serving) { batching.inferBatch(jobs.map(\.request)) }
                lock.withLock { batches.append(jobs.reduce(0) { $0 + $1.cost }) }
                if results.count != jobs.count {
                    let e = ModelLoadError("model \(name) returned \(results.count) results for \(jobs.count) requests")
                    results = jobs.map { _ in .failure(e) }
                }
            } else {
                let job = jobs[0]
                job.startedAt = started
                // A model's swift-log lines name the request and the model (SwiftLogHandler).
                results = ServingRequest.$current.withValue(ServingRequest(recordID: job.request.recordID, model: name)) {
                    if job.onPiece != nil {
                        return [
                            Result {
                                try instance.stream(job.request) { piece in try self.emit(piece, for: job) }
                                return .null
                            }
                        ]
                    }
                    return [Result { try instance.infer(job.request) }]
                }
            }
            let finished = monotonicSeconds()
            let wakeLoop = lock.withLock {
                busyThreads -= 1
                let wasEmpty = outputs.isEmpty
                for (job, result) in zip(jobs, results) {
                    job.finishedAt = finished
                    running -= 1
                    if job.state == .running {
                        job.state = .done
                        outputs.append((job, .result(result)))
                    }
                }
                return wasEmpty && !outputs.isEmpty
            }
            if wakeLoop { wake.fireSoon() }
        }
    }

    /// Under the lock: waits for the next wanted job; for a batching model, adds queued ones (none
    /// that streams) while they fit in `maxBatchSize`, waiting up to `batchTimeout` for more.
    private func take() -> [InferenceJob] {
        var jobs = [next()]
        busyThreads += 1
        var cost = jobs[0].cost
        let deadline = policy.deadline(startedAt: monotonicSeconds())
        while true {
            let candidate = peek()
            switch policy.next(
                cost: cost, firstStreams: jobs[0].onPiece != nil,
                candidate: candidate.map { ($0.cost, $0.onPiece != nil) }, now: monotonicSeconds(), deadline: deadline)
            {
            case .add:
                let j = next()
                jobs.append(j)
                cost += j.cost
            case .wait(let until):
                lock.wait(until: until)
            case .run:
                return jobs
            }
        }
    }

    /// The first queued job still wanted, left in the queue (abandoned ones ahead of it are dropped).
    private func peek() -> InferenceJob? {
        while head < queue.count {
            if queue[head].state == .queued { return queue[head] }
            head += 1
        }
        return nil
    }

    /// Takes the first queued job still wanted, marking it running; waits for one if need be.
    private func next() -> InferenceJob {
        while true {
            while head == queue.count { lock.wait() }
            let j = queue[head]
            head += 1
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            if j.state == .queued {
                j.state = .running
                waiting -= 1
                running += 1
                return j
            }
        }
    }

    /// A model thread: queues one piece of a stream for the loop, or stops the model if the job
    /// was given up (the client left).
    private func emit(_ piece: JSON, for job: InferenceJob) throws {
        flow.withLock {
            while (job.paused || job.undelivered >= ModelRunner.maxUndelivered) && !job.request.cancellation.isCancelled {
                flowWaiters += 1
                flow.wait()
                flowWaiters -= 1
            }
            job.undelivered += 1
        }
        let wakeLoop = try lock.withLock {
            guard job.state == .running else { throw StreamCancelled() }
            outputs.append((job, .piece(piece)))
            return outputs.count == 1
        }
        // Only the first output since the loop last took them wakes it (it takes them all), not
        // every piece: each wake-up takes libevent's lock, which the loop wants too.
        if wakeLoop { wake.fireSoon() }
    }

    /// Loop thread: the job's connection holds more than it should unsent: its model thread waits
    /// at its next piece until `resume`.
    func pause(_ job: InferenceJob) {
        flow.withLock { job.paused = true }
        job.request.flow.set(paused: true)
    }

    func resume(_ job: InferenceJob) {
        flow.withLock {
            job.paused = false
            if flowWaiters > 0 { flow.broadcast() }
        }
        job.request.flow.set(paused: false)
    }

    /// Loop thread: hands on what the model threads produced, pieces before their job's result.
    fileprivate func deliver() {
        if takenStart == taken.count {
            let passes: [Int]
            (taken, passes) = lock.withLock {
                defer { outputs.removeAll(); batches.removeAll() }
                return (outputs, batches)
            }
            takenStart = 0
            if let onBatch { passes.forEach(onBatch) }
        }
        let end = min(taken.count, takenStart + ModelRunner.deliveryBatch)
        let ready = taken[takenStart..<end]
        takenStart = end
        // More taken, or more produced since: go on at the next turn (a model thread wakes the loop
        // only for the first output after the loop took them, and this turn did not take them).
        if takenStart < taken.count || lock.withLock({ !outputs.isEmpty }) { wake.fireSoon() }
        if takenStart == taken.count {
            taken.removeAll()
            takenStart = 0
        }
        for (job, output) in ready {
            switch output {
            case .piece(let p):
                flow.withLock {
                    job.undelivered -= 1
                    if flowWaiters > 0 && job.undelivered == ModelRunner.maxUndelivered - 1 { flow.broadcast() }
                }
                // A job given up since (its client left) gets no more pieces.
                if lock.withLock({ job.state != .abandoned }) { job.onPiece?(p) }
            case .result(let r):
                job.onTimes?(job.startedAt - job.queuedAt, job.finishedAt - job.startedAt)
                job.completion(r)
            }
        }
    }
}

/// How the loop's wake-up event reaches its runner without a reference cycle or an unset property.
private final class WeakRunner {
    weak var runner: ModelRunner?
}
