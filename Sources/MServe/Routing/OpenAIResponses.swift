/// An OpenAI Responses request (`POST /v1/responses`) as a generative model takes it: `input` (a
/// string, or messages whose content is a string or text parts) after `instructions` (a system
/// turn), `max_output_tokens`, `temperature`, `top_p`, and `top_logprobs` or `include`'s
/// `message.output_text.logprobs`, `text.format` (structured output), `tools` (functions, called
/// as `function_call` output items; their results sent back as `function_call_output` input
/// items) with `tool_choice` and `parallel_tool_calls`.  Stateless, as llama.cpp's and vLLM's servers are by default:
/// nothing is kept, so `previous_response_id` is a 400 that says to send the conversation.  Pure.
struct OpenAIResponsesRequest: Equatable {
    /// What the model gets: `messages`, `max_tokens` and the sampling parameters it knows.
    let input: JSON
    let stream: Bool
    let logprobs: Bool
    /// What the response object says back of the request (instructions, max_output_tokens, ...).
    let echo: [(String, JSON)]
    /// The request's `text` (its format), said back.
    let text: JSON

    static func == (a: Self, b: Self) -> Bool {
        a.input == b.input && a.stream == b.stream && a.logprobs == b.logprobs && JSON.object(a.echo) == JSON.object(b.echo) && a.text == b.text
    }

