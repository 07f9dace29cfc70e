import MServeHTTP
import MServeSystem

/// One call of a served model on behalf of the request's handler, whatever API it came through:
/// the key's permission, submission (503 when the model's queue is full), the request timeout
/// (504), the client leaving (499 in the logs; a queued request never runs, a stream stops),
/// pings on a quiet stream, backpressure, token and load metrics.  What the client sees is the
/// presenter's (mserve's own JSON, OpenAI's chat, text, Responses or embeddings).  The handler
/// stays the request's one handler: it answers, logs and releases the key's place.
final class ModelCall {
    let handler: RequestHandler
    let model: ServedModel
    private var presenter: any ModelPresenter

    init(_ handler: RequestHandler, model: ServedModel, presenter: some ModelPresenter) {
        self.handler = handler
        self.model = model
        self.presenter = presenter
    }

    private var request: HTTPRequest { handler.request }
    private var context: HandlerContext { handler.context }

    /// The key's permission for this model (403 without).
    static func checkPermission(_ handler: RequestHandler, _ model: ServedModel) throws {
        guard let access = handler.context.access, let key = handler.apiKey, !access.allows(key, model: model.name) else { return }
        throw AccessControl.forbidden(key, model: model.name)
    }

    private func checkPermission() throws { try ModelCall.checkPermission(handler, model) }

    /// Validates on the loop, queues for the model threads (or admits to a generative model's
    /// engine), and answers when they are done; a client that asks for a stream gets the model's
    /// pieces as they come.  A request the model refuses at once throws (400, 503).
    func run(_ inference: InferenceRequest) throws {
        var inference = inference
        if !handler.trace.traceID.isEmpty { inference.trace = handler.trace }
        try checkPermission()
        handler.metricsModel = model.metricsIndex
        let input = inference.input
        streamFormat = presenter.streamFormat(for: input, accept: request.head.accept)
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
                for p in presenter.pieces(forPiece: piece) { send(p) }
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
            context.logger.debug(
                "queued for model \(model.name) (cost \(job.cost); \(running) running, \(waiting) waiting)", recordID: handler.recordID)
        }
        handler.beginAsynchronous()
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
                recordID: handler.recordID)
        }
        handler.beginAsynchronous()
        if streamFormat?.isSSE == true, context.settings.streamPing > 0 {
            let interval = context.settings.streamPing
            pinger = context.server.loop.after(interval, repeating: true) { [weak self] in self?.ping(quietFor: interval) }
        }
        let timeout = model.runtime?.requestTimeout ?? context.settings.limits.requestTimeout
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
        guard !handler.finished else { return }
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
            for p in presenter.pieces(for: event, indexed: choices > 1) { send(p) }
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
        guard !handler.finished, monotonicSeconds() - (lastSent ?? request.startTime) >= interval * 0.9 else { return }
        beginStream()
        handler.writeChunk(Array(": ping\n\n".utf8))
        lastSent = monotonicSeconds()
    }

    private func beginStream() {
        guard let format = streamFormat, !handler.streaming, !handler.finished else { return }
        handler.setHeader("Content-Type", format.contentType)
        handler.setHeader("Cache-Control", "no-cache")
        handler.setHeader("X-Accel-Buffering", "no")  // nginx must not buffer the stream
        handler.startStream()
    }

    /// One piece of a stream, with the recordid, as an SSE event or a JSON line.
    private func send(_ piece: JSON) {
        guard let format = streamFormat, !handler.finished else { return }
        beginStream()
        var value = piece.isObject ? piece : ["result": piece]
        if presenter.tagsPieces {
            value = value.setting("recordid", handler.recordIDValue == .null ? .string(handler.recordID) : handler.recordIDValue, first: true)
        }
        handler.writeChunk(format.frame(value, event: format == .namedEvents ? value["type"]?.stringValue : nil))
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
            if let raw = reply?.value, streamFormat == nil || !handler.streaming {
                handler.setStatus(raw.status)
                handler.setHeader("Content-Type", raw.contentType)
                handler.write(raw.body)
                handler.finish()
            } else if let format = streamFormat {
                if !handler.streaming && !generative { send(output) }  // a stream of nothing still gets its head
                beginStream()
                for p in presenter.tail(generation) { send(p) }
                handler.writeChunk(format.end)
                handler.finish()
            } else {
                handler.write(presenter.answer(output: output, generation: generative ? generation : nil))
                handler.finish()
            }
        case .failure(let e as ModelInputError):
            fail(HTTPError(400, e.message, param: e.param))
        case .failure(let e as HTTPError):
            fail(e)
        case .failure(is StreamCancelled):
            fail(HTTPError(499, "client closed the connection during the stream"))
        case .failure(let error):
            context.logger.error("model \(model.name) failed: \(error)", recordID: handler.recordID)
            fail(HTTPError(500, "model \(model.name) failed: \(error)"))
        }
    }

    /// An error before the stream began is an ordinary error response; after, the status is sent
    /// already, so the error is the stream's last event.
    private func fail(_ error: HTTPError) {
        guard !handler.finished else { return }
        closeReceiver()
        countTokensMade()
        publishLoad()
        stopPinging()
        guard handler.streaming, let format = streamFormat else { return handler.finish(with: error) }
        handler.writeChunk(format.frame(handler.errorBody(error), event: "error"))
        handler.setStatus(error.status)  // for the logs: the client saw 200
        handler.finish()
    }
}
