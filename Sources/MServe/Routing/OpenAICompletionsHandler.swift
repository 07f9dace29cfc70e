/// `POST /v1/chat/completions` and `POST /v1/completions` in OpenAI's shape, so that OpenAI's
/// clients work unchanged with a served generative model: `model` names it, the body becomes its
/// input (OpenAICompletionRequest), and its pieces become OpenAI's answer or chunks
/// (OpenAICompletionShape), ended by `data: [DONE]`.  The answer's `id` is the recordid.  The
/// model's engine admits the request (503 when its queue is full; 504 when no token came within the
/// request timeout).
class OpenAICompletionsHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.POST] }
    /// Chat (`messages`) or text (`prompt`) completions.
    class var chat: Bool { true }

    override func post(_ args: [String]) throws {
        let body = try jsonObjectBody()
        // Messages name only the models this key may use.
        let visible = visibleModels.filter { $0.generative != nil }.map(\.name).joined(separator: ", ")
        guard case .string(let name)? = body["model"] else {
            throw HTTPError(400, "missing model: one of \(visible)", param: "model")
        }
        guard let m = context.models.first(where: { $0.name == name && $0.generative != nil }) else {
            throw HTTPError(404, "The model '\(name)' does not exist or does not generate text; served: \(visible)", param: "model")
        }
        let chat = type(of: self).chat
        let parsed = try OpenAICompletionRequest(body, chat: chat)
        let shape = OpenAICompletionShape(id: recordID, model: name, created: Int64(LogClock.now().seconds), chat: chat,
                                          includeUsage: parsed.includeUsage, logprobs: parsed.logprobs)
        let call = Call(request: request, context: context, model: m, shape: shape, stream: parsed.stream)
        try call.run(for: self, InferenceRequest(recordID: recordID, input: parsed.input, body: request.body))
    }

    /// The chosen model's run, presented in OpenAI's shape.
    final class Call: ModelHandler {
        var shape: OpenAICompletionShape
        let stream: Bool

        init(request: HTTPRequest, context: HandlerContext, model: ServedModel, shape: OpenAICompletionShape, stream: Bool) {
            self.shape = shape
            self.stream = stream
            super.init(request: request, context: context, model: model)
        }

        // OpenAI's clients stream when the body says so, whatever they accept.
        override func streamFormat(for input: JSON) -> StreamFormat? { stream ? .sse : nil }
        override func presentEvent(_ event: GenerationEvent) -> [JSON] { shape.chunks(for: event) }
        override func streamTail() -> [JSON] { shape.tail(generation) }
        override var tagsPieces: Bool { false }
        override func present(_ output: JSON) -> JSON { shape.answer(generation) }
    }
}

final class OpenAIChatCompletionsHandler: OpenAICompletionsHandler {}

final class OpenAITextCompletionsHandler: OpenAICompletionsHandler {
    override class var chat: Bool { false }
}
