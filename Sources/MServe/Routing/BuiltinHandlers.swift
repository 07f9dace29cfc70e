/// A model loaded in this worker, and how it is served here: built complete by WorkerAssembly
/// (its runtime, its model threads or its mailboxes, its metrics series), never changed after.
public final class ServedModel {
    public let name: String
    public let summary: String
    public let device: String
    public let instance: any Model
    /// The model threads and queue; nil for a model that runs on the event loop and for a
    /// generative model (its engine runs its requests, and `mailbox` brings their events).
    package let runner: ModelRunner?
    /// Where a generative model's events come to the loop, and its answers about itself.
    package let mailbox: GenerationMailbox?
    package let answers: LoopMailbox<Result<JSON, ModelInputError>>?
    /// Its queue, timeout and batch settings in this worker (nil: one that runs on the event loop).
    package let runtime: ModelRuntime?
    /// Its series in the scoreboard.
    package let metricsIndex: Int?
    /// The instance as a generative or batching model, cast once (a cast per request was ~1% of
    /// a worker's time on the demo model).
    package let generative: (any GenerativeModel)?
    package let batching: (any BatchingModel)?

    package init(
        name: String, summary: String, device: String, instance: any Model, runtime: ModelRuntime? = nil,
        runner: ModelRunner? = nil, mailbox: GenerationMailbox? = nil, answers: LoopMailbox<Result<JSON, ModelInputError>>? = nil,
        metricsIndex: Int? = nil
    ) {
        self.name = name
        self.summary = summary
        self.device = device
        self.instance = instance
        self.runtime = runtime
        self.runner = runner
        self.mailbox = mailbox
        self.answers = answers
        self.metricsIndex = metricsIndex
        generative = instance as? any GenerativeModel
        batching = instance as? any BatchingModel
    }

    /// The model as loaded (before a worker serves it).
    package convenience init(_ loaded: LoadedModel) {
        self.init(name: loaded.name, summary: loaded.summary, device: loaded.device, instance: loaded.instance)
    }

    var info: JSON {
        let info: JSON = [
            "name": .string(name), "path": .string("/" + name), "device": .string(device), "summary": .string(summary),
            "kind": .string(kind), "example": instance.example
        ]
        return instance.details == [:] ? info : info.setting("details", instance.details)
    }

    /// Which form the web page shows: chat (a conversation through /v1/chat/completions),
    /// embeddings (texts, a similarity heat map), upload (a file input, sent as multipart), or json
    /// (fields from the example, or a JSON editor).
    var kind: String {
        if generative != nil { return "chat" }
        if instance is any EmbeddingModel { return "embeddings" }
        return instance.takesUploads ? "upload" : "json"
    }
}

/// `GET /`: the served models; for a browser (Accept: text/html) the page to try them (--ui off:
/// JSON only).  The page is open, as the key is entered on it; the JSON list needs a key.
final class IndexHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }

    static func wantsPage(_ request: HTTPRequest, _ settings: Settings) -> Bool {
        settings.ui && MediaType.accepts(request.head.accept, "text/html")
    }

    override func get(_ args: [String]) throws {
        guard IndexHandler.wantsPage(request, context.settings) else {
            return write(["models": .array(visibleModels.map(\.info))])
        }
        let keyed = context.access != nil && apiKey == nil
        setHeader("Content-Type", "text/html; charset=utf-8")
        setHeader("Cache-Control", "no-cache")
        write(IndexPage.render(models: keyed ? [] : visibleModels.map(\.info), keyed: keyed, version: MServeVersion.string))
    }
}

/// `GET /healthz`: the worker's event loop is alive (it answered).  Inference runs on model
/// threads, so a busy model does not make this slow.
final class HealthHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws { write(["status": "ok", "worker": .int(Int64(context.slot))]) }
}

/// `GET /readyz`: 200 once every worker has loaded its models, 503 before that, while stopping and
/// while drained (`mserve ctl -c drain`), so that a load balancer sends nothing to a server that
/// cannot answer or is about to go.
final class ReadyHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws {
        // A worker still loading its models (none yet) is not ready, whatever the server as a whole is.
        let status: String
        if context.server.closing {
            status = "stopping"
        } else if context.models.isEmpty || !(context.scoreboard?.ready ?? true) {
            status = "starting"
        } else if context.scoreboard?.draining == true {
            status = "draining"
        } else {
            status = "ready"
        }
        setStatus(status == "ready" ? 200 : 503)
        answerLogLevel = .info
        write(["status": .string(status)])
    }
}

/// `GET /status.json`: workers, models, restarts and the last minutes, second by second (what
/// the status page draws).  Open or keyed as /metrics is.
final class StatusHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws {
        guard let board = context.scoreboard else { throw HTTPError(404, "no status in this process") }
        write(board.statusReport(now: monotonicSeconds()))
    }
}

