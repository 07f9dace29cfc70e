/// What a model is told when a worker creates it.
public struct ModelContext: Sendable {
    /// The model's name as served (`/NAME`).
    public let name: String
    /// The worker's slot, 0..<workers: stable across respawns, so a model can pick a device by it.
    public let workerID: Int
    public let device: String
    /// The `[model.NAME]` table of the config file, less `device`.
    public let options: [String: JSON]
    public let logger: Logger

    public init(name: String, workerID: Int, device: String, options: [String: JSON], logger: Logger) {
        self.name = name
        self.workerID = workerID
        self.device = device
        self.options = options
        self.logger = logger
    }
}

/// What a model is told about one request.
public struct InferenceRequest: Sendable {
    public let recordID: String
    public let input: JSON
}

/// A served model: load in `init`, answer in `infer`.  Each worker creates its own instance, so
/// instance state (the demo's running sum) is per worker, and `infer` is never called concurrently
/// on one instance.
public protocol Model: AnyObject, SendableMetatype {
    init(context: ModelContext) throws
    /// Returns a JSON object; the server adds the recordid.  Throw `ModelInputError` for bad input
    /// (400); any other error is a model failure (500) and the worker lives on.
    func infer(_ request: InferenceRequest) throws -> JSON
}

/// Input the model cannot use: answered with 400 and this message.
public struct ModelInputError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A model that failed to load, for the message the worker logs before it exits.
public struct ModelLoadError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
