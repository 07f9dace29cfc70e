import MServeHTTP
import MServeSystem

/// What every handler of a worker can reach.
public final class HandlerContext {
    public let logger: Logger
    public let slot: Int
    public let settings: Settings
    /// The served models, in the order given on the command line.
    public let models: [ServedModel]
    /// The worker's HTTP server: its loop (for timers), whether it is stopping.
    public unowned let server: HTTPServer
    /// Where every request's log lines, access line and counts go.
    public let observer: RequestObserver
    /// This worker's recordid generator.
    public let recordIDs = RecordID()
    /// Trace and span ids of requests that begin or continue a W3C trace here.
    public let traceIDs = TraceIDs()
    /// API keys and model permissions; nil when no keys file is configured (every request served).
    public let access: AccessControl?
    /// When this worker started serving (Unix seconds): OpenAI's "created" for its models.
    public let createdAt = Int64(LogClock.now().seconds)
    /// The models this mserve could serve (its registry), for a 404 that says how to serve one.
    package var knownModels: [ModelRegistry.Entry] = []

    package init(
        logger: Logger, slot: Int, settings: Settings, models: [ServedModel], server: HTTPServer,
        observer: RequestObserver
    ) {
        self.logger = logger
        self.slot = slot
        self.settings = settings
        self.models = models
        self.server = server
        self.observer = observer
        access =
            settings.keysFile == nil
            ? nil
            : AccessControl(keys: settings.apiKeys, permissions: settings.modelSettings.compactMapValues(\.permission))
        observer.inFlight = { [unowned server] in server.inFlight }
    }

    /// The server-wide counters (nil in in-process tests).
    var scoreboard: Scoreboard? { observer.scoreboard }
}

/// A tornado-style handler: one instance per request; `prepare()`, then the method's entry point
/// with the route's capture groups, then `finish()` (called for you if the method did not), then
/// `onFinish()`.  Throw `HTTPError` for an error status; any other error is a 500.
open class RequestHandler {
    public let request: HTTPRequest
    public let context: HandlerContext
    /// From the JSON body's "recordid", else the X-Request-Id header, else generated.
    public internal(set) var recordID: String = ""
    /// The JSON body's "recordid" as sent (a string or a number), echoed back in JSON responses.
    public internal(set) var recordIDValue: JSON = .null
    /// The W3C trace the request belongs to (the caller's `traceparent`, continued, or a new one):
    /// its id in the logs, this server's span in the answer's `traceparent`.
    public internal(set) var trace = TraceContext.none
    /// The body parsed as JSON, once (by the dispatcher, for the recordid, or on first use).
    var parsedJSON: Result<JSON, JSONParseError>?
    /// The model series this request counts under in the metrics (nil: no model).
    var metricsModel: Int?
    /// The API key the request presented (nil when keys are off, or on an open route).
    public internal(set) var apiKey: APIKey?
    /// The level of the response's log line, where its status alone would say wrong (a readiness
    /// probe's 503 while models load is an answer, not an error).  Nil: by status.
    public var answerLogLevel: LogLevel?
    /// Where the key's request in flight is counted until `finish`.
    var admitted: KeyLimiter?

    /// The client's address: the peer's, or, when the peer is a trusted proxy (--forwarded-allow-ips),
    /// the one its X-Forwarded-For names.
    public var clientAddress: String {
        ForwardedFor.client(peer: request.remoteHost, header: request.forwardedFor, trusted: context.settings.forwardedAllowIPs)
    }

    /// The served models this request's key may use (all of them when keys are off).
    public var visibleModels: [ServedModel] {
        guard let access = context.access, let key = apiKey else { return context.models }
        return context.models.filter { access.allows(key, model: $0.name) }
    }

    public private(set) var status = 200
    private var headers: [(String, String)] = []
    private var body: [UInt8] = []
    public private(set) var finished = false
    /// Set by `startStream`: the head is sent, the body goes out piece by piece.
    public private(set) var streaming = false
    /// Set by `beginAsynchronous()`: the handler calls `finish()` itself later.
    public private(set) var isAsynchronous = false

    public required init(request: HTTPRequest, context: HandlerContext) {
        self.request = request
        self.context = context
    }

    /// The methods this handler implements, for the Allow header of a 405.
    open class var allowedMethods: [HTTPMethod] { [] }

    open func prepare() throws {}
    open func get(_ args: [String]) throws { throw methodNotAllowed() }
    open func post(_ args: [String]) throws { throw methodNotAllowed() }
    open func put(_ args: [String]) throws { throw methodNotAllowed() }
    open func delete(_ args: [String]) throws { throw methodNotAllowed() }
    open func patch(_ args: [String]) throws { throw methodNotAllowed() }
    /// HEAD is GET without the body (RFC 9110 9.3.2): the same status and headers.
    open func head(_ args: [String]) throws { try get(args) }
    open func options(_ args: [String]) throws { throw methodNotAllowed() }
    /// Called once the response has been handed to the connection.
    open func onFinish() {}

