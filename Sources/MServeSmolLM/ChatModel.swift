import Dispatch
import LLM
import MServe
import Synchronization

/// `smollm2`: SmolLM2-135M-Instruct from its GGUF file (Sources/LLM), answering a conversation in
/// mserve's own style -- `POST /smollm2 {"messages": [{"role": "user", "content": "..."}]}` or
/// `{"prompt": "..."}` -- with `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`,
/// `presence_penalty` and `frequency_penalty`.  Streamed, each piece is `{"text": "..."}` and the
/// last one carries `finish_reason` and `usage`.  One generation engine per worker batches the
/// requests running at once (as many as the model's model threads: `limit_concurrency`).
/// Options: `model_dir`, `max_sequences` (8), `kv_cache_tokens` (16384), `step_tokens` (256).
public final class ChatModel: Model {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let defaultDirectory = "models/smollm2"
    public static var example: JSON {
        ["messages": [["role": "user", "content": "What is the capital of France?"]], "max_tokens": 64, "temperature": 0]
    }

    let engine: GenerationEngine
    let template: ChatTemplate
    let tokenizer: BPETokenizer

    public init(context: ModelContext) throws {
        let path = (context.modelDir ?? ChatModel.defaultDirectory) + "/" + ChatModel.fileName
        func option(_ name: String, _ fallback: Int) throws -> Int {
            switch context.options[name] {
            case nil: return fallback
            case .int(let n)? where n >= 1: return Int(n)
            default: throw ModelLoadError("smollm2: option \(name) must be a positive integer")
            }
        }
        let limits = BatchScheduler.Limits(maxSequences: try option("max_sequences", 8), kvTokens: try option("kv_cache_tokens", 16_384),
                                           stepTokens: try option("step_tokens", 256))
        do {
            let file = try GGUFFile(path: path)
            let model = try LlamaModel(file: file)
            tokenizer = try BPETokenizer(gguf: file)
            template = try ChatTemplate(gguf: file)
            engine = GenerationEngine(model: model, tokenizer: tokenizer, limits: limits)
        } catch {
            throw ModelLoadError("smollm2: \(error).  Fetch the model with `bash scripts/fetch-smollm2` (into \(ChatModel.defaultDirectory)) "
                                 + "or point --model-dir (config: model_dir) at a directory holding \(ChatModel.fileName)")
        }
    }

    deinit { engine.shutdown() }

