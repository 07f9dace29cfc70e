import Testing
@testable import LLM
import MServeJSON

/// The forward pass against the exact float32 computation in numpy on the same weights
/// (forward.json, make_forward.py): the chat prompt the template and tokenizer make, the top
/// logits at three positions, and eight greedy tokens.
struct ForwardTests {
    @Test func logitsAndGreedyTokensMatchTheFloat32Reference() throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let model = try LlamaModel(file: f)
        #expect(model.config == LlamaModel.Config(layers: 30, dim: 576, heads: 9, kvHeads: 3, headDim: 64, feedForward: 1536,
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
