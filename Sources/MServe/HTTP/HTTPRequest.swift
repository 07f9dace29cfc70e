import CEvent
#if canImport(Glibc)
import Glibc
#endif

/// One request as evhttp parsed it.  The headers the server itself needs are picked out in one pass
/// over evhttp's list; others are looked up on demand.  The body is copied out once, when first
/// asked for.
public final class HTTPRequest {
    let raw: UnsafeMutablePointer<evhttp_request>
    public let method: HTTPMethod
    /// The request target as sent ("/demo?x=1").
    public let target: String
    /// The path, not percent-decoded (routes match it, as tornado's do).
    public let path: String
    public let query: String?
    public let startTime: Double
    /// Content-Type as sent.
    public let contentType: String?
    /// X-Request-Id as sent.
    public let requestID: String?
    /// How many Content-Length headers came, and whether Transfer-Encoding did (framing checks).
    let contentLengthCount: Int
    let hasTransferEncoding: Bool
    private var cachedBody: [UInt8]?
    private var cachedJSON: Result<JSON, JSONParseError>?
    private var cachedMediaType: String??

    init(raw: UnsafeMutablePointer<evhttp_request>, startTime: Double) {
        self.raw = raw
        self.startTime = startTime
        method = HTTPMethod(evhttp_request_get_command(raw))
        target = raw.pointee.uri.map { String(cString: $0) } ?? "-"
        if let uri = evhttp_request_get_evhttp_uri(raw) {
            path = evhttp_uri_get_path(uri).map { String(cString: $0) } ?? "/"
            query = evhttp_uri_get_query(uri).map { String(cString: $0) }
        } else {
            path = target
            query = nil
        }
        var contentType: String?
        var requestID: String?
        var lengths = 0
        var transferEncoding = false
        var item = raw.pointee.input_headers.pointee.tqh_first
        while let kv = item {
            let key = kv.pointee.key!
            switch UInt8(bitPattern: key[0]) | 0x20 {   // first letter, lower-cased: most headers are skipped here
            case UInt8(ascii: "c"):
                if strcasecmp(key, "content-type") == 0 {
                    if contentType == nil { contentType = String(cString: kv.pointee.value) }
                } else if strcasecmp(key, "content-length") == 0 {
                    lengths += 1
                }
            case UInt8(ascii: "x"):
                if requestID == nil && strcasecmp(key, "x-request-id") == 0 { requestID = String(cString: kv.pointee.value) }
            case UInt8(ascii: "t"):
                if strcasecmp(key, "transfer-encoding") == 0 { transferEncoding = true }
            default: break
            }
            item = kv.pointee.next.tqe_next
        }
        self.contentType = contentType
        self.requestID = requestID
        contentLengthCount = lengths
        hasTransferEncoding = transferEncoding
    }

    public var remoteHost: String { raw.pointee.remote_host.map { String(cString: $0) } ?? "-" }
    public var httpVersion: String { "HTTP/\(raw.pointee.major).\(raw.pointee.minor)" }

    /// The first value of a header (names are case-insensitive).
    public func header(_ name: String) -> String? {
        evhttp_find_header(raw.pointee.input_headers, name).map { String(cString: $0) }
    }

    /// Every value of a header, in order.
    public func headers(_ name: String) -> [String] {
        var out: [String] = []
        var item = raw.pointee.input_headers.pointee.tqh_first
        while let kv = item {
            if strcasecmp(kv.pointee.key, name) == 0 { out.append(String(cString: kv.pointee.value)) }
            item = kv.pointee.next.tqe_next
        }
        return out
    }

    public var body: [UInt8] {
        if let cachedBody { return cachedBody }
        let buf = evhttp_request_get_input_buffer(raw)
        let n = evbuffer_get_length(buf)
        var bytes = [UInt8](repeating: 0, count: n)
        if n > 0 { _ = evbuffer_copyout(buf, &bytes, n) }
        cachedBody = bytes
        return bytes
    }

    /// The body parsed as JSON, once.
    public var json: Result<JSON, JSONParseError> {
        if let cachedJSON { return cachedJSON }
        let r: Result<JSON, JSONParseError>
        do throws(JSONParseError) { r = .success(try JSONParser.parse(body)) } catch { r = .failure(error) }
        cachedJSON = r
        return r
    }

    /// The media type of Content-Type, lower-cased, without parameters ("application/json").
    public var mediaType: String? {
        if let cachedMediaType { return cachedMediaType }
        var result: String? = nil
        if let ct = contentType {
            if ct == "application/json" {
                result = ct
            } else {
                let base = ct.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ct
                let trimmed = base.trimmingSpaces().lowercased()
                result = trimmed.isEmpty ? nil : trimmed
            }
        }
        cachedMediaType = .some(result)
        return result
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
