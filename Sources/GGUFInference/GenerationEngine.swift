import Dispatch
import Grammar
import MServeSystem

/// Continuous batching over one model: requests join and leave between steps, every step is one
/// forward pass over all running sequences (decodes and prompt chunks, `BatchScheduler` decides),
/// on a thread of its own.  Each request hears of its tokens as they come (text never split inside
/// a UTF-8 character, nothing of a stop string shown) and of its end: stop (end of turn or a stop
/// string), length (max_tokens), or cancelled.
public final class GenerationEngine: Sendable {
    public struct Request: Sendable {
        public var prompt: [Int32]
        public var maxTokens: Int
        public var sampling: SamplingParameters
        public var stop: [String]
        /// Answers wanted (OpenAI's `n`): the prompt is read once and its KV cache shared by them.
        public var answers: Int
        /// What every answer's text must be a sentence of (structured output), or nil.
        public var grammar: Grammar?
        /// Tokens that end the answer as an end of turn does (vLLM's `stop_token_ids`): not shown.
        public var stopTokens: Set<Int32> = []

        public init(
            prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = SamplingParameters(temperature: 0), stop: [String] = [],
            answers: Int = 1, grammar: Grammar? = nil
        ) {
            self.prompt = prompt
            self.maxTokens = maxTokens
            self.sampling = sampling
            self.stop = stop
            self.answers = max(1, answers)
            self.grammar = grammar
        }
    }

    public enum FinishReason: String, Sendable { case stop, length, cancelled }

    public struct Usage: Equatable, Sendable {
        public var promptTokens: Int
        /// Of the prompt's tokens, those whose KV was found in the prefix cache (not computed).
        public var cachedTokens: Int
        public var completionTokens: Int
        /// From submission to its first step (a place in the batch and the KV cache), to the
        /// first token, and to the end.
        public var queuedSeconds: Double
        public var secondsToFirstToken: Double?
        public var seconds: Double
    }

    public enum Event: Sendable {
        /// The prompt is read: its first token follows at once.
        case started(promptTokens: Int)
        /// A generated token, the text it completes (possibly empty), and its log-probabilities
        /// when the request asked for them.
        case token(Int32, text: String, logprobs: TokenLogprobs?)
        case finished(FinishReason, Usage)
    }

    public enum Refusal: Error, Equatable, Sendable {
        /// Prompt plus max_tokens beyond what the KV cache or the context holds.
        case tooLong(needed: Int, capacity: Int)
        /// More answers than sequences in a step (--max-batch-size).
        case tooManyAnswers(Int, limit: Int)
    }

    public typealias EventHandler = @Sendable (_ answer: Int, Event) -> Void

    private struct Active {
        let request: Request
        /// Which of the request's answers, and the id of the one that reads the prompt (itself
        /// when alone).
        let answer: Int
        let leader: Int
        let sequence: LlamaModel.Sequence
        var sampler: Sampler
        /// Where the text stands in the request's grammar.
        var matcher: GrammarMatcher?
        var decoder = StreamingDecoder()
        var stop: StopMatcher
        var last: Int32 = 0
        var generated = 0
        /// Prompt tokens whose KV came from the prefix cache.
        var cachedTokens = 0
        let submitted: ContinuousClock.Instant
        var admitted: ContinuousClock.Instant?
        var firstToken: ContinuousClock.Instant?
        let handler: EventHandler

        func onEvent(_ e: Event) { handler(answer, e) }
    }

    /// What the callers and the engine's thread share.  The sequences themselves (KV caches,
    /// samplers) belong to the engine's thread alone.
    private struct State {
        var scheduler: BatchScheduler
        var submitted: [(id: Int, request: Request, at: ContinuousClock.Instant, handler: EventHandler)] = []
        var cancelled: Set<Int> = []
        /// Requests of several answers by their first id (their ids follow it), while any runs.
        var answers: [Int: Int] = [:]

        /// A request's ids from its first.
        func ids(_ id: Int) -> Range<Int> { id..<(id + (answers[id] ?? 1)) }
        var nextID = 1
        var stopping = false
    }

