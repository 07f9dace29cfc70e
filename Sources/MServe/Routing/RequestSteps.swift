import MServeHTTP
import MServeSystem

/// What a request brings before any step looks at it: its JSON body parsed once (go-infer's
/// signature taken out of what the model and the log see), its recordid (the body's, the
/// X-Request-Id header's, or a new one; a malformed one is refused) and its trace context.
struct IncomingRequest {
    let request: HTTPRequest
    /// The body parsed as JSON where it is JSON (or looks like an object), the signature removed.
    let json: Result<JSON, JSONParseError>?
    /// The body as sent, for a signature inside it.
    let sent: JSON?
    /// The body as the request log shows it.
    let logged: [UInt8]
    let recordID: String
    let recordIDValue: JSON
    let recordIDError: HTTPError?
    let trace: TraceContext

    init(_ request: HTTPRequest, recordIDs: RecordID, traceIDs: TraceIDs) {
        self.request = request
        var json: Result<JSON, JSONParseError>?
        var bodyRecordID: JSON?
        var logged = request.body
        var sent: JSON?
        // The body's recordid counts whenever the body is a JSON object, whatever type it declares
        // (so that even a 415 carries it).
        if request.mediaType.map(MediaType.isJSON) ?? true
            || request.body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{")
        {
            var parsed: Result<JSON, JSONParseError>
            do throws(JSONParseError) { parsed = .success(try JSONParser.parse(request.body)) } catch { parsed = .failure(error) }
            if case .success(let v) = parsed {
                sent = v
                bodyRecordID = v["recordid"]
                // go-infer's signature travels in the body: no log line and no model sees it.
                if case .object(let pairs) = v, v["signData"] != nil {
                    parsed = .success(.object(pairs.filter { $0.0 != "signData" }))
                    logged = v.setting("signData", "[redacted]").serialized()
                }
            }
            json = parsed
        }
        self.json = json
        self.sent = sent
        self.logged = logged
        (recordID, recordIDValue, recordIDError) = recordIDs.resolve(bodyValue: bodyRecordID, header: request.requestID)
        trace = TraceContext.of(traceparent: request.header("traceparent"), tracestate: request.header("tracestate"), ids: traceIDs)
    }
}

/// A step the dispatcher runs before the request's handler (as hummingbird's middleware): it lets
/// the request go on, tells the handler what it learned (the caller's key), or refuses it with an
/// HTTPError, which the handler answers.  `open`: the route needs no key (/health, /ready).
protocol RequestStep {
    func admit(_ incoming: IncomingRequest, _ handler: RequestHandler, open: Bool) throws
}

/// The request log's first line, before anything can refuse the request (the answer's line comes
/// when the handler finishes).
struct RequestLogStep: RequestStep {
    let observer: RequestObserver

    func admit(_ incoming: IncomingRequest, _ handler: RequestHandler, open: Bool) throws {
        let request = incoming.request
        observer.started(
            method: request.head.methodName, target: request.target, body: incoming.logged, recordID: incoming.recordID,
            trace: incoming.trace, headers: request.head.headers)
        if let error = incoming.recordIDError { throw error }
    }
}

/// API keys (`--keys`): a bearer key, an `X-API-Key`, or a signed request becomes the handler's
/// key; anything else is a 401 (before routing says anything: an unknown path too).
struct AuthenticationStep: RequestStep {
    let access: AccessControl
    let window: Double
    let nonces: NonceLog?

    func admit(_ incoming: IncomingRequest, _ handler: RequestHandler, open: Bool) throws {
        guard !open else { return }
        let outcome = access.authenticate(incoming.request, body: incoming.sent, now: Double(LogClock.now().seconds), window: window, nonces: nonces)
        guard case .key(let key) = outcome else { throw access.refusal(outcome) }
        handler.apiKey = key
    }
}

/// The key's limits over all workers: 429 beyond them, with when to retry; an admitted request's
/// place is the handler's to give back when it answers.
struct RateLimitStep: RequestStep {
    let limiter: KeyLimiter
    /// This worker's record in the scoreboard.
    let record: Int?

    func admit(_ incoming: IncomingRequest, _ handler: RequestHandler, open: Bool) throws {
        guard let key = handler.apiKey else { return }
        switch limiter.admit(key, record: record) {
        case .admitted:
            handler.admitted = limiter
        case .overRate(let after):
            throw HTTPError(
                429, "key \(key.name) is over its limit of \(RateLimit.text(key.rateLimit)) requests per second",
                headers: [("Retry-After", String(after))], code: "rate_limit_exceeded")
        case .overInFlight:
            throw HTTPError(
                429, "key \(key.name) has \(key.maxInFlight ?? 0) requests in flight, its limit",
                headers: [("Retry-After", "1")], code: "rate_limit_exceeded")
        }
    }
}
