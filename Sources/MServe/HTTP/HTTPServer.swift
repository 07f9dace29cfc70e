import MServePOSIX
import CEvent
import CSystemShim
#if canImport(Glibc)
import Glibc
#endif

/// A worker's HTTP/1.1 server on libevent: accepts on the worker's listening sockets, keeps its
/// connections (so a graceful stop knows which are idle), enforces the client timeout, and writes
/// responses and their log lines.
public final class HTTPServer {
    let loop: EventLoop
    let settings: Settings
    let logger: Logger
    let accessLog: AccessLog?
    let dispatcher: Dispatcher
    /// One read buffer for every connection of this single-threaded server.
    var readScratch = [UInt8](repeating: 0, count: 65536)
    private var listeners: [(fd: Int32, event: EventHandle)] = []
    private var connections: [ObjectIdentifier: HTTPConnection] = [:]
    private var sweeper: EventHandle?
    private var dateCache = HTTPDate()
    private let pid = getpid()
    /// Requests handed to handlers and not yet answered.
    public private(set) var inFlight = 0
    /// Requests received so far, and what to do when they reach `requestLimit` (--max-requests).
    public private(set) var requestsReceived = 0
    package var requestLimit = Int.max
    package var onRequestLimit: (() -> Void)?
    /// Where this worker's counters go (nil in in-process tests).
    package var scoreboard: Scoreboard?
    package var scoreboardRecord: Int?
    /// Once the worker is stopping, responses carry `Connection: close` so keep-alive clients move on.
    package var closing = false
    /// How long a client that we are closing on may take to read our answer.
    static let lingerSeconds = 2.0

    package init(loop: EventLoop, settings: Settings, logger: Logger, accessLog: AccessLog?, router: Router) {
        self.loop = loop
        self.settings = settings
        self.logger = logger
        self.accessLog = accessLog
        self.dispatcher = Dispatcher(router: router)
        let period = min(1.0, max(0.05, min(settings.clientTimeout, settings.keepAlive) / 4))
        sweeper = loop.after(period, repeating: true) { [unowned self] in sweep() }
    }

    package func setContext(_ context: HandlerContext) { dispatcher.context = context }

    public var openConnections: Int { connections.count }

    // MARK: accepting

    /// Serves connections from an already listening socket (the master bound it).
    package func accept(fd: Int32) {
        let event = loop.ioEvent(fd, write: false) { [unowned self] in acceptReady(fd) }
        event.enable()
        listeners.append((fd, event))
    }

    package var listeningFDs: [Int32] { listeners.map(\.fd) }

    /// Closes this worker's listening sockets; connections already accepted are still served.
    package func stopAccepting() {
        for l in listeners {
            l.event.cancel()
            Glibc.close(l.fd)
        }
        listeners.removeAll()
    }

