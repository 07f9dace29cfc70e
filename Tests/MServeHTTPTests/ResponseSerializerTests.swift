import Testing

@testable import MServeHTTP

@Suite struct ResponseSerializerTests {
    let date = Array("Mon, 30 Nov 2026 19:00:00 GMT".utf8)

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test func wholeResponseWithContentLength() {
        let out = ResponseSerializer.serialize(
            status: 201, headers: [("Content-Type", "application/json"), ("X-Request-Id", "r1")],
            body: Array("{}".utf8), bodyLength: 2, close: false, keepAliveHeader: false, date: date)
        #expect(
            text(out) == "HTTP/1.1 201 Created\r\nDate: Mon, 30 Nov 2026 19:00:00 GMT\r\nContent-Length: 2\r\n"
                + "Content-Type: application/json\r\nX-Request-Id: r1\r\n\r\n{}")
    }

    @Test func framingHeadersAreTheSerializersOwnAndLineBreaksAreDropped() {
        let out = text(
            ResponseSerializer.serialize(
                status: 200,
                headers: [
                    ("Content-Length", "99"), ("Connection", "upgrade"), ("Transfer-Encoding", "gzip"),
                    ("X-Evil", "a\r\nSet-Cookie: x=1"), ("X-Bad\n", "v"), ("X-Ok", "1")
                ],
                body: Array("hi".utf8), bodyLength: 2, close: true, keepAliveHeader: false, date: date))
        #expect(
            out == "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 19:00:00 GMT\r\nContent-Length: 2\r\nX-Ok: 1\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nhi")
    }

    @Test func aContentTypeWithALineBreakIsDroppedAndTheDefaultTypeSent() {
        let out = text(
            ResponseSerializer.serialize(
                status: 200, headers: [("content-type", "text/html\r\nX: 1"), ("Content-Typo", "x")],
                body: Array("hi".utf8), bodyLength: 2, close: false, keepAliveHeader: false, date: date))
        #expect(
            out == "HTTP/1.1 200 OK\r\nDate: Mon, 30 Nov 2026 19:00:00 GMT\r\nContent-Length: 2\r\nContent-Typo: x\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\n\r\nhi")
    }

    @Test func emptyBodyGetsNoContentTypeAndHTTP10KeepAliveIsSaid() {
        let out = text(
            ResponseSerializer.serialize(
                status: 204, headers: [], body: [], bodyLength: 0, close: false,
                keepAliveHeader: true, date: date))
        #expect(out == "HTTP/1.1 204 No Content\r\nDate: Mon, 30 Nov 2026 19:00:00 GMT\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")
    }

    @Test func streamsAreChunkedUnlessEndedByClosing() {
        let chunked = text(
            ResponseSerializer.serialize(
                status: 200, headers: [("Content-Type", "text/event-stream")], body: [],
                bodyLength: nil, close: false, keepAliveHeader: false, date: date))
        #expect(chunked.contains("\r\nTransfer-Encoding: chunked\r\n") && !chunked.contains("Content-Length"))
        let closing = text(
            ResponseSerializer.serialize(
                status: 200, headers: [], body: [], bodyLength: nil, close: true,
                keepAliveHeader: false, date: date))
        #expect(!closing.contains("Transfer-Encoding") && closing.hasSuffix("Connection: close\r\n\r\n"))
        #expect(
            text(ResponseSerializer.chunk(Array(String(repeating: "x", count: 26).utf8))) == "1a\r\n" + String(repeating: "x", count: 26) + "\r\n")
        #expect(ResponseSerializer.chunk([]).isEmpty)
        #expect(text(ResponseSerializer.lastChunk) == "0\r\n\r\n")
    }

    @Test func reasonPhrases() {
        #expect(HTTPStatus.reason(505) == "HTTP Version Not Supported")
        #expect(HTTPStatus.reason(431) == "Request Header Fields Too Large")
        #expect(HTTPStatus.reason(299) == "OK")
    }
}
