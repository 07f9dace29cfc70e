import MServe

/// What `mserve bench` was asked to do, parsed from its command line (pure).
public struct BenchOptions: Sendable, Equatable {
    /// What the request body is, from the URL's path unless --body or --data gives it.
    public enum Kind: String, Sendable { case demo, json, embeddings, chat, completions, get }

    public var host = "127.0.0.1"
    public var port = 80
    public var path = "/"
    public var concurrency: Int?
    /// Open loop: requests per second with Poisson arrivals; nil: closed loop.
    public var rate: Double?
    public var duration = 10.0
    public var requests: Int?
    public var warmup = 1.0
    public var threads = 2
    public var method: String?
    public var body: [UInt8]?
    public var headers: [(String, String)] = []
    /// The model named in the body; nil: the one the server serves (`mserve bench` asks
    /// /v1/models before it starts, see `choose(model:)`).
    public var model: String?
    public var prompt = "Write a short poem about the sea."
    public var maxTokens = 64
    public var stream = false
    public var timeout = 30.0
    public var json = false
    /// Exit 1 when more than this share of the requests fail (an error status or no answer).
    public var maxErrorRate = 0.01
    public var seed: UInt64 = 1
    public var kind = Kind.get
    /// Sign every request (mserve's HMAC form) as this key: its name and the key.
    public var sign: (name: String, key: String)?

    public init() {}

    public static func == (a: BenchOptions, b: BenchOptions) -> Bool {
        a.request == b.request && a.sign?.name == b.sign?.name && a.concurrency == b.concurrency && a.rate == b.rate && a.duration == b.duration
            && a.requests == b.requests && a.warmup == b.warmup && a.threads == b.threads && a.json == b.json
            && a.maxErrorRate == b.maxErrorRate
    }

    /// What the command line gives beside the options themselves: the URL, and a body as text or
    /// from a file (resolved once every option is read).
    struct Arguments: Sendable {
        var options = BenchOptions()
        var data: String?
        var bodyFile: String?
    }

    static let commandLine = CommandOptions<Arguments>(
        synopsis: "usage: mserve bench URL [options]",
        description: """
            Load-tests an HTTP endpoint (http:// only) and prints requests/s, latency percentiles and \
            errors by status; with --stream, time to first token, inter-token latency and tokens/s.
            """,
        options: [
            .int(
                ["-c", "--concurrency", "--connections"], min: 1,
                "connections, each with one request at a time (closed loop; default 50; with --rate, the most connections, default 256)"
            ) { $0.options.concurrency = $1 },
            .number(
                ["-r", "--rate"], "R", min: 0.001,
                "open loop: R requests/s in Poisson arrivals; latency counts from when each request was due, so a server that falls behind shows it"
            ) { $0.options.rate = $1 },
            .number(["-d", "--duration"], "S", min: 0.1, "seconds of measured load (default 10)") { $0.options.duration = $1 },
            .int(["-n", "--requests"], min: 1, "stop after N answers instead") { $0.options.requests = $1 },
            .number(["-w", "--warmup"], "S", min: 0, "seconds of load before measuring (default 1)") { $0.options.warmup = $1 },
            .int(["-t", "--threads"], min: 1, "client threads, each with its own connections (default 2)") { $0.options.threads = $1 },
            .text(["-m", "--method"], "M", "default: POST when there is a body, else GET") { $0.options.method = $1.uppercased() },
            .text(["--body"], "FILE", "the request body, from a file") { $0.bodyFile = $1 },
            .text(["--data"], "TEXT", "the request body") { $0.data = $1 },
            CommandOption(["-H", "--header"], "\"N: V\"", "a request header (repeatable)") { a, h throws(ConfigError) in
                guard let colon = h.firstIndex(of: ":") else { throw ConfigError("--header: expected \"Name: value\", got \(h)") }
                a.options.headers.append((String(h[..<colon]), String(h[h.index(after: colon)...].drop { $0 == " " })))
            },
            .text(
                ["--model"], "NAME",
                "for /v1/embeddings, /v1/chat/completions, /v1/completions (default: the one the server lists in /v1/models for that path)"
            ) { $0.options.model = $1 },
            CommandOption(["--prompt"], "TEXT", "their input (default \"Write a short poem about the sea.\")") { a, v in a.options.prompt = v },
            .int(["--max-tokens"], min: 1, "for chat and completions (default 64)") { $0.options.maxTokens = $1 },
            .flag(["--stream"], "ask for a stream (SSE) and time its tokens") { $0.options.stream = true },
            .number(["--timeout"], "S", min: 0.001, "a request without an answer by then is an error (default 30)") { $0.options.timeout = $1 },
            .number(
                ["--max-error-rate"], "R", min: 0, max: 1,
                "exit 1 when more than this share of requests fail (default 0.01; 1: never), as when none succeed"
            ) { $0.options.maxErrorRate = $1 },
            .int(["--seed"], min: 0, "of the Poisson arrivals (default 1)") { $0.options.seed = UInt64($1) },
            CommandOption(["--sign"], "NAME=KEY", "sign each request as that key (HMAC, a fresh nonce each time)") { a, v throws(ConfigError) in
                guard let eq = v.firstIndex(of: "="), eq != v.startIndex else { throw ConfigError("--sign: expected NAME=KEY") }
                a.options.sign = (String(v[..<eq]), String(v[v.index(after: eq)...]))
            },
            .flag(["--json"], "print the result as JSON") { $0.options.json = true }
        ],
        notes: """
            Without --body or --data the body follows the path: /demo {"cal_number": 1}, OpenAI's \
            embeddings, chat and completions requests, /NAME of another model {} ; anything else is a GET.
            """)