/// `GET /status`: the live status page (open: it reads /status.json with the key the page at /
/// kept in the tab).
final class StatusPageHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws {
        setHeader("Content-Type", "text/html; charset=utf-8")
        setHeader("Cache-Control", "no-cache")
        write(StatusPage.render(version: MServeVersion.string))
    }
}

/// `GET /metrics`: Prometheus text for the whole server, from the shared scoreboard.  The series by
/// API key name only for a scrape that carries a valid key: key names are identities, and an
/// open /metrics is open to anyone who reaches the port.
final class MetricsHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws {
        guard let board = context.scoreboard else { throw HTTPError(404, "no metrics in this process") }
        setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        write(board.prometheusText(byKey: scrapedWithKey))
    }

    private var scrapedWithKey: Bool {
        guard let access = context.access else { return false }
        if apiKey != nil { return true }
        let h = request.head
        if case .key = access.authenticate(authorization: h.header("Authorization"), apiKey: h.header("X-API-Key")) { return true }
        return false
    }
}

/// `GET /v1/models/ID`: one served model as OpenAI's API describes it (`client.models.retrieve`),
/// or OpenAI's 404 for an id that is not served.
final class OpenAIModelHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }

    override func get(_ args: [String]) throws {
        guard let m = visibleModels.first(where: { $0.name == args[0] }) else {
            throw HTTPError(404, "The model '\(args[0])' does not exist")
        }
        write(OpenAIModelsHandler.object(m, created: context.createdAt))
    }
}

/// `GET /v1/models`: the served models in OpenAI's list format, for OpenAI clients.
final class OpenAIModelsHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }
    override func get(_ args: [String]) throws {
        write(["object": "list", "data": .array(visibleModels.map { OpenAIModelsHandler.object($0, created: context.createdAt) })])
    }

    /// OpenAI's fields, and mserve's `kind` (as in `GET /`): which requests the model takes, so
    /// that a client (`mserve bench`) can pick the chat or the embedding model (extra fields are
    /// usual here: vLLM and llama.cpp's server add theirs).
    static func object(_ m: ServedModel, created: Int64) -> JSON {
        let object: JSON = ["id": .string(m.name), "object": "model", "created": .int(created), "owned_by": "mserve", "kind": .string(m.kind)]
        return m.instance.details == [:] ? object : object.setting("meta", m.instance.details)
    }
}

extension Router {
    /// The routes a worker answers while its models load: health, readiness (503) and metrics.
    package static func loading(settings: Settings) -> Router { Router(probes(settings)) }

    /// Health and readiness, open to all (balancers and orchestrators carry no keys), and metrics,
    /// open unless `metrics_access = "keyed"`.
    static func probes(_ settings: Settings) -> [Route] {
        var routes: [Route] = []
        for (path, handler, open) in [
            (settings.healthPath, HealthHandler.self as RequestHandler.Type, true),
            (settings.readyPath, ReadyHandler.self, true),
            (settings.metricsPath, MetricsHandler.self, settings.metricsAccess == "open")
        ]
        where path != "off" {
            let route = Route(literal: path, handler)
            routes.append(open ? route.open() : route)
        }
        // `/health`, which llama.cpp's and vLLM's clients probe, answers as the health path does.
        if settings.healthPath != "off" && settings.healthPath != "/health" { routes.append(Route(literal: "/health", HealthHandler.self).open()) }
        return routes
    }

    /// The routes every worker serves: the user's own first, then the index, then each model at /NAME.
    package static func standard(models: [ServedModel], settings: Settings, userRoutes: [Route] = []) -> Router {
        var builtins = [
            Route("/", IndexHandler.self).open(when: { IndexHandler.wantsPage($0, settings) }),
            Route("/v1/models", OpenAIModelsHandler.self),
            Route("/v1/models/([^/]+)", OpenAIModelHandler.self)
        ]
        if models.contains(where: { $0.instance is any EmbeddingModel }) {
            builtins.append(Route(literal: "/v1/embeddings", OpenAIEmbeddingsHandler.self))
        }
        if models.contains(where: { $0.generative != nil }) {
            builtins += [
                Route(literal: "/v1/chat/completions", OpenAIChatCompletionsHandler.self),
                Route(literal: "/v1/completions", OpenAITextCompletionsHandler.self),
                Route(literal: "/v1/responses", OpenAIResponsesHandler.self),
                Route(literal: "/tokenize", TokenizeHandler.self), Route(literal: "/detokenize", DetokenizeHandler.self),
                Route(literal: "/apply-template", ApplyTemplateHandler.self), Route(literal: "/props", PropsHandler.self)
            ]
        }
        let status = Route(literal: "/status.json", StatusHandler.self)
        builtins.append(settings.metricsAccess == "open" ? status.open() : status)
        if settings.ui { builtins.append(Route(literal: "/status", StatusPageHandler.self).open()) }
        let router = Router(userRoutes + builtins + probes(settings))
        for m in models {
            router.add(Route("/" + m.name, literal: true) { req, ctx in ModelHandler(request: req, context: ctx, model: m) })
        }
        return router
    }
}
