/// A request head as parsed from the wire.  A class: it goes from the parser to the request, its
/// response writer and its log lines, and a struct of a dozen Strings cost a retain per field at
/// every copy (~6% of a worker's instructions).
public final class RequestHead: Equatable, Sendable {
    public let method: HTTPMethod
    /// The method as sent, for logs (an unknown method is kept here).
    public let methodName: String
    public let target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public let minorVersion: Int
    public let headers: [(name: String, value: String)]
    public let keepAlive: Bool
    /// The first value of the fields the server reads on every request, found in the parser's one
    /// pass over the head (a search of `headers` per field was ~10% of a worker's user time).
    public let contentType: String?
    /// X-Request-Id.
    public let requestID: String?
    /// X-Forwarded-For.
    public let forwardedFor: String?
    public let userAgent: String?
    public let referer: String?
    public let accept: String?
    public let expect: String?

    /// The head as the parser builds it, line by line.
    struct Builder {
        var method: HTTPMethod
        var methodName: String
        var target: String
        var minorVersion: Int
        var keepAlive: Bool
        var headers: [(name: String, value: String)] = []
        var contentType, requestID, forwardedFor, userAgent, referer, accept, expect: String?
    }

    init(_ b: Builder) {
        method = b.method
        methodName = b.methodName
        target = b.target
        minorVersion = b.minorVersion
        headers = b.headers
        keepAlive = b.keepAlive
        contentType = b.contentType
        requestID = b.requestID
        forwardedFor = b.forwardedFor
        userAgent = b.userAgent
        referer = b.referer
        accept = b.accept
        expect = b.expect
    }

    public static func == (a: RequestHead, b: RequestHead) -> Bool {
        a.method == b.method && a.methodName == b.methodName && a.target == b.target
            && a.minorVersion == b.minorVersion && a.keepAlive == b.keepAlive
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }

    /// The first value of a header; names compare without regard to case.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.equalsIgnoringASCIICase(name) }?.value
    }
}

/// Why a request cannot be served, found while parsing.  `head` is set when the head was readable,
/// so the error can still carry the client's X-Request-Id and be logged with its path.
public struct RequestParseError: Error, Equatable {
    public var status: Int
    public var message: String
    public var head: RequestHead?
    /// The client's X-Request-Id, also when the head as a whole was too large to parse.
    public var requestID: String?
    /// The request target, also when the head as a whole was too large to parse (an error under
    /// `/v1/` is answered in OpenAI's shape).
    public var target: String?

    init(status: Int, message: String, head: RequestHead? = nil, requestID: String? = nil, target: String? = nil) {
        self.status = status
        self.message = message
        self.head = head
        self.requestID = requestID ?? head?.requestID
        self.target = target ?? head?.target
    }
}

/// What the parser found in the bytes it was given.
public enum ParseResult: Equatable {
    /// A complete request; `consumed` bytes of the input belong to it.
    case request(RequestHead, body: [UInt8], consumed: Int)
    /// The head is complete and the client asked `Expect: 100-continue` for a body it has not sent.
    case expectsContinue
    /// More bytes are needed.
    case needMore
    /// The request is bad; the connection is closed after the error response.
    case error(RequestParseError)
}

/// An incremental HTTP/1.x request parser: strict where laxness lets a request be read two ways
/// behind a proxy (duplicate Content-Length, Content-Length with Transfer-Encoding, bare CR, line
/// folding, whitespace before a colon), bounded in head and body size, and free of I/O so that it
/// can be unit-tested and fuzzed.  It is fed the connection's unread bytes each time more arrive
/// and remembers how far it got, so a slow client costs no re-scanning.
public struct RequestParser {
    public let maxHeaderSize: Int
    public let maxBodySize: Int

    private enum State {
        case head(scanned: Int)
        case body(head: RequestHead, headLength: Int, length: Int)
        case chunked(head: RequestHead, headLength: Int, ChunkState)
    }

    private struct ChunkState {
        var pos: Int  // next unparsed byte, relative to the request's start
        var body: [UInt8] = []
        var remaining = 0  // data bytes left in the current chunk
        var phase = Phase.size
        var trailerBytes = 0
        enum Phase { case size, data, dataEnd, trailers }
    }

    private var state = State.head(scanned: 0)
    private var continueSent = false

