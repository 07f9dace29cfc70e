/// Iteration-level (continuous) batching, decided as a pure value: which sequences go into the next
/// forward pass and with how many tokens.  Running sequences decode one token each first; the rest of
/// the step's budget goes to prompt chunks (prefill) of the newest ones.  The budget counts what a
/// token costs, not tokens: a token far into its sequence attends to every position before it, so
/// a chunk late in a long prompt is cut shorter, and a step (the gap between two tokens of every
/// decoding stream) costs about the same wherever the prompt beside it is; waiting requests are
/// admitted in arrival order between steps while the sequence cap and the KV cache allow.  A
/// sequence reserves its prompt plus its `max_tokens` of KV cache, in whole blocks, when admitted
/// (the one admission: a place in the step and room in the cache), so that a running sequence never
/// runs out; a finished or cancelled one frees its reservation for the next step.
///
/// A request for several answers to one prompt (OpenAI's `n`) is a group admitted at once: its
/// first sequence reads the prompt, the others start from its KV cache when it is read (its whole
/// blocks shared, the part-filled one copied) and sample their first tokens from the same logits.
/// The shared blocks are reserved once, for as long as any of the group runs.
public struct BatchScheduler: Sendable {
    public struct Limits: Equatable, Sendable {
        /// Sequences in one step (--max-batch-size).
        public var maxSequences: Int
        /// Positions the KV cache holds, over all sequences (--kv-cache-tokens).
        public var kvTokens: Int
        /// What one forward pass may cost, in tokens at position 0: decodes plus prefill chunks.
        public var stepTokens: Int
        /// The position at which a token's attention costs as much again as the rest of its pass
        /// (its products with the weights); nil: attention is not counted.
        public var attentionSpan: Int?
        /// The KV cache's block (KVBlockPool): a sequence reserves whole blocks, and the cache
        /// holds `kvTokens / blockTokens` of them.
        public var blockTokens: Int

        public init(maxSequences: Int, kvTokens: Int, stepTokens: Int, attentionSpan: Int? = nil, blockTokens: Int = 1) {
            self.maxSequences = maxSequences
            self.kvTokens = kvTokens
            self.stepTokens = stepTokens
            self.attentionSpan = attentionSpan
            self.blockTokens = max(1, blockTokens)
        }

        /// The KV cache's positions in whole blocks.
        public var kvCapacity: Int { kvTokens / blockTokens * blockTokens }

        /// The positions a sequence of `tokens` reserves: whole blocks.
        public func reservation(_ tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens * blockTokens }

        /// The cost of `n` tokens at positions `start`..<`start + n`, in tokens at position 0.
        public func cost(_ n: Int, from start: Int) -> Double {
            guard let span = attentionSpan else { return Double(n) }
            return Double(n) * (1 + (Double(start) + Double(n - 1) / 2) / Double(span))
        }

        /// The most tokens from `start` that cost at most `budget` (the root of the quadratic, then
        /// corrected for rounding), at most `limit`.
        public func tokens(from start: Int, within budget: Double, limit: Int) -> Int {
            guard budget > 0, limit > 0 else { return 0 }
            guard let span = attentionSpan else { return max(0, min(limit, Int(budget.rounded(.down)))) }
            // n²/(2A) + n(1 + (start - ½)/A) - budget = 0
            let a = 1 / (2 * Double(span)), b = 1 + (Double(start) - 0.5) / Double(span)
            var n = min(limit, max(0, Int(((-b + (b * b + 4 * a * budget).squareRoot()) / (2 * a)).rounded(.down))))
            while n < limit && cost(n + 1, from: start) <= budget { n += 1 }
            while n > 0 && cost(n, from: start) > budget { n -= 1 }
            return n
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
        /// More copies than sequences in a step.
        case tooManyCopies(limit: Int)
    }

    struct Sequence: Equatable, Sendable {
        let id: Int
        let prompt: Int
        let maxNew: Int
        /// Prompt plus max_tokens in whole blocks (in a group: less the prompt's whole blocks, which
        /// the group reserves once).
        let need: Int
        /// In a group: its first sequence's id (the one that reads the prompt).
        var leader: Int?
        var prefilled = 0
        var generated = 0
    }

    public let limits: Limits
    private(set) var waiting: [Sequence] = []
    private(set) var running: [Sequence] = []
    /// Sequences whose client is not reading (backpressure): they keep their place and KV cache
    /// but decode no token until released.
    private(set) var held: Set<Int> = []
    /// Each group's shared reservation (its prompt's whole blocks) by its leader's id, and its size.
    private(set) var groups: [Int: (shared: Int, size: Int)] = [:]

    public init(limits: Limits) { self.limits = limits }

