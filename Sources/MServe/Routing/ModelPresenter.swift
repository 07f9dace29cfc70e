/// How an API shows a model's answer: whether and how it streams, the pieces a model's stream or
/// a generative model's events become, what a stream sends after the last, and the whole answer
/// when not streamed.  A value, tested without a server; ModelCall does the rest.
protocol ModelPresenter {
    /// How the answer is streamed for a request with this input and `Accept` (nil: not streamed).
    func streamFormat(for input: JSON, accept: String?) -> StreamFormat?
    /// Whether each streamed piece carries the recordid (an API with ids of its own carries it there).
    var tagsPieces: Bool { get }
    /// What the client gets of one piece a model thread streams.
    mutating func pieces(forPiece piece: JSON) -> [JSON]
    /// What the client gets of one of a generative model's events (`indexed`: several choices).
    mutating func pieces(for event: GenerationEvent, indexed: Bool) -> [JSON]
    /// After the last piece or event, before the stream's end.
    mutating func tail(_ generation: Generation) -> [JSON]
    /// The whole answer: a model's output, or a generative model's generation.
    func answer(output: JSON, generation: Generation?) -> JSON
}

/// mserve's own shape (`POST /NAME`): the model's JSON as it is (anything else under `result`), its
/// pieces as they come with the recordid, streamed when the client asks (`"stream"`, or `Accept:
/// text/event-stream` for Server-Sent Events, `application/x-ndjson` for JSON lines).
struct MServePresenter: ModelPresenter {
    func streamFormat(for input: JSON, accept: String?) -> StreamFormat? { StreamFormat(accept: accept, stream: input["stream"]) }
    var tagsPieces: Bool { true }
    func pieces(forPiece piece: JSON) -> [JSON] { [piece] }
    func pieces(for event: GenerationEvent, indexed: Bool) -> [JSON] { event.piece(indexed: indexed).map { [$0] } ?? [] }
    func tail(_ generation: Generation) -> [JSON] { [] }
    func answer(output: JSON, generation: Generation?) -> JSON { generation?.json ?? (output.isObject ? output : ["result": output]) }
}

/// An API of generative models only (OpenAI's completions and Responses): its body says whether to
/// stream, whatever the client accepts; its pieces carry ids of their own.
protocol GenerationPresenter: ModelPresenter {
    var streamFormat: StreamFormat? { get }
    mutating func pieces(for event: GenerationEvent) -> [JSON]
    func answer(_ generation: Generation) -> JSON
}

extension GenerationPresenter {
    func streamFormat(for input: JSON, accept: String?) -> StreamFormat? { streamFormat }
    var tagsPieces: Bool { false }
    func pieces(forPiece piece: JSON) -> [JSON] { [piece] }
    mutating func pieces(for event: GenerationEvent, indexed: Bool) -> [JSON] { pieces(for: event) }
    func answer(output: JSON, generation: Generation?) -> JSON { answer(generation ?? Generation()) }
}