    public init(maxHeaderSize: Int, maxBodySize: Int) {
        self.maxHeaderSize = maxHeaderSize
        self.maxBodySize = maxBodySize
    }

    /// Resets for the next request on the connection.
    public mutating func reset() {
        state = .head(scanned: 0)
        continueSent = false
    }

    /// Parses the request that starts at the beginning of `bytes`.
    public mutating func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> ParseResult {
        switch state {
        case .head(let scanned):
            guard let end = RequestParser.findHeadEnd(bytes, from: scanned) else {
                if bytes.count > maxHeaderSize { return tooLarge(bytes) }
                state = .head(scanned: max(0, bytes.count - 3))
                return .needMore
            }
            if end > maxHeaderSize { return tooLarge(bytes) }
            let head: RequestHead
            let framing: Framing
            switch RequestParser.parseHead(UnsafeBufferPointer(rebasing: bytes[0..<end])) {
            case .failure(let e): return .error(e)
            case .success(let (h, f)):
                head = h
                framing = f
            }
            switch framing {
            case .none:
                return .request(head, body: [], consumed: end)
            case .length(let n):
                if n > maxBodySize {
                    return .error(RequestParseError(status: 413, message: "request body larger than \(maxBodySize) bytes", head: head))
                }
                state = .body(head: head, headLength: end, length: n)
            case .chunked:
                state = .chunked(head: head, headLength: end, ChunkState(pos: end))
            }
            if let expect = head.expect {
                guard expect.lowercased() == "100-continue" else {
                    return .error(RequestParseError(status: 417, message: "unsupported Expect: \(expect)", head: head))
                }
                if bytes.count == end && !continueSent && head.minorVersion == 1 {
                    continueSent = true
                    return .expectsContinue
                }
            }
            return parse(bytes)

        case .body(let head, let headLength, let length):
            guard bytes.count >= headLength + length else { return .needMore }
            let body = Array(bytes[headLength..<(headLength + length)])
            return .request(head, body: body, consumed: headLength + length)

        case .chunked(let head, let headLength, var chunk):
            let result = parseChunks(bytes, &chunk, head: head)
            state = .chunked(head: head, headLength: headLength, chunk)
            return result
        }
    }