    public let model: LlamaModel
    public let tokenizer: any Tokenizer
    /// Tokens that end a turn (end of text, `<|im_end|>`): not shown, finish_reason "stop".
    public let endTokens: Set<Int32>
    /// The worker's KV cache: every sequence's blocks.
    public let pool: KVBlockPool
    private let state: Locked<State>
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    /// `limits.blockTokens` is the KV cache's block (KVBlockPool.defaultBlockTokens for a server).
    /// With `prefixCaching`, a prompt that begins as an earlier one did reuses its KV blocks.
    public init(model: LlamaModel, tokenizer: any Tokenizer, limits: BatchScheduler.Limits, prefixCaching: Bool = false) throws(GGUFError) {
        self.model = model
        self.tokenizer = tokenizer
        var ends: Set<Int32> = []
        if let eos = model.file.metadata["tokenizer.ggml.eos_token_id"]?.intValue { ends.insert(Int32(eos)) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"] { if let id = tokenizer.id(of: name) { ends.insert(id) } }
        endTokens = ends
        let kv = min(limits.kvTokens, limits.reservation(model.config.context) * max(1, limits.maxSequences))
        pool = try KVBlockPool(config: model.config, tokens: kv, blockTokens: limits.blockTokens, caching: prefixCaching)
        // The scheduler admits what the pool holds, block for block: a sequence it runs never
        // finds the pool short.
        state = Locked(
            State(
                scheduler: BatchScheduler(
                    limits: .init(
                        maxSequences: limits.maxSequences, kvTokens: pool.blockCount * pool.blockTokens,
                        stepTokens: limits.stepTokens,
                        attentionSpan: limits.attentionSpan ?? model.config.attentionSpan,
                        blockTokens: pool.blockTokens))))
    }

    /// The engine's thread starts with the first request, not with the engine: a model loaded in
    /// the master (--preload) is forked into the workers, where a thread started before the fork
    /// would not exist.  Each worker then runs its own.
    private let started = Locked(false)

    private func startIfNeeded() {
        let start = started.withLock { s in
            defer { s = true }
            return !s
        }
        guard start else { return }
        let engine = self
        DispatchQueue(label: "mserve.generation").async { engine.run() }
    }

    /// Stops the engine's thread once the running requests are cancelled (their events say so).
    public func shutdown() {
        guard started.withLock({ $0 }) else { return }
        state.withLock { $0.stopping = true }
        wake.signal()
        done.wait()
    }

    /// Queues a request of one answer; `onEvent` is called on the engine's thread.  Returns its
    /// id, for `cancel`.
    public func submit(_ r: Request, onEvent: @escaping @Sendable (Event) -> Void) throws(Refusal) -> Int {
        try submit(r) { _, event in onEvent(event) }
    }

    /// Queues a request; `handler` is called on the engine's thread with each event and the answer
    /// (0..<`r.answers`) it is of.  Returns the request's id, for `cancel` and `hold`.
    public func submit(_ r: Request, handler: @escaping EventHandler) throws(Refusal) -> Int {
        startIfNeeded()
        let context = model.config.context
        guard r.prompt.count + r.maxTokens <= context else { throw .tooLong(needed: r.prompt.count + r.maxTokens, capacity: context) }
        let result: Result<Int, Refusal> = state.withLock { s in
            let id = s.nextID
            switch s.scheduler.submit(id: id, promptTokens: r.prompt.count, maxNewTokens: r.maxTokens, copies: r.answers) {
            case .tooLong(let needed, let capacity):
                return .failure(.tooLong(needed: needed, capacity: capacity))
            case .tooManyCopies(let limit):
                return .failure(.tooManyAnswers(r.answers, limit: limit))
            case .queued:
                s.nextID += r.answers
                if r.answers > 1 { s.answers[id] = r.answers }
                s.submitted.append((id, r, ContinuousClock.now, handler))
                return .success(id)
            }
        }
        let id = try result.get()
        wake.signal()
        return id
    }

    /// Backpressure: the client is not reading; the sequence decodes nothing until released.
    public func hold(_ id: Int, _ on: Bool) {
        state.withLock { s in
            for i in s.ids(id) { s.scheduler.hold(id: i, on) }
        }
        if !on { wake.signal() }
    }

    /// The client left: its sequences leave at the next step.
    public func cancel(_ id: Int) {
        state.withLock { s in s.cancelled.formUnion(s.ids(id)) }
        wake.signal()
    }

    /// Sequences running and waiting, and the KV cache's tokens reserved and in all, at once.
    public var load: (running: Int, waiting: Int, kvReserved: Int, kvTokens: Int) {
        state.withLock { ($0.scheduler.runningCount, $0.scheduler.waitingCount, $0.scheduler.kvReserved, $0.scheduler.limits.kvTokens) }
    }

    private func run() {
        var active: [Int: Active] = [:]
        while true {
            // Under the lock: new requests taken, the cancelled removed, the waiting admitted.
            let (arrived, cancelled, admitted, stopping) = state.withLock { s in
                let arrived = s.submitted
                s.submitted = []
                let cancelled = s.cancelled
                s.cancelled = []
                if s.stopping {
                    for id in Set(active.keys).union(arrived.flatMap { s.ids($0.id) }) { s.scheduler.remove(id: id) }
                    return (arrived, cancelled, [Int](), true)
                }
                for id in cancelled { s.scheduler.remove(id: id) }
                return (arrived, cancelled, s.scheduler.admit(), false)
            }
            for a in arrived {
                for k in 0..<a.request.answers {
                    // Each answer draws from its own generator (the seed moved by its index: the
                    // same request gives the same answers, which differ from each other).
                    var sampling = a.request.sampling
                    sampling.seed = sampling.seed.map { $0 &+ UInt64(k) }
                    active[a.id + k] = Active(
                        request: a.request, answer: k, leader: a.id, sequence: model.newSequence(pool: pool),
                        sampler: Sampler(sampling), matcher: a.request.grammar.map(GrammarMatcher.init),
                        stop: StopMatcher(a.request.stop), submitted: a.at, handler: a.handler)
                }
            }
            for id in (stopping ? Set(active.keys) : cancelled).sorted() {
                if let a = active.removeValue(forKey: id) { a.onEvent(.finished(.cancelled, usage(a))) }
            }
            // A request is cancelled whole (`cancel` takes all its ids).
            if !cancelled.isEmpty { state.withLock { s in for id in cancelled { s.answers[id] = nil } } }
            if stopping { break }
            // A sequence admitted now takes the cached blocks of its prompt's longest known prefix
            // (held from here: its reservation counts them), and reads its prompt from their end.
            var found: [(id: Int, tokens: Int)] = []
            for id in admitted {
                guard let a = active[id], a.answer == 0 else { continue }  // the others fork its cache
                let n = a.sequence.cache.adopt(a.request.prompt)
                active[id]?.cachedTokens = n
                if n > 0 { found.append((id, n)) }
            }
            let work = state.withLock { s in
                for f in found { s.scheduler.skip(id: f.id, tokens: f.tokens) }
                return s.scheduler.plan()
            }
            if work.isEmpty {
                wake.wait()
                continue
            }
            let finished = step(work, &active)
            let ended = Set(finished.map { $0.leader }).filter { leader in !active.values.contains { $0.leader == leader } }
            state.withLock { s in
                s.scheduler.completed(work)
                for f in finished { s.scheduler.remove(id: f.id) }
                for leader in ended { s.answers[leader] = nil }
            }
        }
        done.signal()
    }

    /// One forward pass and what it gives each sequence; returns those that finished.
    private func step(_ work: [BatchScheduler.Work], _ active: inout [Int: Active]) -> [(id: Int, leader: Int)] {
        var entries: [LlamaModel.BatchEntry] = []
        for w in work {
            guard let a = active[w.id] else { continue }
            if a.admitted == nil { active[w.id]?.admitted = ContinuousClock.now }
            let tokens = w.prefill ? Array(a.request.prompt[w.start..<(w.start + w.tokens)]) : [a.last]
            entries.append(LlamaModel.BatchEntry(a.sequence, tokens, wantsLogits: w.samples, prompt: w.prefill))
        }
        let logits = model.forward(entries)
        var finished: [(id: Int, leader: Int)] = []
        for (w, l) in zip(work, logits) {
            guard let l, active[w.id] != nil else { continue }
            // The prompt of several answers is read: the others start from its cache, with their
            // first tokens drawn from the same logits.
            var ids = [w.id]
            if w.prefill, let leader = active[w.id], leader.request.answers > 1 {
                let others = (w.id + 1)..<(w.id + leader.request.answers)
                for id in others {
                    guard let other = active[id] else { continue }
                    other.sequence.cache.release()
                    if other.sequence.cache.fork(leader.sequence.cache) {
                        active[id]?.admitted = leader.admitted
                        active[id]?.cachedTokens = 0
                        ids.append(id)
                    } else {
                        // Not reached: the group's reservation holds the copies' blocks.
                        other.onEvent(.finished(.cancelled, usage(other)))
                        active[id] = nil
                        finished.append((id, w.id))
                    }
                }
            }
            for id in ids {
                guard var a = active[id] else { continue }
                if take(sample(l, &a), &a) {
                    active[id] = nil
                    finished.append((id, a.leader))
                } else {
                    active[id] = a
                }
            }
        }
        return finished
    }

    /// The next token of a sequence, within its grammar if it has one: nil when the grammar allows
    /// no token at all (the vocabulary cannot write what it needs next).
    private func sample(_ logits: [Float], _ a: inout Active) -> (Int32, TokenLogprobs?)? {
        guard let matcher = a.matcher else { return a.sampler.sample(logits) }
        let ends = endTokens, control = constraints.control
        return a.sampler.sample(
            logits,
            accepts: { id in
                ends.contains(id) ? matcher.isComplete : !control.contains(id) && matcher.accepts(tokenizer.bytes(of: id))
            },
            allowed: {
                var mask = constraints.trie.allowed(matcher)
                if matcher.isComplete { for id in ends where Int(id) < mask.count { mask[Int(id)] = true } }
                return mask
            })
    }

    /// What constrained sampling needs of the vocabulary, made once, by whoever first needs it
    /// (the preparing thread, before it submits a constrained request: see `prepareConstraints`).
    private let constraintsMade = Locked<Constraints?>(nil)
    final class Constraints: Sendable {
        let trie: TokenTrie
        let control: Set<Int32>
        init(_ tokenizer: any Tokenizer, _ vocabulary: Int) {
            trie = TokenTrie(tokenizer: tokenizer, vocabulary: vocabulary)
            control = tokenizer.controlTokenIDs
        }
    }

    var constraints: Constraints {
        constraintsMade.withLock { c in
            if let made = c { return made }
            let made = Constraints(tokenizer, model.config.vocabulary)
            c = made
            return made
        }
    }

    /// Builds the vocabulary's trie now (a few hundred milliseconds for a large vocabulary), so that
    /// the engine's thread, whose steps every stream waits for, never does.
    public func prepareConstraints() { _ = constraints }

    /// A sampled token given to its sequence: its events sent; true when that ended the sequence.
    /// nil: its grammar allowed nothing more.
    private func take(_ sampled: (Int32, TokenLogprobs?)?, _ a: inout Active) -> Bool {
        guard let (token, logprobs) = sampled else {
            a.onEvent(.finished(.length, usage(a)))
            return true
        }
        a.last = token
        a.generated += 1
        if a.firstToken == nil {
            a.firstToken = ContinuousClock.now
            a.onEvent(.started(promptTokens: a.request.prompt.count))
        }
        var reason: FinishReason?
        var text: String
        let ends = endTokens.contains(token) || a.request.stopTokens.contains(token)
        if ends {
            text = a.stop.feed(a.decoder.finish()) + a.stop.finish()
            reason = .stop
        } else {
            text = a.stop.feed(a.decoder.append(tokenizer.bytes(of: token)))
            a.matcher?.advance(tokenizer.bytes(of: token))
            if a.stop.stopped {
                reason = .stop
            } else if a.matcher?.isDone == true {
                // The grammar's sentence is whole and nothing but blanks may follow: the answer ends here.
                text += a.stop.feed(a.decoder.finish()) + a.stop.finish()
                reason = .stop
            } else if a.generated >= a.request.maxTokens {
                text += a.stop.feed(a.decoder.finish()) + a.stop.finish()
                reason = .length
            }
        }
        if !ends || !text.isEmpty {
            a.onEvent(.token(token, text: text, logprobs: ends ? nil : logprobs))
        }
        guard let reason else { return false }
        a.onEvent(.finished(reason, usage(a)))
        return true
    }

    private func usage(_ a: Active) -> Usage {
        let now = ContinuousClock.now
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        // The prompt is counted once, with the answer that read it (OpenAI's usage for `n`).
        return Usage(
            promptTokens: a.answer == 0 ? a.request.prompt.count : 0, cachedTokens: a.answer == 0 ? a.cachedTokens : 0, completionTokens: a.generated,
            queuedSeconds: seconds((a.admitted ?? now) - a.submitted), secondsToFirstToken: a.firstToken.map { seconds($0 - a.submitted) },
            seconds: seconds(now - a.submitted))
    }
}
