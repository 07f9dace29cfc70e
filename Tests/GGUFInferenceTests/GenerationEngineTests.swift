import Dispatch
import MServeSystem
import Testing

@testable import GGUFInference

#if canImport(Glibc)
    import Glibc
#endif

/// Continuous batching with the real model: requests that run together get what each gets alone,
/// and leave by end of turn, max_tokens, a stop string or cancellation.
struct GenerationEngineTests {
    static let setup: Result<(LlamaModel, BPETokenizer, [Int32]), GGUFError> = {
        guard let f = SmolFixture.file else { return .failure(GGUFError(SmolFixture.path, "missing: run bash scripts/fetch-smollm2")) }
        do throws(GGUFError) {
            let tok = try BPETokenizer(gguf: f)
            let template = try ChatTemplate(gguf: f)
            guard let text = try? template.render([ChatMessage(role: "user", content: "What is the capital of France?")]) else {
                return .failure(GGUFError(SmolFixture.path, "its chat template did not render"))
            }
            let prompt = tok.encode(text)
            return .success((try LlamaModel(file: f), tok, prompt))
        } catch { return .failure(error) }
    }()

    /// Everything one request heard, and a way to wait for its end.
    final class Listener: Sendable {
        let events = Locked<[GenerationEngine.Event]>([])
        let ended = DispatchSemaphore(value: 0)
        var onEvent: @Sendable (GenerationEngine.Event) -> Void {
            { [self] e in
                events.withLock { $0.append(e) }
                if case .finished = e { ended.signal() }
            }
        }
        func wait() -> (text: String, tokens: [Int32], reason: GenerationEngine.FinishReason?, usage: GenerationEngine.Usage?) {
            _ = ended.wait(timeout: .now() + 120)
            return events.withLock { es in
                var text = "", tokens: [Int32] = [], reason: GenerationEngine.FinishReason?, usage: GenerationEngine.Usage?
                var started = 0
                for e in es {
                    switch e {
                    case .started(let n): started += 1; #expect(tokens.isEmpty && n > 0)
                    case .token(let t, let s, _): tokens.append(t); text += s
                    case .finished(let r, let u): reason = r; usage = u
                    }
                }
                // A sequence that made a token said first that its prompt was read, once.
                #expect(started <= 1 && (tokens.isEmpty || started == 1))
                return (text, tokens, reason, usage)
            }
        }
    }

