import Testing

@testable import MServe

/// The presenters a ModelCall shows a model's answer with, without a server: mserve's own shape,
/// OpenAI's embeddings, and a generative API's (its body decides the stream, its pieces carry no
/// recordid).
@Suite struct ModelPresenterTests {
    static func items(_ j: JSON?) -> [JSON] { if case .array(let a)? = j { a } else { [] } }

    @Test func mservesOwnShapeStreamsWhenAskedAndWrapsWhatIsNotAnObject() {
        let own = MServePresenter()
        #expect(own.streamFormat(for: ["stream": true], accept: nil) == .sse)
        #expect(own.streamFormat(for: [:], accept: "application/x-ndjson") == .ndjson)
        #expect(own.streamFormat(for: ["text": "x"], accept: "application/json") == nil)
        #expect(own.tagsPieces)
        #expect(own.answer(output: ["label": "cat"], generation: nil) == ["label": "cat"])
        #expect(own.answer(output: 3, generation: nil) == ["result": 3])
        // A generative model's events: text pieces (indexed with several choices), none for a start.
        #expect(own.pieces(for: .started(index: 0, promptTokens: 4), indexed: false).isEmpty)
        #expect(own.pieces(for: .text(index: 1, "hi", tokens: 1), indexed: true) == [["index": 1, "text": "hi"]])
        var generation = Generation()
        generation.add(.text(index: 0, "hi", tokens: 1))
        #expect(own.answer(output: .null, generation: generation) == generation.json)
    }

    @Test func embeddingsComeAsOpenAIsListAsFloatsOrBase64() {
        let output: JSON = ["embeddings": .array([.floats([1, -2]), .floats([0.5, 0])]), "usage": ["prompt_tokens": 7]]
        let floats = OpenAIEmbeddingsPresenter(model: "minilm", base64: false).answer(output: output, generation: nil)
        #expect(floats["object"] == "list" && floats["model"] == "minilm" && floats["usage"] == ["prompt_tokens": 7, "total_tokens": 7])
        #expect(Self.items(floats["data"])[1] == ["object": "embedding", "index": 1, "embedding": .floats([0.5, 0])])
        let base64 = OpenAIEmbeddingsPresenter(model: "minilm", base64: true).answer(output: output, generation: nil)
        // 1.0 and -2.0 as little-endian float32: 00 00 80 3F, 00 00 00 C0.
        #expect(Self.items(base64["data"])[0]["embedding"] == "AACAPwAAAMA=")
        // Anything else (a model's own error shape, say) as mserve shows it.
        #expect(OpenAIEmbeddingsPresenter(model: "m", base64: false).answer(output: 3, generation: nil) == ["result": 3])
    }

    @Test func aGenerativeAPIsBodyDecidesTheStreamAndItsPiecesCarryNoRecordID() {
        let shape = OpenAICompletionShape(
            id: "r1", model: "m", created: 0, chat: true, stream: false, includeUsage: false, logprobs: false)
        #expect(shape.streamFormat(for: ["stream": true], accept: "text/event-stream") == nil)
        #expect(!shape.tagsPieces)
    }
}
