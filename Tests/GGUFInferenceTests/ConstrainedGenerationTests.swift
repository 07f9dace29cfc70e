import Dispatch
import Grammar
import MServeJSON
import MServeSystem
import Testing

@testable import GGUFInference

/// Structured output on SmolLM2's vocabulary: the trie's walk finds exactly the tokens a grammar
/// takes (against checking every token), and the engine's answers under a grammar are its
/// sentences, greedy and sampled, alone and as several answers.
struct ConstrainedGenerationTests {
    @Test func theTriesWalkFindsExactlyTheTokensTheGrammarTakes() throws {
        guard let f = SmolFixture.file else { throw GGUFError(SmolFixture.path, "missing: run bash scripts/fetch-smollm2") }
        let tok = try BPETokenizer(gguf: f)
        let vocabulary = 49152
        let trie = TokenTrie(tokenizer: tok, vocabulary: vocabulary)
        let g = try Grammar(
            gbnf: try JSONSchemaGrammar.gbnf([
                "type": "object", "properties": ["name": ["type": "string"], "n": ["enum": [1, 22, "é"]]],
                "required": ["name", "n"]
            ]))
        let control = tok.controlTokenIDs
        // Places in an answer: its start, inside a string, after a key, inside a number, half a character in.
        for prefix in ["", "{\"na", "{\"name\": \"Jo", "{\"name\": \"x\", \"n\": ", "{\"name\": \"x\", \"n\": 2", "{\"name\": \"x\", \"n\": \"\u{e9}"]
        {
            for cut in [0, 1] where cut == 0 || prefix.hasSuffix("\u{e9}") {
                var m = GrammarMatcher(g)
                let bytes = Array(prefix.utf8)
                let took = m.advance(Array(bytes.dropLast(cut)))
                #expect(took)
                let mask = trie.allowed(m)
                var expected = 0, agree = true
                for id in 0..<Int32(vocabulary) where !control.contains(id) {
                    let ok = !tok.bytes(of: id).isEmpty && m.accepts(tok.bytes(of: id))
                    if ok { expected += 1 }
                    if ok != mask[Int(id)] { agree = false }
                }
                #expect(agree && mask.filter { $0 }.count == expected, "\(prefix) less \(cut): \(expected) tokens")
                #expect(!control.contains { mask[Int($0)] })
            }
        }
    }

    @Test func answersUnderAGrammarAreItsSentences() throws {
        let (model, tok, prompt) = try GenerationEngineTests.setup.get()
        let engine = try GenerationEngine(
            model: model, tokenizer: tok, limits: .init(maxSequences: 4, kvTokens: 4096, stepTokens: 64, blockTokens: 16))
        defer { engine.shutdown() }
        engine.prepareConstraints()
        func answers(_ r: GenerationEngine.Request) throws -> [(text: String, reason: GenerationEngine.FinishReason?)] {
            let listeners = (0..<r.answers).map { _ in GenerationEngineTests.Listener() }
            _ = try engine.submit(r) { answer, event in listeners[answer].onEvent(event) }
            return listeners.map { l in
                let w = l.wait(); return (w.text, w.reason)
            }
        }
        // The question is about France; the grammar allows only this: the model's greedy pick within it.
        let city = try Grammar(gbnf: "root ::= \"The answer is \" (\"Paris\" | \"Rome\" | \"Lyon\") \".\"")
        let greedy = try answers(.init(prompt: prompt, maxTokens: 20, grammar: city))[0]
        #expect(greedy.text == "The answer is Paris." && greedy.reason == .stop)
        // A schema, sampled hot, three answers: each parses and matches, or ran out of tokens.
        let schema: JSON = [
            "type": "object", "properties": ["city": ["enum": ["Paris", "Lyon"]], "population": ["type": "integer", "minimum": 0, "maximum": 99]],
            "required": ["city", "population"]
        ]
        let g = try Grammar(gbnf: try JSONSchemaGrammar.gbnf(schema))
        let hot = try answers(.init(prompt: prompt, maxTokens: 40, sampling: SamplingParameters(temperature: 1.5, seed: 4), answers: 3, grammar: g))
        for a in hot where a.reason == .stop {
            let v = try JSONParser.parse(a.text)
            #expect(["Paris", "Lyon"].contains(v["city"]?.stringValue ?? "") && (0...99).contains(v["population"]?.intValue ?? -1), "\(a.text)")
        }
        #expect(hot.contains { $0.reason == .stop })
    }
}