    private func acceptReady(_ listenFD: Int32) {
        // Several per wake-up: under load the queue holds many.
        for _ in 0..<64 {
            var ss = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &ss) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { mserve_accept_nonblocking(listenFD, $0, &len) }
            }
            if fd < 0 {
                let err = errno
                if err == EAGAIN || err == EINTR || err == ECONNABORTED { return }
                // Out of descriptors (or memory): retrying at once would spin a core.
                logger.error("accept failed: \(String(cString: strerror(err))); pausing accepts for 100 ms")
                for l in listeners where l.fd == listenFD {
                    l.event.disarm()
                    loop.after(0.1) { l.event.enable() }
                }
                return
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            adopt(fd: fd, remoteHost: HTTPServer.hostText(&ss))
        }
    }

    /// Serves a connected, non-blocking socket (an accepted one, or one end of a socketpair in tests).
    package func adopt(fd: Int32, remoteHost: String) {
        let conn = HTTPConnection(fd: fd, remoteHost: remoteHost, server: self)
        connections[ObjectIdentifier(conn)] = conn
    }

    package static func hostText(_ ss: inout sockaddr_storage) -> String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = ss.ss_family
        withUnsafePointer(to: &ss) { p in
            if family == sa_family_t(AF_INET6) {
                p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    _ = inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count))
                }
            } else {
                p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    _ = inet_ntop(AF_INET, &addr, &buf, socklen_t(buf.count))
                }
            }
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func closed(_ conn: HTTPConnection) {
        connections.removeValue(forKey: ObjectIdentifier(conn))
    }

    /// Closes connections past their timeout: idle between requests longer than --keep-alive, too
    /// slow to send a request or read an answer (--client-timeout), lingering past their grace.  A
    /// connection whose request is with a handler is left alone: the handler's own deadline governs it.
    /// A stopping worker closes idle connections only this way too: closing one at once would race
    /// a request the client may be sending on it that instant, and that request would be lost.
    private func sweep() {
        let now = monotonicSeconds()
        for conn in connections.values where !conn.busy {
            let limit = conn.lingering ? min(HTTPServer.lingerSeconds, settings.clientTimeout)
                : conn.isIdle && (conn.served > 0 || closing) ? settings.keepAlive : settings.clientTimeout
            if now - conn.lastActivity > limit || now - (conn.partialSince ?? now) > settings.clientTimeout {
                conn.close()
            }
        }
    }

    // MARK: requests

    func received(_ request: HTTPRequest) {
        inFlight += 1
        if let scoreboard, let r = scoreboardRecord { scoreboard.setInFlight(r, inFlight) }
        requestsReceived += 1
        if requestsReceived == requestLimit { onRequestLimit?() }
        dispatcher.handle(request)
    }

    func logRequest(_ request: HTTPRequest, recordID: String) {
        logger.log(.info, recordID: recordID) { line in
            line.append(contentsOf: "request: ".utf8)
            LogText.appendEscaped(request.head.methodName, to: &line)
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

    /// Writes the response and its log lines.  The connection may be gone (the client left): the
    /// lines are still written.
    func respond(_ request: HTTPRequest, status: Int, headers: [(String, String)], body: [UInt8], recordID: String) {
        inFlight -= 1
        // While stopping, the last answer closes the connection; requests the client already
        // pipelined behind this one are answered first, not dropped.
        var close = !request.head.keepAlive || (closing && !(request.connection?.hasBufferedInput ?? false))
        for (k, v) in headers where k.equalsIgnoringASCIICase("Connection") && v.equalsIgnoringASCIICase("close") { close = true }
        if let conn = request.connection {
            let bytes = serialize(status: status, headers: headers, body: request.method == .HEAD ? [] : body,
                                  bodyLength: body.count, recordID: recordID, close: close,
                                  keepAliveHeader: request.head.minorVersion == 0 && !close)
            conn.write(bytes, close: close, finishesRequest: true)
        }
        logResponse(method: request.head.methodName, target: request.target, version: request.httpVersion,
                    remoteHost: request.remoteHost, userAgent: request.header("User-Agent"),
                    referer: request.header("Referer"), status: status, body: body, recordID: recordID,
                    started: request.startTime, model: request.metricsModel)
    }

    /// The response head and body as bytes.  Header names and values with CR or LF are dropped:
    /// they would let a handler's input split the response.  A nil `bodyLength` starts a stream:
    /// chunked for HTTP/1.1, delimited by closing the connection for HTTP/1.0.
    private func serialize(status: Int, headers: [(String, String)], body: [UInt8], bodyLength: Int?,
                           recordID: String, close: Bool, keepAliveHeader: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + body.count)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.appendDecimal(status)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: HTTPStatus.reason(status).utf8)
        out.append(contentsOf: "\r\nDate: ".utf8)
        dateCache.append(to: &out)
        if let bodyLength {
            out.append(contentsOf: "\r\nContent-Length: ".utf8)
            out.appendDecimal(bodyLength)
        } else if !close {
            out.append(contentsOf: "\r\nTransfer-Encoding: chunked".utf8)
        }
        var hasType = false
        for (k, v) in headers {
            if k.equalsIgnoringASCIICase("Content-Length") || k.equalsIgnoringASCIICase("Connection")
                || k.equalsIgnoringASCIICase("Transfer-Encoding") { continue }
            guard !k.containsLineBreak, !v.containsLineBreak else {
                logger.error("dropped response header \(k) with a line break", recordID: recordID)
                continue
            }
            if k.equalsIgnoringASCIICase("Content-Type") { hasType = true }
            out.append(contentsOf: "\r\n".utf8)
            out.append(contentsOf: k.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: v.utf8)
        }
        if !hasType && (bodyLength ?? 1) > 0 { out.append(contentsOf: "\r\nContent-Type: text/plain; charset=utf-8".utf8) }
        out.append(contentsOf: "\r\nX-Request-Id: ".utf8)
        out.append(contentsOf: recordID.utf8)
        if close { out.append(contentsOf: "\r\nConnection: close".utf8) }
        if keepAliveHeader { out.append(contentsOf: "\r\nConnection: keep-alive".utf8) }
        out.append(contentsOf: "\r\n\r\n".utf8)
        out.append(contentsOf: body)
        return out
    }

    // MARK: streaming

    /// Sends the head of a streamed response; pieces follow with `streamChunk`, the end with `endStream`.
    func beginStream(_ request: HTTPRequest, status: Int, headers: [(String, String)], recordID: String) {
        // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
        let close = !request.head.keepAlive || request.head.minorVersion == 0
            || (closing && !(request.connection?.hasBufferedInput ?? false))
        request.streamCloses = close
        request.connection?.write(serialize(status: status, headers: headers, body: [], bodyLength: nil,
                                            recordID: recordID, close: close, keepAliveHeader: false), close: false)
    }

    func streamChunk(_ request: HTTPRequest, _ bytes: [UInt8]) {
        guard !bytes.isEmpty, let conn = request.connection else { return }
        request.streamedBytes += bytes.count
        request.streamedPieces += 1
        if request.streamCloses {
            conn.write(bytes, close: false)
            return
        }
        var out = Array(String(bytes.count, radix: 16).utf8)
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: bytes)
        out.append(contentsOf: "\r\n".utf8)
        conn.write(out, close: false)
    }

    func endStream(_ request: HTTPRequest, status: Int, recordID: String) {
        inFlight -= 1
        request.connection?.write(request.streamCloses ? [] : Array("0\r\n\r\n".utf8), close: request.streamCloses,
                                  finishesRequest: true)
        let summary = Array("(streamed \(request.streamedPieces) pieces, \(request.streamedBytes) bytes)".utf8)
        logResponse(method: request.head.methodName, target: request.target, version: request.httpVersion,
                    remoteHost: request.remoteHost, userAgent: request.header("User-Agent"),
                    referer: request.header("Referer"), status: status, body: summary, recordID: recordID,
                    started: request.startTime, bytes: request.streamedBytes, model: request.metricsModel)
    }

    private func logResponse(method: String, target: String, version: String, remoteHost: String,
                             userAgent: String?, referer: String?, status: Int, body: [UInt8],
                             recordID: String, started: Double, bytes: Int? = nil, model: Int? = nil) {
        if let scoreboard, let r = scoreboardRecord {
            scoreboard.countRequest(r, model: model, status: status, seconds: monotonicSeconds() - started)
            scoreboard.setInFlight(r, inFlight)
        }
        let level: LogLevel = status >= 500 ? .error : (status >= 400 ? .warning : .info)
        logger.log(level, recordID: recordID) { line in
            line.append(contentsOf: "response: ".utf8)
            line.appendDecimal(status)
            line.append(UInt8(ascii: " "))
            appendExcerpt(body, to: &line)
        }
        accessLog?.log(AccessLog.Entry(
            remoteHost: remoteHost, method: method, target: target, httpVersion: version, status: status,
            bytes: bytes ?? body.count, referer: referer, userAgent: userAgent,
            durationSeconds: monotonicSeconds() - started, pid: pid, recordID: recordID))
    }

    /// A request the parser refused: a JSON error, its log lines, and the connection closed after.
    func rejected(_ e: RequestParseError, on conn: HTTPConnection) {
        let started = monotonicSeconds()
        let (rid, ridValue, _) = RecordID.resolve(bodyValue: nil, header: e.requestID)
        let method = e.head?.methodName ?? "-"
        let target = e.head?.target ?? "-"
        logger.log(.info, recordID: rid) { line in
            line.append(contentsOf: "request: ".utf8)
            LogText.appendEscaped(method, to: &line)
            line.append(UInt8(ascii: " "))
            LogText.appendEscaped(target, to: &line)
            line.append(contentsOf: " (rejected: ".utf8)
            LogText.appendEscaped(e.message, to: &line)
            line.append(UInt8(ascii: ")"))
        }
        let body = ErrorBody.json(HTTPError(e.status, e.message), recordID: ridValue).serialized()
        conn.lingerOnClose = true
        conn.write(serialize(status: e.status, headers: [("Content-Type", "application/json")], body: body,
                             bodyLength: body.count, recordID: rid, close: true, keepAliveHeader: false),
                   close: true, finishesRequest: true)
        logResponse(method: method, target: target, version: e.head?.minorVersion == 0 ? "HTTP/1.0" : "HTTP/1.1",
                    remoteHost: conn.remoteHost, userAgent: e.head?.header("User-Agent"),
                    referer: e.head?.header("Referer"), status: e.status, body: body, recordID: rid, started: started)
    }
}

/// The Date header's text, formatted once per second.
struct HTTPDate {
    private var second = -1
    private var text: [UInt8] = []

    mutating func append(to out: inout [UInt8]) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        if ts.tv_sec != second {
            second = ts.tv_sec
            var t = time_t(ts.tv_sec)
            var tm = tm()
            gmtime_r(&t, &tm)
            var buf = [CChar](repeating: 0, count: 64)
            let n = strftime(&buf, buf.count, "%a, %d %b %Y %H:%M:%S GMT", &tm)
            text = buf[0..<n].map { UInt8(bitPattern: $0) }
        }
        out.append(contentsOf: text)
    }
}
