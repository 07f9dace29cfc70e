import Testing

@testable import MServe
@testable import MServeBench

/// `mserve bench`'s pure parts: its histogram, arrivals, options and report.
struct BenchTests {
    @Test func theHistogramIsExactBelow2048AndWithin0Point1PercentAbove() {
        for v: UInt64 in [0, 1, 2, 1000, 2047] {
            #expect(LatencyHistogram.highest(LatencyHistogram.index(v)) == v)
        }
        var v: UInt64 = 2048
        while v < 8_000_000_000 {
            let top = LatencyHistogram.highest(LatencyHistogram.index(v))
            #expect(top >= v && Double(top - v) <= Double(v) * 0.001, "\(v) -> \(top)")
            v = v * 3 / 2 + 7
        }
    }

    @Test func percentilesAndMerging() {
        var a = LatencyHistogram()
        var b = LatencyHistogram()
        for v in 1...500 { a.record(UInt64(v)) }
        for v in 501...1000 { b.record(UInt64(v)) }
        a.merge(b)
        #expect(a.count == 1000 && a.min == 1 && a.max == 1000)
        #expect(a.percentile(50) == 500 && a.percentile(99) == 990 && a.percentile(100) == 1000)
        #expect(a.mean == 500.5)
        var big = LatencyHistogram()
        big.record(123_456_789)
        #expect(big.percentile(50) == 123_456_789)  // capped at the largest value seen
        #expect(LatencyHistogram().percentile(99) == 0)
    }