    init(_ body: JSON) throws(HTTPError) {
        func bad(_ message: String, _ param: String) -> HTTPError { HTTPError(400, message, param: param) }
        var messages: [JSON] = []
        switch body["instructions"] {
        case nil, .some(.null): break
        case .string(let s)?: messages.append(["role": "system", "content": .string(s)])
        case let v?: throw bad("instructions must be a string, got \(v.text)", "instructions")
        }
        switch body["input"] {
        case .string(let s)?: messages.append(["role": "user", "content": .string(s)])
        case .array(let items)? where !items.isEmpty:
            for (i, item) in items.enumerated() {
                switch item["type"]?.stringValue {
                case "function_call"?:
                    // A call made earlier: an assistant turn's tool_calls (calls in a row, one turn).
                    guard let id = item["call_id"]?.stringValue, let name = item["name"]?.stringValue, let args = item["arguments"]?.stringValue
                    else {
                        throw bad("input[\(i)]: a function_call needs call_id, name and arguments (JSON text)", "input")
                    }
                    let call: JSON = ["id": .string(id), "type": "function", "function": ["name": .string(name), "arguments": .string(args)]]
                    if case .array(var calls)? = messages.last?["tool_calls"], messages.last?["role"] == "assistant" {
                        calls.append(call)
                        messages[messages.count - 1] = messages[messages.count - 1].setting("tool_calls", .array(calls))
                    } else {
                        messages.append(["role": "assistant", "content": .null, "tool_calls": [call]])
                    }
                case "function_call_output"?:
                    guard let id = item["call_id"]?.stringValue, let output = item["output"]?.stringValue else {
                        throw bad("input[\(i)]: a function_call_output needs call_id and output (text)", "input")
                    }
                    messages.append(["role": "tool", "tool_call_id": .string(id), "content": .string(output)])
                default:
                    messages.append(try OpenAIResponsesRequest.message(item, at: i))
                }
            }
        case nil, .some(.null): throw bad("input is required: a string, or a list of messages", "input")
        case let v?: throw bad("input must be a string or a non-empty list of messages, got \(v.text)", "input")
        }
        var input: [(String, JSON)] = [("messages", .array(messages))]
        guard body["text"] == nil || body["text"] == .null || body["text"]?.isObject == true else {
            throw bad("text must be an object ({\"format\": ...}), got \(body["text"]?.text ?? "")", "text")
        }
        switch body["max_output_tokens"] {
        case nil, .some(.null): break
        case .int(let n)? where n >= 1: input.append(("max_tokens", .int(n)))
        case let v?: throw bad("max_output_tokens must be a positive integer, got \(v.text)", "max_output_tokens")
        }
        // Sampling parameters beyond OpenAI's Responses too, as llama.cpp's and vLLM's take them there.
        OpenAIFields.pass(OpenAIFields.sampling, from: body, into: &input)
        switch body["stream"] {
        case nil, .some(.null), .some(.bool(false)): stream = false
        case .some(.bool(true)): stream = true
        case let v?: throw bad("stream must be true or false, got \(v.text)", "stream")
        }
        var includes: [String] = []
        switch body["include"] {
        case nil, .some(.null): break
        case .array(let items)? where items.allSatisfy({ $0.stringValue != nil }): includes = items.compactMap(\.stringValue)
        case let v?: throw bad("include must be a list of strings, got \(v.text)", "include")
        }
        var top: Int64?
        switch body["top_logprobs"] {
        case nil, .some(.null): break
        case .int(let n)? where (0...20).contains(n): top = n
        case let v?: throw bad("top_logprobs must be an integer from 0 to 20, got \(v.text)", "top_logprobs")
        }
        logprobs = includes.contains("message.output_text.logprobs") || top != nil
        if logprobs { input += [("logprobs", true), ("top_logprobs", .int(top ?? 0))] }
        // Nothing is kept between requests, and what would change the answer unasked is refused.
        if let v = body["previous_response_id"], v != .null {
            throw bad(
                "previous_response_id: this server keeps no responses (it is stateless); send the whole conversation in input",
                "previous_response_id")
        }
        if let v = body["conversation"], v != .null {
            throw bad("conversation: this server keeps no conversations; send them in input", "conversation")
        }
        // Tools in the Responses shape ({"type": "function", "name", "description", "parameters"}),
        // given to the model in the chat shape, which it checks.
        if case .array(let tools)? = body["tools"], !tools.isEmpty {
            var list: [JSON] = []
            for (k, t) in tools.enumerated() {
                guard t["type"] == "function" else {
                    throw bad("tools[\(k)]: only function tools are supported, got \(t["type"]?.text ?? t.text)", "tools")
                }
                var function: [(String, JSON)] = [("name", t["name"] ?? .null)]
                if let d = t["description"] { function.append(("description", d)) }
                if let p = t["parameters"] { function.append(("parameters", p)) }
                list.append(["type": "function", "function": .object(function)])
            }
            input.append(("tools", .array(list)))
            switch body["tool_choice"] {
            case nil, .some(.null): break
            case .some(let c) where c["type"] == "function":
                input.append(("tool_choice", ["type": "function", "function": ["name": c["name"] ?? .null]]))
            case let c?: input.append(("tool_choice", c))
            }
            if let p = body["parallel_tool_calls"], p != .null { input.append(("parallel_tool_calls", p)) }
        }
        // Structured output: `text.format` as the chat API's `response_format` says it.
        switch body["text"]?["format"] {
        case nil, .some(.null): break
        case .some(let f) where f["type"] == "text": break
        case .some(let f) where f["type"] == "json_object": input.append(("response_format", ["type": "json_object"]))
        case .some(let f) where f["type"] == "json_schema":
            guard let schema = f["schema"], schema != .null else { throw bad("text.format.schema is required for json_schema", "text") }
            input.append(("response_format", ["type": "json_schema", "json_schema": ["name": f["name"] ?? .null, "schema": schema]]))
        case let f?:
            throw bad("text.format.type must be text, json_object or json_schema, got \(f["type"]?.text ?? f.text)", "text")
        }
        if let v = body["background"], v != .null, v != .bool(false) { throw bad("background is not supported by this server", "background") }
        if let v = body["truncation"], v != .null, v != .string("disabled") {
            throw bad("truncation must be \"disabled\": a conversation beyond the context is a 400, never cut", "truncation")
        }
        if let v = body["prompt"], v != .null { throw bad("prompt (a stored prompt template) is not supported by this server", "prompt") }
        if let v = body["metadata"], v != .null, !v.isObject { throw bad("metadata must be an object, got \(v.text)", "metadata") }
        self.input = .object(input)
        text = body["text"].flatMap { $0 == .null ? nil : $0 } ?? ["format": ["type": "text"]]
        echo = [
            ("instructions", body["instructions"] ?? .null), ("max_output_tokens", body["max_output_tokens"] ?? .null),
            ("temperature", body["temperature"] ?? .null), ("top_p", body["top_p"] ?? .null),
            ("top_logprobs", body["top_logprobs"] ?? .null), ("metadata", body["metadata"] ?? [:]), ("user", body["user"] ?? .null),
            ("tools", body["tools"] ?? []), ("tool_choice", body["tool_choice"] ?? "auto"),
            ("parallel_tool_calls", body["parallel_tool_calls"] ?? true)
        ]
    }

