/// A model loaded in this worker, and where it is served.
public final class ServedModel {
    public let name: String
    public let summary: String
    public let device: String
    public let instance: any Model

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

    override func post(_ args: [String]) throws {
        let input = try jsonObjectBody()
        let output: JSON
        do {
            output = try model.instance.infer(InferenceRequest(recordID: recordID, input: input))
        } catch let e as ModelInputError {
            throw HTTPError(400, e.message)
        } catch let e as HTTPError {
            throw e
        } catch {
            context.logger.error("model \(model.name) failed: \(error)", recordID: recordID)
            throw HTTPError(500, "model \(model.name) failed: \(error)")
        }
        write(output.isObject ? output : ["result": output])
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
