import MServeSystem

/// A model that writes text token by token, batching the requests running at once step by step
/// (continuous batching): `POST /v1/chat/completions` and `/v1/completions` serve it in OpenAI's
/// shape, `POST /NAME` in mserve's.  A request holds no thread of the worker while it generates:
/// `generate` hands it to the model's engine and returns, and the engine's typed events come back to
/// the event loop, which writes them as OpenAI's chunks or mserve's pieces.  The request timeout
/// bounds the wait for the first token.
///
/// Input: `{"messages": [{"role", "content"}, ...]}` or `{"prompt": text or [texts]}`, with
/// `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `presence_penalty`, `frequency_penalty`.
/// Its stream in mserve's style: pieces `{"text"}` as they come, then `{"finish_reason", "usage"}`,
/// each with `"index"` when a list of prompts is answered (`Generation` adds them up).  `usage` holds
/// `prompt_tokens`, `completion_tokens`, `total_tokens`, and `prompt_ms` (to the first token) and
/// `generation_ms` (from it to the last) for the timings.
public protocol GenerativeModel: Model {
    /// The most tokens a prompt and its completion hold together.
    var contextLength: Int { get }
    /// The engine now, for the metrics (read every heartbeat, from the event loop).
    var load: GenerationLoad { get }
    /// Starts answering `request` and returns its number of choices at once: it runs on the event
    /// loop, so it only checks the input (throw `ModelInputError` for a 400, `ModelBusy` for a 503:
    /// the one admission, in the model's engine) and hands it on.  `events` then gets the answer
    /// from the model's threads, in order: each choice's `started`, `text`s and `finished`, or one
    /// `failed`.  The request's `cancellation` drops it at the engine's next step, its `flow` holds
    /// it while the client does not read.
    func generate(_ request: InferenceRequest, events: @escaping @Sendable (GenerationEvent) -> Void) throws -> Int
    /// Answers one of llama.cpp's questions about the model (`/tokenize`, `/detokenize`,
    /// `/apply-template`): checks it here, on the event loop (throw `ModelInputError` for a 400),
    /// and answers from the model's thread through `reply` (the answer's JSON, or a 400's reason),
    /// since tokenizing and rendering grow with the text.
    func answer(_ question: ModelQuestion, reply: @escaping @Sendable (Result<JSON, ModelInputError>) -> Void) throws
    /// What llama.cpp's `GET /props` says of its model: the context, the default sampling, the
    /// chat template, the BOS and EOS tokens (llama.cpp's keys), and mserve's `details`.
    var properties: JSON { get }
}

/// A question about a generative model, in llama.cpp's server's terms.
public enum ModelQuestion: Equatable, Sendable {
    /// `POST /tokenize`: the text's tokens; `addSpecial`: with the BOS (and EOS) the file adds to a
    /// prompt; `parseSpecial`: control tokens' texts read as those tokens; `withPieces`: each
    /// token's text beside its id.
    case tokenize(String, addSpecial: Bool, parseSpecial: Bool, withPieces: Bool)
    /// `POST /detokenize`: the text of these tokens.
    case detokenize([Int])
    /// `POST /apply-template`: the prompt the chat template makes of a conversation (the request's
    /// `messages`), without tokenizing it.
    case applyTemplate(JSON)
}

/// What a generative model tells the server about one request, as it happens.
public enum GenerationEvent: Equatable, Sendable {
    /// Choice `index` has read its prompt of `promptTokens` tokens; its first token follows.
    case started(index: Int, promptTokens: Int)
    /// `tokens` more tokens of choice `index`, and the text they complete: empty while they hold
    /// only part of a character or what may begin a stop string (it comes with a later token);
    /// with their log-probabilities when the request asked for them (`logprobs`).
    case text(index: Int, String, tokens: Int, logprobs: [TokenLogprob] = [])
    /// Choice `index` called a function the request offered (`tools`): the call's id, the
    /// function's name and its arguments as JSON text (OpenAI's shape).
    case toolCall(index: Int, id: String, name: String, arguments: String)
    /// Choice `index` ended: "stop" (end of turn or a stop string), "length" (max_tokens),
    /// "tool_calls" (it called functions), or "cancelled" (nobody wants it any more).
    case finished(index: Int, reason: String, usage: GenerationUsage)
    /// The request was refused after `generate` returned, before its first token (the model's
    /// chat template refuses the conversation, the prompt is beyond the context): a 400 with this.
    case failed(String)
}

