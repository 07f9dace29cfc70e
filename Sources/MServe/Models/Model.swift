import MServeSystem

/// What a model is told when a worker creates it.
public struct ModelContext: Sendable {
    /// The model's name as served (`/NAME`).
    public let name: String
    /// The worker's slot, 0..<workers: stable across respawns, so a model can pick a device by it;
    /// -1 for a model preloaded in the master (`--preload`) and shared by every worker.
    public let slot: Int
    public let device: String
    /// The `[model.NAME]` table of the config file, less `device` and `model_dir`.
    public let options: [String: JSON]
    /// Where the model's files are: the table's `model_dir`, else --model-dir (model_dir), else nil.
    public let modelDir: String?
    public let logger: Logger
    /// How the worker runs the model: its threads, queue, batch and KV cache sizes.
    public let runtime: ModelRuntime

    public init(
        name: String, slot: Int, device: String, options: [String: JSON], modelDir: String? = nil, logger: Logger,
        runtime: ModelRuntime = ModelRuntime(concurrency: 1, queueSize: 16, requestTimeout: 30)
    ) {
        self.runtime = runtime
        self.name = name
        self.slot = slot
        self.device = device
        self.options = options
        self.modelDir = modelDir
        self.logger = logger
    }
}

/// What a model is told about one request.
public struct InferenceRequest: Sendable {
    public let recordID: String
    /// The JSON object body; for a form (urlencoded or a multipart upload), its text fields (as
    /// strings); else `{}`.
    public let input: JSON
    /// The body's media type ("application/json", "multipart/form-data", "image/png", ...).
    public let contentType: String
    /// The body as sent: what a model that takes raw bytes reads.
    public let body: [UInt8]
    /// The files of a multipart upload.
    public let files: [UploadedFile]
    /// The HTTP method, the path without its query, and the query's arguments, decoded, in order.
    public let method: String
    public let path: String
    public let query: [(String, String)]
    /// The W3C trace the request belongs to: a model that calls another service sends
    /// `trace.traceparent` on, so that the trace goes through it (nil outside the server).
    public var trace: TraceContext?
    /// What the model and the server tell each other while it runs, behind one lock (one
    /// allocation a request; the views below share it, and so do copies of the request).
    private let channel = Locked(RequestChannel())
    /// Where a model that answers other than JSON (an image, a Django response) puts its answer.
    public var reply: RawReply { RawReply(channel) }
    /// Where a generative model counts the tokens it reads and makes, as it makes them.
    public var tokens: TokenCount { TokenCount(channel) }
    /// Set when nobody wants the answer any more (the client left, the request timed out): a model
    /// that waits or works long (a generation's prompt) stops at its next look.
    public var cancellation: Cancellation { Cancellation(channel) }
    /// A stream's backpressure, for a model that makes pieces elsewhere than in the thread that
    /// emits them (a generation engine): told when the client stops and starts reading again.
    public var flow: StreamFlow { StreamFlow(channel) }

    public init(
        recordID: String, input: JSON, contentType: String = "application/json", body: [UInt8] = [],
        files: [UploadedFile] = [], method: String = "POST", path: String = "/", query: [(String, String)] = []
    ) {
        self.recordID = recordID
        self.input = input
        self.contentType = contentType
        self.body = body
        self.files = files
        self.method = method
        self.path = path
        self.query = query
    }
}

/// What one request's model and server tell each other (InferenceRequest's channel).
struct RequestChannel {
    var answer: RawReply.Answer?
    var prompt = 0, generated = 0, counted = false
    var cancelled = false
    var onCancel: [@Sendable () -> Void] = []
    var onFlow: [@Sendable (_ paused: Bool) -> Void] = []
}

