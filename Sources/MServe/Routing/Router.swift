import MServeHTTP

/// One route: a regular expression over the whole path (Swift Regex syntax: `\w`, `[0-9]`,
/// `[[:alpha:]]`, `(a|b)`, ...), and how to make the handler.  Capture groups become the handler's
/// arguments, percent-decoded, as in tornado.
public final class Route {
    public let pattern: String
    let make: (HTTPRequest, HandlerContext) -> RequestHandler
    /// A route without regex syntax matches this path's bytes exactly.
    private let literalPath: [UInt8]?
    private let regex: Regex<AnyRegexOutput>?
    /// The literal text every path this pattern matches starts with: a cheap test that spares most
    /// requests running the regex (`/v1/models/([^/]+)` is not tried on `/demo`).
    private let literalPrefix: [UInt8]
    /// Why the pattern is not a regular expression; `MServeMain` refuses to start with such a route.
    public let patternError: String?
    /// Answered without an API key when keys are on (health, readiness, open metrics).  Every
    /// other route, a user's own included, needs one.
    /// Answered without a key: every request, or those `openWhen` picks.
    public private(set) var isOpen = false
    private var openWhen: (@Sendable (HTTPRequest) -> Bool)?

    /// This route, answered without a key.
    public func open() -> Route {
        isOpen = true
        return self
    }

    /// This route, answered without a key when `when` says so (the page at `/`, not its JSON).
    public func open(when: @escaping @Sendable (HTTPRequest) -> Bool) -> Route {
        openWhen = when
        return self
    }

    public func isOpen(for request: HTTPRequest) -> Bool { isOpen || (openWhen?(request) ?? false) }

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
            literalPath = Array(pattern.utf8)
            regex = nil
            literalPrefix = []
            patternError = nil
            return
        }
        literalPath = nil
        literalPrefix = Route.literalPrefix(pattern, special: special)
        do {
            // Anchored at both ends, as tornado appends "$" and matches from the start.
            regex = try Regex("^(?:" + pattern + ")$")
            patternError = nil
        } catch {
            regex = nil
            patternError = "invalid route pattern \(pattern): \(error)"
        }
    }

    /// The characters before the first special one; none with an alternation (`a|b` has no common
    /// prefix), and not the last one when a quantifier follows it (`ab?` needs only `a`).
    static func literalPrefix(_ pattern: String, special: Set<Character>) -> [UInt8] {
        if pattern.contains("|") { return [] }
        guard let end = pattern.firstIndex(where: { special.contains($0) }) else { return Array(pattern.utf8) }
        var prefix = pattern[..<end]
        if "?*+{".contains(pattern[end]), !prefix.isEmpty { prefix.removeLast() }
        return Array(prefix.utf8)
    }

    /// The capture groups if the path matches, else nil.
    func match(_ path: String) -> [String]? {
        var p = path
        return p.withUTF8 { match(path, bytes: $0) }
    }

    /// The same, with the path's bytes at hand: the router tries every route on every request, and
    /// the literal tests run on bytes alone (touching the optional Regex costs type-metadata
    /// lookups: Strings and the regex field were ~4% of a worker's instructions on /demo).
    func match(_ path: String, bytes: UnsafeBufferPointer<UInt8>) -> [String]? {
        if let literalPath {
            return bytes.count == literalPath.count && bytes.elementsEqual(literalPath) ? [] : nil
        }
        guard bytes.starts(with: literalPrefix) else { return nil }
        return matchPattern(path)
    }

    private func matchPattern(_ path: String) -> [String]? {
        guard let regex, let m = try? regex.wholeMatch(in: path) else { return nil }
        return m.output.dropFirst().map { group in
            group.substring.map { URLCoding.decode(Array($0.utf8), plusIsSpace: false) } ?? ""
        }
    }
}

/// An ordered list of routes: the first match wins.
public final class Router {
    public private(set) var routes: [Route]

    public init(_ routes: [Route] = []) { self.routes = routes }

    public func add(_ route: Route) { routes.append(route) }

    public func match(_ path: String) -> (Route, [String])? {
        var p = path
        return p.withUTF8 { bytes in
            for r in routes {
                if let args = r.match(path, bytes: bytes) { return (r, args) }
            }
            return nil
        }
    }
}
