/// An OpenAI chat or text completions request as a generative model takes it (its own input), or
/// the 400 that says what is wrong with it.  Pure: tested without a server.
struct OpenAICompletionRequest: Equatable {
    /// What the model gets: `messages` or `prompt`, and the sampling parameters it knows.
    let input: JSON
    let stream: Bool
    /// `stream_options.include_usage`: a last chunk carries the usage.
    let includeUsage: Bool
    /// `logprobs` asked for: each token's log-probability in the answer or its chunks.
    let logprobs: Bool

    init(_ body: JSON, chat: Bool) throws(HTTPError) {
        func bad(_ message: String, _ param: String) -> HTTPError { HTTPError(400, message, param: param) }
        var input: [(String, JSON)] = []
        if chat {
            guard let messages = body["messages"], messages != .null else { throw bad("messages is required", "messages") }
            input.append(("messages", messages))
        } else {
            switch body["prompt"] {
            case .string(let s)?: input.append(("prompt", .string(s)))
            case .array(let items)? where !items.isEmpty && items.allSatisfy({ $0.stringValue != nil }):
                input.append(("prompt", items.count == 1 ? items[0] : .array(items)))
            // Token ids: one prompt ([1, 2]) or several ([[1, 2], [3]]); the model checks them.
            case .array(let items)?
            where !items.isEmpty
                && (items.allSatisfy { $0.intValue != nil }
                    || items.allSatisfy { if case .array(let l) = $0 { l.allSatisfy { $0.intValue != nil } } else { false } }):
                input.append(("prompt", .array(items)))
            default: throw bad("prompt must be a string, a list of strings, or token ids (a list of integers, or of lists of them)", "prompt")
            }
        }
        // Several answers to each prompt: the model takes up to its --max-batch-size.
        switch body["n"] {
        case nil, .some(.null), .some(.int(1)): break
        case .int(let n)? where n > 1: input.append(("n", .int(n)))
        case let v?: throw bad("n must be a positive integer, got \(v.text)", "n")
        }
        switch body["stream"] {
        case nil, .some(.null), .some(.bool(false)): stream = false
        case .some(.bool(true)): stream = true
        case let v?: throw bad("stream must be true or false, got \(v.text)", "stream")
        }
        switch body["stream_options"] {
        case nil, .some(.null): includeUsage = false
        case .some(let o) where o.isObject:
            guard stream else { throw bad("stream_options is only allowed when stream is true", "stream_options") }
            switch o["include_usage"] {
            case nil, .some(.null), .some(.bool(false)): includeUsage = false
            case .some(.bool(true)): includeUsage = true
            case let v?: throw bad("stream_options.include_usage must be true or false, got \(v.text)", "stream_options")
            }
        case let v?: throw bad("stream_options must be an object, got \(v.text)", "stream_options")
        }
        // max_completion_tokens is the newer name (chat); it wins over max_tokens.
        for key in ["max_completion_tokens", "max_tokens"] {
            if let v = body[key], v != .null {
                input.append(("max_tokens", v))
                break
            }
        }
        OpenAIFields.pass(OpenAIFields.sampling + OpenAIFields.constraints, from: body, into: &input)
        // Chat: `logprobs: true` and `top_logprobs` (0-20); completions: `logprobs: N` (0-20), N the
        // alternatives.  The model gets `logprobs` and `top_logprobs` in its own input's terms.
        var top: Int64?
        switch (chat, body["logprobs"]) {
        case (_, nil), (_, .some(.null)), (true, .some(.bool(false))): logprobs = false
        case (true, .some(.bool(true))): logprobs = true
        case (false, .some(.int(let n))) where (0...20).contains(n):
            logprobs = true
            top = n
        case (_, let v?):
            throw bad(chat ? "logprobs must be true or false, got \(v.text)" : "logprobs must be an integer from 0 to 20, got \(v.text)", "logprobs")
        }
        if chat {
            switch body["top_logprobs"] {
            case nil, .some(.null): break
            case .int(let n)? where (0...20).contains(n):
                guard logprobs else { throw bad("top_logprobs needs logprobs: true", "top_logprobs") }
                top = n
            case let v?: throw bad("top_logprobs must be an integer from 0 to 20, got \(v.text)", "top_logprobs")
            }
        }
        if logprobs { input += [("logprobs", true), ("top_logprobs", .int(top ?? 0))] }
        // What this server does not do is refused rather than ignored.
        let unsupported: [(String, (JSON) -> Bool)] = [
            ("functions", { _ in true }), ("function_call", { _ in true }),
            ("echo", { $0 == .bool(true) }), ("suffix", { $0.stringValue.map { !$0.isEmpty } ?? true }),
            ("best_of", { $0 != .int(1) })
        ]
        for (key, refused) in unsupported {
            if let v = body[key], v != .null, refused(v) { throw bad("\(key) is not supported by this server", key) }
        }
        self.input = .object(input)
    }
}