    /// One item of `input`: a message (`type` "message" or none) with a role and a string or text
    /// parts (`input_text`, `output_text` for earlier answers).
    static func message(_ item: JSON, at i: Int) throws(HTTPError) -> JSON {
        if let type = item["type"]?.stringValue, type != "message" {
            throw HTTPError(400, "input[\(i)]: items of type \(type) are not supported (only messages)", param: "input")
        }
        guard let role = item["role"]?.stringValue, ["system", "developer", "user", "assistant"].contains(role) else {
            throw HTTPError(400, "input[\(i)].role must be system, developer, user or assistant, got \(item["role"]?.text ?? "none")", param: "input")
        }
        switch item["content"] {
        case .string(let s)?: return ["role": .string(role), "content": .string(s)]
        case .array(let parts)?:
            var text = ""
            for part in parts {
                guard let type = part["type"]?.stringValue, ["input_text", "output_text", "text"].contains(type), let t = part["text"]?.stringValue
                else {
                    throw HTTPError(
                        400, "input[\(i)].content: only text parts (input_text, output_text) are taken, got \(part["type"]?.text ?? part.text)",
                        param: "input")
                }
                text += t
            }
            return ["role": .string(role), "content": .string(text)]
        default:
            throw HTTPError(400, "input[\(i)].content must be a string or a list of text parts", param: "input")
        }
    }
}

/// A generative model's answer as OpenAI's Responses API gives it: a `response` object whose
/// `output` is an assistant message of one `output_text` and the `function_call`s it made;
/// streamed, the events named by their `type`, each with its `sequence_number`:
/// `response.created`, `response.in_progress`, then per output item its `added`, its content
/// (`response.output_text.delta`s, or the call's `response.function_call_arguments.delta` and
/// `.done`), its `done`, and last `response.completed` (or `response.incomplete` when
/// `max_output_tokens` cut the answer).  Output items are numbered in the order they began.
struct OpenAIResponsesShape: GenerationPresenter {
    let id: String
    let model: String
    let created: Int64
    let stream: Bool
    let logprobs: Bool
    let echo: [(String, JSON)]
    let text: JSON
    private var sequence = 0
    private var begun = false
    /// The stream's output items in the order they began: the message (nil) or a call (its number).
    private var items: [Int?] = []
    private var calls = 0
    /// Log-probabilities of tokens whose text is held back (part of a character, a possible stop string).
    private var pending: [TokenLogprob] = []

    init(id: String, model: String, created: Int64, request: OpenAIResponsesRequest) {
        self.id = id
        self.model = model
        self.created = created
        stream = request.stream
        logprobs = request.logprobs
        echo = request.echo
        text = request.text
    }

    var streamFormat: StreamFormat? { stream ? .namedEvents : nil }
    var itemID: String { "msg_" + id }
    private var messageIndex: Int? { items.firstIndex { $0 == nil } }

    private mutating func event(_ type: String, _ fields: [(String, JSON)]) -> JSON {
        defer { sequence += 1 }
        return .object([("type", .string(type)), ("sequence_number", .int(Int64(sequence)))] + fields)
    }

    /// The response object: `status` "in_progress" (no output yet), "completed" or "incomplete".
    /// Its output in the stream's order, or (not streamed) the message, if any text, then the calls.
    func response(_ g: Generation?) -> JSON {
        let choice = g?.choices.first
        let status: String, incomplete: JSON
        switch choice?.finishReason {
        case nil: (status, incomplete) = ("in_progress", .null)
        case "length"?: (status, incomplete) = ("incomplete", ["reason": "max_output_tokens"])
        default: (status, incomplete) = ("completed", .null)
        }
        var output: [JSON] = []
        if let choice, choice.finishReason != nil {
            let order: [Int?] =
                items.isEmpty ? (choice.text.isEmpty && !choice.toolCalls.isEmpty ? [] : [nil]) + choice.toolCalls.indices.map { $0 } : items
            output = order.map { k in k.map { functionCall(choice.toolCalls[$0], done: true) } ?? message(choice) }
        }
        var fields: [(String, JSON)] = [
            ("id", .string("resp_" + id)), ("object", "response"), ("created_at", .int(created)),
            ("status", .string(status)), ("error", .null), ("incomplete_details", incomplete), ("model", .string(model)),
            ("output", .array(output))
        ]
        fields += echo
        fields += [("text", text), ("truncation", "disabled"), ("previous_response_id", .null), ("store", false), ("background", false)]
        fields.append(("usage", g.flatMap { $0.finished ? OpenAIResponsesShape.usage($0.usage) : nil } ?? .null))
        return .object(fields)
    }

    /// The output message: its one `output_text` part, in progress while `choice` is unfinished.
    private func message(_ choice: Generation.Choice?) -> JSON {
        let status =
            switch choice?.finishReason {
            case nil: "in_progress";
            case "length"?: "incomplete";
            default: "completed"
            }
        return [
            "id": .string(itemID), "type": "message", "status": .string(status), "role": "assistant",
            "content": choice.map { [part($0.text, $0.logprobs)] } ?? []
        ]
    }