    /// Whether the engine comes to hold nothing (no sequence, no reservation, every block free)
    /// within a few seconds of its last events: it gives them back right after sending those.
    static func settled(_ engine: GenerationEngine) -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let load = engine.load
            if load.kvReserved == 0 && load.running == 0 && load.waiting == 0 && engine.pool.freeBlocks == engine.pool.blockCount { return true }
            usleep(1000)
        }
        return false
    }

    @Test func requestsRunningTogetherEachGetTheirOwnAnswer() throws {
        let (model, tok, prompt) = try Self.setup.get()
        let engine = try GenerationEngine(
            model: model, tokenizer: tok, limits: .init(maxSequences: 4, kvTokens: 4096, stepTokens: 64, blockTokens: 16))
        defer { engine.shutdown() }
        let a = Listener(), b = Listener(), short = Listener(), stopped = Listener()
        _ = try engine.submit(.init(prompt: prompt, maxTokens: 20), onEvent: a.onEvent)
        _ = try engine.submit(.init(prompt: tok.encode("Numbers: 1 2 3 4"), maxTokens: 6), onEvent: b.onEvent)
        _ = try engine.submit(.init(prompt: prompt, maxTokens: 3), onEvent: short.onEvent)
        _ = try engine.submit(.init(prompt: prompt, maxTokens: 20, stop: [" Paris"]), onEvent: stopped.onEvent)
        let ra = a.wait()
        #expect(ra.text == "The capital of France is Paris." && ra.reason == .stop)
        // <|im_end|> ends the turn: counted, not shown.
        #expect(ra.tokens == [504, 3575, 282, 4649, 314, 7042, 30])
        #expect(ra.usage?.promptTokens == prompt.count && ra.usage?.completionTokens == 8)
        #expect((ra.usage?.secondsToFirstToken ?? -1) >= 0)
        let rs = short.wait()
        #expect(rs.text == "The capital of" && rs.reason == .length && rs.tokens.count == 3)
        let rp = stopped.wait()
        #expect(rp.text == "The capital of France is" && rp.reason == .stop)
        // b alone, token by token, gives the same 6 tokens.
        let rb = b.wait()
        let seq = model.newSequence()
        var greedy: [Int32] = []
        var logits: [Float] = []
        for t in tok.encode("Numbers: 1 2 3 4") { logits = model.step(t, seq) }
        for _ in 0..<6 {
            let next = Int32(Sampler.argmax(logits))
            greedy.append(next)
            logits = model.step(next, seq)
        }
        #expect(rb.tokens == greedy && rb.reason == .length)
        // Every finished sequence gave its place and its blocks back (the engine's thread does so
        // just after it sends the last event).
        #expect(Self.settled(engine) && engine.pool.blockCount == 256)
    }

    @Test func aCancelledRequestLeavesAndFreesItsPlace() throws {
        let (model, tok, prompt) = try Self.setup.get()
        let engine = try GenerationEngine(
            model: model, tokenizer: tok, limits: .init(maxSequences: 1, kvTokens: 4096, stepTokens: 64, blockTokens: 16))
        defer { engine.shutdown() }
        let long = Listener(), next = Listener()
        let id = try engine.submit(
            .init(prompt: prompt, maxTokens: 500, sampling: SamplingParameters(temperature: 1, seed: 3)), onEvent: long.onEvent)
        _ = try engine.submit(.init(prompt: prompt, maxTokens: 2), onEvent: next.onEvent)
        #expect(engine.load.waiting + engine.load.running == 2)
        engine.cancel(id)
        #expect(long.wait().reason == .cancelled)
        // The one that waited for the only place now runs.
        #expect(next.wait().reason == .length)
        #expect(throws: GenerationEngine.Refusal.tooLong(needed: prompt.count + 9000, capacity: 8192)) {
            try engine.submit(.init(prompt: prompt, maxTokens: 9000), onEvent: { _ in })
        }
    }

    /// Prefix caching changes no token: a second turn that begins with the first turn's prompt
    /// and answer is answered as an engine without the cache answers it, greedily, token for
    /// token, and says how much of its prompt it did not compute.
    @Test func aSecondTurnFromTheCacheIsAnsweredAsWithoutIt() throws {
        let (model, tok, prompt) = try Self.setup.get()
        let limits = BatchScheduler.Limits(maxSequences: 4, kvTokens: 4096, stepTokens: 64, blockTokens: 16)
        func conversation(_ engine: GenerationEngine) throws -> [(tokens: [Int32], usage: GenerationEngine.Usage?)] {
            let first = Listener()
            _ = try engine.submit(.init(prompt: prompt, maxTokens: 12), onEvent: first.onEvent)
            let one = first.wait()
            // The next turn: the first's prompt and answer, then more of the conversation.
            let next = prompt + one.tokens + tok.encode("<|im_end|>\n<|im_start|>user\nAnd of Italy?<|im_end|>\n<|im_start|>assistant\n")
            let second = Listener(), again = Listener()
            _ = try engine.submit(.init(prompt: next, maxTokens: 12), onEvent: second.onEvent)
            let two = second.wait()
            // The same prompt once more: all of it but its last token's block comes from the cache.
            _ = try engine.submit(.init(prompt: next, maxTokens: 12), onEvent: again.onEvent)
            let three = again.wait()
            return [(one.tokens, one.usage), (two.tokens, two.usage), (three.tokens, three.usage)]
        }
        let cached = try GenerationEngine(model: model, tokenizer: tok, limits: limits, prefixCaching: true)
        defer { cached.shutdown() }
        let plain = try GenerationEngine(model: model, tokenizer: tok, limits: limits)
        defer { plain.shutdown() }
        let with = try conversation(cached), without = try conversation(plain)
        #expect(with.map(\.tokens) == without.map(\.tokens))
        #expect(without.allSatisfy { $0.usage?.cachedTokens == 0 })
        let promptTokens = with.map { $0.usage?.promptTokens ?? 0 }
        #expect(with[0].usage?.cachedTokens == 0)
        // The first turn's prompt and answer fill whole blocks the second turn reads.
        #expect((with[1].usage?.cachedTokens ?? 0) >= (prompt.count / 16) * 16)
        #expect(with[2].usage?.cachedTokens == (promptTokens[2] - 1) / 16 * 16)
        #expect(cached.pool.stats.hits == 2)
    }

    /// n answers to one prompt: it is read once (the others' usage counts no prompt token), each
    /// answer then goes its own way.  Greedy, all equal the answer alone; sampled with a seed,
    /// they differ from each other, and the same request gives the same answers again; every
    /// block shared or copied goes back to the pool.
    @Test func severalAnswersReadThePromptOnceAndGoTheirOwnWays() throws {
        let (model, tok, prompt) = try Self.setup.get()
        let engine = try GenerationEngine(
            model: model, tokenizer: tok, limits: .init(maxSequences: 4, kvTokens: 4096, stepTokens: 64, blockTokens: 16))
        defer { engine.shutdown() }
        func answers(_ r: GenerationEngine.Request) throws -> [(
            text: String, tokens: [Int32], reason: GenerationEngine.FinishReason?, usage: GenerationEngine.Usage?
        )] {
            let listeners = (0..<r.answers).map { _ in Listener() }
            _ = try engine.submit(r) { answer, event in listeners[answer].onEvent(event) }
            return listeners.map { $0.wait() }
        }
        let alone = try answers(.init(prompt: prompt, maxTokens: 12))[0]
        let greedy = try answers(.init(prompt: prompt, maxTokens: 12, answers: 3))
        #expect(greedy.allSatisfy { $0.tokens == alone.tokens && $0.reason == alone.reason })
        #expect(greedy.map { $0.usage?.promptTokens } == [prompt.count, 0, 0])
        #expect(greedy.map { $0.usage?.completionTokens } == Array(repeating: alone.tokens.count + (alone.reason == .stop ? 1 : 0), count: 3))
        let sampling = SamplingParameters(temperature: 1.5, seed: 11)
        let sampled = try answers(.init(prompt: prompt, maxTokens: 16, sampling: sampling, answers: 4))
        #expect(Set(sampled.map(\.tokens)).count > 1)
        let again = try answers(.init(prompt: prompt, maxTokens: 16, sampling: sampling, answers: 4))
        #expect(again.map(\.tokens) == sampled.map(\.tokens))
        #expect(throws: GenerationEngine.Refusal.tooManyAnswers(5, limit: 4)) {
            try engine.submit(.init(prompt: prompt, maxTokens: 4, answers: 5)) { _, _ in }
        }
        #expect(Self.settled(engine))
    }

    /// Cancelling a request of several answers ends them all, wherever each is.
    @Test func cancellingSeveralAnswersEndsThemAll() throws {
        let (model, tok, prompt) = try Self.setup.get()
        let engine = try GenerationEngine(
            model: model, tokenizer: tok, limits: .init(maxSequences: 4, kvTokens: 4096, stepTokens: 64, blockTokens: 16))
        defer { engine.shutdown() }
        let listeners = (0..<3).map { _ in Listener() }
        let id = try engine.submit(.init(prompt: prompt, maxTokens: 400, sampling: SamplingParameters(temperature: 1, seed: 5), answers: 3)) {
            answer, event in
            listeners[answer].onEvent(event)
        }
        engine.cancel(id)
        #expect(listeners.map { $0.wait().reason } == [.cancelled, .cancelled, .cancelled])
        #expect(Self.settled(engine))
    }
}
