import MServeHTTP
import MServeSystem

/// The HTTP server's delegate while a worker's models load: health, readiness and metrics are
/// answered at once (readiness 503), every other request waits, and is dispatched to the worker's
/// own `Dispatcher` when the models are there (`loaded`).
package final class LoadingDispatcher: HTTPServerDelegate {
    private let early: Dispatcher
    private var waiting: [HTTPRequest] = []
    private var next: Dispatcher?

    package init(settings: Settings, context: HandlerContext) {
        early = Dispatcher(router: Router.loading(settings: settings), context: context)
    }

    package func serve(_ request: HTTPRequest) {
        if let next { return next.serve(request) }
        if early.router.match(request.path) != nil { return early.serve(request) }
        waiting.append(request)
    }

    package func reject(_ error: RequestParseError, remoteHost: String, response: ResponseWriter) {
        (next ?? early).reject(error, remoteHost: remoteHost, response: response)
    }

    package func acceptFailed(_ error: SystemError) { (next ?? early).acceptFailed(error) }

    /// The models are loaded: what waited goes to `dispatcher`, in order of arrival.
    package func loaded(_ dispatcher: Dispatcher) {
        next = dispatcher
        let ready = waiting
        waiting = []
        for r in ready where r.response.clientConnected { dispatcher.serve(r) }
    }
}
