import MServeTesting
import Testing

@testable import MServe

/// Every kind of bad input on the request path gets its status and a JSON error with the recordid
/// (moved here from the integration tests: none of it needs a process).  The demo and echo models
/// are served as a worker serves them, with a 64 KiB body limit and a 4 KiB header limit.
@Suite(.serialized) struct RequestPathTests {
    let server: TestServer

    init() throws {
        var settings = Settings()
        settings.maxBodySize = 64 * 1024
        settings.maxHeaderSize = 4 * 1024
        server = try TestServer(serving: ["demo", "echo"], settings: settings)
    }

    /// The error shape: {"recordid", "error": {"code", "message"}}, the recordid also in X-Request-Id.
    @discardableResult
    func expectError(
        _ r: TestResponse, _ status: Int, _ message: String, recordID: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> JSON {
        #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
        let body = try #require(r.json, sourceLocation: sourceLocation)
        #expect(body["error"]?["code"] == .int(Int64(status)), sourceLocation: sourceLocation)
        #expect(body["error"]?["message"]?.stringValue?.contains(message) == true, "\(r.text)", sourceLocation: sourceLocation)
        #expect(body["recordid"]?.stringValue == r.headers["x-request-id"], sourceLocation: sourceLocation)
        if let recordID { #expect(body["recordid"]?.stringValue == recordID, sourceLocation: sourceLocation) }
        return body
    }

    @Test(
        arguments: [
            (#"{"recordid": "b1", "cal_number": "#, 400, "malformed JSON", nil),
            ("[1, 2, 3]", 400, "must be an object", nil),
            (#""just a string""#, 400, "must be an object", nil),
            (#"{"recordid": "b1"}"#, 400, "missing argument cal_number", "b1"),
            (#"{"recordid": "b1", "cal_number": "five"}"#, 400, "cal_number must be a number", "b1"),
            (#"{"recordid": "b1", "cal_number": null}"#, 400, "cal_number must be a number", "b1"),
            (#"{"recordid": "b1", "cal_number": [1]}"#, 400, "cal_number must be a number", "b1"),
            ("", 400, "empty body", nil),
            (#"{"recordid": "has space", "cal_number": 1}"#, 400, "recordid must be", nil)
        ] as [(String, Int, String, String?)])
    func badBodies(body: String, status: Int, message: String, recordID: String?) throws {
        try expectError(try server.post("/demo", json: body), status, message, recordID: recordID)
    }

    @Test func invalidUTF8IsMalformedJSON() throws {
        var raw = Array("POST /demo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n".utf8)
        raw += Array(#"{"recordid": "b1", "cal_number": ""#.utf8).prefix(31) + [0xFF, 0x22]
        try expectError(try #require(try server.exchange(raw).first), 400, "malformed JSON")
    }

    @Test func aJSONObjectBodyKeepsItsRecordIDWhateverItsDeclaredType() throws {
        let r = try server.request(
            "POST", "/demo", body: #"{"recordid": "b1", "cal_number": 1}"#,
            headers: [("Content-Type", "text/plain"), ("X-Request-Id", "h1")])
        try expectError(r, 415, "model demo takes application/json; got text/plain", recordID: "b1")
        let plain = try server.request("POST", "/demo", body: "not json", headers: [("Content-Type", "text/plain"), ("X-Request-Id", "h2")])
        try expectError(plain, 415, "got text/plain", recordID: "h2")
    }

    /// curl -d '{...}' sends application/x-www-form-urlencoded: a JSON object body is taken as JSON.
    @Test func curlsDefaultFormTypeWithAJSONObjectIsAccepted() throws {
        let r = try server.request(
            "POST", "/demo", body: #"{"recordid": "c1", "cal_number": 2}"#,
            headers: [("Content-Type", "application/x-www-form-urlencoded")])
        #expect(r.status == 200 && r.json?["recordid"] == "c1")
        let form = try server.request("POST", "/demo", body: "cal_number=2", headers: [("Content-Type", "application/x-www-form-urlencoded")])
        try expectError(form, 415, "got application/x-www-form-urlencoded")
    }

    @Test func bodyRecordIDWinsOverABadHeader() throws {
        let r = try server.post("/demo", json: #"{"recordid": "b2", "cal_number": 1}"#, headers: [("X-Request-Id", "x y")])
        #expect(r.status == 200 && r.json?["recordid"] == "b2")
    }

    @Test func aBadRecordIDHeaderWithoutABodyRecordIDIs400() throws {
        try expectError(try server.post("/demo", json: #"{"cal_number": 1}"#, headers: [("X-Request-Id", "a\tb")]), 400, "X-Request-Id must be")
    }

    @Test func unknownPathIs404() throws {
        try expectError(try server.request("GET", "/nope", headers: [("X-Request-Id", "nf")]), 404, "no route for /nope", recordID: "nf")
    }

    @Test(arguments: ["DELETE", "PUT", "PATCH", "OPTIONS", "FOO"])
    func methodNotHandledIs405(method: String) throws {
        let r = try server.request(method, "/demo", headers: [("X-Request-Id", "m1")])
        try expectError(r, 405, "is not allowed on /demo", recordID: "m1")
        #expect(r.headers["allow"] == "GET, HEAD, POST")
    }

    @Test func bodyOverTheLimitIs413ChunkedToo() throws {
        let big = #"{"recordid": "big", "cal_number": 1, "pad": ""# + String(repeating: "x", count: 70_000) + #""}"#
        try expectError(try server.post("/demo", json: big, headers: [("X-Request-Id", "big")]), 413, "larger than 65536 bytes", recordID: "big")
        let chunk = String(repeating: "x", count: 40_000)
        let chunked =
            "POST /demo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "9c40\r\n\(chunk)\r\n9c40\r\n\(chunk)\r\n0\r\n\r\n"
        try expectError(try #require(try server.exchange(chunked).first), 413, "larger than 65536 bytes")
    }

    /// Errors the HTTP layer finds under /v1/ come in OpenAI's shape, which OpenAI's clients parse.
    @Test func httpLayerErrorsUnderV1AreInOpenAIsShape() throws {
        let big = #"{"model": "demo", "prompt": ""# + String(repeating: "x", count: 70_000) + #""}"#
        let r = try server.post("/v1/completions", json: big, headers: [("X-Request-Id", "o413")])
        #expect(r.status == 413)
        #expect(r.json?["error"]?["type"] == "invalid_request_error" && r.json?["error"]?["param"] == .null)
        #expect(r.json?["error"]?["message"]?.stringValue?.contains("larger than 65536 bytes") == true)
        #expect(r.json?["error"]?["code"] == .null && r.json?["recordid"] == "o413")
        let h = try server.request("GET", "/v1/models", headers: [("X-Pad", String(repeating: "p", count: 5000))])
        #expect(h.status == 431 && h.json?["error"]?["type"] == "invalid_request_error")
    }

    @Test func aClientThatLeftIsLoggedAsSuchNotAsARequestError() {
        let gone = ErrorBody.make(HTTPError(499, "client closed the connection during the stream"), path: "/v1/chat/completions", recordID: "c")
        #expect(gone["error"]?["code"] == 499 && gone["error"]?["type"] == nil)
        #expect(RequestObserver.level(status: 499) == .info)
        #expect(RequestObserver.level(status: 503) == .error && RequestObserver.level(status: 404) == .warning)
    }

    @Test func headersOverTheLimitAre431() throws {
        let r = try server.request("GET", "/", headers: [("X-Request-Id", "hh"), ("X-Pad", String(repeating: "p", count: 5000))])
        try expectError(r, 431, "larger than 4096 bytes", recordID: "hh")
    }

    @Test func duplicateContentLengthIs400AndCloses() throws {
        let r = try #require(
            try server.exchange(
                "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "X-Request-Id: dup\r\nContent-Length: 17\r\nContent-Length: 5\r\n\r\n{\"cal_number\": 1}"
            ).first)
        #expect(r.json == ["recordid": "dup", "error": ["code": 400, "message": "duplicate Content-Length headers"]])
        #expect(r.headers["connection"] == "close")
    }

    @Test func contentLengthWithChunkedIs400AndCloses() throws {
        let r = try #require(
            try server.exchange(
                "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}}\r\n0\r\n\r\n"
            ).first)
        #expect(r.status == 400 && r.headers["connection"] == "close")
    }

    /// (In the arguments "|" stands for CRLF and "~" for a bare CR, so that the test names print on one line.)
    @Test(arguments: [
        ("GARBAGE||", 400),
        ("GET / HTTP/9.9|Host: x||", 505),
        ("GET /||", 400),
        ("GET / HTTP/1.1|Host: x|Bad Header Line||", 400),
        ("GET / HTTP/1.1|Host: x|Name : v||", 400),
        ("GET / HTTP/1.1|Host: x|A: b| folded||", 400),
        ("GET / HTTP/1.1|Host: x|A: b~c||", 400),
        ("GET / HTTP/1.1||", 400),
        ("POST /demo HTTP/1.1|Host: x|Content-Length: abc||", 400),
        ("POST /demo HTTP/1.1|Host: x|Content-Length: -1||", 400),
        ("POST /demo HTTP/1.1|Host: x|Transfer-Encoding: gzip||", 501),
        ("POST /demo HTTP/1.1|Host: x|Transfer-Encoding: chunked||zz|", 400),
        ("POST /demo HTTP/1.1|Host: x|Expect: the-unexpected|Content-Length: 2||{}", 417)
    ])
    func malformedRequests(raw spelled: String, status: Int) throws {
        let raw = spelled.replacingAll("|", with: "\r\n").replacingAll("~", with: "\r")
        let r = try #require(try server.exchange(raw).first)
        #expect(r.status == status, "\(raw.debugDescription)")
        #expect(r.json?["error"]?["code"] == .int(Int64(status)))
        #expect(r.json?["recordid"]?.stringValue == r.headers["x-request-id"])
        #expect(r.headers["connection"] == "close")
    }

    /// (The interim 100 for a client that waits is tested over TCP in test_bad_input.py.)
    @Test func expect100ContinueWithTheBodyAlreadyThereIsAnsweredAtOnce() throws {
        let rs = try server.exchange(
            "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Expect: 100-continue\r\nContent-Length: 17\r\n\r\n{\"cal_number\": 1}")
        #expect(rs.map(\.status) == [200])
        // Too large: 413 at once, before any body.
        let big = try #require(try server.exchange("POST /demo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n").first)
        #expect(big.status == 413 && big.headers["connection"] == "close")
    }

    @Test func http10KeepAliveAndChunkedBodies() throws {
        let rs = try server.exchange(
            "POST /demo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n"
                + "Content-Length: 17\r\n\r\n{\"cal_number\": 1}"
                + "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "5;ext=1\r\n{\"cal\r\nc\r\n_number\": 2}\r\n0\r\nTrailer: x\r\n\r\n")
        #expect(rs.count == 2)
        #expect(rs.first?.headers["connection"] == "keep-alive")
        // The chunked body read whole: 2 added to the running sum (a loop model, answered before the
        // client's half-close, which drops a request still queued for a model thread).
        #expect(rs.last?.json?["result"] == 3)
        let old = try #require(try server.exchange("GET / HTTP/1.0\r\n\r\n").first)
        #expect(old.status == 200 && old.headers["connection"] == "close")
    }

    /// HEAD on every route that answers GET: GET's status and headers, no body (RFC 9110 9.3.2).
    @Test(arguments: ["/", "/demo", "/v1/models", "/v1/models/demo", "/healthz", "/readyz", "/nope"])
    func headIsGetWithoutTheBody(path: String) throws {
        let get = try server.request("GET", path, headers: [("X-Request-Id", "h1")])
        let raw = String(
            decoding: try server.exchangeBytes(
                Array("HEAD \(path) HTTP/1.1\r\nHost: x\r\nX-Request-Id: h1\r\nConnection: close\r\n\r\n".utf8),
                halfClose: false), as: UTF8.self)
        #expect(raw.hasPrefix("HTTP/1.1 \(get.status) "), "\(raw)")
        #expect(raw.hasSuffix("\r\n\r\n"))
        #expect(raw.contains("Content-Length: \(get.body.count)\r\n"))
    }

    @Test func openAIsModelRetrieve() throws {
        let r = try server.request("GET", "/v1/models/demo")
        #expect(r.json?["id"] == "demo" && r.json?["object"] == "model" && r.json?["owned_by"] == "mserve")
        let missing = try server.request("GET", "/v1/models/gpt-4", headers: [("X-Request-Id", "m404")])
        #expect(missing.status == 404)
        #expect(missing.json?["error"]?["code"] == "model_not_found" && missing.json?["error"]?["type"] == "invalid_request_error")
        #expect(missing.json?["recordid"] == "m404")
    }

    @Test func aModelThatThrowsIs500AndItsStateIsKept() throws {
        #expect(try server.post("/demo", json: #"{"cal_number": 1e308}"#).status == 200)
        try expectError(
            try server.post("/demo", json: #"{"recordid": "boom", "cal_number": 1e308}"#), 500, "running sum overflowed", recordID: "boom")
        #expect(try server.post("/demo", json: #"{"cal_number": 0}"#).json?["result"] == 1e308)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let one = "POST /demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"cal_number\": 1}"
        let rs = try server.exchange(String(repeating: one, count: 3) + "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(rs.map(\.status) == [200, 200, 200, 404])
    }
}

extension String {
    func replacingAll(_ a: Character, with b: String) -> String {
        var out = ""
        for c in self { if c == a { out += b } else { out.append(c) } }
        return out
    }
}
