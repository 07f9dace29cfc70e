import MServeHTTP
import MServePOSIX

/// `POST /NAME` runs the model on the JSON body; `GET /NAME` describes it.  Subclasses serve a
/// model under another API (OpenAIEmbeddingsHandler, OpenAICompletionsHandler): a handler of that
/// API picks the model and its input and hands over (`run(for:_:)`); the subclass shapes the
/// answer (`present`), the pieces of a stream (`presentPiece`, `streamTail`) and errors (`errorBody`).
class ModelHandler: RequestHandler {
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
    override func prepare() throws { try checkPermission() }

    func checkPermission() throws {
        guard let access = context.access, let key = apiKey, !access.allows(key, model: model.name) else { return }
        throw AccessControl.forbidden(key, model: model.name)
    }

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

    /// Validates on the loop, queues for the model threads, and answers when they are done: 503 at
    /// once when the model's queue is full, 504 when the request timeout passes first (a queued
    /// request then never runs), nothing (499 in the logs) when the client leaves while queued.
    /// A client that asks for a stream (`"stream": true` or `Accept: text/event-stream` for
    /// Server-Sent Events, `Accept: application/x-ndjson` for JSON lines) gets the model's pieces as
    /// they come; leaving stops the model at its next piece.
    override func post(_ args: [String]) throws {
        try run(try inferenceRequest())
    }

    /// Runs the request as this handler on behalf of `front`, the handler of another API that
    /// chose the model: the recordid, the key and its place among the key's requests move here.
    func run(for front: RequestHandler, _ inference: InferenceRequest) throws {
        recordID = front.recordID
        recordIDValue = front.recordIDValue
        apiKey = front.apiKey
        // The key's request in flight is this handler's to release when it answers; if it fails
        // at once, the front handler answers (and releases) instead.
        admitted = front.admitted
        front.admitted = nil
        do {
            try run(inference)
        } catch {
            if !finished { swap(&admitted, &front.admitted) }
            throw error
        }
        front.beginAsynchronous()
    }

