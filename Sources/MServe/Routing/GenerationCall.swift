/// How an API shows a generative model's answer: its stream's pieces event by event, what the
/// stream sends after the last, and the whole answer when not streamed.  A value, tested without a
/// server (OpenAICompletionShape, OpenAIResponsesShape).
protocol GenerationPresenter {
    /// How the stream is framed (nil: the answer is not streamed).
    var streamFormat: StreamFormat? { get }
    /// The pieces one of the model's events becomes.
    mutating func pieces(for event: GenerationEvent) -> [JSON]
    /// After the last event, before the stream's end.
    mutating func tail(_ generation: Generation) -> [JSON]
    /// The whole answer, not streamed.
    func answer(_ generation: Generation) -> JSON
}

/// One run of a generative model presented in an API's shape: the model call (admission, deadline,
/// client gone, pings, backpressure) is ModelHandler's; what the client sees is the presenter's.
final class GenerationCall<Presenter: GenerationPresenter>: ModelHandler {
    var presenter: Presenter

    init(request: HTTPRequest, context: HandlerContext, model: ServedModel, presenter: Presenter) {
        self.presenter = presenter
        super.init(request: request, context: context, model: model)
    }

    // The API's body says whether to stream, whatever the client accepts.
    override func streamFormat(for input: JSON) -> StreamFormat? { presenter.streamFormat }
    override func presentEvent(_ event: GenerationEvent) -> [JSON] { presenter.pieces(for: event) }
    override func streamTail() -> [JSON] { presenter.tail(generation) }
    override var tagsPieces: Bool { false }
    override func present(_ output: JSON) -> JSON { presenter.answer(generation) }
}

extension RequestHandler {
    /// The generative model a body's `model` names, or the 400 (none named) or 404 (not one this key
    /// may use that generates text) in OpenAI's shape, listing those it may.
    func generativeModel(named body: JSON) throws(HTTPError) -> ServedModel {
        let visible = visibleModels.filter { $0.generative != nil }.map(\.name).joined(separator: ", ")
        guard case .string(let name)? = body["model"] else {
            throw HTTPError(400, "missing model: one of \(visible)", param: "model")
        }
        guard let m = context.models.first(where: { $0.name == name && $0.generative != nil }) else {
            throw HTTPError(404, "The model '\(name)' does not exist or does not generate text; served: \(visible)", param: "model")
        }
        return m
    }
}
