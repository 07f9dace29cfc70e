import MServeSystem
import Testing

@testable import MServe

@Suite struct ScoreboardTests {
    func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test func countsSumOverWorkersAndSurviveTheirExit() throws {
        let board = try Scoreboard()
        #expect(board.register(model: "demo") == 0)
        #expect(board.register(model: "sleep") == 1)
        #expect(board.register(model: "demo") == 0)
        let a = try #require(board.claim())
        let b = try #require(board.claim())
        #expect(a != b)
        board.setState(a, .ready)
        board.setState(b, .ready)
        board.countRequest(a, model: 0, status: 200, seconds: 0.002, now: 100)
        board.countRequest(b, model: 0, status: 200, seconds: 0.2, now: 100)
        board.countRequest(b, model: nil, status: 404, seconds: 0.0001, now: 100)
        board.countRequest(a, model: 1, status: 418, seconds: 20, now: 100)
        var text = board.prometheusText(byKey: true)
        #expect(value(text, #"mserve_requests_total{model="demo",code="200"}"#) == 2)
        #expect(value(text, #"mserve_requests_total{model="-",code="404"}"#) == 1)
        #expect(value(text, #"mserve_requests_total{model="sleep",code="other"}"#) == 1)
        #expect(value(text, #"mserve_request_duration_seconds_bucket{model="demo",le="0.0025"}"#) == 1)
        #expect(value(text, #"mserve_request_duration_seconds_bucket{model="demo",le="0.25"}"#) == 2)
        #expect(value(text, #"mserve_request_duration_seconds_bucket{model="sleep",le="10.0"}"#) == 0)
        #expect(value(text, #"mserve_request_duration_seconds_bucket{model="sleep",le="+Inf"}"#) == 1)
        #expect(value(text, #"mserve_workers{state="ready"}"#) == 2)
        board.release(b)
        board.countRestart(.crashed)
        text = board.prometheusText(byKey: true)
        #expect(value(text, #"mserve_requests_total{model="demo",code="200"}"#) == 2)
        #expect(value(text, #"mserve_workers{state="ready"}"#) == 1)
        #expect(value(text, #"mserve_worker_restarts_total{reason="died"}"#) == 1)
        // The freed record is reused from zero.
        let c = try #require(board.claim())
        #expect(c == b)
        #expect(value(board.prometheusText(byKey: true), #"mserve_requests_total{model="demo",code="200"}"#) == 2)
    }
}
