/// W3C Trace Context (`traceparent`, `tracestate`): the trace a request belongs to, carried into
/// the logs, the models, and back to the client with this server's span, so that a trace begun by
/// a client or a balancer continues through mserve.  A `traceparent` that does not parse is
/// ignored, as the specification says (the request is served as if none came, in a trace of its
/// own); `tracestate` is kept only beside a valid `traceparent`.  Pure.
public struct TraceContext: Sendable, Equatable {
    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// The caller's span (16 hex digits), or nil when this request began the trace.
    public let parentID: String?
    /// This server's span for the request (16 hex digits): what the answer's `traceparent` names.
    public let spanID: String
    /// The trace flags (2 hex digits; "01": sampled).
    public let flags: String
    /// The vendors' `tracestate`, passed on unchanged.
    public let state: String?

    /// The caller's trace, continued with a new span; nil if `traceparent` does not parse.
    public init?(traceparent: String, tracestate: String? = nil, span: UInt64 = UInt64.random(in: 1...UInt64.max)) {
        let b = Array(traceparent.utf8)
        func hex(_ r: Range<Int>) -> Bool { b[r].allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) } }
        func zero(_ r: Range<Int>) -> Bool { b[r].allSatisfy { $0 == 0x30 } }
        // version-traceid-parentid-flags: 2-32-16-2; a later version may add fields after a dash.
        guard b.count >= 55, hex(0..<2), b[2] == 0x2D, hex(3..<35), b[35] == 0x2D, hex(36..<52), b[52] == 0x2D, hex(53..<55) else { return nil }
        let version = String(decoding: b[0..<2], as: UTF8.self)
        guard version != "ff", version != "00" || b.count == 55, b.count == 55 || b[55] == 0x2D else { return nil }
        guard !zero(3..<35), !zero(36..<52) else { return nil }
        traceID = String(decoding: b[3..<35], as: UTF8.self)
        parentID = String(decoding: b[36..<52], as: UTF8.self)
        flags = String(decoding: b[53..<55], as: UTF8.self)
        spanID = TraceContext.hex(span, digits: 16)
        state = tracestate.flatMap { $0.isEmpty || $0.utf8.count > 512 ? nil : $0 }
    }

    /// A trace this request begins (no valid `traceparent` came): a new trace id, not sampled.
    public init(
        trace: (UInt64, UInt64) = (UInt64.random(in: 1...UInt64.max), UInt64.random(in: 0...UInt64.max)),
        span: UInt64 = UInt64.random(in: 1...UInt64.max)
    ) {
        traceID = TraceContext.hex(trace.0, digits: 16) + TraceContext.hex(trace.1, digits: 16)
        parentID = nil
        spanID = TraceContext.hex(span, digits: 16)
        flags = "00"
        state = nil
    }

    /// The request's trace: the caller's, continued, or a new one, its ids drawn from `ids`.
    static func of(traceparent: String?, tracestate: String?, ids: TraceIDs) -> TraceContext {
        if let header = traceparent, let continued = TraceContext(traceparent: header, tracestate: tracestate, span: ids.next()) {
            return continued
        }
        return TraceContext(trace: (ids.next(), ids.next()), span: ids.next())
    }

    /// No trace (a handler made outside the dispatcher): nothing in the logs or the answer.
    static let none = TraceContext(traceID: "", spanID: "")

    private init(traceID: String, spanID: String) {
        self.traceID = traceID
        parentID = nil
        self.spanID = spanID
        flags = "00"
        state = nil
    }

    /// Whether the caller sent the trace (rather than this request beginning it).
    public var continued: Bool { parentID != nil }

    /// This server's `traceparent`: the trace, this span, the flags.  What the answer carries, and
    /// what a model sends on to a service it calls.
    public var traceparent: String { "00-\(traceID)-\(spanID)-\(flags)" }

    static func hex(_ v: UInt64, digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}

/// A worker's source of trace and span ids: SplitMix64 from one random seed, so that a request
/// costs no system call for its ids (the system generator is one `getrandom` a number).  Loop
/// thread only; each worker's context owns one, made after fork.
public final class TraceIDs {
    private var state: UInt64

    public init(seed: UInt64 = UInt64.random(in: 0...UInt64.max)) { state = seed }

    /// The next id, never 0 (an all-zero id is invalid).
    func next() -> UInt64 {
        while true {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            if z != 0 { return z }
        }
    }
}
