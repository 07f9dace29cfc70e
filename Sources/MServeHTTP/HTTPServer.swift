import MServeSystem

/// What the layer above the HTTP server does with requests: routing, handlers, logs, metrics.
public protocol HTTPServerDelegate: AnyObject {
    /// A complete request, to be answered through `request.response` on the loop thread, now or later.
    func serve(_ request: HTTPRequest)
    /// A request the parser refused (`error.status`); the connection closes after the answer.
    func reject(_ error: RequestParseError, remoteHost: String, response: ResponseWriter)
    /// Accepting failed for want of descriptors or memory; accepts pause for 100 ms.
    func acceptFailed(_ error: SystemError)
}

/// A worker's HTTP/1.1 server on libevent: accepts on the worker's listening sockets, keeps its
/// connections (so a graceful stop knows which are idle) and closes those past their time.  It
/// knows nothing of routing, models, recordids or metrics: requests go up to its delegate.
public final class HTTPServer {
    public struct Limits: Equatable, Sendable {
        public var maxHeaderSize: Int
        public var maxBodySize: Int
        public var timeouts: ConnectionTimeouts

        public init(maxHeaderSize: Int, maxBodySize: Int, timeouts: ConnectionTimeouts) {
            self.maxHeaderSize = maxHeaderSize
            self.maxBodySize = maxBodySize
            self.timeouts = timeouts
        }
    }

    public let loop: EventLoop
    public let limits: Limits
    /// HTTPS: every connection speaks TLS with this context.
    public let tls: TLSContext?
    let clock: any SecondsClock
    public weak var delegate: (any HTTPServerDelegate)?
    /// One read buffer for every connection of this single-threaded server.
    var readScratch = [UInt8](repeating: 0, count: 65536)
    private var listeners: [(fd: Int32, event: EventHandle)] = []
    private var connections: [Int32: HTTPConnection] = [:]
    private var sweeper: EventHandle?
    private var dateCache = HTTPDate()
    /// Requests handed up and not yet answered.
    public private(set) var inFlight = 0
    /// Once the worker is stopping, responses carry `Connection: close` so keep-alive clients move on.
    public var closing = false

    /// `clock` is what timeouts are measured with; `sweeping` false leaves `sweep(now:)` to the caller
    /// (tests with a manual clock).
    public init(
        loop: EventLoop, limits: Limits, tls: TLSContext? = nil, clock: any SecondsClock = MonotonicClock(),
        sweeping: Bool = true
    ) {
        self.loop = loop
        self.limits = limits
        self.tls = tls
        self.clock = clock
        if sweeping {
            sweeper = loop.after(limits.timeouts.sweepPeriod, repeating: true) { [unowned self] in sweep(now: self.clock.now()) }
        }
        // The outbox, not the server: a weak reference to the server would move its reference
        // count to a side table, and every retain of it on the request path would take the slow way.
        loop.atBatchEnd { [outbox] in outbox.send() }
    }

    /// Connections with answers written during this batch of events, sent when it ends: a client
    /// that pipelines or holds many connections is woken once for many answers, not once for each
    /// (on 2 busy cores, 9-10% more requests/s than sending each answer at once).
    final class Outbox {
        private var connections: [HTTPConnection] = []

        func add(_ connection: HTTPConnection) { connections.append(connection) }

        func send() {
            // Sending may let a pipelined request run and queue its answer: the list may grow meanwhile.
            var i = 0
            while i < connections.count {
                connections[i].sendQueued()
                i += 1
            }
            connections.removeAll(keepingCapacity: true)
        }
    }
    let outbox = Outbox()

    public var openConnections: Int { connections.count }

    // MARK: accepting

    /// Serves connections from an already listening socket (the master bound it).
    public func accept(fd: Int32) {
        let event = loop.ioEvent(fd, write: false) { [unowned self] in acceptReady(fd) }
        event.enable()
        listeners.append((fd, event))
    }

    public var listeningFDs: [Int32] { listeners.map(\.fd) }

    /// Closes this worker's listening sockets; connections already accepted are still served.
    public func stopAccepting() {
        for l in listeners {
            l.event.cancel()
            Socket.close(l.fd)
        }
        listeners.removeAll()
    }

    private func acceptReady(_ listenFD: Int32) {
        // Several per wake-up: under load the queue holds many.
        for _ in 0..<64 {
            switch Socket.accept(listenFD) {
            case .accepted(let fd, let host):
                adopt(fd: fd, remoteHost: host)
            case .wouldBlock:
                return
            case .failed(let error):
                // Out of descriptors (or memory): retrying at once would spin a core.
                delegate?.acceptFailed(error)
                for l in listeners where l.fd == listenFD {
                    l.event.disarm()
                    loop.after(0.1) { l.event.enable() }
                }
                return
            }
        }
    }

    /// Serves a connected, non-blocking socket (an accepted one, or one end of a socketpair in tests).
    public func adopt(fd: Int32, remoteHost: String) {
        let conn = HTTPConnection(fd: fd, remoteHost: remoteHost, server: self)
        connections[fd] = conn
    }

    func connection(_ fd: Int32) -> HTTPConnection? { connections[fd] }

    func closed(_ conn: HTTPConnection) {
        connections.removeValue(forKey: conn.fd)
    }

    /// Closes the connections past their time (ConnectionTimeouts decides); one in the middle of
    /// sending a request is told so first (408, as nginx answers).
    public func sweep(now: Double) {
        for conn in connections.values where limits.timeouts.expired(conn.activity, now: now, serverClosing: closing) {
            if conn.activity.partialSince != nil && !conn.lingering {
                conn.timedOut(after: limits.timeouts.client)
            } else {
                conn.close()
            }
        }
    }

    // MARK: requests

    func received(_ request: HTTPRequest) {
        inFlight += 1
        delegate?.serve(request)
    }

    func rejected(_ error: RequestParseError, remoteHost: String, response: ResponseWriter) {
        inFlight += 1
        delegate?.reject(error, remoteHost: remoteHost, response: response)
    }

    /// A response is complete (whole, or the end of a stream).
    func answered() { inFlight -= 1 }

    /// The Date header's text for now.
    func date() -> [UInt8] { dateCache.current() }
}
