import MServeHTTP
import MServePOSIX

/// What a worker serves, put together in one place: each model's runtime in this worker and the
/// way its requests run (model threads and a queue, or a generative model's mailboxes to this
/// loop), its series in the scoreboard, and the dispatcher over the user's routes and the
/// built-in ones.  The worker and MServeTesting's TestServer both build theirs here, so that what
/// a test serves is what a worker serves.
package enum WorkerAssembly {
    package static func dispatcher(models: [ServedModel], settings: Settings, routes: [Route], loop: EventLoop, server: HTTPServer,
                                   observer: RequestObserver, logger: Logger, slot: Int, knownModels: [ModelRegistry.Entry] = [],
                                   scoreboard: Scoreboard? = nil, scoreboardRecord: Int? = nil) throws -> Dispatcher {
        for m in models where !type(of: m.instance).runsOnEventLoop {
            m.runtime = settings.runtime(forModel: m.name, generative: m.generative != nil)
            // A generative model's engine runs its requests: no model threads, no second queue.
            if m.generative != nil {
                m.mailbox = GenerationMailbox(loop: loop)
                m.answers = LoopMailbox(loop: loop)
                continue
            }
            let runner = try ModelRunner(model: m, runtime: settings.runtime(forModel: m.name), loop: loop)
            if let scoreboard, let r = scoreboardRecord {
                runner.onBatch = { [unowned m] inputs in scoreboard.countBatch(r, model: m.metricsIndex, inputs: inputs) }
            }
            m.runner = runner
        }
        for m in models { m.metricsIndex = scoreboard?.index(of: m.name) }
        let context = HandlerContext(logger: logger, slot: slot, settings: settings, models: models, server: server, observer: observer)
        context.knownModels = knownModels
        return Dispatcher(router: Router.standard(models: models, settings: settings, userRoutes: routes), context: context)
    }
}
