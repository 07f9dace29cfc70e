import Grammar
import Jinja
import MServeJSON

/// A function a request offers the model (OpenAI's `tools[i].function`): its name, its parameters'
/// JSON Schema, and the whole tool as given (what the chat template renders).
public struct ToolSpec: Sendable, Equatable {
    public let name: String
    public let parameters: JSON
    public let definition: JSON

    public init(name: String, parameters: JSON, definition: JSON) {
        self.name = name
        self.parameters = parameters
        self.definition = definition
    }
}

/// A call the model made: the function's name and its arguments (a JSON object).
public struct ToolCall: Sendable, Equatable {
    public let name: String
    public let arguments: JSON

    public init(name: String, arguments: JSON) {
        self.name = name
        self.arguments = arguments
    }
}

/// How a model writes tool calls, read from its chat template, as llama.cpp's chat parsers tell
/// them apart: Hermes' `<tool_call>{"name", "arguments"}</tool_call>` (Qwen2.5, Hermes 2/3,
/// SmolLM3), Llama 3.x's bare `{"name", "parameters"}`, or, for a template that knows no tools,
/// llama.cpp's generic way: a system message lists them and the answer is a JSON object,
/// `{"tool_call": {"name", "arguments"}}` or `{"response": "..."}`, always constrained to that.
public enum ToolCallFormat: String, Sendable, Equatable {
    case hermes, llama3, generic

    public init(template source: String) {
        if source.contains("<tool_call>") {
            self = .hermes
        } else if source.contains("\"parameters\": dictionary of argument name") || source.contains("<|python_tag|>") {
            self = .llama3
        } else {
            self = .generic
        }
    }

    /// Whether the template renders the tools itself (else the generic system message does).
    public var templateTakesTools: Bool { self != .generic }

    /// The key a call's arguments go under.
    var argumentsKey: String { self == .llama3 ? "parameters" : "arguments" }

    /// The grammar an answer must match, or nil (free text, parsed afterwards): a call of one of
    /// `tools` (one or more when `parallel`) when the model must call one, and in the generic
    /// format always (a call or a response).
    /// `only`: the one function that must be called (OpenAI's named `tool_choice`).
    public func grammar(tools: [ToolSpec], mustCall: Bool, parallel: Bool, only: String? = nil) throws(GrammarError) -> String? {
        guard mustCall || self == .generic else { return nil }
        var rules = ""
        var calls: [String] = []
        for (i, tool) in tools.enumerated() where only == nil || only == tool.name {
            // {"name": "NAME", "arguments": ARGS}, the arguments those the tool's schema admits.
            rules += try JSONSchemaGrammar.rules(tool.parameters, as: "args-\(i)", path: "tools[\(i)].function.parameters")
            let name = JSONSchemaGrammar.literal(String(decoding: JSON.string(tool.name).serialized(), as: UTF8.self))
            rules +=
                #"call-\#(i) ::= "{" space "\"name\"" space ":" space \#(name) space "," space "\"\#(argumentsKey)\"" space ":" space args-\#(i) "}" space"#
                + "\n"
            calls.append("call-\(i)")
        }
        rules += "call ::= " + calls.joined(separator: " | ") + "\n"
        let root: String
        switch self {
        case .hermes:
            rules += #"tool-call ::= "<tool_call>\n" call "\n</tool_call>""# + "\n"
            root = parallel ? #"tool-call ( "\n" tool-call )*"# : "tool-call"
        case .llama3:
            root = parallel ? #"call ( ";" space call )*"# : "call"
        case .generic:
            let call = #""{" space "\"tool_call\"" space ":" space call "}" space"#
            root = mustCall ? call : call + #" | "{" space "\"response\"" space ":" space string "}" space"#
        }
        return JSONSchemaGrammar.primitives + rules + "root ::= \(root)\n"
    }

    /// The generic format's system message: the tools, and how to answer.
    public func systemPrompt(tools: [ToolSpec], mustCall: Bool) -> String? {
        guard self == .generic else { return nil }
        let list = String(decoding: JSON.array(tools.map(\.definition)).serialized(), as: UTF8.self)
        return "You can call any of the following tools to satisfy the user's requests: \(list)\n\n"
            + "Answer with a JSON object: {\"tool_call\": {\"name\": \"tool_name\", \"arguments\": {...}}} to call a tool"
            + (mustCall ? "." : ", or {\"response\": \"...\"} to answer the user directly.")
    }

    /// A whole answer read as the model's text and the calls it made; text that is not a
    /// well-formed call stays text.
    public func parse(_ text: String) -> (content: String, calls: [ToolCall]) {
        func call(_ v: JSON, key: String) -> ToolCall? {
            guard let name = v["name"]?.stringValue, let args = v[key] ?? v["arguments"], args.isObject else { return nil }
            return ToolCall(name: name, arguments: args)
        }
        func object(_ s: Substring) -> JSON? {
            guard let v = try? JSONParser.parse(String(s)), v.isObject else { return nil }
            return v
        }
        switch self {
        case .hermes:
            var calls: [ToolCall] = [], content = "", rest = Substring(text)
            while let open = rest.firstRange(of: "<tool_call>") {
                content += rest[..<open.lowerBound]
                guard let close = rest[open.upperBound...].firstRange(of: "</tool_call>"),
                    let v = object(rest[open.upperBound..<close.lowerBound].trimmingBlanks), let c = call(v, key: "arguments")
                else {
                    return (text, [])
                }
                calls.append(c)
                rest = rest[close.upperBound...]
            }
            content += rest
            return (calls.isEmpty ? text : String(Substring(content).trimmingBlanks), calls)
        case .llama3:
            var body = Substring(text).trimmingBlanks
            if body.hasPrefix("<|python_tag|>") { body = body.dropFirst("<|python_tag|>".count).trimmingBlanks }
            var calls: [ToolCall] = []
            for part in body.split(separator: ";") {
                guard let v = object(part.trimmingBlanks), let c = call(v, key: "parameters") else { return (text, []) }
                calls.append(c)
            }
            return calls.isEmpty ? (text, []) : ("", calls)
        case .generic:
            guard let v = object(Substring(text).trimmingBlanks) else { return (text, []) }
            if let c = v["tool_call"].flatMap({ call($0, key: "arguments") }) { return ("", [c]) }
            if let r = v["response"]?.stringValue { return (r, []) }
            return (text, [])
        }
    }
}

extension Substring {
    var trimmingBlanks: Substring {
        var s = self
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}

extension JinjaValue {
    /// A request's JSON as a template sees it: its strings are data.
    public init(json: JSON) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(Int(i))
        case .double(let d): self = .double(d)
        case .string(let s): self = .data(s)
        case .array(let items): self = .list(items.map(JinjaValue.init(json:)))
        case .floats(let f): self = .list(f.map { .double(Double($0)) })
        case .object(let pairs): self = .dict(JinjaDict(pairs.map { ($0.0, JinjaValue(json: $0.1)) }))
        }
    }
}
