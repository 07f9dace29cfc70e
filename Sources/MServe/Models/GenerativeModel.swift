/// A model that writes text token by token, batching the requests running at once step by step
/// (continuous batching): `POST /v1/chat/completions` and `/v1/completions` serve it in OpenAI's
/// shape.  Each request holds one model thread while it generates, so the worker runs
/// `--max-batch-size` of them at once (not `--limit-concurrency`), and the request timeout bounds
/// the wait for the first token.
///
/// Input: `{"messages": [{"role", "content"}, ...]}` or `{"prompt": text or [texts]}`, with
/// `max_tokens`, `temperature`, `top_p`, `seed`, `stop`, `presence_penalty`, `frequency_penalty`.
/// Its stream: pieces `{"text"}` as they come, then `{"finish_reason", "usage"}`, each with
/// `"index"` when a list of prompts is answered (`Generation` adds them up).  `usage` holds
/// `prompt_tokens`, `completion_tokens`, `total_tokens`, and `prompt_ms` (to the first token) and
/// `generation_ms` (from it to the last) for the timings.
public protocol GenerativeModel: Model {
    /// The most tokens a prompt and its completion hold together.
    var contextLength: Int { get }
    /// The engine now, for the metrics (read every heartbeat, from the event loop).
    var load: GenerationLoad { get }
}

/// A generative model's engine at one moment.
public struct GenerationLoad: Equatable, Sendable {
    public var running: Int
    public var waiting: Int
    public var kvTokensUsed: Int
    public var kvTokens: Int

    public init(running: Int, waiting: Int, kvTokensUsed: Int, kvTokens: Int) {
        self.running = running
        self.waiting = waiting
        self.kvTokensUsed = kvTokensUsed
        self.kvTokens = kvTokens
    }
}

/// What a generative model's pieces add up to: each choice's text, finish reason and usage.
public struct Generation: Equatable, Sendable {
    public struct Choice: Equatable, Sendable {
        public var text = ""
        public var finishReason: String?
        public var usage: JSON?
    }

    public private(set) var choices: [Choice] = []

    public init() {}

    /// The index a piece belongs to (0 when it has none).
    public static func index(of piece: JSON) -> Int {
        if case .int(let i)? = piece["index"], i >= 0, i < 1024 { Int(i) } else { 0 }
    }

    public mutating func add(_ piece: JSON) {
        let i = Generation.index(of: piece)
        while choices.count <= i { choices.append(Choice()) }
        if let t = piece["text"]?.stringValue { choices[i].text += t }
        if let r = piece["finish_reason"]?.stringValue { choices[i].finishReason = r }
        if let u = piece["usage"], u.isObject { choices[i].usage = u }
    }

    /// Every choice is finished.
    public var finished: Bool { !choices.isEmpty && choices.allSatisfy { $0.finishReason != nil } }

    /// Token counts summed over the choices, with the timings of the slowest.
    public var usage: JSON {
        func sum(_ key: String) -> Int64 { choices.reduce(0) { $0 + ($1.usage?[key]?.intValue ?? 0) } }
        func longest(_ key: String) -> Double { choices.map { $0.usage?[key]?.doubleValue ?? 0 }.max() ?? 0 }
        let prompt = sum("prompt_tokens"), completion = sum("completion_tokens")
        return ["prompt_tokens": .int(prompt), "completion_tokens": .int(completion), "total_tokens": .int(prompt + completion),
                "prompt_ms": .double(longest("prompt_ms")), "generation_ms": .double(longest("generation_ms"))]
    }

    /// Timings as llama.cpp's server reports them: the prompt's tokens and milliseconds (to the
    /// first token) and the generated tokens per second after it.
    public static func timings(_ usage: JSON) -> JSON {
        let promptN = Double(usage["prompt_tokens"]?.intValue ?? 0)
        let predictedN = Double(usage["completion_tokens"]?.intValue ?? 0)
        let promptMs = usage["prompt_ms"]?.doubleValue ?? 0, generationMs = usage["generation_ms"]?.doubleValue ?? 0
        // The first token comes with the prompt's pass: the rate is of those after it.
        let after = max(0, predictedN - 1)
        func round(_ v: Double) -> JSON { .double((v * 100).rounded() / 100) }
        return ["prompt_n": .int(Int64(promptN)), "prompt_ms": round(promptMs),
                "prompt_per_second": round(promptMs > 0 ? promptN / promptMs * 1000 : 0),
                "predicted_n": .int(Int64(predictedN)), "predicted_ms": round(generationMs),
                "predicted_per_token_ms": round(after > 0 ? generationMs / after : 0),
                "predicted_per_second": round(generationMs > 0 ? after / generationMs * 1000 : 0)]
    }

    /// The answer in mserve's own style: one choice as `{"text", "finish_reason", "usage"}`, several
    /// as `{"choices": [...], "usage"}`.
    public var json: JSON {
        if choices.count == 1 {
            return ["text": .string(choices[0].text), "finish_reason": choices[0].finishReason.map(JSON.string) ?? .null, "usage": usage]
        }
        let list: [JSON] = choices.enumerated().map { i, c in
            ["index": .int(Int64(i)), "text": .string(c.text), "finish_reason": c.finishReason.map(JSON.string) ?? .null]
        }
        return ["choices": .array(list), "usage": usage]
    }
}
