#if canImport(Glibc)
import Glibc
#endif

/// One route: a regular expression over the whole path (POSIX extended syntax, with GNU's \w, \d-free
/// classes such as [0-9], and \s), and how to make the handler.  Capture groups become the handler's
/// arguments, percent-decoded, as in tornado.
public final class Route: @unchecked Sendable {
    public let pattern: String
    let make: (HTTPRequest, HandlerContext) -> RequestHandler
    private let literalPath: String?
    private let regex: UnsafeMutablePointer<regex_t>?
    private let groups: Int

    /// `Route("/demo/(\\w+)", DemoHandler.self)`
    public convenience init(_ pattern: String, _ handler: RequestHandler.Type) {
        self.init(pattern) { req, ctx in handler.init(request: req, context: ctx) }
    }

    /// A route for exactly this path, whatever characters it holds (model names may contain dots).
    public convenience init(literal path: String, _ handler: RequestHandler.Type) {
        self.init(path, literal: true) { req, ctx in handler.init(request: req, context: ctx) }
    }

    /// A route whose handler needs more than the request and context, such as the model it serves.
    public init(_ pattern: String, literal: Bool = false, make: @escaping (HTTPRequest, HandlerContext) -> RequestHandler) {
        self.pattern = pattern
        self.make = make
        let special = Set("\\^$.|?*+()[]{}")
        if literal || !pattern.contains(where: { special.contains($0) }) {
            literalPath = pattern
            regex = nil
            groups = 0
            return
        }
        literalPath = nil
        let re = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        // Anchored at both ends, as tornado appends "$" and matches from the start.
        let rc = regcomp(re, "^(" + pattern + ")$", REG_EXTENDED)
        if rc != 0 {
            var msg = [CChar](repeating: 0, count: 256)
            regerror(rc, re, &msg, msg.count)
            re.deallocate()
            fatalError("invalid route pattern \(pattern): \(String(decoding: msg.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        regex = re
        groups = Int(re.pointee.re_nsub) - 1
    }

    deinit {
        if let regex {
            regfree(regex)
            regex.deallocate()
        }
    }

    /// The capture groups if the path matches, else nil.
    func match(_ path: String) -> [String]? {
        if let literalPath { return path == literalPath ? [] : nil }
        guard let regex else { return nil }
        var m = [regmatch_t](repeating: regmatch_t(), count: groups + 2)
        let rc = path.withCString { regexec(regex, $0, m.count, &m, 0) }
        guard rc == 0 else { return nil }
        let bytes = Array(path.utf8)
        var args: [String] = []
        for i in 2..<(groups + 2) {
            let (s, e) = (Int(m[i].rm_so), Int(m[i].rm_eo))
            args.append(s < 0 ? "" : URLCoding.decode(bytes[s..<e], plusIsSpace: false))
        }
        return args
    }
}

/// An ordered list of routes: the first match wins.
public final class Router: @unchecked Sendable {
    public private(set) var routes: [Route]

    public init(_ routes: [Route] = []) { self.routes = routes }

    public func add(_ route: Route) { routes.append(route) }

    public func match(_ path: String) -> (Route, [String])? {
        for r in routes {
            if let args = r.match(path) { return (r, args) }
        }
        return nil
    }
}
