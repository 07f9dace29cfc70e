import MServe
import MServeHTTP
import MServeSystem

/// One HTTP response as a client saw it.
public struct TestResponse: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    public var json: JSON? { try? JSONParser.parse(text) }
}

/// mserve's HTTP layer, router and handlers in-process, with no socket bound and no process
/// forked: raw bytes go into one end of a socketpair that a worker's server serves, and what it
/// answers is read from the other end.  For testing handlers and models the way the server runs
/// them:
///
///     let server = try TestServer(routes: [Route("/hello", Hello.self)])
///     let r = try server.request("GET", "/hello")
///     #expect(r.status == 200)
public final class TestServer {
    public let loop: EventLoop
    public let server: HTTPServer
    let dispatcher: Dispatcher
    /// What the connections' timeouts are measured with: move it and call `server.sweep(now:)`.
    public let clock = ManualClock()
    /// Seconds a round trip may take (a model on its threads included) before it fails.
    public var timeout = 10.0

    /// Serves `routes` (yours first) and the built-in routes of `models`, as a worker does.
    public convenience init(routes: [Route] = [], models: [ServedModel] = [], settings: Settings = Settings()) throws {
        try self.init(
            routes: routes, loaded: models.map { LoadedModel(name: $0.name, summary: $0.summary, device: $0.device, instance: $0.instance) },
            settings: settings)
    }

    init(routes: [Route], loaded models: [LoadedModel], settings: Settings) throws {
        loop = try EventLoop()
        let logger = try TestServer.nullLogger()
        server = HTTPServer(loop: loop, limits: settings.httpLimits, clock: clock, sweeping: false)
        let observer = RequestObserver(logger: logger, accessLog: nil, logBodyLimit: settings.logBodyLimit)
        dispatcher = try WorkerAssembly.dispatcher(
            models: models, settings: settings, routes: routes, loop: loop, server: server,
            observer: observer, logger: logger, slot: 0)
        server.delegate = dispatcher
    }

    /// Serves the models `names` of `registry`, loaded as a worker loads them (`[model.NAME]`
    /// options from `settings`).
    public convenience init(
        serving names: [String], registry: ModelRegistry = .builtin, settings: Settings = Settings(),
        routes: [Route] = []
    ) throws {
        var settings = settings
        settings.models = names
        let models = try ModelLoader.load(settings, registry: registry, slot: 0, logger: try TestServer.nullLogger())
        try self.init(routes: routes, loaded: models, settings: settings)
    }

    /// Serves a model of type `M` under `name`, with `options` as a `[model.NAME]` table gives them.
    public convenience init<M: Model>(
        model: M.Type, as name: String, options: [String: JSON] = [:],
        settings: Settings = Settings()
    ) throws {
        let context = try TestServer.context(name: name, options: options)
        let served = ServedModel(name: name, summary: "", device: "cpu", instance: try M(context: context))
        try self.init(models: [served], settings: settings)
    }

    /// A logger that writes nowhere.
    public static func nullLogger() throws -> Logger {
        Logger(file: try LogFile(path: "/dev/null", standardFD: 2), level: .critical)
    }

    /// What a model's `init(context:)` gets in worker 0.
    public static func context(name: String = "model", options: [String: JSON] = [:]) throws -> ModelContext {
        ModelContext(name: name, slot: 0, device: "cpu", options: options, logger: try nullLogger())
    }

    /// Sends `raw` (one request, or several pipelined) on a new connection and returns every
    /// response the server wrote before it closed the connection.  With `halfClose` the sending
    /// side is shut after the bytes (the server answers what it has, then closes; a request still
    /// waiting for a model thread then counts as abandoned, 499); without it the last request
    /// must ask for `Connection: close`.
    public func exchange(_ raw: [UInt8], halfClose: Bool = true) throws -> [TestResponse] {
        try TestServer.parseResponses(try exchangeBytes(raw, halfClose: halfClose))
    }