    public static func parse(_ args: [String]) throws(ConfigError) -> BenchOptions? {
        var a = Arguments()
        guard let rest = try commandLine.parse(args, into: &a) else { return nil }
        return try resolve(a, rest)
    }

    /// The options once every flag is read: the URL (the one other argument) and the body.
    static func resolve(_ a: Arguments, _ rest: [String]) throws(ConfigError) -> BenchOptions {
        guard let url = rest.first else { throw ConfigError("a URL is needed: mserve bench http://127.0.0.1:8000/demo") }
        guard rest.count == 1 else { throw ConfigError("one URL, got \(rest.joined(separator: " "))") }
        var o = a.options
        try o.setURL(url)
        if let bodyFile = a.bodyFile {
            do { o.body = try FileReading.bytes(bodyFile) } catch { throw ConfigError("--body: \(error)") }
            o.kind = .json
        } else if let data = a.data {
            o.body = Array(data.utf8)
            o.kind = .json
        } else {
            o.kind = BenchOptions.kind(forPath: o.path)
            o.body = o.defaultBody()
        }
        if o.threads > (o.concurrency ?? 50) { o.threads = o.concurrency ?? 50 }
        return o
    }

    /// Whether the body must name a model that was not given: the server is asked which it serves.
    public var needsModel: Bool {
        model == nil && [.embeddings, .chat, .completions].contains(kind)
    }

    /// The model to name in the body (an OpenAI path's default body).
    public mutating func choose(model name: String) {
        model = name
        body = defaultBody()
    }

    /// Of the models a server lists (`/v1/models`: ids, and mserve's `kind`), the one for this
    /// path: the only one, or the only one of the path's kind; else a sentence saying to pick.
    public func model(among listed: [(id: String, kind: String?)]) -> Result<String, ConfigError> {
        let wanted = kind == .embeddings ? "embeddings" : "chat"
        let described = kind == .embeddings ? "an embedding model" : "a chat model"
        let fitting = listed.count == 1 ? listed : listed.filter { $0.kind == wanted }
        if fitting.count == 1 { return .success(fitting[0].id) }
        if listed.isEmpty { return .failure(ConfigError("the server lists no model in /v1/models: name one with --model")) }
        let names = (fitting.isEmpty ? listed : fitting).map(\.id).joined(separator: ", ")
        return .failure(
            ConfigError(
                fitting.isEmpty
                    ? "none of the models the server lists (\(names)) is \(described): name one with --model"
                    : "the server lists several models for \(path) (\(names)): name one with --model"))
    }

    mutating func setURL(_ url: String) throws(ConfigError) {
        guard url.hasPrefix("http://") else { throw ConfigError("only http:// URLs: got \(url)") }
        let rest = url.dropFirst(7)
        let authority = rest.prefix { $0 != "/" }
        path = rest.dropFirst(authority.count).isEmpty ? "/" : String(rest.dropFirst(authority.count))
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ConfigError("bad host in \(url)") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw ConfigError("bad port in \(url)") }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { throw ConfigError("bad port in \(url)") }
            port = p
        } else {
            host = String(authority)
        }
        if host.isEmpty { throw ConfigError("no host in \(url)") }
    }

    static func kind(forPath path: String) -> Kind {
        let p = path.prefix { $0 != "?" }
        switch p {
        case "/v1/embeddings": return .embeddings
        case "/v1/chat/completions": return .chat
        case "/v1/completions": return .completions
        case "/demo": return .demo
        default: return p.hasPrefix("/v1/") || p == "/" || p.hasSuffix("z") || p == "/metrics" ? .get : .json
        }
    }

    func defaultBody() -> [UInt8]? {
        let stream: JSON = .bool(self.stream)
        switch kind {
        case .get: return nil
        case .demo: return Array(#"{"cal_number": 1}"#.utf8)
        case .json: return self.stream ? Array(#"{"stream": true}"#.utf8) : Array("{}".utf8)
        case .embeddings: return (["model": .string(model ?? ""), "input": .string(prompt)] as JSON).serialized()
        case .chat:
            return
                ([
                    "model": .string(model ?? ""), "messages": [["role": "user", "content": .string(prompt)]],
                    "max_tokens": .int(Int64(maxTokens)), "stream": stream
                ] as JSON).serialized()
        case .completions:
            return (["model": .string(model ?? ""), "prompt": .string(prompt), "max_tokens": .int(Int64(maxTokens)), "stream": stream] as JSON)
                .serialized()
        }
    }

    /// The request as sent, the same bytes every time (a signed one gets its signature headers
    /// inserted before the blank line, per request).
    public var request: [UInt8] {
        let m = method ?? (body == nil ? "GET" : "POST")
        var text = "\(m) \(path) HTTP/1.1\r\nHost: \(host.contains(":") ? "[\(host)]" : host):\(port)\r\nUser-Agent: mserve-bench\r\n"
        var names = Set(headers.map { $0.0.lowercased() })
        for (n, v) in headers { text += "\(n): \(v)\r\n" }
        if let body {
            if !names.contains("content-type") { text += "Content-Type: application/json\r\n" }
            text += "Content-Length: \(body.count)\r\n"
            names.insert("content-length")
        }
        if stream && !names.contains("accept") { text += "Accept: text/event-stream\r\n" }
        return Array((text + "\r\n").utf8) + (body ?? [])
    }

    /// Connections to open: closed loop 50 by default, open loop up to 256.
    public var connections: Int { concurrency ?? (rate == nil ? 50 : 256) }
}
