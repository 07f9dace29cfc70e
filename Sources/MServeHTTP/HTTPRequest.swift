/// One request, as the parser read it, on its way to a handler.
public final class HTTPRequest {
    public let head: RequestHead
    public var method: HTTPMethod { head.method }
    /// The request target as sent ("/demo?x=1").
    public var target: String { head.target }
    /// The path, not percent-decoded (routes match it, as tornado's do).
    public let path: String
    public let query: String?
    public let body: [UInt8]
    public let remoteHost: String
    public let startTime: Double
    /// Content-Type, X-Request-Id and X-Forwarded-For as sent (found by the parser).
    public var contentType: String? { head.contentType }
    public var requestID: String? { head.requestID }
    public var forwardedFor: String? { head.forwardedFor }
    /// Where the answer goes.
    public let response: ResponseWriter
    /// Called once if the client closes its connection before this request is answered.
    public var onClientGone: (() -> Void)?

    func clientGone() {
        let f = onClientGone
        onClientGone = nil
        f?()
    }
    private var cachedMediaType: String??

    init(head: RequestHead, body: [UInt8], remoteHost: String, startTime: Double, response: ResponseWriter) {
        self.head = head
        self.body = body
        self.remoteHost = remoteHost
        self.startTime = startTime
        self.response = response
        var t = Substring(head.target)
        var absolute = false
        // Absolute form ("http://host/path") is routed by its path.  (Searched as bytes: a
        // Character search runs grapheme breaking.)
        if t.utf8.first != UInt8(ascii: "/"), let colon = t.utf8.firstIndex(of: UInt8(ascii: ":")),
            t.utf8.starts(with: "http://".utf8) || t.utf8.starts(with: "https://".utf8)
        {
            let afterScheme = t[t.utf8.index(colon, offsetBy: 3)...]
            t = afterScheme.utf8.firstIndex(of: UInt8(ascii: "/")).map { afterScheme[$0...] } ?? "/"
            absolute = true
        }
        if let q = t.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(t[..<q])
            query = String(t[t.utf8.index(after: q)...])
        } else {
            path = absolute ? String(t) : head.target
            query = nil
        }
    }

    public var httpVersion: String { head.minorVersion == 0 ? "HTTP/1.0" : "HTTP/1.1" }

    /// The first value of a header (names are case-insensitive).
    public func header(_ name: String) -> String? { head.header(name) }

    /// Every value of a header, in order.
    public func headers(_ name: String) -> [String] {
        head.headers.filter { $0.name.equalsIgnoringASCIICase(name) }.map(\.value)
    }

    /// The media type of Content-Type, lower-cased, without parameters ("application/json").
    public var mediaType: String? {
        if let cachedMediaType { return cachedMediaType }
        var result: String? = nil
        if let ct = contentType {
            if ct == "application/json" {
                result = ct
            } else {
                let base = ct.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(ct)
                let trimmed = base.trimmingSpaces().lowercased()
                result = trimmed.isEmpty ? nil : trimmed
            }
        }
        cachedMediaType = .some(result)
        return result
    }
}