    /// What `exchange` does, returning the bytes the server wrote as they are (for HEAD, or to
    /// check the exact framing).
    public func exchangeBytes(_ raw: [UInt8], halfClose: Bool = true) throws -> [UInt8] {
        let (serverEnd, clientEnd) = try Socket.pair()
        defer { Socket.close(clientEnd) }
        server.adopt(fd: serverEnd, remoteHost: "test")
        var sent = 0
        let deadline = monotonicSeconds() + timeout
        while sent < raw.count {
            switch raw[sent...].withUnsafeBytes({ Socket.send(clientEnd, $0) }) {
            case .sent(let n): sent += n
            case .wouldBlock: loop.runOnce()
            case .failed: throw SystemError("the server closed the connection while the request was sent")
            }
        }
        if halfClose { Socket.shutdownOutput(clientEnd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            loop.runOnce()
            switch buf.withUnsafeMutableBytes({ Socket.read(clientEnd, into: $0) }) {
            case .data(let n): out += buf[0..<n]
            case .end, .failed: return out
            case .wouldBlock:
                guard monotonicSeconds() < deadline else { throw SystemError("no complete answer within \(timeout) s") }
                loop.runOnce(waitingUpTo: 0.01)
            }
        }
    }

    public func exchange(_ raw: String, halfClose: Bool = true) throws -> [TestResponse] {
        try exchange(Array(raw.utf8), halfClose: halfClose)
    }

    /// One request, as a client that waits for the answer sends it: Host (unless given), the body's
    /// Content-Length, and Connection: close so that the server closes after answering.
    public func request(
        _ method: String, _ path: String, body: String? = nil,
        headers: [(String, String)] = []
    ) throws -> TestResponse {
        var head = "\(method) \(path) HTTP/1.1\r\n"
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: test\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.utf8.count)\r\n" }
        head += "Connection: close\r\n"
        let responses = try exchange(head + "\r\n" + (body ?? ""), halfClose: false)
        guard let first = responses.first else { throw SystemError("the server closed the connection without answering") }
        return first
    }

    /// A JSON POST, as clients of a model send it.
    public func post(_ path: String, json: String, headers: [(String, String)] = []) throws -> TestResponse {
        try request("POST", path, body: json, headers: [("Content-Type", "application/json")] + headers)
    }

    /// Splits what the server wrote into responses (Content-Length or chunked bodies; interim 1xx kept).
    static func parseResponses(_ bytes: [UInt8]) throws -> [TestResponse] {
        var out: [TestResponse] = []
        var at = 0
        func line() throws -> String {
            var i = at
            while i + 1 < bytes.count && !(bytes[i] == 13 && bytes[i + 1] == 10) { i += 1 }
            guard i + 1 < bytes.count else { throw SystemError("truncated response") }
            defer { at = i + 2 }
            return String(decoding: bytes[at..<i], as: UTF8.self)
        }
        while at < bytes.count {
            let status = try line().split(separator: " ")
            guard status.count >= 2, let code = Int(status[1]) else { throw SystemError("bad status line") }
            var headers: [String: String] = [:]
            while case let h = try line(), !h.isEmpty {
                guard let colon = h.firstIndex(of: ":") else { throw SystemError("bad header line \(h)") }
                headers[h[..<colon].lowercased()] = String(h[h.index(after: colon)...].drop { $0 == " " })
            }
            var body: [UInt8] = []
            if headers["transfer-encoding"] == "chunked" {
                while true {
                    guard let size = Int(try line().split(separator: ";")[0], radix: 16) else { throw SystemError("bad chunk size") }
                    guard at + size + 2 <= bytes.count else { throw SystemError("truncated chunk") }
                    body += bytes[at..<at + size]
                    at += size + 2
                    if size == 0 { break }
                }
            } else if let length = headers["content-length"].flatMap({ Int($0) }) {
                guard at + length <= bytes.count else { throw SystemError("truncated body") }
                body = Array(bytes[at..<at + length])
                at += length
            }
            out.append(TestResponse(status: code, headers: headers, body: body))
        }
        return out
    }
}
