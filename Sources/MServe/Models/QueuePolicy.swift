/// One model's queue in one worker, decided without threads or a clock: how many requests it
/// admits, and which queued jobs run together as one batch.  `ModelRunner` asks it under its lock.
public struct QueuePolicy: Equatable, Sendable {
    public let runtime: ModelRuntime
    /// The model batches (`BatchingModel`): a thread takes several jobs at once.
    public let batching: Bool

    public init(runtime: ModelRuntime, batching: Bool) {
        self.runtime = runtime
        self.batching = batching
    }

    /// Requests running or waiting at most.  A batching model's queue holds at least two full
    /// batches, so that the next ones form while one runs.
    public var capacity: Int {
        runtime.concurrency + (batching ? max(runtime.queueSize, 2 * runtime.maxBatchSize) : runtime.queueSize)
    }

    /// Whether one more request may queue (else 503 at once).
    public func admits(busyThreads: Int, waiting: Int) -> Bool { busyThreads + waiting < capacity }

    /// What a thread holding a batch of `cost` inputs (begun with a job that `streams` or not) does
    /// next, given the next queued job still wanted (`candidate`) and the time.
    public enum Step: Equatable, Sendable {
        /// Take the candidate into the batch.
        case add
        /// Wait for more jobs until then (or until one is queued).
        case wait(until: Double)
        /// Run the batch as it is.
        case run
    }

    public func next(cost: Int, firstStreams: Bool, candidate: (cost: Int, streams: Bool)?, now: Double, deadline: Double) -> Step {
        // A stream runs alone: its pieces go to one client as they come.
        guard batching, !firstStreams, cost < runtime.maxBatchSize else { return .run }
        if let candidate {
            return !candidate.streams && cost + candidate.cost <= runtime.maxBatchSize ? .add : .run
        }
        return runtime.batchTimeout > 0 && now < deadline ? .wait(until: deadline) : .run
    }

    /// When a batch begun at `start` stops waiting for more.
    public func deadline(startedAt start: Double) -> Double { start + runtime.batchTimeout }
}
