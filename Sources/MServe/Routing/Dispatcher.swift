/// Takes each request from the HTTP server to its handler: recordid, the request log line, routing,
/// the method call, and the error response when anything throws.
final class Dispatcher {
    let router: Router
    var context: HandlerContext!

    init(router: Router) { self.router = router }

    func handle(_ request: HTTPRequest) {
        let bodyRecordID: JSON?
        if request.mediaType.map(RequestHandler.isJSON) ?? true, case .success(let v) = request.json {
            bodyRecordID = v["recordid"]
        } else {
            bodyRecordID = nil
        }
        let (rid, ridValue, ridError) = RecordID.resolve(bodyValue: bodyRecordID, header: request.requestID)
        context.server.logRequest(request, recordID: rid)

        let match = router.match(request.path)
        // Without a route, a plain handler carries the recordid into the 404.
        let handler = match.map { $0.0.make(request, context) } ?? RequestHandler(request: request, context: context)
        handler.recordID = rid
        handler.recordIDValue = ridValue

        do {
            if let ridError { throw ridError }
            guard let (_, args) = match else { throw HTTPError(404, "no route for \(request.path)") }
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
}
