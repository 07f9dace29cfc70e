import MServeTesting
import Testing

@testable import MServe

/// W3C Trace Context: what parses and what is ignored, and a request's trace through the server:
/// continued in the answer's traceparent with this server's span, a malformed one ignored.
@Suite struct TraceContextTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aValidTraceparentIsContinuedWithANewSpan() throws {
        let t = try #require(TraceContext(traceparent: Self.valid, tracestate: "congo=t61rcWkgMzE", span: 0xABC))
        #expect(t.traceID == "4bf92f3577b34da6a3ce929d0e0e4736" && t.parentID == "00f067aa0ba902b7" && t.flags == "01" && t.continued)
        #expect(t.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01" && t.state == "congo=t61rcWkgMzE")
        // A later version may carry more after a dash; its first four fields are read.
        #expect(TraceContext(traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-next")?.traceID == t.traceID)
        let fresh = TraceContext(trace: (1, 2), span: 3)
        #expect(fresh.traceID == "00000000000000010000000000000002" && !fresh.continued && fresh.traceparent.hasSuffix("-0000000000000003-00"))
    }

    @Test(arguments: [
        "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x"
    ])
    func aMalformedTraceparentIsIgnored(_ header: String) {
        #expect(TraceContext(traceparent: header) == nil)
        #expect(!TraceContext.of(traceparent: header, tracestate: "a=b", ids: TraceIDs(seed: 1)).continued)
    }

    @Test func theAnswerCarriesTheTraceWithThisServersSpan() throws {
        let server = try TestServer(serving: ["demo"])
        let r = try server.post("/demo", json: #"{"cal_number": 2}"#, headers: [("traceparent", Self.valid), ("tracestate", "rojo=00f067aa0ba902b7")])
        let back = try #require(r.headers["traceparent"])
        #expect(r.status == 200 && back.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") && back.hasSuffix("-01"))
        #expect(!back.contains("00f067aa0ba902b7") && r.headers["tracestate"] == "rojo=00f067aa0ba902b7")
        // Malformed: ignored; the answer is the same, in a trace of its own.
        let bad = try server.post("/demo", json: #"{"cal_number": 2}"#, headers: [("traceparent", "00-xyz"), ("tracestate", "rojo=1")])
        #expect(bad.status == 200 && bad.json?["result"] != nil && bad.headers["tracestate"] == nil)
        #expect(bad.headers["traceparent"]?.hasSuffix("-00") == true && bad.headers["traceparent"]?.contains("4bf92f35") == false)
        // Errors carry it too.
        #expect(
            try server.request("GET", "/nowhere", headers: [("traceparent", Self.valid)]).headers["traceparent"]?.contains("4bf92f3577b34da6") == true
        )
    }

    /// A Swift model reads the request's trace (to send `traceparent` on to what it calls).
    final class Traced: Model, Sendable {
        init(context: ModelContext) throws {}
        func infer(_ request: InferenceRequest) throws -> JSON {
            ["trace_id": request.trace.map { .string($0.traceID) } ?? .null, "traceparent": request.trace.map { .string($0.traceparent) } ?? .null]
        }
    }

    @Test func aSwiftModelReadsTheRequestsTrace() throws {
        let server = try TestServer(model: Traced.self, as: "traced")
        let r = try server.post("/traced", json: "{}", headers: [("traceparent", Self.valid)])
        #expect(r.json?["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" && r.json?["traceparent"]?.stringValue == r.headers["traceparent"])
    }
}
