import Testing

@testable import MServeBench

/// The client-side response parser (`mserve bench`): every framing, whatever the reads' sizes.
struct ResponseParserTests {
    /// Parses `text` fed in pieces of `step` bytes: status, body, keep-alive, bytes left over.
    static func parse(_ text: String, step: Int, atClose: Bool = false) throws -> (Int, String, Bool, Int)? {
        var p = ResponseParser()
        var body: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            let piece = Array(bytes[i..<min(bytes.count, i + step)])
            let (used, done) = try piece.withUnsafeBytes { raw in
                try p.consume(raw) { bytes, _ in body.append(contentsOf: bytes) }
            }
            if done { return (p.status, String(decoding: body, as: UTF8.self), p.keepAlive, bytes.count - i - used) }
            i += step
        }
        if atClose && p.finishAtClose() { return (p.status, String(decoding: body, as: UTF8.self), p.keepAlive, 0) }
        return nil
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func framings(step: Int) throws {
        let length = try #require(try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", step: step))
        #expect(length.0 == 200 && length.1 == "hello" && length.2 && length.3 == 4)
        let chunked = try #require(
            try Self.parse(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\nB\r\n world, ok!\r\n0\r\nTrailer: t\r\n\r\n", step: step))
        #expect(chunked.0 == 200 && chunked.1 == "hello world, ok!" && chunked.3 == 0)
        let closing = try #require(try Self.parse("HTTP/1.0 200 OK\r\n\r\nuntil the end", step: step, atClose: true))
        #expect(closing.1 == "until the end" && !closing.2)
        let interim = try #require(
            try Self.parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno", step: step))
        #expect(interim.0 == 503 && interim.1 == "no" && !interim.2)
        let empty = try #require(try Self.parse("HTTP/1.1 204 No Content\r\n\r\n", step: step))
        #expect(empty.0 == 204 && empty.1 == "")
    }

    @Test func aResponseStopsWhereTheNextBegins() throws {
        let r = try #require(try Self.parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1", step: 100))
        #expect(r.1 == "ok" && r.3 == 8)
    }

    @Test(arguments: [
        "HTTP/2 200\r\n\r\n", "HTTP/1.1 abc\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    ])
    func badResponsesAreErrors(text: String) {
        #expect(throws: ResponseParseError.self) { try Self.parse(text, step: 3) }
    }

    @Test func serverSentEventsAreSplitByBlankLines() {
        var s = SSEScanner()
        var events: [(String, String)] = []
        let text = "data: {\"a\":1}\n\nevent: error\ndata: x\ndata: y\r\n\r\n: comment\n\ndata:[DONE]\n\n"
        for b in Array(text.utf8) {
            [b].withUnsafeBytes { raw in s.feed(raw) { events.append(($0, String(decoding: $1, as: UTF8.self))) } }
        }
        #expect(events.map(\.0) == ["message", "error", "message"])
        #expect(events.map(\.1) == ["{\"a\":1}", "x\ny", "[DONE]"])
    }
}