    @Test func arrivalsArePoissonAtTheRateAndRepeatWithTheSeed() {
        var s = ArrivalSchedule(rate: 200, start: 10, seed: 42)
        var t = ArrivalSchedule(rate: 200, start: 10, seed: 42)
        var gaps: [Double] = []
        var last = 10.0
        for _ in 0..<100_000 {
            let due = s.advance()
            #expect(due == t.advance())
            gaps.append(due - last)
            last = due
        }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        #expect(abs(mean - 0.005) < 0.00005)
        // Exponential gaps: the standard deviation equals the mean; a fixed pace would have none.
        let sd = (gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count)).squareRoot()
        #expect(abs(sd - mean) < 0.0001)
        #expect(gaps.allSatisfy { $0 > 0 })
    }

    @Test func optionsFromTheCommandLine() throws {
        let o = try #require(try BenchOptions.parse(["http://localhost:8081/demo", "-c", "8", "-d", "2", "--json"]))
        #expect(o.host == "localhost" && o.port == 8081 && o.path == "/demo" && o.kind == .demo && o.connections == 8 && o.json)
        #expect(
            String(decoding: o.request, as: UTF8.self) == "POST /demo HTTP/1.1\r\nHost: localhost:8081\r\nUser-Agent: mserve-bench\r\n"
                + "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"cal_number\": 1}")
        let chat = try #require(try BenchOptions.parse(["http://[::1]:9/v1/chat/completions", "--stream", "--model", "smol", "-r", "5"]))
        #expect(chat.host == "::1" && chat.kind == .chat && chat.rate == 5 && chat.connections == 256)
        let text = String(decoding: chat.request, as: UTF8.self)
        #expect(text.contains("Host: [::1]:9\r\n") && text.contains("Accept: text/event-stream\r\n"))
        #expect(
            text.hasSuffix(
                #"{"model":"smol","messages":[{"role":"user","content":"Write a short poem about the sea."}],"max_tokens":64,"stream":true}"#))
        let get = try #require(try BenchOptions.parse(["http://h/healthz", "-H", "X-Api-Key: k"]))
        #expect(get.port == 80 && String(decoding: get.request, as: UTF8.self).hasPrefix("GET /healthz HTTP/1.1\r\nHost: h:80\r\n"))
        #expect(String(decoding: get.request, as: UTF8.self).contains("X-Api-Key: k\r\n"))
        #expect(try BenchOptions.parse(["--help"]) == nil)
        for bad in [["https://x/"], ["http://x:0/"], ["http://x/", "-c", "0"], ["http://x/", "--rate", "fast"], [], ["http://x/", "--bogus"]] {
            #expect(throws: ConfigError.self, "\(bad)") { try BenchOptions.parse(bad) }
        }
    }

    @Test func tokensAreEventsWithContent() {
        func carries(_ s: String, _ k: BenchOptions.Kind) -> Bool { BenchClient.carriesContent(Array(s.utf8), kind: k) }
        #expect(carries(#"{"piece": 1}"#, .json))
        #expect(!carries("[DONE]", .json))
        #expect(carries(#"{"choices":[{"delta":{"content":"Hi"}}]}"#, .chat))
        #expect(!carries(#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, .chat))
        #expect(carries(#"{"choices":[{"text":" the"}]}"#, .completions))
        #expect(!carries("not json", .chat))
    }

    @Test func theReportLeadsWithErrorsAndSaysWhenTheRunFailed() throws {
        var r = BenchResult()
        for v: UInt64 in [1000, 2000, 3000] { r.latency.record(v) }
        r.statuses = [200: 2, 503: 1]
        r.failures = ["timeout": 4]
        r.errorSamples = [503: "queue full"]
        let options = try #require(try BenchOptions.parse(["http://127.0.0.1:8000/demo", "-c", "3", "-t", "1"]))
        let report = BenchReport(options: options, result: r, seconds: 2)
        #expect(report.requestsPerSecond == 1.5)
        #expect(r.failed == 5 && r.errorRate == 5.0 / 7)
        let lines = report.text.split(separator: "\n").map(String.init)
        #expect(lines[1] == "FAILED       71.43% of the requests failed, more than --max-error-rate 0.01: timeout × 4, 503 × 1 \"queue full\"")
        #expect(lines[2] == "errors       5 of 7 (71.43%): timeout × 4, 503 × 1 \"queue full\"")
        #expect(lines[3] == "requests     2 succeeded, 1 requests/s (3 answered, 1.5/s with the errors)")
        #expect(report.text.contains("closed loop, 3 connections, 1 thread, 2 s measured"))
        #expect(report.json["errors"] == ["503": 1, "timeout": 4])
        #expect(report.json["error_messages"] == ["503": "queue full"])
        #expect(report.json["latency_ms"]?["p50"] == .double(2))
        // Allowed: the same run passes with --max-error-rate 0.8.
        let lenient = try #require(try BenchOptions.parse(["http://127.0.0.1:8000/demo", "--max-error-rate", "0.8"]))
        #expect(BenchReport(options: lenient, result: r, seconds: 2).verdict == nil)
        #expect(throws: ConfigError.self) { try BenchOptions.parse(["http://x/", "--max-error-rate", "2"]) }
    }

    @Test func aRunWithNoSuccessFailsWhateverTheRate() throws {
        let options = try #require(try BenchOptions.parse(["http://127.0.0.1:8000/v1/chat/completions", "--model", "smol", "--max-error-rate", "1"]))
        var all404 = BenchResult()
        all404.statuses = [404: 1000]
        all404.errorSamples = [404: "The model 'smol' does not exist"]
        let failed = BenchReport(options: options, result: all404, seconds: 1)
        #expect(failed.verdict == "all 1000 requests failed: 404 × 1000 \"The model 'smol' does not exist\"")
        #expect(failed.text.split(separator: "\n")[1].hasPrefix("FAILED       all 1000 requests failed"))
        var running = BenchResult()
        running.unfinished = 8
        let stuck = BenchReport(options: options, result: running, seconds: 10)
        #expect(stuck.verdict?.hasPrefix("no request finished within the 10 s measured: 8 still running at the end") == true)
        #expect(stuck.text.contains("unfinished   8 still running when the window closed"))
        #expect(stuck.text.contains("latency ms   none measured\n"))
        #expect(stuck.json["unfinished"] == 8)
    }

    @Test func errorMessagesAreOpenAIsOrMServesOrTheText() {
        #expect(BenchResult.sample(Array(#"{"error": {"message": "bad model", "type": "x"}}"#.utf8)) == "bad model")
        #expect(BenchResult.sample(Array(#"{"recordid": "r", "error": "no route for /echo"}"#.utf8)) == "no route for /echo")
        #expect(BenchResult.sample(Array("<html>\nBad Gateway</html>".utf8)) == "<html> Bad Gateway</html>")
    }

    @Test func theDefaultModelIsTheOneTheServerServesForThePath() throws {
        var chat = try #require(try BenchOptions.parse(["http://h:1/v1/chat/completions"]))
        #expect(chat.needsModel)
        #expect(chat.model(among: [("smollm2", "chat"), ("demo", "json")]) == .success("smollm2"))
        #expect(chat.model(among: [("llama", nil)]) == .success("llama"))  // another server: its only model
        guard case .failure(let several) = chat.model(among: [("a", "chat"), ("b", "chat")]) else { Issue.record("chose"); return }
        #expect(several.description.contains("several models for /v1/chat/completions (a, b)"))
        guard case .failure(let none) = chat.model(among: [("demo", "json"), ("minilm", "embeddings")]) else { Issue.record("chose"); return }
        #expect(none.description.contains("is a chat model"))
        chat.choose(model: "smollm2")
        #expect(!chat.needsModel && String(decoding: chat.request, as: UTF8.self).contains(#""model":"smollm2""#))
        let embed = try #require(try BenchOptions.parse(["http://h:1/v1/embeddings"]))
        #expect(embed.model(among: [("smollm2", "chat"), ("minilm", "embeddings")]) == .success("minilm"))
        #expect(try #require(try BenchOptions.parse(["http://h:1/v1/embeddings", "--model", "m"])).needsModel == false)
        #expect(try #require(try BenchOptions.parse(["http://h:1/demo"])).needsModel == false)
    }
}
