import Testing

@testable import MServe

/// OpenAI's chat and text completions, without a server: the request as the model takes it, the
/// 400s, and the answer and chunks a generative model's pieces become.
@Suite struct OpenAICompletionsTests {
    @Test func aChatRequestBecomesTheModelsInput() throws {
        let body: JSON = [
            "model": "m", "messages": [["role": "user", "content": "hi"]], "max_completion_tokens": 5, "max_tokens": 9,
            "temperature": 0, "stop": "x", "seed": 3, "user": "u", "stream": true, "stream_options": ["include_usage": true]
        ]
        let r = try OpenAICompletionRequest(body, chat: true)
        #expect(r.stream && r.includeUsage)
        #expect(r.input == ["messages": [["role": "user", "content": "hi"]], "max_tokens": 5, "temperature": 0, "seed": 3, "stop": "x"])
        // logprobs, in each API's terms, become the model's `logprobs` and `top_logprobs`.
        let lp = try OpenAICompletionRequest(["messages": [], "logprobs": true, "top_logprobs": 3], chat: true)
        #expect(lp.logprobs && lp.input == ["messages": [], "logprobs": true, "top_logprobs": 3])
        #expect(
            try OpenAICompletionRequest(["prompt": "x", "logprobs": 2], chat: false).input == ["prompt": "x", "logprobs": true, "top_logprobs": 2])
        #expect(try !OpenAICompletionRequest(["messages": [], "logprobs": false], chat: true).logprobs)
        let text = try OpenAICompletionRequest(["model": "m", "prompt": ["a"]], chat: false)
        #expect(text.input == ["prompt": "a"] && !text.stream)
        #expect(try OpenAICompletionRequest(["prompt": ["a", "b"]], chat: false).input == ["prompt": ["a", "b"]])
        // Token ids, one prompt or several, and logit_bias, go to the model as they are.
        #expect(
            try OpenAICompletionRequest(["prompt": [1, 2], "logit_bias": ["5": -100]], chat: false).input
                == ["prompt": [1, 2], "logit_bias": ["5": -100]])
        #expect(try OpenAICompletionRequest(["prompt": [[1, 2], [3]]], chat: false).input == ["prompt": [[1, 2], [3]]])
        // Structured output goes to the model, which compiles it.
        #expect(
            try OpenAICompletionRequest(["messages": [], "response_format": ["type": "json_object"], "grammar": "root ::= \"a\""], chat: true).input
                == ["messages": [], "response_format": ["type": "json_object"], "grammar": "root ::= \"a\""])
        // n above 1 goes to the model, which knows its limit.
        #expect(try OpenAICompletionRequest(["messages": [], "n": 3], chat: true).input == ["messages": [], "n": 3])
        #expect(try OpenAICompletionRequest(["messages": [], "n": 1], chat: true).input == ["messages": []])
    }

    @Test(
        arguments: [
            (["prompt": "x"], true, "messages is required", "messages"),
            (["messages": [], "n": 0], true, "n must be a positive integer", "n"),
            (["messages": [], "stream": "yes"], true, "stream must be true or false", "stream"),
            (["messages": [], "stream_options": ["include_usage": true]], true, "only allowed when stream is true", "stream_options"),
            (["messages": [], "logprobs": 3], true, "logprobs must be true or false", "logprobs"),
            (["messages": [], "top_logprobs": 2], true, "top_logprobs needs logprobs: true", "top_logprobs"),
            (["messages": [], "logprobs": true, "top_logprobs": 21], true, "top_logprobs must be an integer from 0 to 20", "top_logprobs"),
            (["prompt": "x", "logprobs": true], false, "logprobs must be an integer from 0 to 20", "logprobs"),
            (["messages": [], "functions": [["name": "f"]]], true, "functions is not supported", "functions"),
            (["prompt": [1, "a"]], false, "prompt must be a string, a list of strings, or token ids", "prompt"),
            (["prompt": "x", "echo": true], false, "echo is not supported", "echo")
        ] as [(JSON, Bool, String, String)])
    func badRequestsSayWhichFieldAndWhy(_ body: JSON, _ chat: Bool, _ message: String, _ param: String) {
        do {
            _ = try OpenAICompletionRequest(body, chat: chat)
            Issue.record("expected a 400 for \(body.text)")
        } catch {
            #expect(error.status == 400 && error.message.contains(message) && error.param == param, "\(error.message)")
        }
    }

    /// A chunk's first choice.
    func choice(_ chunk: JSON) -> JSON {
        if case .array(let a)? = chunk["choices"], let first = a.first { first } else { .null }
    }

    static let usage: JSON = [
        "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "prompt_tokens_details": ["cached_tokens": 4],
        "prompt_ms": 20.0, "generation_ms": 40.0
    ]
    /// The engine's usage that `usage` is the JSON of.
    static let engineUsage = GenerationUsage(
        promptTokens: 10, cachedTokens: 4, completionTokens: 3, queuedSeconds: 0.005, secondsToFirstToken: 0.02, seconds: 0.06)

    @Test func aChatStreamIsTheRoleTheDeltasTheFinishAndTheUsage() {
        var shape = OpenAICompletionShape(id: "r1", model: "m", created: 7, chat: true, includeUsage: true)
        var g = Generation()
        var chunks: [JSON] = []
        #expect(OpenAICompletionsTests.engineUsage.json == OpenAICompletionsTests.usage)
        for event: GenerationEvent in [
            .started(index: 0, promptTokens: 10), .text(index: 0, "Hel", tokens: 1), .text(index: 0, "", tokens: 1),
            .text(index: 0, "lo", tokens: 1), .finished(index: 0, reason: "stop", usage: OpenAICompletionsTests.engineUsage)
        ] {
            g.add(event)
            chunks += shape.pieces(for: event)
        }
        chunks += shape.tail(g)
        #expect(chunks.count == 5)
        #expect(chunks.allSatisfy { $0["id"] == "r1" && $0["object"] == "chat.completion.chunk" && $0["model"] == "m" })
        #expect(choice(chunks[0])["delta"] == ["role": "assistant", "content": ""])
        #expect(choice(chunks[1])["delta"] == ["content": "Hel"] && choice(chunks[2])["delta"] == ["content": "lo"])
        #expect(choice(chunks[3])["delta"] == [:] && choice(chunks[3])["finish_reason"] == "stop")
        #expect(chunks[3]["timings"]?["predicted_n"] == 3 && chunks[3]["timings"]?["predicted_per_second"] == 50.0)
        #expect(
            chunks[4]["choices"] == []
                && chunks[4]["usage"] == [
                    "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                    "prompt_tokens_details": ["cached_tokens": 4]
                ])
        // llama.cpp's timings: the prompt's tokens found cached, and those computed.
        #expect(chunks[3]["timings"]?["cache_n"] == 4 && chunks[3]["timings"]?["prompt_n"] == 6)
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == .null })
    }

    @Test func aTextCompletionOfTwoPromptsAnswersTwoChoices() {
        let shape = OpenAICompletionShape(id: "r2", model: "m", created: 7, chat: false, includeUsage: false)
        var g = Generation()
        let u = OpenAICompletionsTests.engineUsage
        for event: GenerationEvent in [
            .text(index: 1, "b", tokens: 1), .text(index: 0, "a", tokens: 1), .finished(index: 0, reason: "length", usage: u),
            .finished(index: 1, reason: "stop", usage: u)
        ] {
            g.add(event)
        }
        // mserve's own pieces of the same events, indexed because there are two choices.
        #expect(GenerationEvent.text(index: 1, "b", tokens: 1).piece(indexed: true) == ["index": 1, "text": "b"])
        #expect(GenerationEvent.text(index: 0, "", tokens: 1).piece(indexed: false) == nil)
        #expect(
            GenerationEvent.finished(index: 0, reason: "length", usage: u).piece(indexed: false)
                == ["finish_reason": "length", "usage": OpenAICompletionsTests.usage])
        #expect(g.finished)
        let answer = shape.answer(g)
        #expect(answer["object"] == "text_completion")
        #expect(
            answer["choices"] == [
                ["index": 0, "text": "a", "logprobs": .null, "finish_reason": "length"],
                ["index": 1, "text": "b", "logprobs": .null, "finish_reason": "stop"]
            ])
        #expect(answer["usage"] == ["prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26, "prompt_tokens_details": ["cached_tokens": 8]])
        if case .array(let choices)? = g.json["choices"] { #expect(choices[1]["text"] == "b") } else { Issue.record("no choices") }
    }

    /// Log-probabilities in each API's shape: a chat chunk's `logprobs.content`, a held-back
    /// token's going out with the next chunk; completions' `tokens`/`token_logprobs`/`top_logprobs`/
    /// `text_offset`; mserve's own pieces.
    @Test func logprobsInEachShape() {
        let a = TokenLogprob(
            bytes: Array("Hel".utf8), logprob: -0.5,
            top: [
                TokenLogprob(bytes: Array("Hel".utf8), logprob: -0.5),
                TokenLogprob(bytes: Array("Hi".utf8), logprob: -1.5)
            ])
        let b = TokenLogprob(bytes: [0xC3], logprob: -0.25), c = TokenLogprob(bytes: [0xA9], logprob: -0.125)
        var chat = OpenAICompletionShape(id: "r", model: "m", created: 7, chat: true, includeUsage: false, logprobs: true)
        var chunks: [JSON] = []
        for e: GenerationEvent in [
            .started(index: 0, promptTokens: 3), .text(index: 0, "Hel", tokens: 1, logprobs: [a]),
            .text(index: 0, "", tokens: 1, logprobs: [b]), .text(index: 0, "é", tokens: 1, logprobs: [c])
        ] {
            chunks += chat.pieces(for: e)
        }
        #expect(chunks.count == 3 && choice(chunks[0])["logprobs"] == .null)
        #expect(
            choice(chunks[1])["logprobs"] == [
                "content": [
                    [
                        "token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108],
                        "top_logprobs": [
                            ["token": "Hel", "logprob": -0.5, "bytes": [72, 101, 108]],
                            ["token": "Hi", "logprob": -1.5, "bytes": [72, 105]]
                        ]
                    ]
                ]
            ])
        // The half character's token went out with the chunk that completes it.
        if case .array(let list)? = choice(chunks[2])["logprobs"]?["content"] {
            #expect(list.map { $0["bytes"] } == [[0xC3], [0xA9]] && list.map { $0["logprob"] } == [-0.25, -0.125])
        } else {
            Issue.record("no logprobs in \(chunks[2].text)")
        }
        var text = OpenAICompletionShape(id: "r", model: "m", created: 7, chat: false, includeUsage: false, logprobs: true)
        _ = text.pieces(for: .text(index: 0, "Hel", tokens: 1, logprobs: [a]))
        let second = text.pieces(for: .text(index: 0, "lo", tokens: 1, logprobs: [TokenLogprob(bytes: Array("lo".utf8), logprob: -1)]))
        #expect(choice(second[0])["logprobs"] == ["tokens": ["lo"], "token_logprobs": [-1.0], "top_logprobs": [[:]], "text_offset": [3]])
        var g = Generation()
        g.add(.text(index: 0, "Hel", tokens: 1, logprobs: [a]))
        g.add(.finished(index: 0, reason: "stop", usage: OpenAICompletionsTests.engineUsage))
        #expect(choice(text.answer(g))["logprobs"]?["top_logprobs"] == [["Hel": -0.5, "Hi": -1.5]])
        #expect(
            g.json["logprobs"] == [a.json]
                && GenerationEvent.text(index: 0, "", tokens: 1, logprobs: [b]).piece(indexed: false)?["logprobs"] == [b.json])
    }

    /// A call: a chunk whose delta has the call (numbered within its choice), the finish
    /// "tool_calls"; the answer's message has no content and the calls; mserve's own piece.
    @Test func toolCallsInEachShape() {
        var chat = OpenAICompletionShape(id: "r", model: "m", created: 7, chat: true, includeUsage: false)
        var g = Generation(), chunks: [JSON] = []
        for e: GenerationEvent in [
            .text(index: 0, "", tokens: 1), .toolCall(index: 0, id: "call_1", name: "f", arguments: "{\"x\":1}"),
            .toolCall(index: 0, id: "call_2", name: "g", arguments: "{}"),
            .finished(index: 0, reason: "tool_calls", usage: OpenAICompletionsTests.engineUsage)
        ] {
            g.add(e)
            chunks += chat.pieces(for: e)
        }
        #expect(chunks.count == 4 && choice(chunks[0])["delta"] == ["role": "assistant", "content": ""])
        #expect(
            choice(chunks[1])["delta"] == [
                "tool_calls": [["index": 0, "id": "call_1", "type": "function", "function": ["name": "f", "arguments": "{\"x\":1}"]]]
            ])
        #expect(
            choice(chunks[2])["delta"]?["tool_calls"] == [
                ["index": 1, "id": "call_2", "type": "function", "function": ["name": "g", "arguments": "{}"]]
            ])
        #expect(choice(chunks[3])["finish_reason"] == "tool_calls")
        let message = choice(chat.answer(g))["message"]
        #expect(message?["content"] == .null && message?["refusal"] == .null)
        #expect(
            message?["tool_calls"] == [
                ["id": "call_1", "type": "function", "function": ["name": "f", "arguments": "{\"x\":1}"]],
                ["id": "call_2", "type": "function", "function": ["name": "g", "arguments": "{}"]]
            ])
        #expect(
            GenerationEvent.toolCall(index: 0, id: "call_1", name: "f", arguments: "{}").piece(indexed: false)
                == ["tool_call": ["id": "call_1", "name": "f", "arguments": "{}"]])
    }

    @Test func timingsAreLlamaCppsFromTheUsage() {
        let t = Generation.timings(OpenAICompletionsTests.usage)
        // Of the 10 prompt tokens 4 were cached: 6 computed in 20 ms.
        #expect(t["cache_n"] == 4 && t["prompt_n"] == 6 && t["prompt_ms"] == 20.0 && t["prompt_per_second"] == 300.0)
        #expect(t["predicted_n"] == 3 && t["predicted_ms"] == 40.0 && t["predicted_per_token_ms"] == 20.0)
    }
}
