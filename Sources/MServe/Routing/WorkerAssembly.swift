import MServeHTTP
import MServeSystem

/// What a worker serves, put together in one place: each model's runtime in this worker and the
/// way its requests run (model threads and a queue, or a generative model's mailboxes to this
/// loop), its series in the scoreboard, and the dispatcher over the user's routes and the
/// built-in ones.  The worker and MServeTesting's TestServer both build theirs here, so that what
/// a test serves is what a worker serves.
package enum WorkerAssembly {
    package static func dispatcher(
        models loaded: [LoadedModel], settings: Settings, routes: [Route], loop: EventLoop, server: HTTPServer,
        observer: RequestObserver, logger: Logger, slot: Int, knownModels: [ModelRegistry.Entry] = [],
        scoreboard: Scoreboard? = nil, scoreboardRecord: Int? = nil
    ) throws -> Dispatcher {
        var models: [ServedModel] = []
        for m in loaded {
            let metricsIndex = scoreboard?.index(of: m.name)
            guard !type(of: m.instance).runsOnEventLoop else {
                models.append(ServedModel(name: m.name, summary: m.summary, device: m.device, instance: m.instance, metricsIndex: metricsIndex))
                continue
            }
            // A generative model's engine runs its requests: no model threads, no second queue.
            if m.instance is any GenerativeModel {
                models.append(
                    ServedModel(
                        name: m.name, summary: m.summary, device: m.device, instance: m.instance,
                        runtime: settings.runtime(forModel: m.name, generative: true), mailbox: GenerationMailbox(loop: loop),
                        answers: LoopMailbox(loop: loop), metricsIndex: metricsIndex))
                continue
            }
            let runtime = settings.runtime(forModel: m.name, generative: false)
            let runner = try ModelRunner(name: m.name, instance: m.instance, runtime: runtime, loop: loop)
            if let scoreboard, let r = scoreboardRecord {
                runner.onBatch = { inputs in scoreboard.countBatch(r, model: metricsIndex, inputs: inputs) }
            }
            models.append(
                ServedModel(
                    name: m.name, summary: m.summary, device: m.device, instance: m.instance,
                    runtime: runtime, runner: runner, metricsIndex: metricsIndex))
        }
        let context = HandlerContext(logger: logger, slot: slot, settings: settings, models: models, server: server, observer: observer)
        context.knownModels = knownModels
        return Dispatcher(router: Router.standard(models: models, settings: settings, userRoutes: routes), context: context)
    }
}
