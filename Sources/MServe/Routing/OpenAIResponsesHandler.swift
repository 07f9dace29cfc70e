/// `POST /v1/responses`: OpenAI's Responses API on a served generative model (as llama.cpp's,
/// vLLM's and Ollama's servers serve it), stateless: the request (OpenAIResponsesRequest) becomes
/// the model's conversation, its events the response object or its named stream events
/// (OpenAIResponsesShape).  The ids are the recordid's (`resp_…`, `msg_…`).
final class OpenAIResponsesHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.POST] }

    override func post(_ args: [String]) throws {
        let body = try jsonObjectBody()
        let m = try generativeModel(named: body)
        let parsed = try OpenAIResponsesRequest(body)
        let shape = OpenAIResponsesShape(id: recordID, model: m.name, created: Int64(LogClock.now().seconds), request: parsed)
        try ModelCall(self, model: m, presenter: shape).run(InferenceRequest(recordID: recordID, input: parsed.input, body: request.body))
    }
}
