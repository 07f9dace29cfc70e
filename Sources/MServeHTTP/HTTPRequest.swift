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
    /// Content-Type, X-Request-Id and X-Forwarded-For as sent (found in the one pass over the head).
    public let contentType: String?
    public let requestID: String?
    public let forwardedFor: String?
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
        // Absolute form ("http://host/path") is routed by its path.
        if t.hasPrefix("http://") || t.hasPrefix("https://") {
            let afterScheme = t[t.index(t.firstIndex(of: ":")!, offsetBy: 3)...]
            t = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        if let q = t.firstIndex(of: "?") {
            path = String(t[..<q])
            query = String(t[t.index(after: q)...])
        } else {
            path = String(t)
            query = nil
        }
        var contentType: String?
        var requestID: String?
        var forwardedFor: String?
        for (name, value) in head.headers {
            switch name.utf8.first.map({ $0 | 0x20 }) {
            case UInt8(ascii: "c"):
                if contentType == nil && name.equalsIgnoringASCIICase("Content-Type") { contentType = value }
            case UInt8(ascii: "x"):
                if requestID == nil && name.equalsIgnoringASCIICase("X-Request-Id") { requestID = value }
                else if forwardedFor == nil && name.equalsIgnoringASCIICase("X-Forwarded-For") { forwardedFor = value }
            default: break
            }
        }
        self.contentType = contentType
        self.requestID = requestID
        self.forwardedFor = forwardedFor
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