/// A generated token's log-probability as OpenAI reports it: its bytes, its log-probability, and
/// the most likely tokens' at its place (most likely first), in the distribution it was drawn from.
public struct TokenLogprob: Equatable, Sendable {
    public var bytes: [UInt8]
    public var logprob: Double
    public var top: [TokenLogprob]

    public init(bytes: [UInt8], logprob: Double, top: [TokenLogprob] = []) {
        self.bytes = bytes
        self.logprob = logprob
        self.top = top
    }

    /// The token's text (a part of a character shows as U+FFFD; `bytes` has it exactly).
    public var token: String { String(decoding: bytes, as: UTF8.self) }

    /// OpenAI's chat shape: `{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}`.
    public var json: JSON {
        func entry(_ t: TokenLogprob) -> [(String, JSON)] {
            [("token", .string(t.token)), ("logprob", .double(t.logprob)), ("bytes", .array(t.bytes.map { .int(Int64($0)) }))]
        }
        return .object(entry(self) + [("top_logprobs", .array(top.map { .object(entry($0)) }))])
    }

    /// OpenAI's completions shape for a run of tokens: `tokens`, `token_logprobs`, `top_logprobs`
    /// (one object of token to log-probability per token) and `text_offset` (from `offset`, in
    /// characters of the completion).
    public static func completionsJSON(_ list: [TokenLogprob], offset: Int = 0) -> JSON {
        var at = offset, offsets: [JSON] = []
        for t in list {
            offsets.append(.int(Int64(at)))
            at += t.token.count
        }
        return [
            "tokens": .array(list.map { .string($0.token) }), "token_logprobs": .array(list.map { .double($0.logprob) }),
            "top_logprobs": .array(list.map { t in .object(t.top.map { ($0.token, .double($0.logprob)) }) }),
            "text_offset": .array(offsets)
        ]
    }
}

/// One choice's tokens and times.
public struct GenerationUsage: Equatable, Sendable {
    public var promptTokens: Int
    /// Of the prompt's tokens, those whose KV cache was reused, not computed (prefix caching).
    public var cachedTokens: Int
    public var completionTokens: Int
    /// From submission to the first step that read the prompt (waiting for a place in the batch
    /// and the KV cache), to the first token, and from submission to the last.
    public var queuedSeconds: Double
    public var secondsToFirstToken: Double?
    public var seconds: Double

    public init(
        promptTokens: Int, cachedTokens: Int = 0, completionTokens: Int, queuedSeconds: Double = 0, secondsToFirstToken: Double?,
        seconds: Double
    ) {
        self.promptTokens = promptTokens
        self.cachedTokens = cachedTokens
        self.completionTokens = completionTokens
        self.queuedSeconds = queuedSeconds
        self.secondsToFirstToken = secondsToFirstToken
        self.seconds = seconds
    }

    /// mserve's `usage`: the counts (the cached ones in OpenAI's `prompt_tokens_details`),
    /// `prompt_ms` (to the first token) and `generation_ms` (after it).
    public var json: JSON {
        let ttft = secondsToFirstToken ?? seconds
        return [
            "prompt_tokens": .int(Int64(promptTokens)), "completion_tokens": .int(Int64(completionTokens)),
            "total_tokens": .int(Int64(promptTokens + completionTokens)),
            "prompt_tokens_details": ["cached_tokens": .int(Int64(cachedTokens))], "prompt_ms": .double((ttft * 1e5).rounded() / 100),
            "generation_ms": .double(((seconds - ttft) * 1e5).rounded() / 100)
        ]
    }
}

/// The model's engine cannot take another request now (its queue is full): a 503 with Retry-After.
public struct ModelBusy: Error, CustomStringConvertible {
    public let running: Int
    public let waiting: Int
    public init(running: Int, waiting: Int) {
        self.running = running
        self.waiting = waiting
    }
    public var description: String { "\(running) running, \(waiting) waiting" }
}

