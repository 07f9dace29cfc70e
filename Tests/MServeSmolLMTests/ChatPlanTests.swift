import GGUFInference
import MServe
import Testing

@testable import MServeSmolLM

/// How a chat request's JSON becomes the model's conversation and options, without a model: the
/// turns (OpenAI's roles, text parts, tool calls and their answers), tools and tool_choice,
/// structured output, token-id prompts and the context check, each refusal a 400 naming its field.
@Suite struct ChatPlanTests {
    /// The refusal `body` throws: its message and field.
    func refusal(_ body: () throws -> Void) -> (String, String?)? {
        do {
            try body()
            return nil
        } catch let error as ModelInputError {
            return (error.message, error.param)
        } catch {
            return ("not a ModelInputError: \(error)", nil)
        }
    }

    @Test func turnsKeepTheirRolesAndTextParts() throws {
        let turns = try ChatModel.conversation([
            ["role": "developer", "content": "Be brief."],
            ["role": "user", "content": [["type": "text", "text": "Hello, "], ["type": "text", "text": "there"]]],
            [
                "role": "assistant", "content": .null,
                "tool_calls": [["id": "c1", "type": "function", "function": ["name": "f", "arguments": #"{"x": 1}"#]]]
            ],
            ["role": "tool", "tool_call_id": "c1", "content": "42"]
        ])
        #expect(turns.map(\.role) == ["system", "user", "assistant", "tool"])
        #expect(turns[1].content == "Hello, there" && turns[2].content.isEmpty && turns[3].toolCallID == "c1")
        #expect(turns[2].toolCalls.first?.call == ToolCall(name: "f", arguments: ["x": 1]))
    }

    @Test func badTurnsAreRefusedNamingTheMessage() {
        #expect(refusal { _ = try ChatModel.conversation([["role": "robot", "content": "x"]]) }?.0.hasPrefix("messages[0].role must be") == true)
        #expect(refusal { _ = try ChatModel.conversation([["role": "user", "content": 3]]) }?.1 == "messages")
        // A tool's answer to a call nobody made.
        let orphan = refusal { _ = try ChatModel.conversation([["role": "tool", "tool_call_id": "zz", "content": "1"]]) }
        #expect(orphan?.0 == "messages[0]: a tool message answers no call made before it (tool_call_id zz)")
    }

    @Test func toolsAndTheirChoice() throws {
        let f: JSON = ["type": "function", "function": ["name": "get_weather", "parameters": ["type": "object"]]]
        #expect(try ChatModel.tools(["tools": [f]])?.choice == .auto)
        #expect(try ChatModel.tools(["tools": [f], "tool_choice": "none"]) == nil)
        #expect(
            try ChatModel.tools(["tools": [f], "tool_choice": ["type": "function", "function": ["name": "get_weather"]]])?.choice
                == .named("get_weather"))
        #expect(try ChatModel.tools(["tools": [f], "parallel_tool_calls": false])?.parallel == false)
        #expect(refusal { _ = try ChatModel.tools(["tool_choice": "required"]) }?.0 == "tool_choice needs tools")
        #expect(refusal { _ = try ChatModel.tools(["tools": [f, f]]) }?.0 == "tools[1]: the function get_weather is offered twice")
        #expect(refusal { _ = try ChatModel.tools(["tools": [["type": "function", "function": ["name": "has space"]]]]) }?.1 == "tools")
    }

    @Test func oneKindOfStructuredOutput() throws {
        guard case .gbnf(_, let field)? = try ChatModel.constraint(["response_format": ["type": "json_object"]]) else {
            Issue.record("json_object is a grammar")
            return
        }
        #expect(field == "response_format")
        guard
            case .schema(_, let f)? = try ChatModel.constraint([
                "response_format": ["type": "json_schema", "json_schema": ["schema": ["type": "object"]]]
            ])
        else {
            Issue.record("json_schema is a schema")
            return
        }
        #expect(f == "response_format.json_schema.schema")
        #expect(try ChatModel.constraint(["response_format": ["type": "text"]]) == nil)
        #expect(
            refusal { _ = try ChatModel.constraint(["grammar": "root ::= \"a\"", "json_schema": ["type": "string"]]) }?.0.hasPrefix("give one of")
                == true)
        #expect(refusal { _ = try ChatModel.constraint(["response_format": ["type": "yaml"]]) }?.1 == "response_format")
    }

    @Test func tokenPromptsAndTheContext() {
        #expect(ChatModel.tokenLists([1, 2]) == [[1, 2]])
        #expect(ChatModel.tokenLists([[1, 2], [3]]) == [[1, 2], [3]])
        #expect(ChatModel.tokenLists([1, "a"]) == nil && ChatModel.tokenLists([[1], []]) == nil && ChatModel.tokenLists([]) == nil)
        #expect(refusal { try ChatModel.fits(100, 28, context: 128) } == nil)
        #expect(refusal { try ChatModel.fits(100, 29, context: 128) }?.0.hasSuffix("129 in all, beyond the model's context of 128 tokens") == true)
        #expect(refusal { try ChatModel.fits(128, nil, context: 128) }?.0.hasSuffix("with no room left for an answer") == true)
    }
}
