import GGUFInference
import Grammar
import MServe

/// How a chat request's JSON becomes the engine's work: checked on the event loop (`plan`: a 400
/// naming the field for anything wrong, nothing rendered or tokenized there), then, off the loop,
/// the engine's requests (`requests`).
extension ChatModel {
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
}
