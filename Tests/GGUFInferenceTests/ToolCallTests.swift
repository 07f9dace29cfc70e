import Grammar
import Jinja
import MServeJSON
import MServeSystem
import Testing

@testable import GGUFInference

/// Tool calls without a model: each template's way told apart, forced calls' grammars, answers
/// read back as calls, and the templates rendering tools, calls and their results.
struct ToolCallTests {
    static func template(_ name: String) throws -> ChatTemplate {
        try ChatTemplate(jinja: try FileReading.text(SmolFixture.root + "/Tests/fixtures/chat_templates/" + name), bosToken: "<s>", eosToken: "</s>")
    }

    static let weather = ToolSpec(
        name: "get_weather",
        parameters: [
            "type": "object", "properties": ["city": ["type": "string"], "days": ["type": "integer", "minimum": 1, "maximum": 7]],
            "required": ["city"]
        ],
        definition: [
            "type": "function",
            "function": [
                "name": "get_weather", "description": "The weather",
                "parameters": ["type": "object", "properties": ["city": ["type": "string"]]]
            ]
        ])
    static let time = ToolSpec(
        name: "get_time", parameters: ["type": "object", "properties": [:]], definition: ["type": "function", "function": ["name": "get_time"]])

    @Test func eachTemplatesWayIsToldApart() throws {
        #expect(ToolCallFormat(template: try Self.template("Qwen-Qwen2.5-7B-Instruct.jinja").source) == .hermes)
        #expect(ToolCallFormat(template: try Self.template("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja").source) == .hermes)
        #expect(ToolCallFormat(template: try Self.template("meta-llama-Llama-3.2-3B-Instruct.jinja").source) == .llama3)
        #expect(ToolCallFormat(template: try Self.template("meta-llama-Llama-3.1-8B-Instruct.jinja").source) == .llama3)
        #expect(ToolCallFormat(template: "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}") == .generic)
    }

    func admits(_ gbnf: String?, _ text: String) throws -> Bool {
        var m = GrammarMatcher(try Grammar(gbnf: try #require(gbnf)))
        return m.advance(Array(text.utf8)) && m.isComplete
    }

    @Test func forcedCallsAreTheToolsCallsInTheTemplatesWay() throws {
        let tools = [Self.weather, Self.time]
        let hermes = try ToolCallFormat.hermes.grammar(tools: tools, mustCall: true, parallel: true)
        #expect(try admits(hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>"))
        #expect(
            try admits(
                hermes,
                "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"
            ))
        #expect(try !admits(hermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 3}}\n</tool_call>"))  // city is required
        #expect(try !admits(hermes, "<tool_call>\n{\"name\": \"get_news\", \"arguments\": {}}\n</tool_call>"))
        #expect(try !admits(hermes, "Sure!"))
        let single = try ToolCallFormat.hermes.grammar(tools: tools, mustCall: true, parallel: false)
        #expect(
            try !admits(
                single,
                "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"
            ))
        #expect(try ToolCallFormat.hermes.grammar(tools: tools, mustCall: false, parallel: true) == nil)
        #expect(
            try admits(
                try ToolCallFormat.llama3.grammar(tools: tools, mustCall: true, parallel: false),
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"))
        let generic = try ToolCallFormat.generic.grammar(tools: tools, mustCall: false, parallel: false)
        #expect(try admits(generic, "{\"tool_call\": {\"name\": \"get_time\", \"arguments\": {}}}") && admits(generic, "{\"response\": \"Hello\"}"))
        #expect(try !admits(try ToolCallFormat.generic.grammar(tools: tools, mustCall: true, parallel: false), "{\"response\": \"Hello\"}"))
        // A tool whose parameters cannot be a grammar names itself.
        let bad = ToolSpec(name: "f", parameters: ["type": "object", "properties": ["x": ["type": "string", "format": "email"]]], definition: [:])
        #expect(throws: GrammarError.self) { try ToolCallFormat.hermes.grammar(tools: [bad], mustCall: true, parallel: false) }
        do { _ = try ToolCallFormat.hermes.grammar(tools: [Self.time, bad], mustCall: true, parallel: false) } catch {
            #expect(error.message.hasPrefix("tools[1].function.parameters.properties.x: format"), "\(error.message)")
        }
    }

    @Test func answersAreReadBackAsCalls() {
        let (text, calls) = ToolCallFormat.hermes.parse(
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
        #expect(text == "" && calls == [ToolCall(name: "get_weather", arguments: ["city": "Paris"])])
        #expect(
            ToolCallFormat.hermes.parse(
                "Let me see. <tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"b\", \"arguments\": {}}</tool_call>"
            ).calls.map(\.name) == ["a", "b"])
        #expect(ToolCallFormat.hermes.parse("<tool_call>{\"name\": \"a\"</tool_call>") == ("<tool_call>{\"name\": \"a\"</tool_call>", []))
        #expect(ToolCallFormat.hermes.parse("Paris is in France.").calls.isEmpty)
        #expect(
            ToolCallFormat.llama3.parse("<|python_tag|>{\"name\": \"get_time\", \"parameters\": {}}").calls == [
                ToolCall(name: "get_time", arguments: [:])
            ])
        #expect(ToolCallFormat.llama3.parse("{\"answer\": 1}").calls.isEmpty)
        #expect(ToolCallFormat.generic.parse("{\"response\": \"Hi there\"}") == ("Hi there", []))
        #expect(ToolCallFormat.generic.parse("{\"tool_call\": {\"name\": \"get_time\", \"arguments\": {}}}").calls.map(\.name) == ["get_time"])
    }

    /// Qwen2.5's template renders the tools, an assistant turn's calls (arguments as an object) and
    /// the tool's answer, as transformers renders them.
    @Test func aTemplateRendersToolsCallsAndResults() throws {
        let qwen = try Self.template("Qwen-Qwen2.5-7B-Instruct.jinja")
        let turns = [
            ChatMessage(role: "user", content: "Weather in Paris?"),
            ChatMessage(
                role: "assistant", content: "", toolCalls: [(id: "call_1", call: ToolCall(name: "get_weather", arguments: ["city": "Paris"]))]),
            ChatMessage(role: "tool", content: "{\"temperature\": 21}", toolCallID: "call_1")
        ]
        let text = try qwen.prompt(turns, tools: [Self.weather]).text
        #expect(text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather\""))
        #expect(text.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"))
        #expect(text.contains("<|im_start|>user\n<tool_response>\n{\"temperature\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"))
    }

    /// Llama 3.2's template puts the tools in the first user turn and asks for its JSON shape; a
    /// call made earlier renders as that shape with `parameters`, its result as an ipython turn.
    @Test func llamaThreeRendersToolsInTheUserTurn() throws {
        let llama = try Self.template("meta-llama-Llama-3.2-3B-Instruct.jinja")
        let turns = [
            ChatMessage(role: "user", content: "Weather in Paris?"),
            ChatMessage(
                role: "assistant", content: "", toolCalls: [(id: "call_1", call: ToolCall(name: "get_weather", arguments: ["city": "Paris"]))]),
            ChatMessage(role: "tool", content: "21", toolCallID: "call_1")
        ]
        let text = try llama.prompt(turns, tools: [Self.weather], now: JinjaDate(year: 2026, month: 12, day: 6)).text
        #expect(text.contains("Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}."))
        #expect(text.contains("\"name\": \"get_weather\""))
        #expect(text.contains("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"))
        #expect(text.contains("<|start_header_id|>ipython<|end_header_id|>\n\n\"21\"<|eot_id|>"))
    }
}
