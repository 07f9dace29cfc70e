import MServeHTTP
import MServeSystem

/// Takes each request from the HTTP server to its handler: what it brings (IncomingRequest), its
/// handler from the router, the steps before it (RequestSteps: the request log, API keys and their
/// limits), the method call, and the error response when anything throws.  Also the answer to
/// requests the parser refused, and --max-requests.
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

    /// The steps before the handler, in order: the request log's line, then with API keys the
    /// key and its limits.
    private lazy var steps: [any RequestStep] = {
        var steps: [any RequestStep] = [RequestLogStep(observer: context.observer)]
        if let access = context.access {
            steps.append(AuthenticationStep(access: access, window: context.settings.signatureWindow, nonces: context.scoreboard?.nonces))
            if let board = context.scoreboard { steps.append(RateLimitStep(limiter: board.keys, record: context.observer.scoreboardRecord)) }
        }
        return steps
    }()

    package func serve(_ request: HTTPRequest) {
        requestsReceived += 1
        if requestsReceived == requestLimit { onRequestLimit?() }
        let incoming = IncomingRequest(request, recordIDs: context.recordIDs, traceIDs: context.traceIDs)
        let match = router.match(request.path)
        // Without a route, a plain handler carries the recordid into the 404.
        let handler = match.map { $0.0.make(request, context) } ?? RequestHandler(request: request, context: context)
        handler.recordID = incoming.recordID
        handler.recordIDValue = incoming.recordIDValue
        handler.trace = incoming.trace
        handler.parsedJSON = incoming.json
        do {
            let open = match?.0.isOpen(for: request) ?? false
            for step in steps { try step.admit(incoming, handler, open: open) }
            guard let (_, args) = match else {
                let hint = UnservedModel.hint(path: request.path, served: context.models.map(\.name), known: context.knownModels)
                throw HTTPError(404, "no route for \(request.path)" + (hint.map { ": " + $0 } ?? ""), code: "unknown_url")
            }
            try handler.prepare()
            if !handler.finished { try handler.call(args) }
            if !handler.finished && !handler.isAsynchronous { handler.finish() }
        } catch let e as HTTPError {
            if handler.finished {
                context.logger.error("error after the response was sent: \(e)", recordID: incoming.recordID)
            } else {
                handler.finish(with: e)
            }
        } catch {
            context.logger.error("\(type(of: handler)) failed: \(error)", recordID: incoming.recordID)
            if !handler.finished { handler.finish(with: HTTPError(500, "\(error)")) }
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
