/// How a stream is framed for the client.
enum StreamFormat {
    /// Server-sent events, `data:` only, ended by `data: [DONE]` (OpenAI's chat and completions);
    /// each named by its piece's `type`, with no end marker (OpenAI's Responses); JSON lines.
    case sse, namedEvents, ndjson

    var isSSE: Bool { self != .ndjson }

    init?(accept: String?, stream: JSON?) {
        let accept = accept?.lowercased() ?? ""
        if accept.containsBytes("text/event-stream") || stream == .bool(true) || stream == .string("sse") {
            self = .sse
        } else if accept.containsBytes("application/x-ndjson") || stream == .string("ndjson") {
            self = .ndjson
        } else {
            return nil
        }
    }

    var contentType: String { isSSE ? "text/event-stream" : "application/x-ndjson" }

    func frame(_ value: JSON, event: String? = nil) -> [UInt8] {
        var out: [UInt8] = []
        if isSSE {
            if let event { out.append(contentsOf: "event: \(event)\n".utf8) }
            out.append(contentsOf: "data: ".utf8)
            out.append(contentsOf: value.serialized())
            out.append(contentsOf: "\n\n".utf8)
        } else {
            out.append(contentsOf: value.serialized())
            out.append(0x0A)
        }
        return out
    }

    /// SSE ends with OpenAI's `[DONE]` marker; JSON lines just end.
    var end: [UInt8] { self == .sse ? Array("data: [DONE]\n\n".utf8) : [] }
}
