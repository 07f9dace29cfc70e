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
    /// Requests (streams, mostly) still running when the window closed: neither answered nor failed.
    public var unfinished: UInt64 = 0
    /// What the server said, the first time it answered with each error status.
    public var errorSamples: [Int: String] = [:]

    public init() {}

    public var answered: UInt64 { statuses.values.reduce(0, +) }
    public var succeeded: UInt64 { statuses.filter { (200..<400).contains($0.key) }.values.reduce(0, +) }
    /// Answered with an error status, or not answered (connect, read, timeout, ...).
    public var failed: UInt64 { answered - succeeded + failures.values.reduce(0, +) }
    public var errorRate: Double { failed == 0 ? 0 : Double(failed) / Double(answered + failures.values.reduce(0, +)) }

    /// The message of an error answer: OpenAI's `error.message`, mserve's `error`, else the text.
    static func sample(_ body: [UInt8]) -> String {
        if case .success(let v) = Result(catching: { () throws(JSONParseError) in try JSONParser.parse(body) }) {
            if case .string(let s)? = v["error"]?["message"] ?? v["error"] { return s }
        }
        return String(decoding: body.prefix(160), as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    public mutating func merge(_ o: BenchResult) {
        latency.merge(o.latency)
        firstToken.merge(o.firstToken)
        interToken.merge(o.interToken)
        tokens += o.tokens
        statuses.merge(o.statuses, uniquingKeysWith: +)
        failures.merge(o.failures, uniquingKeysWith: +)
        unfinished += o.unfinished
        errorSamples.merge(o.errorSamples) { a, _ in a }
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

    /// Why the run counts as failed (exit 1), or nil: nothing succeeded, or more failed than allowed.
    public var verdict: String? {
        let r = result
        if r.succeeded == 0 {
            if r.failed > 0 { return "all \(r.failed) requests failed: \(errorSummary)" }
            if r.unfinished > 0 {
                return "no request finished within the \(Self.text(seconds)) s measured: \(r.unfinished) still running at the end "
                    + "(measure longer with -d, or ask for less with --max-tokens)"
            }
            return "no request was answered"
        }
        if r.errorRate > options.maxErrorRate {
            return "\(percent(r.errorRate)) of the requests failed, more than --max-error-rate \(Self.text(options.maxErrorRate)): \(errorSummary)"
        }
        return nil
    }

    func percent(_ share: Double) -> String { Self.text(share * 100) + "%" }

    /// Errors by status or kind, most frequent first, each with what the server said.
    var errorSummary: String {
        errors.sorted { $0.1 > $1.1 }.map { name, count in
            let said = Int(name).flatMap { result.errorSamples[$0] }.map { " \"\($0)\"" } ?? ""
            return "\(name) × \(count)\(said)"
        }.joined(separator: ", ")
    }
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
        [
            "p50": .double(Self.ms(h.percentile(50))), "p90": .double(Self.ms(h.percentile(90))), "p99": .double(Self.ms(h.percentile(99))),
            "max": .double(Self.ms(h.count == 0 ? 0 : h.max)), "mean": .double((h.mean / 10).rounded() / 100)
        ]
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
            "succeeded": .int(Int64(result.succeeded)), "failed": .int(Int64(result.failed)),
            "error_rate": .double((result.errorRate * 10000).rounded() / 10000), "unfinished": .int(Int64(result.unfinished)),
            "error_messages": .object(result.errorSamples.sorted { $0.key < $1.key }.map { (String($0.key), .string($0.value)) })
        ]
        if let verdict { out = out.setting("failure", .string(verdict)) }
        if let rate = options.rate { out = out.setting("rate", .double(rate)) }
        if let model = options.model, options.kind != .json { out = out.setting("model", .string(model)) }
        if options.stream {
            out = out.setting(
                "stream",
                [
                    "tokens": .int(Int64(result.tokens)),
                    "tokens_per_second": .double((Double(result.tokens) / Swift.max(seconds, 1e-9) * 10).rounded() / 10),
                    "time_to_first_token_ms": percentiles(result.firstToken), "inter_token_latency_ms": percentiles(result.interToken)
                ])
        }
        return out
    }

    public var text: String {
        func line(_ h: LatencyHistogram) -> String {
            guard h.count > 0 else { return "none measured" }
            return "p50 \(Self.text(Self.ms(h.percentile(50))))  p90 \(Self.text(Self.ms(h.percentile(90))))  "
                + "p99 \(Self.text(Self.ms(h.percentile(99))))  max \(Self.text(Self.ms(h.count == 0 ? 0 : h.max)))  "
                + "mean \(Self.text(h.mean / 1000))"
        }
        var out =
            "mserve bench http://\(options.host):\(options.port)\(options.path): \(mode), \(options.threads) thread\(options.threads == 1 ? "" : "s"), "
            + "\(Self.text(seconds)) s measured after \(Self.text(options.warmup)) s of warm-up\n"
        // Errors first: a run of fast 404s must not read as a fast server.
        if let verdict { out += "FAILED       \(verdict)\n" }
        let r = result
        out +=
            "errors       " + (r.failed == 0 ? "none" : "\(r.failed) of \(r.failed + r.succeeded) (\(percent(r.errorRate))): \(errorSummary)") + "\n"
        out +=
            "requests     \(r.succeeded) succeeded, \(Self.text(seconds > 0 ? Double(r.succeeded) / seconds : 0)) requests/s"
            + (r.answered > r.succeeded ? " (\(r.answered) answered, \(Self.text(requestsPerSecond))/s with the errors)" : "") + "\n"
        // A closed loop always ends with requests in flight; they matter for streams, and when
        // nothing else finished.
        if r.unfinished > 0 && (options.stream || r.succeeded == 0) {
            out += "unfinished   \(r.unfinished) still running when the window closed (not counted above)\n"
        }
        out += "latency ms   \(line(result.latency))\n"
        out +=
            "status       \(r.statuses.isEmpty ? "none" : r.statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))\n"
        if options.stream {
            out += "first token  ms \(line(result.firstToken))   (from sending the request)\n"
            out += "inter-token  ms \(line(result.interToken))   (gaps between successive tokens of a stream)\n"
            out +=
                "tokens       \(result.tokens), \(Self.text(Double(result.tokens) / Swift.max(seconds, 1e-9))) tokens/s "
                + "(a token: an SSE event carrying content)\n"
        }
        return out
    }
}
