import MServeHTTP
import Testing

@testable import MServe

/// /status.json from the scoreboard: workers, models, and the recent seconds, which survive a
/// worker's exit; and the web pages' pure parts.
@Suite struct StatusReportTests {
    @Test func recentSecondsSumOverWorkersAndSurviveTheirExit() throws {
        let board = try Scoreboard()
        board.register(model: "demo")
        let a = try #require(board.claim())
        let b = try #require(board.claim())
        board.setWorker(a, pid: 11, slot: 0, started: 90)
        board.setWorker(b, pid: 12, slot: 1, started: 95)
        board.setState(a, .ready)
        board.setState(b, .ready)
        for _ in 0..<3 { board.countRequest(a, model: 0, status: 200, seconds: 0.0002, now: 100.2) }
        board.countRequest(b, model: 0, status: 200, seconds: 0.02, now: 100.9)
        board.countRequest(b, model: 0, status: 200, seconds: 0.0002, now: 101.5)
        board.release(b)
        // 102.5: seconds 100 and 101 are complete; 102 is still filling and left out.
        let report = board.statusReport(now: 102.5, seconds: 5)
        let points = try #require(report["recent"]?["points"]?.items)
        #expect(points.count == 5)
        #expect(points.map { $0["requests"]?.doubleValue } == [0, 0, 0, 4, 1])
        #expect(points[3]["ago_s"] == .int(2))
        #expect(points[0]["p50_ms"] == .null)
        #expect(points[3]["p50_ms"] == .double(0.2))  // rank 2 of the 3 in (0.1, 0.25] ms
        #expect((points[3]["p99_ms"]?.doubleValue ?? 0) > 10)
        let workers = try #require(report["workers"]?.items)
        #expect(workers.count == 1 && workers[0]["pid"] == .int(11) && workers[0]["age_s"] == .double(12.5))
        #expect(report["models"]?.items?.first?["requests"] == .int(5))
    }

    @Test func aSlotOlderThanTheWindowIsReusedFromZero() throws {
        let board = try Scoreboard()
        let a = try #require(board.claim())
        board.setState(a, .ready)
        board.countRequest(a, model: nil, status: 200, seconds: 0.001, now: 10)
        board.countRequest(a, model: nil, status: 200, seconds: 0.001, now: Double(10 + Scoreboard.recentSeconds))
        let points = try #require(board.statusReport(now: Double(11 + Scoreboard.recentSeconds), seconds: 1)["recent"]?["points"]?.items)
        #expect(points.map { $0["requests"]?.doubleValue } == [1])
    }

    @Test func quantilesInterpolateWithinABucket() {
        // 10 requests in (0.1, 0.25] ms, 10 in (1, 2.5] ms.
        var counts = [UInt64](repeating: 0, count: Scoreboard.recentBuckets.count + 1)
        counts[1] = 10
        counts[4] = 10
        #expect(abs(Scoreboard.quantile(0.5, counts) - 0.00025) < 1e-9)
        #expect(abs(Scoreboard.quantile(0.75, counts) - 0.00175) < 1e-9)
        counts[Scoreboard.recentBuckets.count] = 100
        #expect(Scoreboard.quantile(0.99, counts) == 30)
    }

    @Test func thePageListsTheModelsEscapedAndItsDataCannotEndTheScript() {
        let models: [JSON] = [
            ["name": "demo", "kind": "json", "summary": "<b>sum</b> & more", "example": ["cal_number": 1]],
            ["name": "x", "kind": "json", "summary": "</script><script>alert(1)</script>"]
        ]
        let page = IndexPage.render(models: models, keyed: false, version: "9.9")
        #expect(
            page.contains("<li><a href=\"#m-demo\"><code>demo</code></a> <span class=\"kind\">json</span> &lt;b&gt;sum&lt;/b&gt; &amp; more</li>"))
        #expect(page.components("</script>") == 2)  // the page's own two scripts only
        #expect(page.contains("const KEYED = false;") && page.contains("9.9"))
        #expect(!page.contains("{{"))
        let keyed = IndexPage.render(models: [], keyed: true, version: "9.9")
        #expect(keyed.contains("needs an API key") && keyed.contains("const KEYED = true;"))
    }

    @Test func browsersGetThePageAndWildcardsTheJSON() {
        #expect(MediaType.accepts("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"))
        #expect(!MediaType.accepts("*/*", "text/html"))
        #expect(!MediaType.accepts("application/json", "text/html"))
        #expect(!MediaType.accepts("text/html;q=0, application/json", "text/html"))
        #expect(!MediaType.accepts(nil, "text/html"))
        #expect(HTML.fill("a{{X}}b{{Y}}c{{Z}}", ["X": "1", "Y": "{{X}}"]) == "a1b{{X}}c{{Z}}")
    }
}

private extension JSON {
    var items: [JSON]? { if case .array(let a) = self { a } else { nil } }
}

private extension String {
    func components(_ s: String) -> Int {
        var n = 0
        var rest = Substring(self)
        while let r = rest.firstRange(of: s) { n += 1; rest = rest[r.upperBound...] }
        return n
    }
}