/// An answer in bytes, set by the model thread before `infer` returns (its JSON is then unused),
/// read on the loop once it has.
public struct RawReply: Sendable {
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]
    }
    private let channel: Locked<RequestChannel>
    init(_ channel: Locked<RequestChannel>) { self.channel = channel }

    /// Answers `body` with this status and content type.
    public func set(_ body: [UInt8], contentType: String, status: Int = 200) {
        channel.withLock { $0.answer = Answer(status: status, contentType: contentType, body: body) }
    }

    public var value: Answer? { channel.withLock { $0.answer } }
}

/// The tokens a generative model has read (prompt) and made for one request, added by the model
/// thread as it goes and taken into the metrics by the loop as pieces arrive and at the end: a
/// stream cancelled after its first token is counted, not only one that completes.
public struct TokenCount: Sendable {
    private let channel: Locked<RequestChannel>
    init(_ channel: Locked<RequestChannel>) { self.channel = channel }

    public func add(prompt: Int = 0, generated: Int = 0) {
        channel.withLock {
            $0.prompt += prompt; $0.generated += generated; $0.counted = true
        }
    }

    /// What was added since the last take; nil if the model never counted (its `usage` then counts).
    package func take() -> (prompt: Int, generated: Int)? {
        channel.withLock { c in
            guard c.counted else { return nil }
            defer { c.prompt = 0; c.generated = 0 }
            return (c.prompt, c.generated)
        }
    }
}

/// That a request's answer is no longer wanted, told to the model thread working on it.
public struct Cancellation: Sendable {
    private let channel: Locked<RequestChannel>
    init(_ channel: Locked<RequestChannel>) { self.channel = channel }

    public var isCancelled: Bool { channel.withLock { $0.cancelled } }

    /// Runs `handler` once when the request is cancelled (at once if it already is), on the thread
    /// that cancels it (the event loop's): it must be quick (wake a waiting thread, flag a sequence).
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let now = channel.withLock { c in
            if !c.cancelled { c.onCancel.append(handler) }
            return c.cancelled
        }
        if now { handler() }
    }

    package func cancel() {
        let handlers = channel.withLock { c in
            if c.cancelled { return [@Sendable () -> Void]() }
            c.cancelled = true
            defer { c.onCancel = [] }
            return c.onCancel
        }
        for h in handlers { h() }
    }
}

/// Whether a stream's client is keeping up: the runner pauses a stream whose client left more than
/// --stream-buffer unread (its `emit` then waits) and resumes it when half is read.
public struct StreamFlow: Sendable {
    private let channel: Locked<RequestChannel>
    init(_ channel: Locked<RequestChannel>) { self.channel = channel }

    /// Runs `handler` on the event loop each time the stream is paused (true) or resumed (false):
    /// it must be quick (flag a sequence).
    public func onChange(_ handler: @escaping @Sendable (_ paused: Bool) -> Void) {
        channel.withLock { $0.onFlow.append(handler) }
    }

    package func set(paused: Bool) {
        for h in channel.withLock({ $0.onFlow }) { h(paused) }
    }
}

