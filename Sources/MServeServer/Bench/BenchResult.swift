import MServe

/// What one client thread measured; threads' results merge into the run's.
public struct BenchResult: Sendable {
    public var latency = LatencyHistogram()
    /// Streams: time to the first token, and the gaps between successive tokens of a response.
    public var firstToken = LatencyHistogram()
    public var interToken = LatencyHistogram()
    public var tokens: UInt64 = 0
    /// Answers by status code, and failures without one ("connect", "read", "timeout", "parse").
    public var statuses: [Int: UInt64] = [:]
    public var failures: [String: UInt64] = [:]

    public init() {}

    public var answered: UInt64 { statuses.values.reduce(0, +) }

    public mutating func merge(_ o: BenchResult) {
        latency.merge(o.latency)
        firstToken.merge(o.firstToken)
        interToken.merge(o.interToken)
        tokens += o.tokens
        statuses.merge(o.statuses, uniquingKeysWith: +)
        failures.merge(o.failures, uniquingKeysWith: +)
    }
}

/// The report of a run, as text for people or JSON for scripts (pure).
public struct BenchReport {
    public let options: BenchOptions
    public let result: BenchResult
    /// Seconds measured (from the end of the warm-up to the end of the run).
    public let seconds: Double

    public init(options: BenchOptions, result: BenchResult, seconds: Double) {
        self.options = options
        self.result = result
        self.seconds = seconds
    }

    public var requestsPerSecond: Double { seconds > 0 ? Double(result.answered) / seconds : 0 }
    var errors: [(String, UInt64)] {
        result.statuses.filter { !(200..<400).contains($0.key) }.sorted { $0.key < $1.key }.map { (String($0.key), $0.value) }
            + result.failures.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    static func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
    static func text(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
    func percentiles(_ h: LatencyHistogram) -> JSON {
        ["p50": .double(Self.ms(h.percentile(50))), "p90": .double(Self.ms(h.percentile(90))), "p99": .double(Self.ms(h.percentile(99))),
         "max": .double(Self.ms(h.count == 0 ? 0 : h.max)), "mean": .double((h.mean / 10).rounded() / 100)]
    }

    var mode: String {
        if let rate = options.rate { return "open loop at \(Self.text(rate)) requests/s (Poisson), up to \(options.connections) connections" }
        return "closed loop, \(options.connections) connections"
    }

    public var json: JSON {
        var out: JSON = [
            "url": .string("http://\(options.host):\(options.port)\(options.path)"), "mode": .string(options.rate == nil ? "closed" : "open"),
            "connections": .int(Int64(options.connections)), "threads": .int(Int64(options.threads)),
            "seconds": .double((seconds * 1000).rounded() / 1000), "requests": .int(Int64(result.answered)),
            "requests_per_second": .double((requestsPerSecond * 10).rounded() / 10), "latency_ms": percentiles(result.latency),
            "status": .object(result.statuses.sorted { $0.key < $1.key }.map { (String($0.key), .int(Int64($0.value))) }),
            "errors": .object(errors.map { ($0.0, .int(Int64($0.1))) }),
        ]
        if let rate = options.rate { out = out.setting("rate", .double(rate)) }
        if options.stream {
            out = out.setting("stream", [
                "tokens": .int(Int64(result.tokens)), "tokens_per_second": .double((Double(result.tokens) / Swift.max(seconds, 1e-9) * 10).rounded() / 10),
                "time_to_first_token_ms": percentiles(result.firstToken), "inter_token_latency_ms": percentiles(result.interToken),
            ])
        }
        return out
    }

    public var text: String {
        func line(_ h: LatencyHistogram) -> String {
            "p50 \(Self.text(Self.ms(h.percentile(50))))  p90 \(Self.text(Self.ms(h.percentile(90))))  "
                + "p99 \(Self.text(Self.ms(h.percentile(99))))  max \(Self.text(Self.ms(h.count == 0 ? 0 : h.max)))  "
                + "mean \(Self.text(h.mean / 1000))"
        }
        var out = "mserve bench http://\(options.host):\(options.port)\(options.path): \(mode), \(options.threads) thread\(options.threads == 1 ? "" : "s"), "
            + "\(Self.text(seconds)) s measured after \(Self.text(options.warmup)) s of warm-up\n"
        out += "requests     \(result.answered) answered, \(Self.text(requestsPerSecond)) requests/s\n"
        out += "latency ms   \(line(result.latency))\n"
        out += "status       \(result.statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))\n"
        out += "errors       \(errors.isEmpty ? "none" : errors.map { "\($0.0): \($0.1)" }.joined(separator: ", "))\n"
        if options.stream {
            out += "first token  ms \(line(result.firstToken))   (from sending the request)\n"
            out += "inter-token  ms \(line(result.interToken))   (gaps between successive tokens of a stream)\n"
            out += "tokens       \(result.tokens), \(Self.text(Double(result.tokens) / Swift.max(seconds, 1e-9))) tokens/s "
                + "(a token: an SSE event carrying content)\n"
        }
        return out
    }
}
