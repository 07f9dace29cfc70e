import Testing

@testable import MServeHTTP

/// The framing a request-smuggling review asks for, one row per gap: each request is refused with
/// its status (or, for the last rows, accepted as said).  "|" stands for CRLF, "~" for a bare CR and
/// "^" for a bare LF, so that the rows print on one line.
@Suite struct FramingGapTests {
    func parse(_ spelled: String) -> ParseResult {
        var text = ""
        for ch in spelled {
            switch ch {
            case "|": text += "\r\n"
            case "~": text += "\r"
            case "^": text += "\n"
            default: text.append(ch)
            }
        }
        var p = RequestParser(maxHeaderSize: 4096, maxBodySize: 4096)
        return Array(text.utf8).withUnsafeBufferPointer { p.parse($0) }
    }

    static let chunked = "POST / HTTP/1.1|Host: x|Transfer-Encoding: chunked||"

    @Test(arguments: [
        // 1. chunk-size lines, extensions, trailers
        (chunked + "2 abc|hi|0||", "malformed chunk size line"),
        (chunked + "2|hi|0 xyz||", "malformed chunk size line"),
        (chunked + "2;|hi|0||", "malformed chunk size line"),
        (chunked + "2;a=|hi|0||", "malformed chunk size line"),
        (chunked + "2~;a=b|hi|0||", "malformed chunk size line"),
        (chunked + "2;a=\"b~\"|hi|0||", "malformed chunk size line"),
        (chunked + "2^hi|0||", "bare LF line ending in chunked body"),
        (chunked + "2|hi|0|Content-Length~: 5||", "malformed trailer line"),
        (chunked + "2|hi|0| folded: x||", "malformed trailer line"),
        (chunked + "2|hi|0|no colon||", "malformed trailer line"),
        // Framing and routing fields in trailers (RFC 9110 6.5.1)
        (chunked + "2|hi|0|Content-Length: 99||", "Content-Length is not allowed in trailers"),
        (chunked + "2|hi|0|X-T: y|transfer-encoding: chunked||", "transfer-encoding is not allowed in trailers"),
        (chunked + "2|hi|0|HOST: evil||", "HOST is not allowed in trailers"),
        // 2. Host
        ("GET / HTTP/1.1|Host: a|Host: b||", "more than one Host header"),
        ("GET / HTTP/1.0|Host: a|Host: a||", "more than one Host header"),
        ("GET / HTTP/1.1|Host: a b||", "malformed Host header"),
        ("GET / HTTP/1.1|Host: a/b||", "malformed Host header"),
        ("GET / HTTP/1.1|Host: a:80x||", "malformed Host header"),
        ("GET / HTTP/1.1|Host: [::1||", "malformed Host header"),
        ("GET / HTTP/1.0|Host: a@b||", "malformed Host header"),
        // 3. Transfer-Encoding in HTTP/1.0
        ("POST / HTTP/1.0|Transfer-Encoding: chunked||0||", "Transfer-Encoding in an HTTP/1.0 request"),
        // 4. the asterisk form
        ("GET * HTTP/1.1|Host: x||", "the asterisk target is for OPTIONS only"),
        // 5. a second Content-Type
        ("POST / HTTP/1.1|Host: x|Content-Type: a/b|Content-Type: c/d|Content-Length: 0||", "more than one Content-Type header"),
        // 7. bare LF line endings, raw non-ASCII bytes in the target
        ("GET / HTTP/1.1^Host: x^^", "bare LF line ending"),
        ("GET / HTTP/1.1|Host: x^|", "bare LF line ending"),
        ("GET /caf\u{E9} HTTP/1.1|Host: x||", "malformed request line")
    ])
    func refused(request: String, message: String) throws {
        guard case .error(let e) = parse(request) else { Issue.record("accepted: \(request)"); return }
        #expect(e.status == 400)
        #expect(e.message == message)
    }

    @Test func acceptedAsTheRFCsAllow() throws {
        // Well-formed extensions and trailers (which are dropped, never merged into the head).
        guard case .request(let head, let body, _) = parse(Self.chunked + "2 ; a=b ;c; d=\"q;\\\"x\"|hi|0|Content-Type: a/b|X-T: y||") else {
            Issue.record("refused"); return
        }
        #expect(body == Array("hi".utf8))
        #expect(head.header("Content-Type") == nil && head.header("X-T") == nil)
        // 6. HTTP/1.2 is answered as HTTP/1.1; HTTP/2.0 over this framing is 505.
        guard case .request(let h12, _, _) = parse("GET / HTTP/1.2|Host: x||") else { Issue.record("1.2 refused"); return }
        #expect(h12.minorVersion == 1)
        guard case .error(let e) = parse("GET / HTTP/2.0|Host: x||") else { Issue.record("2.0 accepted"); return }
        #expect(e.status == 505)
        // OPTIONS *, empty lines before a request, an IPv6 Host with a port, an empty Host.
        for ok in [
            "OPTIONS * HTTP/1.1|Host: x||", "||||GET / HTTP/1.1|Host: x||", "GET / HTTP/1.1|Host: [::1]:8080||",
            "GET / HTTP/1.1|Host: ||", "GET /%C3%A9 HTTP/1.0||"
        ] {
            guard case .request = parse(ok) else { Issue.record("refused: \(ok)"); continue }
        }
    }
}