/// How a generative model's answer and stream look in OpenAI's API: `chat.completion` and its
/// chunks (a first chunk with the role, content deltas, a last one with the finish reason), or
/// `text_completion`; usage and llama.cpp's timings on the answer and the last chunk.
struct OpenAICompletionShape: GenerationPresenter {
    let id: String
    let model: String
    let created: Int64
    let chat: Bool
    let stream: Bool
    let includeUsage: Bool
    /// Each chunk and the answer carry the tokens' log-probabilities.
    let logprobs: Bool
    /// Choices whose first chunk (the role) went out.
    private var begun: Set<Int> = []
    /// Log-probabilities of tokens whose text is held back (part of a character, a possible stop
    /// string): they go with the next chunk of that choice.  And each choice's text so far, in
    /// characters (the completions shape's `text_offset`).
    private var pending: [Int: [TokenLogprob]] = [:]
    private var offsets: [Int: Int] = [:]
    /// Tool calls sent so far of each choice.
    private var calls: [Int: Int] = [:]

    init(id: String, model: String, created: Int64, chat: Bool, stream: Bool = false, includeUsage: Bool, logprobs: Bool = false) {
        self.id = id
        self.model = model
        self.created = created
        self.chat = chat
        self.stream = stream
        self.includeUsage = includeUsage
        self.logprobs = logprobs
    }

    /// A choice's `logprobs` in this API's shape (null when not asked for).
    private mutating func logprobsJSON(_ i: Int, _ list: [TokenLogprob]) -> JSON {
        guard logprobs else { return .null }
        if chat { return ["content": .array(list.map(\.json))] }
        defer { offsets[i, default: 0] += list.reduce(0) { $0 + $1.token.count } }
        return TokenLogprob.completionsJSON(list, offset: offsets[i, default: 0])
    }

    private var object: JSON { chat ? "chat.completion" : "text_completion" }

    private func head(_ object: JSON) -> [(String, JSON)] {
        [("id", .string(id)), ("object", object), ("created", .int(created)), ("model", .string(model))]
    }

    /// OpenAI's usage: the token counts (the cached ones in `prompt_tokens_details`), without the
    /// model's timings.
    static func usage(_ u: JSON) -> JSON {
        [
            "prompt_tokens": u["prompt_tokens"] ?? .int(0), "completion_tokens": u["completion_tokens"] ?? .int(0),
            "total_tokens": u["total_tokens"] ?? .int(0), "prompt_tokens_details": u["prompt_tokens_details"] ?? ["cached_tokens": 0]
        ]
    }

    private func chunk(
        _ index: Int, text: String?, role: Bool = false, finish: JSON = .null, timings: JSON? = nil,
        logprobs: JSON = .null, toolCalls: [JSON] = []
    ) -> JSON {
        var choice: [(String, JSON)] = [("index", .int(Int64(index)))]
        if chat {
            var delta: [(String, JSON)] = role ? [("role", "assistant")] : []
            if let text { delta.append(("content", .string(text))) }
            if !toolCalls.isEmpty { delta.append(("tool_calls", .array(toolCalls))) }
            choice.append(("delta", .object(delta)))
        } else {
            choice.append(("text", .string(text ?? "")))
        }
        choice += [("logprobs", logprobs), ("finish_reason", finish)]
        var out = head(chat ? "chat.completion.chunk" : "text_completion") + [("choices", .array([.object(choice)]))]
        if includeUsage { out.append(("usage", .null)) }
        if let timings { out.append(("timings", timings)) }
        return .object(out)
    }

