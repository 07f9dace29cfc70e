import Testing
@testable import LLM
import MServeJSON

/// The tokenizer against Hugging Face `tokenizers` configured from the same file
/// (Tests/fixtures/smollm2/tokens.json and make_tokens.py, its generator).
struct TokenizerTests {
    static let tokenizer: Result<BPETokenizer, GGUFError> = {
        guard let f = SmolFixture.file else { return .failure(GGUFError(SmolFixture.path, "missing: run bash scripts/fetch-smollm2")) }
        do throws(GGUFError) { return .success(try BPETokenizer(gguf: f)) } catch { return .failure(error) }
    }()

    static let cases: [(text: String, ids: [Int32])] = {
        let json = SmolFixture.json("tokens.json")
        guard case .array(let items)? = json["texts"] else { return [] }
        return items.compactMap { item in
            guard let text = item["text"]?.stringValue, case .array(let ids)? = item["ids"] else { return nil }
            return (text, ids.compactMap { $0.doubleValue.map { Int32($0) } })
        }
    }()

    func tokenizer() throws -> BPETokenizer {
        try Self.tokenizer.get()
    }

    @Test func helloWorldAsLlamaCppTokenizesIt() throws {
        #expect(try tokenizer().encode("Hello, world! 123") == [19556, 28, 905, 17, 216, 33, 34, 35])
        // A byte the vocabulary lacks is dropped, as Hugging Face's tokenizer drops it.
        #expect(try tokenizer().encode("a\u{4}b") == [81, 82])
    }

    @Test func everyFixtureTextGivesTheReferenceIdsAndDecodesBack() throws {
        let t = try tokenizer()
        #expect(Self.cases.count >= 50)
        for c in Self.cases {
            #expect(t.encode(c.text) == c.ids, "\(c.text.debugDescription)")
            #expect(t.decode(c.ids) == c.text, "\(c.text.debugDescription)")
        }
    }

    @Test func controlTokensAreMatchedAsText() throws {
        let t = try tokenizer()
        #expect(t.controlTokens == Array(0...16))
        #expect(t.encode("<|im_start|>user\nhi<|im_end|>") == [1, 4093, 198, 6004, 2])
        #expect(t.id(of: "<|im_end|>") == 2)
    }

    @Test func streamedPiecesNeverSplitACharacter() throws {
        let t = try tokenizer()
        let text = "Emoji 👨‍👩‍👧 and 日本語, ok"
        var d = StreamingDecoder()
        var pieces: [String] = []
        for id in t.encode(text) { pieces.append(d.append(t.bytes(of: id))) }
        pieces.append(d.finish())
        #expect(pieces.joined() == text)
        #expect(!pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") })
        // Byte by byte, too.
        var b = StreamingDecoder()
        let out = Array(text.utf8).map { b.append([$0]) }.joined() + b.finish()
        #expect(out == text)
    }
}

/// The ChatML renderer against Jinja2 running the file's own template (chat.json, make_chat.py).
struct ChatTemplateTests {
    @Test func rendersAsJinjaRendersTheFilesTemplate() throws {
        let f = try #require(SmolFixture.file, "run bash scripts/fetch-smollm2")
        let template = try ChatTemplate(gguf: f)
        #expect(template.defaultSystem == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        guard case .array(let renders)? = SmolFixture.json("chat.json")["renders"] else { Issue.record("no chat.json"); return }
        #expect(renders.count == 10)
        for r in renders {
            guard case .array(let ms)? = r["messages"] else { continue }
            let messages = ms.map { ChatMessage(role: $0["role"]?.stringValue ?? "", content: $0["content"]?.stringValue ?? "") }
            let prompt = r["add_generation_prompt"] == .bool(true)
            #expect(template.render(messages, addGenerationPrompt: prompt) == r["text"]?.stringValue)
        }
    }

    @Test func otherTemplatesAreRefusedByName() {
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
        #expect(throws: GGUFError.self) { try ChatTemplate(jinja: llama3) }
        let plain = try? ChatTemplate(jinja: "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
        #expect(plain == ChatTemplate(defaultSystem: nil))
        #expect(plain?.render([ChatMessage(role: "user", content: "hi")]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }
}