extension GenerationEvent {
    /// The piece of mserve's own stream this event is (`{"text"}`, `{"finish_reason", "usage"}`,
    /// with `"index"` when `indexed`), or nil (nothing to show).
    public func piece(indexed: Bool) -> JSON? {
        var piece: JSON
        let index: Int
        switch self {
        case .started, .failed: return nil
        case .toolCall(let i, let id, let name, let arguments):
            piece = ["tool_call": ["id": .string(id), "name": .string(name), "arguments": .string(arguments)]]
            index = i
        case .text(let i, let text, _, let logprobs):
            guard !text.isEmpty || !logprobs.isEmpty else { return nil }
            piece = ["text": .string(text)]
            if !logprobs.isEmpty { piece = piece.setting("logprobs", .array(logprobs.map(\.json))) }
            index = i
        case .finished(let i, let reason, let usage):
            (piece, index) = (["finish_reason": .string(reason), "usage": usage.json], i)
        }
        return indexed ? piece.setting("index", .int(Int64(index)), first: true) : piece
    }
}

extension GenerativeModel {
    /// For a caller that wants the whole answer on its own thread (not the server's path, which
    /// takes the events on its loop): generates and waits.
    public func infer(_ request: InferenceRequest) throws -> JSON {
        var g = Generation()
        try generateAndWait(request) { g.add($0) }
        return g.json
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        var indexed = false
        try generateAndWait(request) { event in
            if let p = event.piece(indexed: indexed) { try emit(p) }
        } choices: {
            indexed = $0 > 1
        }
    }

    private func generateAndWait(
        _ request: InferenceRequest, _ body: (GenerationEvent) throws -> Void,
        choices: (Int) -> Void = { _ in }
    ) throws {
        let inbox = Locked<[GenerationEvent]>([]), ready = ConditionLock()
        let count = try generate(request) { event in
            inbox.withLock { $0.append(event) }
            ready.withLock { ready.signal() }
        }
        choices(count)
        var finished = 0
        do {
            while finished < count {
                let events: [GenerationEvent] = ready.withLock {
                    while true {
                        let taken = inbox.withLock { all in
                            defer { all.removeAll() }
                            return all
                        }
                        if !taken.isEmpty { return taken }
                        ready.wait()
                    }
                }
                for event in events {
                    switch event {
                    case .failed(let why): throw ModelInputError(why)
                    case .finished: finished += 1
                    default: break
                    }
                    try body(event)
                }
            }
        } catch {
            request.cancellation.cancel()
            throw error
        }
    }
}

/// A generative model's engine at one moment.
public struct GenerationLoad: Equatable, Sendable {
    public var running: Int
    public var waiting: Int
    public var kvTokensUsed: Int
    public var kvTokens: Int
    /// Prompt tokens looked up in the prefix cache since the start, and those found.
    public var prefixQueriedTokens: Int
    public var prefixHitTokens: Int

    public init(running: Int, waiting: Int, kvTokensUsed: Int, kvTokens: Int, prefixQueriedTokens: Int = 0, prefixHitTokens: Int = 0) {
        self.running = running
        self.waiting = waiting
        self.kvTokensUsed = kvTokensUsed
        self.kvTokens = kvTokens
        self.prefixQueriedTokens = prefixQueriedTokens
        self.prefixHitTokens = prefixHitTokens
    }
}

/// What a generative model's events add up to: each choice's text, finish reason and usage.
public struct Generation: Equatable, Sendable {
    public struct Choice: Equatable, Sendable {
        public var text = ""
        public var finishReason: String?
        public var usage: GenerationUsage?
        /// Every token's, when the request asked for them.
        public var logprobs: [TokenLogprob] = []
        /// The functions it called: id, name, arguments (JSON text).
        public var toolCalls: [(id: String, name: String, arguments: String)] = []

        public static func == (a: Choice, b: Choice) -> Bool {
            a.text == b.text && a.finishReason == b.finishReason && a.usage == b.usage && a.logprobs == b.logprobs
                && a.toolCalls.map(\.id) == b.toolCalls.map(\.id) && a.toolCalls.map(\.name) == b.toolCalls.map(\.name)
                && a.toolCalls.map(\.arguments) == b.toolCalls.map(\.arguments)
        }
    }

    public private(set) var choices: [Choice] = []

    public init() {}