    /// The chunks one of the model's events becomes: the role first (chat), then the text, and
    /// the finish reason with llama.cpp's timings.
    var streamFormat: StreamFormat? { stream ? .sse : nil }

    mutating func pieces(for event: GenerationEvent) -> [JSON] {
        // The role goes with the first text (or the end), not with `started`: a client that reads
        // one chunk and leaves has then been sent a token that the metrics have counted.
        let i: Int
        switch event {
        case .text(let index, _, _, _), .finished(let index, _, _), .toolCall(let index, _, _, _): i = index
        case .started, .failed: return []
        }
        if case .text(_, let text, _, let list) = event, text.isEmpty {
            pending[i, default: []] += list
            return []
        }
        var out: [JSON] = []
        if chat && !begun.contains(i) {
            begun.insert(i)
            out.append(chunk(i, text: "", role: true))
        }
        switch event {
        case .text(_, let text, _, let list):
            pending[i, default: []] += list
            let lp = logprobsJSON(i, pending[i] ?? [])
            pending[i] = nil
            out.append(chunk(i, text: text, logprobs: lp))
        case .toolCall(_, let id, let name, let arguments):
            // A whole call per chunk, numbered within its choice, as OpenAI's clients add them up.
            let k = calls[i, default: 0]
            calls[i] = k + 1
            var call = Generation.toolCallJSON((id, name, arguments))
            call = call.setting("index", .int(Int64(k)), first: true)
            out.append(chunk(i, text: nil, toolCalls: [call]))
        case .finished(_, let reason, let usage):
            let lp = (pending[i] ?? []).isEmpty ? JSON.null : logprobsJSON(i, pending[i] ?? [])
            pending[i] = nil
            out.append(chunk(i, text: chat ? nil : "", finish: .string(reason), timings: Generation.timings(usage.json), logprobs: lp))
        default: break
        }
        return out
    }

    /// After the last event: the usage chunk, when asked for.
    func tail(_ g: Generation) -> [JSON] {
        includeUsage
            ? [.object(head(chat ? "chat.completion.chunk" : "text_completion") + [("choices", []), ("usage", OpenAICompletionShape.usage(g.usage))])]
            : []
    }

    /// The whole answer, not streamed.
    func answer(_ g: Generation) -> JSON {
        let choices: [JSON] = g.choices.enumerated().map { i, c in
            let finish = c.finishReason.map(JSON.string) ?? .null
            let lp: JSON = !logprobs ? .null : chat ? ["content": .array(c.logprobs.map(\.json))] : TokenLogprob.completionsJSON(c.logprobs)
            if chat {
                // `refusal` is required by OpenAI's schema (null: the model did not refuse); a
                // message of calls alone has no content (null), as OpenAI's.
                var message: JSON = [
                    "role": "assistant", "content": c.toolCalls.isEmpty || !c.text.isEmpty ? .string(c.text) : .null, "refusal": .null
                ]
                if !c.toolCalls.isEmpty { message = message.setting("tool_calls", .array(c.toolCalls.map { Generation.toolCallJSON($0) })) }
                return ["index": .int(Int64(i)), "message": message, "logprobs": lp, "finish_reason": finish]
            }
            return ["index": .int(Int64(i)), "text": .string(c.text), "logprobs": lp, "finish_reason": finish]
        }
        let usage = g.usage
        return .object(
            head(object) + [
                ("choices", .array(choices)), ("usage", OpenAICompletionShape.usage(usage)),
                ("timings", Generation.timings(usage))
            ])
    }
}
