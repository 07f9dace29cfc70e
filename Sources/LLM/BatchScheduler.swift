/// Iteration-level (continuous) batching, decided as a pure value: which sequences go into the next
/// forward pass and with how many tokens.  Running sequences decode one token each first; the rest of
/// the step's token budget goes to prompt chunks (prefill) of the newest ones; waiting requests are
/// admitted in arrival order between steps while the sequence cap and the KV cache allow.  A
/// sequence reserves its prompt plus its `max_tokens` of KV cache when admitted, so that a running
/// sequence never runs out; a finished or cancelled one frees its reservation for the next step.
public struct BatchScheduler: Sendable {
    public struct Limits: Equatable, Sendable {
        /// Sequences in one step (--max-batch-size).
        public var maxSequences: Int
        /// Positions the KV cache holds, over all sequences (--kv-cache-tokens).
        public var kvTokens: Int
        /// Tokens in one forward pass: decodes plus prefill chunks.
        public var stepTokens: Int

        public init(maxSequences: Int, kvTokens: Int, stepTokens: Int) {
            self.maxSequences = maxSequences
            self.kvTokens = kvTokens
            self.stepTokens = stepTokens
        }
    }

    /// One sequence's share of a step: `tokens` prompt tokens from `start`, or one decode token.
    public struct Work: Equatable, Sendable {
        public let id: Int
        public let start: Int
        public let tokens: Int
        public let prefill: Bool
        /// Whether this step ends with a token to sample for it (a decode, or the prompt's last chunk).
        public let samples: Bool
    }

    public enum Admission: Equatable, Sendable {
        case queued
        /// It could never fit: prompt plus max_tokens beyond the whole KV cache.
        case tooLong(needed: Int, capacity: Int)
    }

    struct Sequence: Equatable, Sendable {
        let id: Int
        let prompt: Int
        let maxNew: Int
        var prefilled = 0
        var generated = 0
        var need: Int { prompt + maxNew }
    }

    public let limits: Limits
    private(set) var waiting: [Sequence] = []
    private(set) var running: [Sequence] = []

    public init(limits: Limits) { self.limits = limits }

    public var kvReserved: Int { running.reduce(0) { $0 + $1.need } }
    public var waitingCount: Int { waiting.count }
    public var runningCount: Int { running.count }

    public mutating func submit(id: Int, promptTokens: Int, maxNewTokens: Int) -> Admission {
        let s = Sequence(id: id, prompt: promptTokens, maxNew: maxNewTokens)
        guard s.need <= limits.kvTokens else { return .tooLong(needed: s.need, capacity: limits.kvTokens) }
        waiting.append(s)
        return .queued
    }

    /// A client left, or the sequence finished early (a stop string, end of turn).
    public mutating func remove(id: Int) {
        waiting.removeAll { $0.id == id }
        running.removeAll { $0.id == id }
    }

    /// The next step's work (empty: nothing to do).  Call `completed` with it once it has run.
    public mutating func nextStep() -> [Work] {
        // Admission in arrival order: the first that does not fit waits, and so do those behind it.
        while let first = waiting.first, running.count < limits.maxSequences, kvReserved + first.need <= limits.kvTokens {
            running.append(waiting.removeFirst())
        }
        var budget = limits.stepTokens
        var work: [Work] = []
        for s in running where s.prefilled == s.prompt && budget > 0 {
            work.append(Work(id: s.id, start: s.prompt + s.generated - 1, tokens: 1, prefill: false, samples: true))
            budget -= 1
        }
        for s in running where s.prefilled < s.prompt && budget > 0 {
            let n = min(s.prompt - s.prefilled, budget)
            work.append(Work(id: s.id, start: s.prefilled, tokens: n, prefill: true, samples: s.prefilled + n == s.prompt))
            budget -= n
        }
        return work
    }

    /// The step ran: prompts advanced, sampled tokens counted; a sequence that reached its
    /// max_tokens leaves (finish_reason "length"), and its KV reservation with it.  Returns those ids.
    @discardableResult
    public mutating func completed(_ work: [Work]) -> [Int] {
        var done: [Int] = []
        for w in work {
            guard let i = running.firstIndex(where: { $0.id == w.id }) else { continue }
            if w.prefill { running[i].prefilled += w.tokens }
            if w.samples { running[i].generated += 1 }
            if running[i].generated >= running[i].maxNew { done.append(w.id) }
        }
        running.removeAll { done.contains($0.id) }
        return done
    }
}
