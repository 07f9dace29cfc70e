import MServeSystem
import Testing

@testable import MServeHTTP

@Suite struct RequestParserTests {
    func parse(_ text: String, maxHeader: Int = 1024, maxBody: Int = 1024) -> ParseResult {
        var p = RequestParser(maxHeaderSize: maxHeader, maxBodySize: maxBody)
        return Array(text.utf8).withUnsafeBufferPointer { p.parse($0) }
    }

    func status(_ r: ParseResult) -> Int? {
        if case .error(let e) = r { return e.status }
        return nil
    }

    @Test func simpleGetAndKeepAlive() throws {
        guard case .request(let head, let body, let consumed) = parse("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: r1\r\n\r\nNEXT") else {
            Issue.record("no request"); return
        }
        #expect(head.method == .GET && head.target == "/a?b=1" && head.minorVersion == 1 && head.keepAlive)
        #expect(head.header("x-request-id") == "r1")
        #expect(body.isEmpty)
        #expect(consumed == "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: r1\r\n\r\n".utf8.count)
    }

    @Test func theFieldsReadOnEveryRequestAreFoundInTheOnePassWhateverTheirCase() {
        let text =
            "POST /a HTTP/1.1\r\nhost: x\r\nCONTENT-TYPE: application/json\r\nx-Request-ID: r1\r\nX-Request-Id: r2\r\n"
            + "User-Agent: wrk\r\nreferer: /p\r\nAccept: text/event-stream\r\nX-Forwarded-For: 10.0.0.1\r\n"
            + "X-Forwarded-Fox: no\r\nAcceptx: no\r\nContent-Length: 0\r\n\r\n"
        guard case .request(let head, _, _) = parse(text) else { Issue.record("no request"); return }
        #expect(head.contentType == "application/json" && head.requestID == "r1" && head.userAgent == "wrk")
        #expect(head.referer == "/p" && head.accept == "text/event-stream" && head.forwardedFor == "10.0.0.1")
        #expect(head.expect == nil && head.headers.count == 11 && head.header("x-forwarded-fox") == "no")
        // Names and the JSON type kept as sent, whether usual (made from literals) or not.
        #expect(head.headers.map(\.name).prefix(4) == ["host", "CONTENT-TYPE", "x-Request-ID", "X-Request-Id"])
        #expect(head.headers[4].name == "User-Agent" && head.methodName == "POST" && head.method == .POST)
        guard case .request(let bare, _, _) = parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("no request"); return }
        #expect(bare.contentType == nil && bare.requestID == nil && bare.userAgent == nil && bare.accept == nil)
    }

    @Test func contentLengthBodyArrivingInPieces() {
        let text = "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        var p = RequestParser(maxHeaderSize: 1024, maxBodySize: 1024)
        let bytes = Array(text.utf8)
        for cut in 1..<bytes.count {
            let r = bytes[0..<cut].withUnsafeBufferPointer { p.parse($0) }
            #expect(r == .needMore, "at \(cut)")
        }
        guard case .request(_, let body, let consumed) = bytes.withUnsafeBufferPointer({ p.parse($0) }) else {
            Issue.record("no request"); return
        }
        #expect(body == Array("hello".utf8))
        #expect(consumed == bytes.count)
    }

    @Test func chunkedBodyWithExtensionsAndTrailers() {
        let text = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n"
        guard case .request(_, let body, let consumed) = parse(text) else { Issue.record("no request"); return }
        #expect(String(decoding: body, as: UTF8.self) == "Wikipedia")
        #expect(consumed == text.utf8.count)
    }

    @Test func http10ClosesUnlessAskedToKeepAlive() {
        if case .request(let h, _, _) = parse("GET / HTTP/1.0\r\n\r\n") { #expect(!h.keepAlive) } else { Issue.record("no request") }
        if case .request(let h, _, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") {
            #expect(h.keepAlive)
        } else {
            Issue.record("no request")
        }
        if case .request(let h, _, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n") {
            #expect(!h.keepAlive)
        } else {
            Issue.record("no request")
        }
    }

    @Test func unknownMethodsParseForA405() {
        guard case .request(let h, _, _) = parse("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("no request"); return }
        #expect(h.method == .UNKNOWN && h.methodName == "BREW")
        // Methods are case-sensitive: "get" is not GET, and is logged as sent.
        guard case .request(let lower, _, _) = parse("get / HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("no request"); return }
        #expect(lower.method == .UNKNOWN && lower.methodName == "get")
        for m in HTTPMethod.allCases where m != .UNKNOWN {
            guard case .request(let k, _, _) = parse("\(m.rawValue) / HTTP/1.1\r\nHost: x\r\n\r\n") else { Issue.record("no request"); return }
            #expect(k.method == m && k.methodName == m.rawValue)
        }
        if case .request(let h, _, _) = parse("get / HTTP/1.1\r\nHost: x\r\n\r\n") { #expect(h.method == .UNKNOWN) }
    }

    @Test func expectContinueIsReportedOnceBeforeTheBody() {
        var p = RequestParser(maxHeaderSize: 1024, maxBodySize: 1024)
        let head = Array("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8)
        #expect(head.withUnsafeBufferPointer { p.parse($0) } == .expectsContinue)
        #expect(head.withUnsafeBufferPointer { p.parse($0) } == .needMore)
        let full = head + Array("{}".utf8)
        if case .request(_, let body, _) = full.withUnsafeBufferPointer({ p.parse($0) }) {
            #expect(body == Array("{}".utf8))
        } else {
            Issue.record("no request")
        }
    }

    @Test(arguments: [
        ("GARBAGE\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / FTP/1.1\r\n\r\n", 400),
        ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),  // no Host
        ("GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nA : b\r\n\r\n", 400),  // space before colon
        ("GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n  c\r\n\r\n", 400),  // folding
        ("GET / HTTP/1.1\r\nHost: x\r\nA: b\u{0}c\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n801\r\n", 413),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n", 417)
    ])
    func rejects(_ text: String, _ expected: Int) {
        #expect(status(parse(text)) == expected, "\(text.debugDescription)")
    }

    @Test func headersOverTheLimitAre431WithTheRequestID() {
        let text = "GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: big1\r\nX-Pad: " + String(repeating: "p", count: 2000)
        guard case .error(let e) = parse(text) else { Issue.record("no error"); return }
        #expect(e.status == 431 && e.requestID == "big1")
        // A complete head just over the limit too.
        #expect(status(parse("GET / HTTP/1.1\r\nHost: x\r\nA: " + String(repeating: "a", count: 1100) + "\r\n\r\n")) == 431)
    }

    @Test func pipelinedRequestsAreConsumedOneAtATime() {
        let one = "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        let bytes = Array((one + "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n").utf8)
        var p = RequestParser(maxHeaderSize: 1024, maxBodySize: 1024)
        guard case .request(let h1, _, let c1) = bytes.withUnsafeBufferPointer({ p.parse($0) }) else { Issue.record("1"); return }
        p.reset()
        guard case .request(let h2, _, _) = bytes[c1...].withUnsafeBufferPointer({ p.parse($0) }) else { Issue.record("2"); return }
        #expect(h1.target == "/1" && h2.target == "/2")
    }

    /// Random bytes and mutations of valid requests never crash the parser, and whatever it
    /// returns is consistent.
    @Test func survivesRandomInput() {
        var rng = SystemRandomNumberGenerator()
        let seeds = [
            "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{}\n",
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        ].map { Array($0.utf8) }
        for i in 0..<20_000 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = seeds[i % 4 / 2]
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            var p = RequestParser(maxHeaderSize: 128, maxBodySize: 64)
            let r = bytes.withUnsafeBufferPointer { p.parse($0) }
            if case .request(_, let body, let consumed) = r {
                #expect(consumed <= bytes.count && body.count <= 64)
            }
        }
    }
}