    public var kvReserved: Int {
        running.reduce(0) { $0 + $1.need } + groups.reduce(0) { total, g in running.contains { $0.leader == g.key } ? total + g.value.shared : total }
    }
    public var waitingCount: Int { waiting.count }
    public var runningCount: Int { running.count }

    /// Queues a request for `copies` answers to one prompt: sequences `id`..<`id + copies`.
    public mutating func submit(id: Int, promptTokens: Int, maxNewTokens: Int, copies: Int = 1) -> Admission {
        let whole = limits.reservation(promptTokens + maxNewTokens)
        let shared = copies > 1 ? promptTokens / limits.blockTokens * limits.blockTokens : 0
        let need = shared + copies * (whole - shared)
        guard copies <= limits.maxSequences else { return .tooManyCopies(limit: limits.maxSequences) }
        guard need <= limits.kvCapacity else { return .tooLong(needed: copies > 1 ? need : promptTokens + maxNewTokens, capacity: limits.kvCapacity) }
        for k in 0..<copies {
            waiting.append(Sequence(id: id + k, prompt: promptTokens, maxNew: maxNewTokens, need: whole - shared, leader: copies > 1 ? id : nil))
        }
        if copies > 1 { groups[id] = (shared, copies) }
        return .queued
    }

    /// A client left, or the sequence finished early (a stop string, end of turn).
    public mutating func remove(id: Int) {
        let leader = (waiting + running).first { $0.id == id }?.leader
        waiting.removeAll { $0.id == id }
        running.removeAll { $0.id == id }
        held.remove(id)
        if let leader, !(waiting + running).contains(where: { $0.leader == leader }) { groups[leader] = nil }
    }

    /// Backpressure: a held sequence decodes nothing until released (its prompt is still read).
    public mutating func hold(id: Int, _ on: Bool) {
        if on { held.insert(id) } else { held.remove(id) }
    }

    /// The next step's work (empty: nothing to do): `admit`, then `plan`.  Call `completed` with it
    /// once it has run.
    public mutating func nextStep() -> [Work] {
        admit()
        return plan()
    }

    /// Admission in arrival order: the first that does not fit waits, and so do those behind it.
    /// Returns the ids admitted now.
    @discardableResult
    public mutating func admit() -> [Int] {
        var admitted: [Int] = []
        while let first = waiting.first {
            // A group comes in whole: its sequences are together in the queue.
            let count = first.leader.map { leader in waiting.prefix { $0.leader == leader }.count } ?? 1
            let need = waiting.prefix(count).reduce(first.leader.flatMap { groups[$0]?.shared } ?? 0) { $0 + $1.need }
            guard running.count + count <= limits.maxSequences, kvReserved + need <= limits.kvCapacity else { break }
            running += waiting.prefix(count)
            admitted += waiting.prefix(count).map(\.id)
            waiting.removeFirst(count)
        }
        return admitted
    }

    /// A sequence just admitted found the KV of its prompt's first `tokens` cached (prefix
    /// caching): its prompt is read from there.  At least its last token is left to read.
    public mutating func skip(id: Int, tokens: Int) {
        guard let i = running.firstIndex(where: { $0.id == id }), running[i].prefilled == 0 else { return }
        running[i].prefilled = min(tokens, running[i].prompt - 1)
    }

    /// The running sequences' share of the next step.
    public mutating func plan() -> [Work] {
        var budget = Double(limits.stepTokens)
        var work: [Work] = []
        for s in running where s.prefilled == s.prompt && !held.contains(s.id) {
            let at = s.prompt + s.generated - 1
            guard work.count < limits.stepTokens else { break }
            work.append(Work(id: s.id, start: at, tokens: 1, prefill: false, samples: true))
            budget -= limits.cost(1, from: at)
        }
        var prefilling = false
        // A group's other sequences wait for its leader to read the prompt they share.
        for s in running where s.prefilled < s.prompt && (s.leader == nil || s.leader == s.id) {
            let left = s.prompt - s.prefilled
            var n = limits.tokens(from: s.prefilled, within: budget, limit: left)
            // However many streams decode, a prompt moves on a little every step (never starved).
            if !prefilling && n == 0 { n = min(left, max(1, limits.stepTokens / 8)) }
            guard n > 0 else { break }
            prefilling = true
            work.append(Work(id: s.id, start: s.prefilled, tokens: n, prefill: true, samples: s.prefilled + n == s.prompt))
            budget -= limits.cost(n, from: s.prefilled)
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
            // The leader read the prompt: the group's others took its cache and their first tokens.
            if w.prefill && w.samples && running[i].leader == w.id {
                for j in running.indices where running[j].leader == w.id && running[j].id != w.id {
                    running[j].prefilled = running[j].prompt
                    running[j].generated = 1
                    if running[j].generated >= running[j].maxNew { done.append(running[j].id) }
                }
            }
        }
        for id in done { remove(id: id) }
        return done
    }
}