/// A served model: load in `init`, check in `validate`, answer in `infer`.  Each worker creates its
/// own instance, so instance state (the demo's running sum) is per worker.  `infer` runs on the
/// worker's model threads: with the default `--limit-concurrency 1` never twice at once; above 1,
/// concurrently, so the model must then be safe for that.
public protocol Model: AnyObject, SendableMetatype {
    /// True only for a model whose `infer` takes microseconds and never blocks: it then runs on the
    /// worker's event loop, without the hand-off to a model thread (which costs about 10 µs of CPU
    /// a request), and without a queue, so `--limit-concurrency`, `--queue-size` and
    /// `--request-timeout` do not apply to it.  The analogue of an `async def` endpoint in FastAPI.
    /// False by default: inference runs on model threads.
    static var runsOnEventLoop: Bool { get }
    /// The media types the model takes: "application/json" (the default), "multipart/form-data"
    /// for uploads, raw types such as "image/png", "image/*", or "*/*".  Others get 415.
    static var acceptedMediaTypes: [String] { get }
    /// An input the web page at `/` prefills its form with (and `GET /` lists): a flat object
    /// gets one field per key, anything else a JSON editor.
    static var example: JSON { get }
    /// The options its `[model.NAME]` table may set (beside the server's own keys: `device`,
    /// `model_dir`, the per-model runtime settings): any other key stops mserve at start and in
    /// `--check-config`, with the nearest name.  nil (the default) takes any key unchecked.
    static var optionNames: [String]? { get }
    /// True for a model that reads query arguments (`InferenceRequest.query`): `GET /NAME?ARGS`
    /// then runs it as POST does; `GET /NAME` without a query still describes it.  False by default.
    var answersQueries: Bool { get }
    /// This model's example (the type's `example` unless a model's own code gives one).
    var example: JSON { get }
    /// What the model says of itself beyond its name (a GGUF file's architecture, quantization,
    /// parameters, context): in `GET /`, as `meta` in `/v1/models` (llama.cpp's server's key) and
    /// on the web page.  Empty by default.
    var details: JSON { get }
    /// Whether the web page offers a file upload (sent as multipart) rather than JSON fields; by
    /// default, when the type accepts multipart/form-data or anything (`*/*`).
    var takesUploads: Bool { get }
    init(context: ModelContext) throws
    /// Runs on the event loop before the request is queued, so bad input is a 400 that never
    /// occupies the model.  Throw `ModelInputError`.  Must be quick and must not touch model state.
    func validate(_ input: JSON) throws
    /// Returns a JSON object; the server adds the recordid.  Throw `ModelInputError` for bad input
    /// (400); any other error is a model failure (500) and the worker lives on.
    func infer(_ request: InferenceRequest) throws -> JSON
    /// Produces the answer piece by piece (each a JSON object), for clients that ask for a stream.
    /// `emit` sends a piece at once; it throws `StreamCancelled` when the client has gone, so the
    /// model stops at its next piece.  The default streams `infer`'s one result.
    func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws
}

extension Model {
    public static var runsOnEventLoop: Bool { false }
    public static var acceptedMediaTypes: [String] { ["application/json"] }
    public static var example: JSON { [:] }
    public static var optionNames: [String]? { nil }
    public func validate(_ input: JSON) throws {}
    public var answersQueries: Bool { false }
    public var example: JSON { Self.example }
    public var details: JSON { [:] }
    public var takesUploads: Bool {
        Self.acceptedMediaTypes.contains("multipart/form-data") || Self.acceptedMediaTypes.contains("*/*")
    }
    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try emit(try infer(request))
    }
}

/// A model that answers several requests in one pass (dynamic batching): the model threads take
/// queued requests together, up to `--max-batch-size` inputs, and hand them over at once.  The
/// default `infer` runs a batch of one.
public protocol BatchingModel: Model {
    /// How many inputs the request carries (what it counts toward the batch limit); called on the
    /// event loop after `validate` succeeded.
    func batchCost(_ input: JSON) -> Int
    /// One result per request, in order: an answer, or an error for that request alone.
    func inferBatch(_ requests: [InferenceRequest]) -> [Result<JSON, any Error>]
}

extension BatchingModel {
    public func batchCost(_ input: JSON) -> Int { 1 }
    public func infer(_ request: InferenceRequest) throws -> JSON {
        try inferBatch([request])[0].get()
    }
}

/// Thrown by a stream's `emit` once nobody is listening.
public struct StreamCancelled: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the client went away; the stream was stopped" }
}

/// Input the model cannot use: answered with 400 and this message.
public struct ModelInputError: Error, CustomStringConvertible {
    public let message: String
    /// The request's field at fault, for OpenAI's error shape (`error.param`).
    public let param: String?
    public init(_ message: String, param: String? = nil) {
        self.message = message
        self.param = param
    }
    public var description: String { message }
}

/// A model that failed to load, for the message the worker logs before it exits.
public struct ModelLoadError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