    func run(_ inference: InferenceRequest) throws {
        var inference = inference
        if !trace.traceID.isEmpty { inference.trace = trace }
        try checkPermission()
        metricsModel = model.metricsIndex
        let input = inference.input
        streamFormat = streamFormat(for: input)
        if let generative = model.generative, let mailbox = model.mailbox {
            return try generate(inference, generative, mailbox)
        }
        reply = inference.reply
        tokens = inference.tokens
        do {
            try model.instance.validate(input)
        } catch let e as ModelInputError {
            throw HTTPError(400, e.message)
        }
        guard let runner = model.runner else {
            if streamFormat == nil {
                complete(Result { try model.instance.infer(inference) })
            } else {
                complete(
                    Result {
                        try model.instance.stream(inference) {
                            send($0); return
                        }; return .null
                    })
            }
            return
        }
        let streams = streamFormat != nil
        let onPiece: ((JSON) -> Void)? =
            !streams
            ? nil
            : { [self] piece in
                cancelDeadline()  // the request timeout bounds the wait for the first piece
                for p in presentPiece(piece) { send(p) }
                guard let job = streamJob else { return }
                throttle { [weak runner, weak job] paused in
                    guard let runner, let job else { return }
                    if paused { runner.pause(job) } else { runner.resume(job) }
                }
            }
        let job = InferenceJob(request: inference, onPiece: onPiece) { [self] result in
            cancelDeadline()
            complete(result)
        }
        streamJob = job
        if let batching = model.batching { job.cost = max(1, batching.batchCost(input)) }
        job.onTimes = { [weak self] queued, ran in
            guard let self else { return }
            context.observer.observeInference(model: model.metricsIndex, queued: queued, ran: ran)
        }
        defer { publishLoad() }
        guard runner.submit(job) else {
            let (running, waiting) = runner.load
            throw HTTPError(
                503, "model \(model.name) is busy (\(running) running, \(waiting) waiting); retry later",
                headers: [("Retry-After", "1")])
        }
        if context.logger.enabled(.debug) {
            let (running, waiting) = runner.load
            context.logger.debug("queued for model \(model.name) (cost \(job.cost); \(running) running, \(waiting) waiting)", recordID: recordID)
        }
        beginAsynchronous()
        if streamFormat?.isSSE == true, context.settings.streamPing > 0 {
            let interval = context.settings.streamPing
            pinger = context.server.loop.after(interval, repeating: true) { [weak self] in self?.ping(quietFor: interval) }
        }
        let timeout = runner.runtime.requestTimeout
        deadline = context.server.loop.after(timeout) { [self] in
            cancelDeadline()
            let was = runner.abandon(job, evenIfRunning: true)
            guard was == .queued || was == .running else { return }
            fail(
                HTTPError(
                    504,
                    was == .queued
                        ? "request waited \(timeout) s for model \(model.name) and was not run"
                        : "model \(model.name) did not answer within \(timeout) s"))
        }
        request.onClientGone = { [self] in
            // A running inference is let finish (its answer goes nowhere); a stream stops.
            let was = runner.abandon(job, evenIfRunning: streams)
            guard was == .queued || (streams && was == .running) else { return }
            cancelDeadline()
            fail(
                HTTPError(
                    499,
                    was == .queued
                        ? "client closed the connection while the request was queued"
                        : "client closed the connection during the stream"))
        }
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

    /// The model's answer as the client gets it.
    func present(_ output: JSON) -> JSON { output }

    /// Whether the client asked for a stream, and how it is framed.
    func streamFormat(for input: JSON) -> StreamFormat? { StreamFormat(accept: request.head.accept, stream: input["stream"]) }

    /// What the client gets of one piece of the model's stream.
    func presentPiece(_ piece: JSON) -> [JSON] { [piece] }

    /// What the client gets of one of a generative model's events: mserve's pieces.
    func presentEvent(_ event: GenerationEvent) -> [JSON] { event.piece(indexed: choices > 1).map { [$0] } ?? [] }

    /// What a stream sends after the model's last piece, before its end marker.
    func streamTail() -> [JSON] { [] }

    /// Whether each piece sent gets the recordid (an API with ids of its own carries it there).
    var tagsPieces: Bool { true }

    /// A generative model's events so far, and when the last text came (monotonic seconds).
    private(set) var generation = Generation()
    private var lastToken: Double?
    /// A generation's choices, those finished, and the tokens counted of each so far.
    private(set) var choices = 1
    private var finishedChoices = 0
    private var counted: [Int: Int] = [:]
    private var receiver: (mailbox: GenerationMailbox, id: Int)?

    /// A generative model: no queue and no model thread.  The model checks the input and admits the
    /// request (400, 503 at once), and its engine's events come to this loop (`receive`); the
    /// request timeout bounds the wait for the first token, a client that leaves drops its
    /// sequences at the engine's next step, and one that does not read holds them.
    private func generate(_ inference: InferenceRequest, _ generative: any GenerativeModel, _ mailbox: GenerationMailbox) throws {
        let (id, post) = mailbox.open { [self] event in receive(event, inference) }
        receiver = (mailbox, id)
        do {
            choices = try generative.generate(inference, events: post)
        } catch {
            closeReceiver()
            switch error {
            case let e as ModelInputError: throw HTTPError(400, e.message, param: e.param)
            case let e as ModelBusy:
                throw HTTPError(503, "model \(model.name) is busy (\(e)); retry later", headers: [("Retry-After", "1")])
            default: throw error
            }
        }
        publishLoad()
        if context.logger.enabled(.debug) {
            let load = generative.load
            context.logger.debug(
                "queued for model \(model.name) (\(choices) choices; \(load.running) running, \(load.waiting) waiting)",
                recordID: recordID)
        }
        beginAsynchronous()
        if streamFormat?.isSSE == true, context.settings.streamPing > 0 {
            let interval = context.settings.streamPing
            pinger = context.server.loop.after(interval, repeating: true) { [weak self] in self?.ping(quietFor: interval) }
        }
        let timeout = model.runtime?.requestTimeout ?? context.settings.requestTimeout
        deadline = context.server.loop.after(timeout) { [self] in
            cancelDeadline()
            inference.cancellation.cancel()
            fail(HTTPError(504, "model \(model.name) did not answer within \(timeout) s"))
        }
        request.onClientGone = { [self] in
            inference.cancellation.cancel()
            cancelDeadline()
            fail(
                HTTPError(
                    499,
                    lastToken == nil
                        ? "client closed the connection while the request was queued"
                        : "client closed the connection during the stream"))
        }
    }

    /// One event of the generation, on the loop: counted in the metrics, added up, and (for a
    /// stream) written; the last choice's end completes the answer.
    private func receive(_ event: GenerationEvent, _ inference: InferenceRequest) {
        guard !finished else { return }
        let observer = context.observer, metrics = model.metricsIndex
        switch event {
        case .failed(let why):
            cancelDeadline()
            return fail(HTTPError(400, why))
        case .started(_, let promptTokens):
            cancelDeadline()  // the request timeout bounds the wait for the first token
            observer.countTokens(model: metrics, prompt: promptTokens, generated: 0)
        case .text(let i, let text, let tokens, _):
            cancelDeadline()
            counted[i, default: 0] += tokens
            observer.countTokens(model: metrics, prompt: 0, generated: tokens)
            // A piece of text is a token (the model holds back only the bytes of an unfinished
            // character or of a possible stop string, which come with a later token).
            if !text.isEmpty {
                let now = monotonicSeconds()
                observer.observeToken(model: metrics, first: lastToken == nil, seconds: now - (lastToken ?? request.startTime))
                lastToken = now
            }
        case .toolCall:
            cancelDeadline()
        case .finished(let i, _, let usage):
            // A token that ends the turn is counted in the usage but was sent as no event; a
            // choice that never started counts its prompt here.
            let unseen = usage.completionTokens - counted[i, default: 0]
            observer.countTokens(
                model: metrics, prompt: counted[i] == nil && usage.completionTokens == 0 ? usage.promptTokens : 0,
                generated: max(0, unseen))
            counted[i] = usage.completionTokens
            finishedChoices += 1
        }
        generation.add(event)
        if streamFormat != nil {
            for p in presentEvent(event) { send(p) }
            throttle { inference.flow.set(paused: $0) }
        }
        guard finishedChoices == choices else { return }
        let slowest = generation.choices.compactMap(\.usage).max { $0.seconds < $1.seconds }
        if let slowest {
            observer.observeInference(model: metrics, queued: slowest.queuedSeconds, ran: slowest.seconds - slowest.queuedSeconds)
        }
        complete(.success(.null))
    }

    private func closeReceiver() {
        guard let r = receiver else { return }
        r.mailbox.close(r.id)
        receiver = nil
    }

    /// Takes the tokens the model counted since the last look into the metrics; false if the
    /// model does not count them as it goes (its pieces' `usage` is then counted at the end).
    @discardableResult
    private func countTokensMade() -> Bool {
        guard let made = tokens?.take() else { return false }
        if made.prompt > 0 || made.generated > 0 {
            context.observer.countTokens(model: model.metricsIndex, prompt: made.prompt, generated: made.generated)
        }
        return true
    }

    /// The request-timeout timer (its closure holds this handler, so it is released when done with)
    /// and the stream's ping timer (which does not: the job holds the handler while it runs).
    private var deadline: EventHandle?
    private var pinger: EventHandle?
    private var streamFormat: StreamFormat?
    /// The model's answer in bytes, if it gave one instead of JSON.
    private var reply: RawReply?
    private var tokens: TokenCount?
    /// When the stream last sent something (nil: nothing yet, so quiet since the request came).
    private var lastSent: Double?

    /// The job whose pieces this handler streams (weak: the job's closures hold the handler).
    private weak var streamJob: InferenceJob?
    private var throttled = false

    /// Backpressure: a client that leaves more than --stream-buffer unread pauses the model's
    /// stream (`pause(true)`: a model thread's emit waits, a generation's sequences are held)
    /// until it has read half of it (`pause(false)`).
    private func throttle(_ pause: @escaping (Bool) -> Void) {
        guard !throttled, request.response.pendingBytes > context.settings.streamBuffer else { return }
        throttled = true
        pause(true)
        request.response.whenDrained(to: context.settings.streamBuffer / 2) { [weak self] in
            self?.throttled = false
            pause(false)
        }
    }

    private func cancelDeadline() {
        deadline?.cancel()
        deadline = nil
    }

    private func stopPinging() {
        pinger?.cancel()
        pinger = nil
    }

    /// A stream quiet for `interval` gets an SSE comment, its head first if none was sent: what
    /// keeps clients and proxies from timing out while the request waits for the model.
    private func ping(quietFor interval: Double) {
        guard !finished, monotonicSeconds() - (lastSent ?? request.startTime) >= interval * 0.9 else { return }
        beginStream()
        writeChunk(Array(": ping\n\n".utf8))
        lastSent = monotonicSeconds()
    }

    private func beginStream() {
        guard let format = streamFormat, !streaming, !finished else { return }
        setHeader("Content-Type", format.contentType)
        setHeader("Cache-Control", "no-cache")
        setHeader("X-Accel-Buffering", "no")  // nginx must not buffer the stream
        startStream()
    }

    /// One piece of a stream, with the recordid, as an SSE event or a JSON line.
    private func send(_ piece: JSON) {
        guard let format = streamFormat, !finished else { return }
        beginStream()
        var value = piece.isObject ? piece : ["result": piece]
        if tagsPieces { value = value.setting("recordid", recordIDValue == .null ? .string(recordID) : recordIDValue, first: true) }
        writeChunk(format.frame(value, event: format == .namedEvents ? value["type"]?.stringValue : nil))
        lastSent = monotonicSeconds()
    }

    private func publishLoad() {
        if let generative = model.generative, model.mailbox != nil {
            let load = generative.load
            return context.observer.modelLoad(model: model.metricsIndex, running: load.running, waiting: load.waiting)
        }
        guard let runner = model.runner else { return }
        let (running, waiting) = runner.load
        context.observer.modelLoad(model: model.metricsIndex, running: running, waiting: waiting)
    }

    private func complete(_ result: Result<JSON, any Error>) {
        closeReceiver()
        countTokensMade()
        publishLoad()
        stopPinging()
        let generative = model.generative != nil
        switch result {
        case .success(let output):
            if let raw = reply?.value, streamFormat == nil || !streaming {
                setStatus(raw.status)
                setHeader("Content-Type", raw.contentType)
                write(raw.body)
                finish()
            } else if let format = streamFormat {
                if !streaming && !generative { send(output) }  // a stream of nothing still gets its head
                beginStream()
                for p in streamTail() { send(p) }
                writeChunk(format.end)
                finish()
            } else {
                write(present(generative ? generation.json : output.isObject ? output : ["result": output]))
                finish()
            }
        case .failure(let e as ModelInputError):
            fail(HTTPError(400, e.message, param: e.param))
        case .failure(let e as HTTPError):
            fail(e)
        case .failure(is StreamCancelled):
            fail(HTTPError(499, "client closed the connection during the stream"))
        case .failure(let error):
            context.logger.error("model \(model.name) failed: \(error)", recordID: recordID)
            fail(HTTPError(500, "model \(model.name) failed: \(error)"))
        }
    }

    /// An error before the stream began is an ordinary error response; after, the status is sent
    /// already, so the error is the stream's last event.
    private func fail(_ error: HTTPError) {
        guard !finished else { return }
        closeReceiver()
        countTokensMade()
        publishLoad()
        stopPinging()
        guard streaming, let format = streamFormat else { return finish(with: error) }
        writeChunk(format.frame(errorBody(error), event: "error"))
        setStatus(error.status)  // for the logs: the client saw 200
        finish()
    }
}

/// How a stream is framed for the client.
enum StreamFormat {
    /// Server-sent events, `data:` only, ended by `data: [DONE]` (OpenAI's chat and completions);
    /// each named by its piece's `type`, with no end marker (OpenAI's Responses); JSON lines.
    case sse, namedEvents, ndjson

    var isSSE: Bool { self != .ndjson }

    init?(accept: String?, stream: JSON?) {
        let accept = accept?.lowercased() ?? ""
        if accept.containsBytes("text/event-stream") || stream == .bool(true) || stream == .string("sse") {
            self = .sse
        } else if accept.containsBytes("application/x-ndjson") || stream == .string("ndjson") {
            self = .ndjson
        } else {
            return nil
        }
    }

    var contentType: String { isSSE ? "text/event-stream" : "application/x-ndjson" }

    func frame(_ value: JSON, event: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        if isSSE {
            if let event { out.append(contentsOf: "event: \(event)\n".utf8) }
            out.append(contentsOf: "data: ".utf8)
            out.append(contentsOf: value.serialized())
            out.append(contentsOf: "\n\n".utf8)
        } else {
            out.append(contentsOf: value.serialized())
            out.append(0x0A)
        }
        return out
    }

    /// SSE ends with OpenAI's `[DONE]` marker; JSON lines just end.
    var end: [UInt8] { self == .sse ? Array("data: [DONE]\n\n".utf8) : [] }
}
