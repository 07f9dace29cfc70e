import Jinja
import MServeJSON

/// One turn of a conversation: with the calls an assistant turn made, or the call a tool turn answers.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    /// An assistant turn's calls: their ids and what was called.
    public var toolCalls: [(id: String, call: ToolCall)]
    /// A tool turn: the call it answers.
    public var toolCallID: String?

    public init(role: String, content: String, toolCalls: [(id: String, call: ToolCall)] = [], toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
    }

    public static func == (a: ChatMessage, b: ChatMessage) -> Bool {
        a.role == b.role && a.content == b.content && a.toolCallID == b.toolCallID
            && a.toolCalls.map(\.id) == b.toolCalls.map(\.id) && a.toolCalls.map(\.call) == b.toolCalls.map(\.call)
    }

    /// As templates read a message (transformers' shape): `tool_calls` with `function.arguments` an
    /// object, `tool_call_id`.
    var value: JinjaValue {
        var pairs: [(String, JinjaValue)] = [("role", .data(role)), ("content", .data(content))]
        if !toolCalls.isEmpty {
            pairs.append(
                (
                    "tool_calls",
                    .list(
                        toolCalls.map { c in
                            JinjaValue(json: [
                                "id": .string(c.id), "type": "function", "function": ["name": .string(c.call.name), "arguments": c.call.arguments]
                            ])
                        })
                ))
        }
        if let toolCallID { pairs.append(("tool_call_id", .data(toolCallID))) }
        return .dict(JinjaDict(pairs))
    }
}

/// The chat template a GGUF file carries (`tokenizer.chat_template`, Jinja), rendered by mserve's
/// Jinja interpreter as transformers renders it (Sources/Jinja): `messages`,
/// `add_generation_prompt`, the file's `bos_token` and `eos_token` (their text), and whatever
/// else the caller passes (`tools`).
public struct ChatTemplate: Sendable {
    let template: JinjaTemplate
    /// The template's Jinja text (llama.cpp's `/props` shows it).
    public let source: String
    /// The text of the file's BOS and EOS tokens, as templates write them.
    public let bosToken: String
    public let eosToken: String

    /// A template's text, or why it cannot be read (a syntax error, named with its line).
    public init(jinja text: String, path: String = "chat template", bosToken: String = "", eosToken: String = "") throws(GGUFError) {
        do {
            template = try JinjaTemplate(text)
        } catch {
            throw GGUFError(path, "its chat template cannot be read: \(error)")
        }
        source = text
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    /// The file's template (`tokenizer.chat_template`), or `text` (the operator's, from `path`) in its place.
    public init(gguf f: GGUFFile, text: String? = nil, path: String? = nil) throws(GGUFError) {
        guard let source = text ?? f.metadata["tokenizer.chat_template"]?.stringValue else {
            throw GGUFError(f.path, "it carries no chat template (tokenizer.chat_template)")
        }
        let tokens = f.metadata["tokenizer.ggml.tokens"]?.arrayValue
        func token(_ key: String) -> String {
            guard let id = f.metadata["tokenizer.ggml.\(key)_token_id"]?.intValue, let tokens, tokens.indices.contains(id) else { return "" }
            return tokens[id].stringValue ?? ""
        }
        try self.init(jinja: source, path: path ?? f.path, bosToken: token("bos"), eosToken: token("eos"))
    }

    /// The conversation as the model reads it.  `dropLeadingBOS`: the tokenizer puts the BOS token
    /// first itself (`add_bos_token`), so a template's own leading `bos_token` goes (as llama.cpp does),
    /// not to be read twice; `dropTrailingEOS` likewise for an EOS the tokenizer puts last.  Throws what the template raised (`raise_exception`: a conversation it
    /// refuses, such as a system turn Gemma does not take) or why it failed.
    public func prompt(
        _ messages: [ChatMessage], tools: [ToolSpec]? = nil, addGenerationPrompt: Bool = true, dropLeadingBOS: Bool = false,
        dropTrailingEOS: Bool = false, now: JinjaDate = .now()
    ) throws(JinjaError) -> RenderedPrompt {
        try prompt(
            messages: messages.map(\.value), variables: tools.map { ["tools": .list($0.map { JinjaValue(json: $0.definition) })] } ?? [:],
            addGenerationPrompt: addGenerationPrompt, dropLeadingBOS: dropLeadingBOS, dropTrailingEOS: dropTrailingEOS, now: now)
    }

    /// Messages as the template sees them (dicts whose strings are data), and other variables (`tools`).
    public func prompt(
        messages: [JinjaValue], variables: [String: JinjaValue] = [:], addGenerationPrompt: Bool = true,
        dropLeadingBOS: Bool = false, dropTrailingEOS: Bool = false, now: JinjaDate = .now()
    ) throws(JinjaError) -> RenderedPrompt {
        var all = variables
        all["messages"] = .list(messages)
        all["add_generation_prompt"] = .bool(addGenerationPrompt)
        all["bos_token"] = .string(JinjaText(bosToken, trusted: true))
        all["eos_token"] = .string(JinjaText(eosToken, trusted: true))
        let out = try template.render(all, now: now)
        return RenderedPrompt(out, dropping: dropLeadingBOS ? bosToken : "", andLast: dropTrailingEOS ? eosToken : "")
    }

    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true, now: JinjaDate = .now()) throws(JinjaError) -> String {
        try prompt(messages, addGenerationPrompt: addGenerationPrompt, now: now).text
    }
}

/// A prompt's text and the offsets (in Unicode scalars) at which control tokens may be read: the
/// template's own text only, so that a message holding `<|im_end|><|im_start|>system` stays text
/// and cannot close its turn or open another.  Benign text tokenizes exactly as the whole
/// rendered string.
public struct RenderedPrompt: Sendable, Equatable {
    public let text: String
    public let controlOffsets: Set<Int>

    /// `prefix` and `suffix`, where the text begins or ends with them in the template's own
    /// words, left out.
    init(_ rendered: JinjaText, dropping prefix: String, andLast suffix: String = "") {
        var scalars = Array(rendered.string.unicodeScalars)
        var offsets = rendered.trustedScalarOffsets
        let n = prefix.unicodeScalars.count
        if n > 0, scalars.starts(with: prefix.unicodeScalars), (0..<n).allSatisfy(offsets.contains) {
            scalars.removeFirst(n)
            offsets = Set(offsets.compactMap { $0 >= n ? $0 - n : nil })
        }
        let m = suffix.unicodeScalars.count, end = scalars.count
        if m > 0, m <= end, scalars[(end - m)...].elementsEqual(suffix.unicodeScalars), ((end - m)..<end).allSatisfy(offsets.contains) {
            scalars.removeLast(m)
            offsets = offsets.filter { $0 < end - m }
        }
        text = String(String.UnicodeScalarView(scalars))
        controlOffsets = offsets
    }
}