    private func functionCall(_ c: (id: String, name: String, arguments: String), done: Bool) -> JSON {
        [
            "id": .string("fc_" + c.id), "type": "function_call", "status": .string(done ? "completed" : "in_progress"), "call_id": .string(c.id),
            "name": .string(c.name), "arguments": .string(done ? c.arguments : "")
        ]
    }

    private func part(_ text: String, _ list: [TokenLogprob]) -> JSON {
        ["type": "output_text", "text": .string(text), "annotations": [], "logprobs": .array(logprobs ? list.map(\.json) : [])]
    }

    /// OpenAI's Responses usage from mserve's.
    static func usage(_ u: JSON) -> JSON {
        [
            "input_tokens": u["prompt_tokens"] ?? 0, "input_tokens_details": ["cached_tokens": u["prompt_tokens_details"]?["cached_tokens"] ?? 0],
            "output_tokens": u["completion_tokens"] ?? 0, "output_tokens_details": ["reasoning_tokens": 0], "total_tokens": u["total_tokens"] ?? 0
        ]
    }

    /// The opening events go with the first text, call or end, as the chat shape's role does.
    mutating func pieces(for event: GenerationEvent) -> [JSON] {
        var out: [JSON] = []
        switch event {
        case .text(_, let text, _, let list):
            pending += list
            guard !text.isEmpty else { return [] }
            out += opening() + openMessage()
            let lp = JSON.array(logprobs ? pending.map(\.json) : [])
            pending = []
            out.append(
                self.event(
                    "response.output_text.delta",
                    [
                        ("item_id", .string(itemID)), ("output_index", .int(Int64(messageIndex ?? 0))),
                        ("content_index", 0), ("delta", .string(text)), ("logprobs", lp)
                    ]))
        case .toolCall(_, let callID, let name, let arguments):
            // A call is known whole: its item added, its arguments in one delta, done.
            out += opening()
            let call = (callID, name, arguments), index = JSON.int(Int64(items.count))
            items.append(calls)
            calls += 1
            out.append(self.event("response.output_item.added", [("output_index", index), ("item", functionCall(call, done: false))]))
            out.append(
                self.event(
                    "response.function_call_arguments.delta",
                    [
                        ("item_id", .string("fc_" + callID)), ("output_index", index),
                        ("delta", .string(arguments))
                    ]))
            out.append(
                self.event(
                    "response.function_call_arguments.done",
                    [
                        ("item_id", .string("fc_" + callID)), ("output_index", index),
                        ("arguments", .string(arguments))
                    ]))
            out.append(self.event("response.output_item.done", [("output_index", index), ("item", functionCall(call, done: true))]))
        case .finished: out += opening()
        case .started, .failed: break
        }
        return out
    }

    private mutating func opening() -> [JSON] {
        guard !begun else { return [] }
        begun = true
        let r = response(nil)
        return [event("response.created", [("response", r)]), event("response.in_progress", [("response", r)])]
    }

    private mutating func openMessage() -> [JSON] {
        guard messageIndex == nil else { return [] }
        items.append(nil)
        let index = JSON.int(Int64(items.count - 1))
        return [
            event("response.output_item.added", [("output_index", index), ("item", message(nil))]),
            event(
                "response.content_part.added",
                [
                    ("item_id", .string(itemID)), ("output_index", index), ("content_index", 0),
                    ("part", part("", []))
                ])
        ]
    }

    /// After the answer: the message's text, part and item done (a message is made if there is
    /// neither text nor a call), then the whole response.
    mutating func tail(_ g: Generation) -> [JSON] {
        guard let choice = g.choices.first else { return [] }
        var out = opening()
        if messageIndex == nil && choice.toolCalls.isEmpty { out += openMessage() }
        if let index = messageIndex {
            let place: [(String, JSON)] = [("item_id", .string(itemID)), ("output_index", .int(Int64(index))), ("content_index", 0)]
            out += [
                event(
                    "response.output_text.done",
                    place + [("text", .string(choice.text)), ("logprobs", .array(logprobs ? choice.logprobs.map(\.json) : []))]),
                event("response.content_part.done", place + [("part", part(choice.text, choice.logprobs))]),
                event("response.output_item.done", [("output_index", .int(Int64(index))), ("item", message(choice))])
            ]
        }
        out.append(event(choice.finishReason == "length" ? "response.incomplete" : "response.completed", [("response", response(g))]))
        return out
    }

    func answer(_ g: Generation) -> JSON { response(g) }
}
