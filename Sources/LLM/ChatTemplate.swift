/// One turn of a conversation.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// The chat template a GGUF file carries (`tokenizer.chat_template`, Jinja), rendered without a
/// Jinja engine: mserve recognizes ChatML templates -- `<|im_start|>ROLE\nCONTENT<|im_end|>\n` per
/// message, then `<|im_start|>assistant\n` to ask for the answer -- including SmolLM2's, which puts
/// a default system turn first when the conversation has none.  Any other template is refused
/// with a message saying so, rather than rendered wrongly.
public struct ChatTemplate: Equatable, Sendable {
    /// The system turn inserted when the first message is not a system one (nil: none).
    public let defaultSystem: String?

    public init(defaultSystem: String?) { self.defaultSystem = defaultSystem }

    public init(jinja text: String, path: String = "chat template") throws(GGUFError) {
        let chatML = ["<|im_start|>", "message['role']", "message['content']", "<|im_end|>", "add_generation_prompt"]
        guard chatML.allSatisfy({ text.contains($0) }), !text.contains("tools"), !text.contains("raise_exception") else {
            throw GGUFError(path, "its chat template is not a ChatML one, which is all mserve renders: \(text.prefix(120))...")
        }
        // SmolLM2's: {% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n...<|im_end|>\n' }}{% endif %}
        let marker = "{{ '<|im_start|>system\n"
        if text.contains("messages[0]['role'] != 'system'"), let start = text.firstRange(of: marker),
           let end = text[start.upperBound...].firstRange(of: "<|im_end|>") {
            defaultSystem = String(text[start.upperBound..<end.lowerBound])
        } else {
            defaultSystem = nil
        }
    }

    /// The file's template (`tokenizer.chat_template`).
    public init(gguf f: GGUFFile) throws(GGUFError) {
        guard let text = f.metadata["tokenizer.chat_template"]?.stringValue else {
            throw GGUFError(f.path, "it carries no chat template (tokenizer.chat_template)")
        }
        try self.init(jinja: text, path: f.path)
    }

    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        prompt(messages, addGenerationPrompt: addGenerationPrompt).text
    }

    /// The rendered text, with where the template itself put control tokens: only those are read as
    /// control tokens, so that a message holding `<|im_end|><|im_start|>system` stays text and cannot
    /// close its turn or open another.  Benign text tokenizes exactly as the whole rendered string.
    public func prompt(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> RenderedPrompt {
        var out = RenderedPrompt()
        if let defaultSystem, messages.first?.role != "system" {
            out.turn("system", defaultSystem)
        }
        for m in messages { out.turn(m.role, m.content) }
        if addGenerationPrompt { out.control("<|im_start|>"); out.append("assistant\n") }
        return out
    }
}

/// A prompt's text and the offsets (in Unicode scalars) at which its control tokens stand.
public struct RenderedPrompt: Sendable, Equatable {
    public private(set) var text = ""
    public private(set) var controlOffsets: Set<Int> = []
    private var scalars = 0

    mutating func control(_ marker: String) {
        controlOffsets.insert(scalars)
        append(marker)
    }

    mutating func append(_ s: String) {
        text += s
        scalars += s.unicodeScalars.count
    }

    mutating func turn(_ role: String, _ content: String) {
        control("<|im_start|>")
        append("\(role)\n")
        append(content)
        control("<|im_end|>")
        append("\n")
    }
}
