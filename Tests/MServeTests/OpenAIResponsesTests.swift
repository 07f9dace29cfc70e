import Testing

@testable import MServe

/// OpenAI's Responses API without a server: the request as the model's conversation, the 400s,
/// and the response object and named stream events a generation becomes.
@Suite struct OpenAIResponsesTests {
    @Test func aRequestBecomesTheModelsConversation() throws {
        let r = try OpenAIResponsesRequest([
            "model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 16, "temperature": 0,
            "metadata": ["k": "v"], "store": false
        ])
        #expect(
            r.input == [
                "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "hi"]], "max_tokens": 16,
                "temperature": 0
            ])
        #expect(!r.stream && !r.logprobs && JSON.object(r.echo)["metadata"] == ["k": "v"] && JSON.object(r.echo)["instructions"] == "Be brief.")
        // Messages with text parts, earlier answers among them; the developer role as the model reads it.
        let turns = try OpenAIResponsesRequest([
            "input": [
                ["role": "user", "content": [["type": "input_text", "text": "a"], ["type": "input_text", "text": "b"]]],
                ["type": "message", "role": "assistant", "content": [["type": "output_text", "text": "c"]]],
                ["role": "developer", "content": "d"]
            ],
            "stream": true, "include": ["message.output_text.logprobs"]
        ])
        #expect(
            turns.input == [
                "messages": [["role": "user", "content": "ab"], ["role": "assistant", "content": "c"], ["role": "developer", "content": "d"]],
                "logprobs": true, "top_logprobs": 0
            ])
        #expect(turns.stream && turns.logprobs)
        // Structured output: text.format in the chat API's terms.
        let schema: JSON = ["type": "object", "properties": ["a": ["type": "integer"]]]
        #expect(
            try OpenAIResponsesRequest(["input": "x", "text": ["format": ["type": "json_schema", "name": "n", "schema": schema]]]).input
                == [
                    "messages": [["role": "user", "content": "x"]],
                    "response_format": ["type": "json_schema", "json_schema": ["name": "n", "schema": schema]]
                ])
        #expect(
            try OpenAIResponsesRequest(["input": "x", "text": ["format": ["type": "json_object"]]]).input
                == ["messages": [["role": "user", "content": "x"]], "response_format": ["type": "json_object"]])
        #expect(
            try OpenAIResponsesRequest(["input": "x", "top_logprobs": 2]).input == [
                "messages": [["role": "user", "content": "x"]], "logprobs": true, "top_logprobs": 2
            ])
    }

    @Test(
        arguments: [
            (["model": "m"], "input is required", "input"),
            (["input": 3], "input must be a string or a non-empty list", "input"),
            (["input": [["type": "function_call_output", "output": "x"]]], "a function_call_output needs call_id and output", "input"),
            (["input": [["type": "reasoning", "summary": []]]], "items of type reasoning are not supported", "input"),
            (["input": [["role": "tool", "content": "x"]]], "input[0].role must be", "input"),
            (["input": [["role": "user", "content": [["type": "input_image", "image_url": "u"]]]]], "only text parts", "input"),
            (["input": "x", "previous_response_id": "resp_1"], "keeps no responses", "previous_response_id"),
            (["input": "x", "tools": [["type": "web_search"]]], "tools[0]: only function tools are supported", "tools"),
            (["input": [["type": "function_call", "name": "f"]]], "a function_call needs call_id, name and arguments", "input"),
            (["input": "x", "text": ["format": ["type": "json_schema"]]], "text.format.schema is required", "text"),
            (["input": "x", "text": ["format": ["type": "yaml"]]], "text.format.type must be text, json_object or json_schema", "text"),
            (["input": "x", "truncation": "auto"], "truncation must be \"disabled\"", "truncation"),
            (["input": "x", "max_output_tokens": 0], "max_output_tokens must be a positive integer", "max_output_tokens"),
            (["input": "x", "top_logprobs": 21], "top_logprobs must be an integer from 0 to 20", "top_logprobs"),
            (["input": "x", "stream": "yes"], "stream must be true or false", "stream"),
            (["input": "x", "background": true], "background is not supported", "background")
        ] as [(JSON, String, String)])
    func badRequestsSayWhichFieldAndWhy(_ body: JSON, _ message: String, _ param: String) {
        do {
            _ = try OpenAIResponsesRequest(body)
            Issue.record("expected a 400 for \(body.text)")
        } catch {
            #expect(error.status == 400 && error.message.contains(message) && error.param == param, "\(error.message)")
        }
    }

    /// Tools and calls in the Responses shape become the chat shape's: tools nested under
    /// `function`, calls made earlier an assistant turn's `tool_calls`, their outputs tool turns.
    /// Every sampling field reaches the model from each endpoint, as it was sent: one declaration
    /// (OpenAIFields.sampling) serves chat, completions and Responses.
    @Test func eachEndpointPassesTheSamplingFieldsAsSent() throws {
        var body: [(String, JSON)] = OpenAIFields.sampling.enumerated().map { ($0.element, .int(Int64($0.offset))) }
        body.append(("input", "x"))
        let responses = try OpenAIResponsesRequest(.object(body)).input
        body[body.count - 1] = ("messages", [["role": "user", "content": "x"]])
        let chat = try OpenAICompletionRequest(.object(body), chat: true).input
        body[body.count - 1] = ("prompt", "x")
        let text = try OpenAICompletionRequest(.object(body), chat: false).input
        for (i, key) in OpenAIFields.sampling.enumerated() {
            #expect(responses[key] == .int(Int64(i)) && chat[key] == .int(Int64(i)) && text[key] == .int(Int64(i)), "\(key)")
        }
    }

    @Test func toolsAndCallsBecomeTheChatShapes() throws {
        let r = try OpenAIResponsesRequest([
            "input": [
                ["role": "user", "content": "weather?"],
                ["type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"],
                ["type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"],
                ["type": "function_call_output", "call_id": "c1", "output": "sunny"]
            ],
            "tools": [["type": "function", "name": "get_weather", "parameters": ["type": "object"]]],
            "tool_choice": ["type": "function", "name": "get_weather"]
        ])
        #expect(
            r.input["messages"] == [
                ["role": "user", "content": "weather?"],
                [
                    "role": "assistant", "content": .null,
                    "tool_calls": [
                        ["id": "c1", "type": "function", "function": ["name": "get_weather", "arguments": "{\"city\":\"Paris\"}"]],
                        ["id": "c2", "type": "function", "function": ["name": "get_time", "arguments": "{}"]]
                    ]
                ],
                ["role": "tool", "tool_call_id": "c1", "content": "sunny"]
            ])
        #expect(r.input["tools"] == [["type": "function", "function": ["name": "get_weather", "parameters": ["type": "object"]]]])
        #expect(r.input["tool_choice"] == ["type": "function", "function": ["name": "get_weather"]])
        // A call streamed: its item added, its arguments, done; the response's output has it.
        var shape = OpenAIResponsesShape(id: "r3", model: "m", created: 7, request: try OpenAIResponsesRequest(["input": "x", "stream": true]))
        var g = Generation(), events: [JSON] = []
        for e: GenerationEvent in [
            .text(index: 0, "", tokens: 1), .toolCall(index: 0, id: "call_1", name: "f", arguments: "{\"a\":1}"),
            .finished(index: 0, reason: "tool_calls", usage: OpenAIResponsesTests.usage)
        ] {
            g.add(e)
            events += shape.pieces(for: e)
        }
        events += shape.tail(g)
        #expect(
            events.map { $0["type"]?.stringValue ?? "" } == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done", "response.completed"
            ])
        let call: JSON = [
            "id": "fc_call_1", "type": "function_call", "status": "completed", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"
        ]
        #expect(events[5]["item"] == call && events[6]["response"]?["output"] == [call] && events[6]["response"]?["status"] == "completed")
        #expect(shape.answer(g)["output"] == [call])
    }

    static let usage = GenerationUsage(
        promptTokens: 10, cachedTokens: 4, completionTokens: 3, queuedSeconds: 0, secondsToFirstToken: 0.02, seconds: 0.06)

    @Test func aStreamIsTheResponsesNamedEventsInOrder() throws {
        var shape = OpenAIResponsesShape(id: "r1", model: "m", created: 7, request: try OpenAIResponsesRequest(["input": "hi", "stream": true]))
        #expect(shape.streamFormat == .namedEvents)
        var g = Generation(), events: [JSON] = []
        for e: GenerationEvent in [
            .started(index: 0, promptTokens: 10), .text(index: 0, "Hel", tokens: 1), .text(index: 0, "", tokens: 1),
            .text(index: 0, "lo", tokens: 1), .finished(index: 0, reason: "stop", usage: OpenAIResponsesTests.usage)
        ] {
            g.add(e)
            events += shape.pieces(for: e)
        }
        events += shape.tail(g)
        #expect(
            events.map { $0["type"]?.stringValue ?? "" } == [
                "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
                "response.output_text.delta", "response.output_text.delta", "response.output_text.done", "response.content_part.done",
                "response.output_item.done", "response.completed"
            ])
        #expect(events.map { $0["sequence_number"] } == (0..<10).map { JSON.int(Int64($0)) })
        #expect(events[0]["response"]?["status"] == "in_progress" && events[0]["response"]?["output"] == [])
        #expect(events[4]["delta"] == "Hel" && events[5]["delta"] == "lo" && events[5]["item_id"] == "msg_r1")
        #expect(events[6]["text"] == "Hello")
        let done = events[9]["response"]
        #expect(done?["id"] == "resp_r1" && done?["status"] == "completed" && done?["object"] == "response")
        #expect(
            done?["output"] == [
                [
                    "id": "msg_r1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [["type": "output_text", "text": "Hello", "annotations": [], "logprobs": []]]
                ]
            ])
        #expect(
            done?["usage"] == [
                "input_tokens": 10, "input_tokens_details": ["cached_tokens": 4], "output_tokens": 3,
                "output_tokens_details": ["reasoning_tokens": 0], "total_tokens": 13
            ])
    }

    @Test func anAnswerCutByMaxOutputTokensIsIncomplete() throws {
        let shape = OpenAIResponsesShape(
            id: "r2", model: "m", created: 7, request: try OpenAIResponsesRequest(["input": "hi", "max_output_tokens": 3]))
        var g = Generation()
        g.add(.text(index: 0, "abc", tokens: 3))
        g.add(.finished(index: 0, reason: "length", usage: OpenAIResponsesTests.usage))
        let r = shape.answer(g)
        #expect(r["status"] == "incomplete" && r["incomplete_details"] == ["reason": "max_output_tokens"] && r["max_output_tokens"] == 3)
        func first(_ j: JSON?) -> JSON? { if case .array(let a)? = j { a.first } else { nil } }
        #expect(first(r["output"])?["status"] == "incomplete" && first(first(r["output"])?["content"])?["text"] == "abc")
        #expect(shape.streamFormat == nil)
    }
}
