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
        let m = try generativeModel(named: body)
        let chat = type(of: self).chat
        let parsed = try OpenAICompletionRequest(body, chat: chat)
        let shape = OpenAICompletionShape(
            id: recordID, model: m.name, created: Int64(LogClock.now().seconds), chat: chat,
            stream: parsed.stream, includeUsage: parsed.includeUsage, logprobs: parsed.logprobs)
        try ModelCall(self, model: m, presenter: shape).run(InferenceRequest(recordID: recordID, input: parsed.input, body: request.body))
    }
}

final class OpenAIChatCompletionsHandler: OpenAICompletionsHandler {}

final class OpenAITextCompletionsHandler: OpenAICompletionsHandler {
    override class var chat: Bool { false }
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
