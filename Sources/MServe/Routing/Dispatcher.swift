import MServeHTTP
import MServePOSIX

/// Takes each request from the HTTP server to its handler: recordid, the request log line, routing,
/// the method call, and the error response when anything throws.  Also the answer to requests the
/// parser refused, and --max-requests.
package final class Dispatcher: HTTPServerDelegate {
    let router: Router
    package let context: HandlerContext
    /// Requests received so far, and what to do when they reach `requestLimit` (--max-requests).
    private(set) var requestsReceived = 0
    package var requestLimit = Int.max
    package var onRequestLimit: (() -> Void)?

    package init(router: Router, context: HandlerContext) {
        self.router = router
        self.context = context
    }

    package func serve(_ request: HTTPRequest) {
        requestsReceived += 1
        if requestsReceived == requestLimit { onRequestLimit?() }
        var json: Result<JSON, JSONParseError>?
        var bodyRecordID: JSON?
        // The body's recordid counts whenever the body is a JSON object, whatever type it declares
        // (so that even a 415 carries it).
        var logged = request.body
        /// The body as sent, for a signature inside it.
        var sentJSON: JSON?
        if request.mediaType.map(MediaType.isJSON) ?? true
            || request.body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{")
        {
            var parsed: Result<JSON, JSONParseError>
            do throws(JSONParseError) { parsed = .success(try JSONParser.parse(request.body)) } catch { parsed = .failure(error) }
            if case .success(let v) = parsed {
                sentJSON = v
                bodyRecordID = v["recordid"]
                // go-infer's signature travels in the body: no log line and no model sees it.
                if case .object(let pairs) = v, v["signData"] != nil {
                    parsed = .success(.object(pairs.filter { $0.0 != "signData" }))
                    logged = v.setting("signData", "[redacted]").serialized()
                }
            }
            json = parsed
        }
        let (rid, ridValue, ridError) = context.recordIDs.resolve(bodyValue: bodyRecordID, header: request.requestID)
        let trace = TraceContext.of(traceparent: request.header("traceparent"), tracestate: request.header("tracestate"), ids: context.traceIDs)
        context.observer.started(
            method: request.head.methodName, target: request.target, body: logged, recordID: rid, trace: trace,
            headers: request.head.headers)

        let match = router.match(request.path)
        // Without a route, a plain handler carries the recordid into the 404.
        let handler = match.map { $0.0.make(request, context) } ?? RequestHandler(request: request, context: context)
        handler.recordID = rid
        handler.recordIDValue = ridValue
        handler.trace = trace
        handler.parsedJSON = json

        do {
            if let ridError { throw ridError }
            if let access = context.access, !(match?.0.isOpen(for: request) ?? false) {
                // Before routing says anything: without a key, an unknown path is a 401 too.
                let outcome = access.authenticate(
                    request, body: sentJSON, now: Double(LogClock.now().seconds),
                    window: context.settings.signatureWindow, nonces: context.scoreboard?.nonces)
                guard case .key(let key) = outcome else { throw access.refusal(outcome) }
                handler.apiKey = key
                try admit(key, handler)
            }
            guard let (_, args) = match else {
                let hint = UnservedModel.hint(path: request.path, served: context.models.map(\.name), known: context.knownModels)
                throw HTTPError(404, "no route for \(request.path)" + (hint.map { ": " + $0 } ?? ""), code: "unknown_url")
            }
            try handler.prepare()
            if !handler.finished { try handler.call(args) }
            if !handler.finished && !handler.isAsynchronous { handler.finish() }
        } catch let e as HTTPError {
            if handler.finished {
                context.logger.error("error after the response was sent: \(e)", recordID: rid)
            } else {
                handler.finish(with: e)
            }
        } catch {
            context.logger.error("\(type(of: handler)) failed: \(error)", recordID: rid)
            if !handler.finished { handler.finish(with: HTTPError(500, "\(error)")) }
        }
    }

    /// The key's limits, over all workers: 429 beyond them, with when to retry.
    private func admit(_ key: APIKey, _ handler: RequestHandler) throws {
        guard let board = context.scoreboard else { return }
        switch board.keys.admit(key, record: context.observer.scoreboardRecord) {
        case .admitted:
            handler.admitted = board.keys
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

    /// A request the parser refused: a JSON error with the client's X-Request-Id if it sent a
    /// valid one, and its log lines.
    package func reject(_ e: RequestParseError, remoteHost: String, response: ResponseWriter) {
        let started = monotonicSeconds()
        let (rid, ridValue, _) = context.recordIDs.resolve(bodyValue: nil, header: e.requestID)
        let method = e.head?.methodName ?? "-"
        let target = e.head?.target ?? "-"
        context.observer.started(method: method, target: target, body: [], recordID: rid, rejection: e.message)
        let body = ErrorBody.make(HTTPError(e.status, e.message), path: e.target ?? target, recordID: ridValue).serialized()
        response.respond(status: e.status, headers: [("Content-Type", "application/json"), ("X-Request-Id", rid)], body: body)
        context.observer.finished(
            RequestObserver.Answer(
                method: method, target: target, httpVersion: e.head?.minorVersion == 0 ? "HTTP/1.0" : "HTTP/1.1",
                remoteHost: remoteHost, userAgent: e.head?.userAgent, referer: e.head?.referer,
                status: e.status, logged: body, bytes: body.count, recordID: rid, started: started, model: nil))
    }

    package func acceptFailed(_ error: SystemError) {
        context.logger.error("\(error); pausing accepts for 100 ms")
    }
}