    /// The request as the engine takes it, or a 400 saying what is wrong.
    func generation(_ input: JSON) throws(ModelInputError) -> GenerationEngine.Request {
        let text: String
        if let messages = input["messages"] {
            guard case .array(let items) = messages, !items.isEmpty else { throw ModelInputError("messages must be a non-empty list") }
            var turns: [ChatMessage] = []
            for (i, m) in items.enumerated() {
                guard let role = m["role"]?.stringValue, ["system", "user", "assistant"].contains(role) else {
                    throw ModelInputError("messages[\(i)].role must be system, user or assistant")
                }
                guard let content = m["content"]?.stringValue else { throw ModelInputError("messages[\(i)].content must be a string") }
                turns.append(ChatMessage(role: role, content: content))
            }
            text = template.render(turns)
        } else if let prompt = input["prompt"]?.stringValue {
            text = prompt
        } else {
            throw ModelInputError("send {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} or {\"prompt\": \"...\"}")
        }
        func number(_ key: String, _ fallback: Double, _ ok: (Double) -> Bool, _ rule: String) throws(ModelInputError) -> Double {
            guard let v = input[key], v != .null else { return fallback }
            guard let d = v.doubleValue, ok(d) else { throw ModelInputError("\(key) must be \(rule)") }
            return d
        }
        let maxTokens = try number("max_tokens", 256, { $0 >= 1 && $0 == $0.rounded() }, "a positive integer")
        var sampling = SamplingParameters()
        sampling.temperature = Float(try number("temperature", 0.7, { $0 >= 0 && $0 <= 2 }, "from 0 to 2"))
        sampling.topP = Float(try number("top_p", 1, { $0 > 0 && $0 <= 1 }, "greater than 0 and at most 1"))
        sampling.topK = Int(try number("top_k", 0, { $0 >= 0 && $0 == $0.rounded() }, "a non-negative integer"))
        sampling.presencePenalty = Float(try number("presence_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        sampling.frequencyPenalty = Float(try number("frequency_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        if let seed = input["seed"], seed != .null {
            guard case .int(let s) = seed else { throw ModelInputError("seed must be an integer") }
            sampling.seed = UInt64(bitPattern: s)
        }
        var stop: [String] = []
        switch input["stop"] {
        case nil, .some(.null): break
        case .string(let s)?: stop = [s]
        case .array(let items)? where items.count <= 4:
            for item in items {
                guard let s = item.stringValue else { throw ModelInputError("stop must be a string or a list of up to 4 strings") }
                stop.append(s)
            }
        default: throw ModelInputError("stop must be a string or a list of up to 4 strings")
        }
        return GenerationEngine.Request(prompt: tokenizer.encode(text), maxTokens: Int(maxTokens), sampling: sampling, stop: stop)
    }

    public func validate(_ input: JSON) throws { _ = try generation(input) }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        var text = ""
        var last: JSON = [:]
        try run(request) { piece in
            if let t = piece["text"]?.stringValue { text += t }
            if piece["finish_reason"] != nil { last = piece }
        }
        return ["text": .string(text), "finish_reason": last["finish_reason"] ?? .null, "usage": last["usage"] ?? .null]
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try run(request, emit)
    }

    /// Submits the request and relays the engine's events from this model thread, which waits for
    /// them; a client that leaves (emit throws) cancels the sequence.
    private func run(_ request: InferenceRequest, _ emit: (JSON) throws -> Void) throws {
        let r = try generation(request.input)
        let inbox = Inbox()
        let id: Int
        do {
            id = try engine.submit(r, onEvent: inbox.post)
        } catch {
            let (needed, capacity): (Int, Int) = switch error { case .tooLong(let n, let c): (n, c) }
            throw ModelInputError("the prompt (\(r.prompt.count) tokens) plus max_tokens (\(r.maxTokens)) is \(needed) tokens; at most \(capacity) fit")
        }
        while true {
            for event in inbox.take() {
                do {
                    switch event {
                    case .token(_, let text):
                        if !text.isEmpty { try emit(["text": .string(text)]) }
                    case .finished(let reason, let usage):
                        var u: JSON = ["prompt_tokens": .int(Int64(usage.promptTokens)), "completion_tokens": .int(Int64(usage.completionTokens)),
                                       "total_tokens": .int(Int64(usage.promptTokens + usage.completionTokens))]
                        if let ttft = usage.secondsToFirstToken { u = u.setting("time_to_first_token_ms", .double((ttft * 1e5).rounded() / 100)) }
                        if usage.completionTokens > 1, let ttft = usage.secondsToFirstToken, usage.seconds > ttft {
                            u = u.setting("tokens_per_second", .double((Double(usage.completionTokens - 1) / (usage.seconds - ttft) * 10).rounded() / 10))
                        }
                        try emit(["finish_reason": .string(reason.rawValue), "usage": u])
                        return
                    }
                } catch {
                    engine.cancel(id)
                    throw error
                }
            }
        }
    }
}

/// One request's events, posted by the engine's thread and taken by the waiting model thread.
final class Inbox: Sendable {
    private let events = Mutex<[GenerationEngine.Event]>([])
    private let ready = DispatchSemaphore(value: 0)

    var post: @Sendable (GenerationEngine.Event) -> Void {
        { [self] e in
            events.withLock { $0.append(e) }
            ready.signal()
        }
    }

    /// Waits for at least one event, then takes all there are.
    func take() -> [GenerationEngine.Event] {
        ready.wait()
        return events.withLock { all in
            defer { all.removeAll() }
            return all
        }
    }
}

extension ModelRegistry {
    public mutating func registerSmolLM() {
        register(ChatModel.self, as: "smollm2", summary: "SmolLM2-135M-Instruct chat (GGUF, in Swift): {\"messages\": [...]} or {\"prompt\": ...}")
    }
}