    public mutating func add(_ event: GenerationEvent) {
        let i: Int
        switch event {
        case .started(let index, _): i = index
        case .text(let index, _, _, _): i = index
        case .finished(let index, _, _): i = index
        case .toolCall(let index, _, _, _): i = index
        case .failed: return
        }
        guard i >= 0 && i < 1024 else { return }
        while choices.count <= i { choices.append(Choice()) }
        switch event {
        case .text(_, let t, _, let logprobs):
            choices[i].text += t
            choices[i].logprobs += logprobs
        case .finished(_, let reason, let usage):
            choices[i].finishReason = reason
            choices[i].usage = usage
        case .toolCall(_, let id, let name, let arguments):
            choices[i].toolCalls.append((id, name, arguments))
        default: break
        }
    }

    /// Every choice is finished.
    public var finished: Bool { !choices.isEmpty && choices.allSatisfy { $0.finishReason != nil } }

    /// Token counts summed over the choices, with the timings of the slowest.
    public var usage: JSON {
        let each = choices.map { $0.usage?.json ?? [:] }
        func sum(_ key: String) -> Int64 { each.reduce(0) { $0 + ($1[key]?.intValue ?? 0) } }
        func longest(_ key: String) -> Double { each.map { $0[key]?.doubleValue ?? 0 }.max() ?? 0 }
        let prompt = sum("prompt_tokens"), completion = sum("completion_tokens")
        let cached = choices.reduce(Int64(0)) { $0 + Int64($1.usage?.cachedTokens ?? 0) }
        return [
            "prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion),
            "prompt_tokens_details": ["cached_tokens": .int(cached)],
            "prompt_ms": .double(longest("prompt_ms")), "generation_ms": .double(longest("generation_ms"))
        ]
    }

    /// Timings as llama.cpp's server reports them: the prompt's tokens found cached (`cache_n`) and
    /// computed, its milliseconds (to the first token) and the generated tokens per second after it.
    public static func timings(_ usage: JSON) -> JSON {
        let cached = usage["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0
        let promptN = Double((usage["prompt_tokens"]?.intValue ?? 0) - cached)
        let predictedN = Double(usage["completion_tokens"]?.intValue ?? 0)
        let promptMs = usage["prompt_ms"]?.doubleValue ?? 0, generationMs = usage["generation_ms"]?.doubleValue ?? 0
        // The first token comes with the prompt's pass: the rate is of those after it.
        let after = max(0, predictedN - 1)
        func round(_ v: Double) -> JSON { .double((v * 100).rounded() / 100) }
        return [
            "cache_n": .int(cached), "prompt_n": .int(Int64(promptN)), "prompt_ms": round(promptMs),
            "prompt_per_second": round(promptMs > 0 ? promptN / promptMs * 1000 : 0),
            "predicted_n": .int(Int64(predictedN)), "predicted_ms": round(generationMs),
            "predicted_per_token_ms": round(after > 0 ? generationMs / after : 0),
            "predicted_per_second": round(generationMs > 0 ? after / generationMs * 1000 : 0)
        ]
    }

    /// A call in OpenAI's shape: `{"id", "type": "function", "function": {"name", "arguments"}}`.
    public static func toolCallJSON(_ c: (id: String, name: String, arguments: String)) -> JSON {
        ["id": .string(c.id), "type": "function", "function": ["name": .string(c.name), "arguments": .string(c.arguments)]]
    }

    /// The answer in mserve's own style: one choice as `{"text", "finish_reason", "usage"}`, several
    /// as `{"choices": [...], "usage"}`.
    public var json: JSON {
        func withLogprobs(_ j: JSON, _ c: Choice) -> JSON {
            var out = c.logprobs.isEmpty ? j : j.setting("logprobs", .array(c.logprobs.map(\.json)))
            if !c.toolCalls.isEmpty { out = out.setting("tool_calls", .array(c.toolCalls.map { Generation.toolCallJSON($0) })) }
            return out
        }
        if choices.count == 1 {
            return withLogprobs(
                [
                    "text": .string(choices[0].text), "finish_reason": choices[0].finishReason.map(JSON.string) ?? .null,
                    "usage": usage
                ], choices[0])
        }
        let list: [JSON] = choices.enumerated().map { i, c in
            withLogprobs(["index": .int(Int64(i)), "text": .string(c.text), "finish_reason": c.finishReason.map(JSON.string) ?? .null], c)
        }
        return ["choices": .array(list), "usage": usage]
    }
}
