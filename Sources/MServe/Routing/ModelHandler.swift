import MServeHTTP
import MServeSystem

/// `POST /NAME` runs the model on the body (JSON, a form, a multipart upload or raw bytes, as the
/// model accepts) through a ModelCall in mserve's own shape; `GET /NAME` describes it.
final class ModelHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET, .POST] }
    let model: ServedModel

    init(request: HTTPRequest, context: HandlerContext, model: ServedModel) {
        self.model = model
        super.init(request: request, context: context)
    }

    /// A model handler is made with its model (Router.standard); this type is internal, so no route
    /// can name it without one.
    @available(*, unavailable)
    required init(request: HTTPRequest, context: HandlerContext) {
        fatalError("ModelHandler needs its model")
    }

    /// Every method of a model's route needs the key's permission for it (403 without).
    override func prepare() throws { try ModelCall.checkPermission(self, model) }

    /// Describes the model; with a query string, runs it for a model that reads queries
    /// (`answersQueries`: modelserve's `GET /NAME?text=...`).
    override func get(_ args: [String]) throws {
        if model.instance.answersQueries, let q = request.query, !q.isEmpty {
            return try run(
                InferenceRequest(
                    recordID: recordID, input: [:], contentType: "", method: "GET", path: request.path,
                    query: queryArguments))
        }
        write(model.info.setting("worker", .int(Int64(context.slot))))
    }

    private var queryArguments: [(String, String)] { request.query.map { URLCoding.parseForm(Array($0.utf8)) } ?? [] }

    override func post(_ args: [String]) throws {
        try run(try inferenceRequest())
    }

    private func run(_ inference: InferenceRequest) throws {
        try ModelCall(self, model: model, presenter: MServePresenter()).run(inference)
    }

    /// The body as the model takes it: JSON, a multipart upload, or raw bytes; 415 for a media type
    /// the model does not accept.
    private func inferenceRequest() throws -> InferenceRequest {
        var media = request.mediaType ?? "application/json"
        let accepted = type(of: model.instance).acceptedMediaTypes
        // `curl -d '{...}'` declares a form; a JSON object body is taken as what it is, as tornado's
        // handlers that read the body as JSON took it.
        if media == "application/x-www-form-urlencoded", case .success(let v)? = parsedJSON, v.isObject,
            accepted.contains(where: { MediaType.matches("application/json", pattern: $0) })
        {
            media = "application/json"
        }
        guard accepted.contains(where: { MediaType.matches(media, pattern: $0) }) else {
            throw HTTPError(415, "model \(model.name) takes \(accepted.joined(separator: ", ")); got \(media)")
        }
        let query = queryArguments
        func made(_ input: JSON, files: [UploadedFile] = []) -> InferenceRequest {
            InferenceRequest(
                recordID: recordID, input: input, contentType: media, body: request.body, files: files,
                method: request.method.rawValue, path: request.path, query: query)
        }
        if MediaType.isJSON(media) { return made(try jsonObject()) }
        if media == "application/x-www-form-urlencoded" {
            return made(.object(URLCoding.parseForm(request.body).map { ($0.0, .string($0.1)) }))
        }
        if media == "multipart/form-data" {
            guard let boundary = request.contentType.flatMap(MultipartForm.boundary) else {
                throw HTTPError(400, "multipart/form-data without a boundary")
            }
            let form: MultipartForm
            do { form = try MultipartForm.parse(request.body, boundary: boundary) } catch let e as MultipartError {
                throw HTTPError(400, e.message)
            }
            return made(.object(form.fields.map { ($0.0, .string($0.1)) }), files: form.files)
        }
        return made([:])
    }

}
