import MServeJSON
import Testing

@testable import GGUFInference

/// The forward pass against the exact float32 computation in numpy on the same weights
/// (forward.json, make_forward.py): the chat prompt the template and tokenizer make, the top
/// logits at three positions, and eight greedy tokens.
struct ForwardTests {
    @Test func logitsAndGreedyTokensMatchTheFloat32Reference() throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let model = try LlamaModel(file: f)
        #expect(
            model.config
                == LlamaModel.Config(
                    layers: 30, dim: 576, heads: 9, kvHeads: 3, headDim: 64, feedForward: 1536,
                    vocabulary: 49_152, context: 8192, eps: 1e-5, ropeBase: 100_000))
        let ref = SmolFixture.json("forward.json")
        let ints = { (j: JSON?) -> [Int32] in if case .array(let a)? = j { a.compactMap { $0.doubleValue.map { Int32($0) } } } else { [] } }
        let prompt = ints(ref["prompt"])
        // The template and the tokenizer make the same prompt.
        let text = try ChatTemplate(gguf: f).render([ChatMessage(role: "user", content: "What is the capital of France?")])
        #expect(try BPETokenizer(gguf: f).encode(text) == prompt)

        let seq = model.newSequence()
        var checked = 0
        for (p, token) in prompt.enumerated() {
            let logits = model.step(token, seq)
            guard let at = ref["positions"]?[String(p)], at != .null else { continue }
            checked += 1
            let top = ints(at["top_ids"])
            let topLogits: [Float] = if case .array(let a)? = at["top_logits"] { a.map { Float($0.doubleValue ?? 0) } } else { [] }
            let mine = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(10).map { Int32($0) }
            #expect(Array(mine.prefix(5)) == Array(top.prefix(5)), "position \(p)")
            #expect(topLogits.count == 10)
            for (id, want) in zip(top, topLogits) {
                #expect(abs(logits[Int(id)] - want) < 0.02, "position \(p), token \(id): \(logits[Int(id)]) against \(want)")
            }
        }
        #expect(checked == 3)
        var greedy: [Int32] = []
        // The prompt's last position is in the cache: the greedy tokens continue from it.
        var next = try #require(prompt.last)
        let again = model.newSequence()
        for t in prompt.dropLast() { _ = model.step(t, again) }
        for _ in 0..<8 {
            let logits = model.step(next, again)
            next = Int32(logits.indices.max { logits[$0] < logits[$1] } ?? 0)
            greedy.append(next)
        }
        #expect(greedy == ints(ref["greedy"]))
        #expect(try BPETokenizer(gguf: f).decode(greedy) == "The capital of France is Paris.<|im_end|>")
    }
}

/// One forward pass over several sequences, prompts in chunks and decodes together, gives each
/// sequence what it gets alone, token by token.
struct BatchedForwardTests {
    @Test(arguments: [LlamaModel.Activations.float32, .int16, .int8])
    func aPackedBatchEqualsEachSequenceAlone(_ activations: LlamaModel.Activations) throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let model = try LlamaModel(file: f, activations: activations)
        let tok = try BPETokenizer(gguf: f)
        let a = tok.encode("The capital of France is")
        let b = tok.encode("Numbers: 1 2 3 4")
        /// A prompt a token at a time, its last as a prompt's or as a decode.
        func alone(_ tokens: [Int32], lastDecoded: Bool) throws -> [Float] {
            let s = model.newSequence()
            for t in tokens.dropLast() { _ = model.forward([LlamaModel.BatchEntry(s, [t], wantsLogits: false)]) }
            return try #require(model.forward([LlamaModel.BatchEntry(s, [tokens[tokens.count - 1]], prompt: !lastDecoded)])[0])
        }
        let wantA = try alone(a, lastDecoded: false), wantB = try alone(b, lastDecoded: true)
        // b's prompt but its last token, one token at a time; then a's whole prompt as one chunk
        // beside b's last token as a decode, in one pass.
        let sa = model.newSequence(), sb = model.newSequence()
        for t in b.dropLast() { _ = model.forward([LlamaModel.BatchEntry(sb, [t])]) }
        let out = model.forward([LlamaModel.BatchEntry(sa, a), LlamaModel.BatchEntry(sb, [b[b.count - 1]], prompt: false)])
        let gotA = try #require(out[0]), gotB = try #require(out[1])
        let worstA = zip(gotA, wantA).map { abs($0 - $1) }.max() ?? 1
        let worstB = zip(gotB, wantB).map { abs($0 - $1) }.max() ?? 1
        #expect(worstA < 1e-3 && worstB < 1e-3, "largest differences \(worstA), \(worstB)")
        #expect(sa.count == a.count && sb.count == b.count)
        // An entry that does not want logits gets none.
        #expect(model.forward([LlamaModel.BatchEntry(model.newSequence(), a, wantsLogits: false)]) == [nil])
    }
}