    func methodNotAllowed() -> HTTPError {
        var allowed = type(of: self).allowedMethods
        if allowed.contains(.GET) && !allowed.contains(.HEAD) { allowed.insert(.HEAD, at: allowed.firstIndex(of: .GET).map { $0 + 1 } ?? 0) }
        let headers = allowed.isEmpty ? [] : [("Allow", allowed.map(\.rawValue).joined(separator: ", "))]
        return HTTPError(405, "method \(request.head.methodName) is not allowed on \(request.path)", headers: headers)
    }

    func call(_ args: [String]) throws {
        switch request.method {
        case .GET: try get(args)
        case .POST: try post(args)
        case .PUT: try put(args)
        case .DELETE: try delete(args)
        case .PATCH: try patch(args)
        case .HEAD: try head(args)
        case .OPTIONS: try options(args)
        case .TRACE, .CONNECT, .UNKNOWN: throw methodNotAllowed()
        }
    }

    // MARK: arguments

    /// The last value of `name` from the query string, a form body, or a JSON object body; a missing
    /// argument without a default is a 400, as tornado's get_argument.
    public func argument(_ name: String, default defaultValue: String? = nil) throws -> String {
        if let v = try arguments(name).last { return v }
        if let defaultValue { return defaultValue }
        throw HTTPError(400, "missing argument \(name)")
    }

    /// Every value of `name`, query string first, then the body.
    public func arguments(_ name: String) throws -> [String] {
        var out: [String] = []
        if let q = request.query {
            out += URLCoding.parseForm(Array(q.utf8)).filter { $0.0 == name }.map(\.1)
        }
        switch request.mediaType {
        case "application/x-www-form-urlencoded":
            out += URLCoding.parseForm(request.body).filter { $0.0 == name }.map(\.1)
        case let t where t.map(MediaType.isJSON) ?? true:
            if request.body.isEmpty { break }
            switch try jsonBody()[name] {
            case nil, .some(.null): break
            case .some(.string(let s)): out.append(s)
            case .some(let v): out.append(v.text)
            }
        default: break
        }
        return out
    }

    /// The body as JSON: 400 if it is empty or malformed.
    public func jsonBody() throws -> JSON {
        let parsed: Result<JSON, JSONParseError>
        if let parsedJSON {
            parsed = parsedJSON
        } else {
            do throws(JSONParseError) { parsed = .success(try JSONParser.parse(request.body)) } catch { parsed = .failure(error) }
            parsedJSON = parsed
        }
        switch parsed {
        case .success(let v): return v
        case .failure(let e): throw HTTPError(400, request.body.isEmpty ? "empty body, expected JSON" : "malformed JSON: \(e)")
        }
    }

    /// The body as a JSON object, with its Content-Type checked: 415 for another media type, 400 for
    /// anything but an object.  `curl -d '{...}'` declares a form: a JSON object sent so is taken.
    public func jsonObjectBody() throws -> JSON {
        if let t = request.mediaType, !MediaType.isJSON(t) {
            if t == "application/x-www-form-urlencoded", let v = try? jsonObject() { return v }
            throw HTTPError(415, "Content-Type must be application/json, got \(t)")
        }
        return try jsonObject()
    }

    /// The body as a JSON object, whatever type it declared: 400 for anything but an object.
    func jsonObject() throws -> JSON {
        let v = try jsonBody()
        guard v.isObject else { throw HTTPError(400, "the JSON body must be an object, got a \(v.typeName)") }
        return v
    }

    // MARK: response

    public func setStatus(_ code: Int) { status = code }