    /// 431, with the X-Request-Id if one of the complete lines we hold carries it.
    private func tooLarge(_ bytes: UnsafeBufferPointer<UInt8>) -> ParseResult {
        var requestID: String?
        var target: String?
        if let first = RequestParser.findLineEnd(bytes, from: 0) {
            let words = UnsafeBufferPointer(rebasing: bytes[0..<first.lineEnd]).split(separator: 0x20)
            if words.count == 3 { target = String(decoding: words[1], as: UTF8.self) }
        }
        var pos = 0
        let name = Array("x-request-id:".utf8)
        while requestID == nil, let l = RequestParser.findLineEnd(bytes, from: pos) {
            if l.lineEnd - pos > name.count && zip(bytes[pos..<(pos + name.count)], name).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) {
                requestID = String(decoding: UnsafeBufferPointer(rebasing: bytes[(pos + name.count)..<l.lineEnd]), as: UTF8.self).trimmingSpaces()
            }
            pos = l.next
        }
        return .error(
            RequestParseError(
                status: 431, message: "request line and headers larger than \(maxHeaderSize) bytes",
                requestID: requestID, target: target))
    }

    private func parseChunks(_ bytes: UnsafeBufferPointer<UInt8>, _ c: inout ChunkState, head: RequestHead) -> ParseResult {
        func fail(_ status: Int, _ message: String) -> ParseResult {
            .error(RequestParseError(status: status, message: message, head: head))
        }
        while true {
            switch c.phase {
            case .size:
                guard let eol = RequestParser.findLineEnd(bytes, from: c.pos) else {
                    if bytes.count - c.pos > 1024 { return fail(400, "chunk size line too long") }
                    return .needMore
                }
                guard eol.crlf else { return fail(400, "bare LF line ending in chunked body") }
                var size = 0
                var digits = 0
                var i = c.pos
                while i < eol.lineEnd, let d = hexValue(bytes[i]) {
                    size = size &* 16 &+ Int(d)
                    digits += 1
                    if digits > 15 { return fail(400, "chunk size too large") }
                    i += 1
                }
                // Then only whitespace and well-formed extensions (";name" or ";name=value").
                if digits == 0 || !RequestParser.isChunkExtensions(UnsafeBufferPointer(rebasing: bytes[i..<eol.lineEnd])) {
                    return fail(400, "malformed chunk size line")
                }
                if c.body.count + size > maxBodySize { return fail(413, "request body larger than \(maxBodySize) bytes") }
                c.pos = eol.next
                if size == 0 {
                    c.phase = .trailers
                } else {
                    c.remaining = size
                    c.phase = .data
                }
            case .data:
                let available = min(c.remaining, bytes.count - c.pos)
                if available > 0 {
                    c.body.append(contentsOf: bytes[c.pos..<(c.pos + available)])
                    c.pos += available
                    c.remaining -= available
                }
                if c.remaining > 0 { return .needMore }
                c.phase = .dataEnd
            case .dataEnd:
                guard bytes.count - c.pos >= 2 else { return .needMore }
                guard bytes[c.pos] == 0x0D && bytes[c.pos + 1] == 0x0A else { return fail(400, "missing CRLF after chunk data") }
                c.pos += 2
                c.phase = .size
            case .trailers:
                guard let eol = RequestParser.findLineEnd(bytes, from: c.pos) else {
                    if c.trailerBytes + bytes.count - c.pos > maxHeaderSize { return fail(431, "trailers larger than \(maxHeaderSize) bytes") }
                    return .needMore
                }
                c.trailerBytes += eol.next - c.pos
                if c.trailerBytes > maxHeaderSize { return fail(431, "trailers larger than \(maxHeaderSize) bytes") }
                guard eol.crlf else { return fail(400, "bare LF line ending in trailers") }
                let empty = eol.lineEnd == c.pos
                // Trailer fields are checked as field lines, then dropped: none reaches the request.
                // Framing and routing fields are refused there (RFC 9110 6.5.1): a peer that would
                // act on a trailing Content-Length or Host must not see us accept what it refuses.
                if !empty {
                    let line = UnsafeBufferPointer(rebasing: bytes[c.pos..<eol.lineEnd])
                    guard case .success(let f) = RequestParser.fieldLine(line) else { return fail(400, "malformed trailer line") }
                    switch KnownField(UnsafeBufferPointer(rebasing: line[0..<f.nameEnd])) {
                    case .contentLength?, .transferEncoding?, .host?:
                        return fail(400, "\(String(decoding: line[0..<f.nameEnd], as: UTF8.self)) is not allowed in trailers")
                    default: break
                    }
                }
                c.pos = eol.next
                if empty { return .request(head, body: c.body, consumed: c.pos) }
            }
        }
    }

    // MARK: head

    enum Framing: Equatable { case none, length(Int), chunked }

    /// The offset just past the blank line that ends the head, or nil.
    static func findHeadEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        // Empty lines before the request line are not its end (parseHead skips them).
        var leading = 0
        while leading + 1 < b.count && b[leading] == 0x0D && b[leading + 1] == 0x0A { leading += 2 }
        var i = max(from, leading)
        while i < b.count {
            if b[i] == 0x0A {
                if i + 1 < b.count && b[i + 1] == 0x0A { return i + 2 }
                if i + 2 < b.count && b[i + 1] == 0x0D && b[i + 2] == 0x0A { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// The end of the line that starts at `from` (before its CRLF or LF), where the next starts,
    /// and whether it ended with CRLF (a bare LF is refused: a proxy in front may not take it for
    /// a line end, and then the two disagree on where the head ends).
    static func findLineEnd(_ b: UnsafeBufferPointer<UInt8>, from: Int) -> (lineEnd: Int, next: Int, crlf: Bool)? {
        var i = from
        while i < b.count {
            if b[i] == 0x0A {
                let crlf = i > from && b[i - 1] == 0x0D
                return (crlf ? i - 1 : i, i + 1, crlf)
            }
            i += 1
        }
        return nil
    }

    /// What may follow a chunk size: whitespace, then extensions `;name` or `;name=token-or-quoted`.
    static func isChunkExtensions(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        func skipSpace() { while i < b.count && (b[i] == 0x20 || b[i] == 0x09) { i += 1 } }
        skipSpace()
        while i < b.count {
            guard b[i] == UInt8(ascii: ";") else { return false }
            i += 1
            skipSpace()
            let nameStart = i
            while i < b.count && isToken(b[i]) { i += 1 }
            guard i > nameStart else { return false }
            skipSpace()
            if i < b.count && b[i] == UInt8(ascii: "=") {
                i += 1
                skipSpace()
                if i < b.count && b[i] == UInt8(ascii: "\"") {
                    i += 1
                    while i < b.count && b[i] != UInt8(ascii: "\"") {
                        if b[i] == UInt8(ascii: "\\") { i += 1 }
                        guard i < b.count, b[i] >= 0x20 || b[i] == 0x09, b[i] != 0x7F else { return false }
                        i += 1
                    }
                    guard i < b.count else { return false }
                    i += 1
                } else {
                    let valueStart = i
                    while i < b.count && isToken(b[i]) { i += 1 }
                    guard i > valueStart else { return false }
                }
                skipSpace()
            }
        }
        return true
    }

    /// A field line (`name: value`) of a head or of trailers: its name's end and its value's bounds
    /// (without surrounding whitespace), or why it is not one: folding, no token name and colon with
    /// no space before it, or a control character (a bare CR included) in the value.
    static func fieldLine(_ b: UnsafeBufferPointer<UInt8>) -> Result<(nameEnd: Int, valueStart: Int, valueEnd: Int), FieldLineError> {
        guard let first = b.first, first != 0x20, first != 0x09 else { return .failure(.folding) }
        var k = 0
        while k < b.count && isToken(b[k]) { k += 1 }
        guard k > 0, k < b.count, b[k] == UInt8(ascii: ":") else { return .failure(.malformed) }
        var vs = k + 1
        var ve = b.count
        while vs < ve && (b[vs] == 0x20 || b[vs] == 0x09) { vs += 1 }
        while ve > vs && (b[ve - 1] == 0x20 || b[ve - 1] == 0x09) { ve -= 1 }
        for x in vs..<ve where (b[x] < 0x20 && b[x] != 0x09) || b[x] == 0x7F { return .failure(.controlCharacter) }
        return .success((k, vs, ve))
    }

    enum FieldLineError: Error {
        case folding, malformed, controlCharacter

        var message: String {
            switch self {
            case .folding: return "obsolete header line folding"
            case .malformed: return "malformed header line"
            case .controlCharacter: return "control character in header value"
            }
        }
    }

    /// RFC 9112 3.2: Host is `uri-host [ ":" port ]`: an IP-literal in brackets, or a reg-name of
    /// unreserved, percent-encoded and sub-delim characters; an empty one is allowed.
    static func isValidHost(_ value: String) -> Bool {
        var v = value
        return v.withUTF8 { b in
            var i = 0
            if b.first == UInt8(ascii: "[") {
                i = 1
                while i < b.count && b[i] != UInt8(ascii: "]") {
                    let c = b[i]
                    guard hexValue(c) != nil || c == UInt8(ascii: ":") || c == UInt8(ascii: ".") else { return false }
                    i += 1
                }
                guard i < b.count, i > 1 else { return false }
                i += 1
            } else {
                while i < b.count && b[i] != UInt8(ascii: ":") {
                    guard isRegNameByte(b[i]) else { return false }
                    i += 1
                }
            }
            guard i < b.count else { return true }
            guard b[i] == UInt8(ascii: ":"), b.count - i - 1 <= 5 else { return false }
            for j in (i + 1)..<b.count where !(0x30...0x39).contains(b[j]) { return false }
            return true
        }
    }

    private static func isRegNameByte(_ b: UInt8) -> Bool { regNameBytes[Int(b)] }

    private static let regNameBytes = alphanumericTable(plus: "-._~%!$&'()*+,;=")

    /// RFC 9110 token characters, for methods and header names (a table: this runs for every byte
    /// of every header name).
    static func isToken(_ b: UInt8) -> Bool { tokenBytes[Int(b)] }

    private static let tokenBytes = alphanumericTable(plus: "!#$%&'*+-.^_`|~")

    /// For each byte: a letter, a digit, or one of `extra`.
    private static func alphanumericTable(plus extra: String) -> [Bool] {
        (0..<256).map { b in
            switch UInt8(b) {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return extra.utf8.contains(UInt8(b))
            }
        }
    }

    static func parseHead(_ b: UnsafeBufferPointer<UInt8>) -> Result<(RequestHead, Framing), RequestParseError> {
        func bad(_ m: String, _ head: RequestHead.Builder? = nil, status: Int = 400) -> Result<(RequestHead, Framing), RequestParseError> {
            .failure(RequestParseError(status: status, message: m, head: head.map(RequestHead.init)))
        }
        var pos = 0
        // Empty lines (CRLF) before a request are ignored (RFC 9112 2.2), any number of them.
        while pos + 1 < b.count && b[pos] == 0x0D && b[pos + 1] == 0x0A { pos += 2 }
        guard let line = findLineEnd(b, from: pos) else { return bad("malformed request line") }
        guard line.crlf else { return bad("bare LF line ending") }
        // METHOD SP target SP HTTP/1.x
        var i = pos
        while i < line.lineEnd && isToken(b[i]) { i += 1 }
        guard i > pos, i < line.lineEnd, b[i] == 0x20 else { return bad("malformed request line") }
        let methodBytes = UnsafeBufferPointer(rebasing: b[pos..<i])
        let method = HTTPMethod(bytes: methodBytes)
        // A known method's name is its literal: no String to make.
        let methodName = method == .UNKNOWN ? String(decoding: methodBytes, as: UTF8.self) : method.rawValue
        let targetStart = i + 1
        var j = targetStart
        // Visible ASCII only: raw bytes above 0x7F must be percent-encoded.
        while j < line.lineEnd && b[j] > 0x20 && b[j] < 0x7F { j += 1 }
        guard j > targetStart, j < line.lineEnd, b[j] == 0x20 else { return bad("malformed request line") }
        let target = String(decoding: UnsafeBufferPointer(rebasing: b[targetStart..<j]), as: UTF8.self)
        let version = UnsafeBufferPointer(rebasing: b[(j + 1)..<line.lineEnd])
        guard version.count == 8, sameBytes("HTTP/", UnsafeBufferPointer(rebasing: version[0..<5])), version[6] == UInt8(ascii: "."),
            (0x30...0x39).contains(version[5]), (0x30...0x39).contains(version[7])
        else { return bad("malformed request line") }
        // HTTP/1.x above 1.1 is answered as 1.1 (RFC 9110 2.5); another major version is not served.
        guard version[5] == UInt8(ascii: "1") else { return bad("HTTP version not supported", status: 505) }
        let minor = min(1, Int(version[7] - 0x30))
        var head = RequestHead.Builder(
            method: method, methodName: methodName, target: target,
            minorVersion: minor, keepAlive: minor == 1)
        // Room for a typical head's fields at once, not regrown at the first, second and fourth.
        head.headers.reserveCapacity(8)
        guard target.hasPrefix("/") || target == "*" || target.hasPrefix("http://") || target.hasPrefix("https://") else {
            return bad("malformed request target", head)
        }
        if target == "*" && head.method != .OPTIONS { return bad("the asterisk target is for OPTIONS only", head) }

        pos = line.next
        // One Content-Length is kept, and how many came (a second is refused): no array per request.
        var contentLength: String?
        var contentLengths = 0
        var transferEncoding: String?
        var connectionTokens: [Substring] = []
        var hosts = 0
        var contentTypes = 0
        while pos < b.count {
            guard let l = findLineEnd(b, from: pos) else { return bad("malformed header line", head) }
            guard l.crlf else { return bad("bare LF line ending", head) }
            if l.lineEnd == pos { break }  // the blank line
            let field: (nameEnd: Int, valueStart: Int, valueEnd: Int)
            switch fieldLine(UnsafeBufferPointer(rebasing: b[pos..<l.lineEnd])) {
            case .success(let f): field = f
            case .failure(let e): return bad(e.message, head)
            }
            let nameBytes = UnsafeBufferPointer(rebasing: b[pos..<(pos + field.nameEnd)])
            let valueBytes = UnsafeBufferPointer(rebasing: b[(pos + field.valueStart)..<(pos + field.valueEnd)])
            let known = KnownField(nameBytes)
            // Names spelt as usual and the usual Content-Type are literals: no String to make
            // (and no allocation for "application/json", one byte too long to be stored inline).
            let name = known.flatMap { sameBytes($0.name, nameBytes) ? $0.name : nil } ?? String(decoding: nameBytes, as: UTF8.self)
            let value =
                known == .contentType && sameBytes("application/json", valueBytes)
                ? "application/json"
                : String(decoding: valueBytes, as: UTF8.self)
            head.headers.append((name, value))
            switch known {
            case .contentLength:
                contentLengths += 1
                contentLength = value
            case .contentType:
                contentTypes += 1
                head.contentType = value
            case .connection: connectionTokens += value.split(separator: ",").map { Substring($0.trimmingSpaces()) }
            case .transferEncoding: transferEncoding = transferEncoding.map { $0 + ", " + value } ?? value
            case .host:
                hosts += 1
                guard isValidHost(value) else { return bad("malformed Host header", head) }
            case .requestID: if head.requestID == nil { head.requestID = value }
            case .forwardedFor: if head.forwardedFor == nil { head.forwardedFor = value }
            case .userAgent: if head.userAgent == nil { head.userAgent = value }
            case .referer: if head.referer == nil { head.referer = value }
            case .accept: if head.accept == nil { head.accept = value }
            case .expect: if head.expect == nil { head.expect = value }
            case nil: break
            }
            pos = l.next
        }

        if connectionTokens.contains(where: { String($0).equalsIgnoringASCIICase("close") }) {
            head.keepAlive = false
        } else if minor == 0 && connectionTokens.contains(where: { String($0).equalsIgnoringASCIICase("keep-alive") }) {
            head.keepAlive = true
        }
        if minor == 1 && hosts == 0 { return bad("missing Host header", head) }
        if hosts > 1 { return bad("more than one Host header", head) }
        if contentTypes > 1 { return bad("more than one Content-Type header", head) }

        if let te = transferEncoding {
            // Chunked framing does not exist in HTTP/1.0: a proxy may read this body differently.
            if minor == 0 { return bad("Transfer-Encoding in an HTTP/1.0 request", head) }
            if contentLengths > 0 { return bad("both Content-Length and Transfer-Encoding", head) }
            guard te.trimmingSpaces().equalsIgnoringASCIICase("chunked") else {
                return bad("unsupported Transfer-Encoding: \(te)", head, status: 501)
            }
            return .success((RequestHead(head), .chunked))
        }
        if contentLengths > 1 { return bad("duplicate Content-Length headers", head) }
        if let cl = contentLength {
            guard !cl.isEmpty, cl.utf8.count <= 18, cl.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(cl) else {
                return bad("malformed Content-Length", head)
            }
            return .success((RequestHead(head), n > 0 ? .length(n) : .none))
        }
        return .success((RequestHead(head), .none))
    }
}

/// The header fields the parser acts on or keeps aside (and the serializer keeps to itself), told
/// from the name's bytes by its length first, without a String.  The names are written twice, in
/// lower case to match and as usually spelt to take: one table matched through a String cost ~600
/// instructions a request more.
enum KnownField {
    case contentLength, contentType, connection, transferEncoding, host
    case requestID, forwardedFor, userAgent, referer, accept, expect

    init?(_ name: UnsafeBufferPointer<UInt8>) {
        func named(_ lower: StaticString) -> Bool {
            lower.withUTF8Buffer { l in
                // Header names are tokens: OR-ing 0x20 folds their letters and leaves the rest unequal.
                for i in 0..<l.count where name[i] | 0x20 != l[i] { return false }
                return true
            }
        }
        switch name.count {
        case 4 where named("host"): self = .host
        case 6 where named("accept"): self = .accept
        case 6 where named("expect"): self = .expect
        case 7 where named("referer"): self = .referer
        case 10 where named("connection"): self = .connection
        case 10 where named("user-agent"): self = .userAgent
        case 12 where named("content-type"): self = .contentType
        case 12 where named("x-request-id"): self = .requestID
        case 14 where named("content-length"): self = .contentLength
        case 15 where named("x-forwarded-for"): self = .forwardedFor
        case 17 where named("transfer-encoding"): self = .transferEncoding
        default: return nil
        }
    }

    /// How clients usually spell it.
    var name: String {
        switch self {
        case .contentLength: return "Content-Length"
        case .contentType: return "Content-Type"
        case .connection: return "Connection"
        case .transferEncoding: return "Transfer-Encoding"
        case .host: return "Host"
        case .requestID: return "X-Request-Id"
        case .forwardedFor: return "X-Forwarded-For"
        case .userAgent: return "User-Agent"
        case .referer: return "Referer"
        case .accept: return "Accept"
        case .expect: return "Expect"
        }
    }
}