/// Quantized activations against float32 ones (which match the reference), on a decode after
/// the chat prompt (the prompt's last token fed as one; the prompt before it, read by the prompt
/// kernel, is float32 whatever the activations): int16 within 0.01 of them, as the issue asks of
/// the forward pass; int8 at least as close as llama.cpp is (measured for the issue, with the
/// whole prompt quantized: 0.36 on average, 1.15 at most).
struct QuantizedActivationTests {
    @Test func quantizedLogitsStayCloseToFloat32() throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let text = try ChatTemplate(gguf: f).render([ChatMessage(role: "user", content: "What is the capital of France?")])
        let prompt = try BPETokenizer(gguf: f).encode(text)
        func firstStep(_ a: LlamaModel.Activations) throws -> [Float] {
            let model = try LlamaModel(file: f, activations: a)
            let seq = model.newSequence()
            _ = model.forward([LlamaModel.BatchEntry(seq, Array(prompt.dropLast()), wantsLogits: false)])
            return try #require(model.forward([LlamaModel.BatchEntry(seq, [prompt[prompt.count - 1]], prompt: false)])[0])
        }
        let exact = try firstStep(.float32)
        func distance(_ a: LlamaModel.Activations) throws -> (mean: Float, max: Float) {
            let differences = zip(exact, try firstStep(a)).map { abs($0 - $1) }
            let d = (differences.reduce(0, +) / Float(differences.count), differences.max() ?? 0)
            print("\(a) activations against float32, first step of \(prompt.count) tokens: mean \(d.0), max \(d.1)")
            return d
        }
        let int16 = try distance(.int16), int8 = try distance(.int8)
        #expect(int16.max < 0.01, "int16: \(int16)")
        #expect(int8.mean < 0.36 && int8.max < 1.15, "int8: \(int8)")
    }
}

/// The first step after 20 chat prompts against the float32 reference (first_steps.json,
/// make_first_steps.py): the 20 largest logits and 40 at fixed ids within 0.01, with float32
/// activations and with int16 ones (the server's default); and the greedy answer to "Name three
/// primary colors." token for token.
struct FirstStepTests {
    static func numbers(_ j: JSON?) -> [Double] { if case .array(let a)? = j { a.compactMap(\.doubleValue) } else { [] } }

    @Test(arguments: [LlamaModel.Activations.float32, .int16])
    func twentyPromptsMatchTheReference(_ activations: LlamaModel.Activations) throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let model = try LlamaModel(file: f, activations: activations)
        let ref = SmolFixture.json("first_steps.json")
        guard case .array(let steps)? = ref["steps"] else { Issue.record("no steps in first_steps.json"); return }
        #expect(steps.count == 20)
        let fixed = FirstStepTests.numbers(ref["fixed_ids"]).map { Int($0) }
        // All twenty prompts in one packed pass, as a batch of sequences.
        let prompts = steps.map { FirstStepTests.numbers($0["prompt"]).map { Int32($0) } }
        let out = model.forward(prompts.map { LlamaModel.BatchEntry(model.newSequence(), $0) })
        var worst: Float = 0
        for (step, logits) in zip(steps, out) {
            let logits = try #require(logits)
            let ids = FirstStepTests.numbers(step["top_ids"]).map { Int($0) } + fixed
            let want = FirstStepTests.numbers(step["top_logits"]) + FirstStepTests.numbers(step["fixed_logits"])
            #expect(ids.count == 60 && want.count == 60)
            for (id, w) in zip(ids, want) { worst = max(worst, abs(logits[id] - Float(w))) }
            #expect(logits.indices.max { logits[$0] < logits[$1] } == ids[0], "\(step["question"]?.text ?? "")")
        }
        print("\(activations) activations, 20 prompts' first steps against the float32 reference: largest difference \(worst)")
        #expect(worst < 0.01)
        // Greedy, token by token.
        let seq = model.newSequence()
        var next = try #require(out[1].map { l in Int32(l.indices.max { l[$0] < l[$1] } ?? 0) })
        _ = model.forward([LlamaModel.BatchEntry(seq, prompts[1], wantsLogits: false)])
        var answer: [Int32] = [next]
        while next != 2 && answer.count < 20 {
            let l = model.step(next, seq)
            next = Int32(l.indices.max { l[$0] < l[$1] } ?? 0)
            answer.append(next)
        }
        #expect(answer.map(Double.init) == FirstStepTests.numbers(ref["colors_greedy"]))
    }
}