    /// Replaces any earlier value of the header.
    public func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.0.equalsIgnoringASCIICase(name) }
        addHeader(name, value)
    }

    /// A name or value with CR or LF is dropped (and logged): it would let input split the response.
    public func addHeader(_ name: String, _ value: String) {
        guard !name.containsLineBreak, !value.containsLineBreak else {
            context.logger.error("dropped response header \(name) with a line break", recordID: recordID)
            return
        }
        // Room for the few a handler sets and the X-Request-Id added at the end, in one allocation.
        if headers.isEmpty { headers.reserveCapacity(4) }
        headers.append((name, value))
    }

    public func write(_ text: String) { body.append(contentsOf: text.utf8) }
    public func write(_ bytes: [UInt8]) { body.append(contentsOf: bytes) }

    /// Writes a JSON value and sets the JSON content type; objects get the recordid first if the
    /// handler did not put one in.
    public func write(_ json: JSON) {
        let bytes =
            json.isObject && json["recordid"] == nil
            ? json.serialized(leading: "recordid", recordIDValue == .null ? .string(recordID) : recordIDValue)
            : json.serialized()
        setHeader("Content-Type", "application/json")
        if body.isEmpty { body = bytes } else { body.append(contentsOf: bytes) }
    }

    /// Tells the server not to finish the response when the method returns: the handler will call
    /// `finish()` (or fail) later, on the loop thread, for instance when a model thread is done.
    public func beginAsynchronous() { isAsynchronous = true }

    /// Sends the status and headers set so far, with the body to follow in pieces (`writeChunk`),
    /// chunked, until `finish()`.  What `write` had buffered goes out as the first piece.
    public func startStream() {
        guard !finished && !streaming else { return }
        streaming = true
        appendIdentity()
        request.response.beginStream(status: status, headers: headers)
        if !body.isEmpty {
            request.response.writeChunk(body)
            body = []
        }
    }

    /// One piece of a streamed body, sent at once.
    public func writeChunk(_ bytes: [UInt8]) {
        guard streaming && !finished else { return }
        request.response.writeChunk(bytes)
    }

    /// Whether the client is still there to receive what is written.
    public var clientConnected: Bool { request.response.clientConnected }

    /// Sends the response (or ends a stream).  Calling it twice is a programming error that is
    /// logged, not fatal.
    public func finish() {
        guard !finished else {
            context.logger.error("finish() called twice on \(type(of: self))", recordID: recordID)
            return
        }
        finished = true
        request.onClientGone = nil  // it holds the handler that set it
        if let limiter = admitted, let key = apiKey {
            limiter.release(key, record: context.observer.scoreboardRecord)
            admitted = nil
        }
        let response = request.response
        let logged: [UInt8]
        if !streaming { appendIdentity() }  // a stream's went with its head
        let sent = headers
        if streaming {
            response.endStream()
            logged = Array("(streamed \(response.pieces) pieces, \(response.bodyBytes) bytes)".utf8)
        } else {
            response.respond(status: status, headers: sent, body: body)
            logged = body
        }
        context.observer.finished(
            RequestObserver.Answer(
                method: request.head.methodName, target: request.target, httpVersion: request.httpVersion, remoteHost: clientAddress,
                userAgent: request.head.userAgent, referer: request.head.referer, status: status, logged: logged,
                summary: streaming, bytes: response.bodyBytes, recordID: recordID, trace: trace, started: request.startTime, model: metricsModel,
                user: apiKey?.name,
                requestHeaders: request.head.headers, responseHeaders: sent, level: answerLogLevel))
        onFinish()
    }

    /// The answer's X-Request-Id, and its `traceparent` (this server's span; `tracestate` passed on).
    private func appendIdentity() {
        headers.append(("X-Request-Id", recordID))
        guard !trace.traceID.isEmpty else { return }
        headers.append(("traceparent", trace.traceparent))
        if let state = trace.state { headers.append(("tracestate", state)) }
    }

    /// Replaces whatever was written with the JSON error body.
    public func finish(with error: HTTPError) {
        status = error.status
        headers = error.headers
        body = []
        write(errorBody(error))
        finish()
    }

    /// The JSON body of an error response: `{"recordid", "error": {"code", "message"}}`, or under
    /// `/v1/` OpenAI's shape (what its clients parse), whichever handler answers (a 401 or an
    /// unknown path included).  A handler of another API overrides it.
    open func errorBody(_ error: HTTPError) -> JSON {
        let rid = recordIDValue == .null ? JSON.string(recordID) : recordIDValue
        return ErrorBody.make(error, path: request.path, recordID: rid)
    }
}

enum ErrorBody {
    /// Under `/v1/` OpenAI's shape, elsewhere mserve's.  A 499 (the client left) is no request
    /// error of OpenAI's kind: no client reads it, and the log says what happened in mserve's shape.
    static func make(_ error: HTTPError, path: String, recordID: JSON) -> JSON {
        path.hasPrefix("/v1/") && error.status != 499 ? openAI(error, recordID: recordID) : json(error, recordID: recordID)
    }

    /// OpenAI's error shape, with the recordid beside it.
    static func openAI(_ error: HTTPError, recordID: JSON) -> JSON {
        let type =
            error.status == 401
            ? "authentication_error"
            : error.status == 403
                ? "permission_error"
                : error.status < 500 ? "invalid_request_error" : "server_error"
        let code: JSON = error.code.map(JSON.string) ?? (error.status == 404 ? "model_not_found" : error.status == 503 ? "overloaded" : .null)
        return [
            "recordid": recordID,
            "error": [
                "message": .string(error.message), "type": .string(type),
                "param": error.param.map(JSON.string) ?? .null, "code": code
            ]
        ]
    }

    static func json(_ error: HTTPError, recordID: JSON) -> JSON {
        ["recordid": recordID, "error": ["code": .int(Int64(error.status)), "message": .string(error.message)]]
    }
}
