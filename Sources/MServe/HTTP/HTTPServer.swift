import CEvent
import CEvHTTPShim
#if canImport(Glibc)
import Glibc
#endif

/// A worker's HTTP server: evhttp on the worker's listening sockets, with mserve's limits, logging
/// and JSON errors.  Like EventLoop, this file holds C callbacks: evhttp's request, completion,
/// listener-error and error-page hooks, each a non-capturing function that finds this server through
/// its context pointer (or, for the error page, the process's one server).
public final class HTTPServer {
    let loop: EventLoop
    let http: OpaquePointer
    let settings: Settings
    let logger: Logger
    let accessLog: AccessLog?
    let dispatcher: Dispatcher
    private var bound: [OpaquePointer] = []
    private let pid = getpid()
    /// Requests received and not yet completely written.
    public private(set) var inFlight = 0
    public private(set) var handled = 0
    /// Once the worker is stopping, responses carry `Connection: close` so keep-alive clients move on.
    var closing = false

    nonisolated(unsafe) private static var current: HTTPServer?

    init(loop: EventLoop, settings: Settings, logger: Logger, accessLog: AccessLog?, router: Router) throws {
        guard let http = evhttp_new(loop.base) else { throw SystemError("evhttp_new failed") }
        self.loop = loop
        self.http = http
        self.settings = settings
        self.logger = logger
        self.accessLog = accessLog
        self.dispatcher = Dispatcher(router: router)
        let t = settings.clientTimeout
        var tv = timeval(tv_sec: Int(t), tv_usec: Int((t - Double(Int(t))) * 1e6))
        evhttp_set_timeout_tv(http, &tv)
        evhttp_set_max_body_size(http, Int(settings.maxBodySize))
        evhttp_set_max_headers_size(http, Int(settings.maxHeaderSize))
        // Every method evhttp knows reaches the router, which answers 405 where a route lacks it.
        let all = [EVHTTP_REQ_GET, EVHTTP_REQ_POST, EVHTTP_REQ_HEAD, EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE,
                   EVHTTP_REQ_OPTIONS, EVHTTP_REQ_TRACE, EVHTTP_REQ_CONNECT, EVHTTP_REQ_PATCH]
        evhttp_set_allowed_methods(http, UInt16(all.reduce(0) { $0 | $1.rawValue }))
        // Read and discard an oversized body before answering 413, so the client reads the answer
        // instead of a reset.
        evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE)
        evhttp_set_gencb(http, HTTPServer.requestTrampoline, Unmanaged.passUnretained(self).toOpaque())
        HTTPServer.current = self
        mserve_set_error_hook(HTTPServer.errorTrampoline)
    }

    func setContext(_ context: HandlerContext) { dispatcher.context = context }

    deinit {
        if HTTPServer.current === self {
            HTTPServer.current = nil
            mserve_set_error_hook(nil)
        }
        evhttp_free(http)
    }

    /// Serves connections from an already listening socket (the master bound it).
    func accept(fd: Int32) throws {
        guard let b = evhttp_accept_socket_with_handle(http, fd) else {
            throw SystemError("cannot serve on socket \(fd)")
        }
        bound.append(b)
        let listener = evhttp_bound_socket_get_listener(b)
        evconnlistener_set_error_cb(listener, HTTPServer.listenerErrorTrampoline)
    }

    /// Closes this worker's listening sockets; connections already accepted are still served.
    func stopAccepting() {
        for b in bound { evhttp_del_accept_socket(http, b) }
        bound.removeAll()
    }

    var listeningFDs: [Int32] { bound.map { evhttp_bound_socket_get_fd($0) } }

    // MARK: C callbacks

    private static let requestTrampoline: @convention(c) (UnsafeMutablePointer<evhttp_request>?, UnsafeMutableRawPointer?) -> Void = { req, arg in
        guard let req, let arg else { return }
        Unmanaged<HTTPServer>.fromOpaque(arg).takeUnretainedValue().received(req)
    }

    private static let completeTrampoline: @convention(c) (UnsafeMutablePointer<evhttp_request>?, UnsafeMutableRawPointer?) -> Void = { _, arg in
        guard let arg else { return }
        Unmanaged<HTTPServer>.fromOpaque(arg).takeUnretainedValue().completed()
    }

    private static let errorTrampoline: mserve_error_hook_t = { req, code in
        guard let req else { return }
        guard let server = HTTPServer.current else { return }
        server.protocolError(req, code: Int(code))
    }

    /// Out of file descriptors (or memory) the listener would retry at once, spinning a core; instead
    /// it pauses for a moment and says so.
    private static let listenerErrorTrampoline: evconnlistener_errorcb = { listener, _ in
        guard let listener, let server = HTTPServer.current else { return }
        let err = errno
        server.logger.error("accept failed: \(String(cString: strerror(err))); pausing accepts for 100 ms")
        evconnlistener_disable(listener)
        server.loop.after(0.1) { evconnlistener_enable(listener) }
    }

    // MARK: request lifecycle

    private func received(_ req: UnsafeMutablePointer<evhttp_request>) {
        inFlight += 1
        handled += 1
        evhttp_request_set_on_complete_cb(req, HTTPServer.completeTrampoline, Unmanaged.passUnretained(self).toOpaque())
        dispatcher.handle(HTTPRequest(raw: req, startTime: monotonicSeconds()))
    }

    private func completed() {
        inFlight -= 1
    }

    func logRequest(_ request: HTTPRequest, recordID: String) {
        logger.log(.info, recordID: recordID) { line in
            line.append(contentsOf: "request: ".utf8)
            line.append(contentsOf: request.method.rawValue.utf8)
            line.append(UInt8(ascii: " "))
            LogText.appendEscaped(request.target, to: &line)
            line.append(UInt8(ascii: " "))
            appendExcerpt(request.body, to: &line)
        }
    }

    /// The first log_body_limit bytes of a body, escaped, with the full size when it was cut.
    private func appendExcerpt(_ body: [UInt8], to line: inout [UInt8]) {
        let limit = settings.logBodyLimit
        LogText.appendEscaped(bytes: body[0..<min(limit, body.count)], to: &line)
        if body.count > limit { line.append(contentsOf: "...(\(body.count) bytes)".utf8) }
    }

    /// Writes the response (evhttp adds Content-Length, Date and keep-alive handling) and its log lines.
    func respond(_ request: HTTPRequest, status: Int, headers: [(String, String)], body: [UInt8], recordID: String) {
        let out = evhttp_request_get_output_headers(request.raw)
        var hasType = false
        for (k, v) in headers {
            if !hasType && k.equalsIgnoringASCIICase("Content-Type") { hasType = true }
            evhttp_add_header(out, k, v)
        }
        if !hasType && !body.isEmpty { evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8") }
        evhttp_add_header(out, "X-Request-Id", recordID)
        if closing { evhttp_add_header(out, "Connection", "close") }
        if !body.isEmpty { evbuffer_add(evhttp_request_get_output_buffer(request.raw), body, body.count) }
        evhttp_send_reply(request.raw, Int32(status), HTTPStatus.reason(status), nil)
        logResponse(request.raw, method: request.method.rawValue, target: request.target,
                    version: request.httpVersion, status: status, body: body, recordID: recordID,
                    started: request.startTime)
    }

    private func logResponse(_ raw: UnsafeMutablePointer<evhttp_request>, method: String, target: String,
                             version: String, status: Int, body: [UInt8], recordID: String, started: Double) {
        let level: LogLevel = status >= 500 ? .error : (status >= 400 ? .warning : .info)
        logger.log(level, recordID: recordID) { line in
            line.append(contentsOf: "response: ".utf8)
            line.appendDecimal(status)
            line.append(UInt8(ascii: " "))
            appendExcerpt(body, to: &line)
        }
        guard let accessLog else { return }
        let headers = raw.pointee.input_headers
        func header(_ n: String) -> String? { evhttp_find_header(headers, n).map { String(cString: $0) } }
        accessLog.log(AccessLog.Entry(
            remoteHost: raw.pointee.remote_host.map { String(cString: $0) } ?? "-",
            method: method, target: target, httpVersion: version, status: status, bytes: body.count,
            referer: header("Referer"), userAgent: header("User-Agent"),
            durationSeconds: monotonicSeconds() - started, pid: pid, recordID: recordID))
    }

    /// evhttp could not hand the request to us (see CEvHTTPShim): answer with a JSON error.
    private func protocolError(_ req: UnsafeMutablePointer<evhttp_request>, code: Int) {
        if req.pointee.uri != nil && code == 501 {
            // A method evhttp does not know: the router answers it (405 on a route, else 404).
            received(req)
            return
        }
        let started = monotonicSeconds()
        var status = code == 0 ? 400 : code
        var message: String
        switch status {
        case 413: message = "request body larger than \(settings.maxBodySize) bytes"
        case 417: message = "unsupported Expect header"
        case 400:
            let buffered = req.pointee.evcon.map { evbuffer_get_length(bufferevent_get_input(evhttp_connection_get_bufferevent($0))) } ?? 0
            if Int(req.pointee.headers_size) + buffered > settings.maxHeaderSize {
                status = 431
                message = "request line and headers larger than \(settings.maxHeaderSize) bytes"
            } else {
                message = "malformed request"
            }
        default: message = HTTPStatus.reason(status)
        }
        let header = req.pointee.input_headers.flatMap { evhttp_find_header($0, "X-Request-Id") }.map { String(cString: $0) }
        let (rid, ridValue, _) = RecordID.resolve(bodyValue: nil, header: header)
        let target = req.pointee.uri.map { String(cString: $0) } ?? "-"
        if req.pointee.major == 0 { req.pointee.major = 1; req.pointee.minor = 1 }
        let method = req.pointee.uri == nil ? "-" : HTTPMethod(evhttp_request_get_command(req)).rawValue
        logger.info("request: \(method) \(target) (rejected before routing)", recordID: rid)

        let body = ErrorBody.json(HTTPError(status, message), recordID: ridValue).serialized()
        let out = evhttp_request_get_output_headers(req)
        evhttp_clear_headers(out)
        evhttp_add_header(out, "Content-Type", "application/json")
        evhttp_add_header(out, "X-Request-Id", rid)
        evhttp_add_header(out, "Connection", "close")
        evbuffer_add(evhttp_request_get_output_buffer(req), body, body.count)
        evhttp_send_reply(req, Int32(status), HTTPStatus.reason(status), nil)
        logResponse(req, method: method, target: target, version: "HTTP/1.1", status: status, body: body,
                    recordID: rid, started: started)
    }
}
