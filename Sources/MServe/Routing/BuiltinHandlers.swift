/// A model loaded in this worker, and where it is served.
public final class ServedModel {
    public let name: String
    public let summary: String
    public let device: String
    public let instance: any Model
    /// The model threads and queue; nil for a model that runs on the event loop.
    var runner: ModelRunner?

    init(name: String, summary: String, device: String, instance: any Model) {
        self.name = name
        self.summary = summary
        self.device = device
        self.instance = instance
    }

    var info: JSON {
        ["name": .string(name), "path": .string("/" + name), "device": .string(device), "summary": .string(summary)]
    }
}

/// `GET /`: the served models.
final class IndexHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }

    override func get(_ args: [String]) throws {
        write(["models": .array(context.models.map(\.info))])
    }
}

/// `POST /NAME` runs the model on the JSON body; `GET /NAME` describes it.
final class ModelHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET, .POST] }
    var model: ServedModel!

    override func get(_ args: [String]) throws {
        write(model.info.setting("worker", .int(Int64(context.workerID))))
    }

    /// Validates on the loop, queues for the model threads, and answers when they are done: 503 at
    /// once when the model's queue is full, 504 when the request timeout passes first (a queued
    /// request then never runs), nothing (499 in the logs) when the client leaves while queued.
    override func post(_ args: [String]) throws {
        let input = try jsonObjectBody()
        do {
            try model.instance.validate(input)
        } catch let e as ModelInputError {
            throw HTTPError(400, e.message)
        }
        guard let runner = model.runner else {
            complete(Result { try model.instance.infer(InferenceRequest(recordID: recordID, input: input)) })
            return
        }
        let job = InferenceJob(request: InferenceRequest(recordID: recordID, input: input)) { [self] result in
            cancelDeadline()
            complete(result)
        }
        guard runner.submit(job) else {
            let (running, waiting) = runner.load
            throw HTTPError(503, "model \(model.name) is busy (\(running) running, \(waiting) waiting); retry later",
                            headers: [("Retry-After", "1")])
        }
        beginAsynchronous()
        let timeout = runner.runtime.requestTimeout
        deadline = context.server.loop.after(timeout) { [self] in
            cancelDeadline()
            let was = runner.abandon(job, evenIfRunning: true)
            guard was == .queued || was == .running else { return }
            finish(with: HTTPError(504, was == .queued
                ? "request waited \(timeout) s for model \(model.name) and was not run"
                : "model \(model.name) did not answer within \(timeout) s"))
        }
        request.onClientGone = { [self] in
            // A running inference is let finish; its answer goes nowhere.
            guard runner.abandon(job, evenIfRunning: false) == .queued else { return }
            cancelDeadline()
            finish(with: HTTPError(499, "client closed the connection while the request was queued"))
        }
    }

    /// The request-timeout timer.  Its closure holds this handler, so it is released when done with.
    private var deadline: EventHandle?

    private func cancelDeadline() {
        deadline?.cancel()
        deadline = nil
    }

    private func complete(_ result: Result<JSON, any Error>) {
        switch result {
        case .success(let output):
            write(output.isObject ? output : ["result": output])
            finish()
        case .failure(let e as ModelInputError):
            finish(with: HTTPError(400, e.message))
        case .failure(let e as HTTPError):
            finish(with: e)
        case .failure(let error):
            context.logger.error("model \(model.name) failed: \(error)", recordID: recordID)
            finish(with: HTTPError(500, "model \(model.name) failed: \(error)"))
        }
    }
}

extension Router {
    /// The routes every worker serves: the user's own first, then the index, then each model at /NAME.
    static func standard(models: [ServedModel], userRoutes: [Route] = []) -> Router {
        let router = Router(userRoutes + [Route("/", IndexHandler.self)])
        for m in models {
            router.add(Route("/" + m.name, literal: true) { req, ctx in
                let h = ModelHandler(request: req, context: ctx)
                h.model = m
                return h
            })
        }
        return router
    }
}
