import MServeSystem
import Testing

@testable import MServe

@Suite struct RoutingTests {
    final class A: RequestHandler {}
    final class B: RequestHandler {}

    @Test func firstMatchWinsAndGroupsBecomeArguments() throws {
        let router = Router([
            Route("/", A.self),
            Route(#"/items/(\w+)/([0-9]+)"#, A.self),
            Route(#"/items/(.*)"#, B.self)
        ])
        let (r1, a1) = try #require(router.match("/items/abc/42"))
        #expect(r1.pattern == #"/items/(\w+)/([0-9]+)"#)
        #expect(a1 == ["abc", "42"])
        let (r2, a2) = try #require(router.match("/items/a%20b/x"))
        #expect(r2.pattern == "/items/(.*)")
        #expect(a2 == ["a b/x"])
        #expect(router.match("/")?.1 == [])
    }

    @Test func patternsAreAnchoredAtBothEnds() {
        let router = Router([Route("/demo", A.self), Route(#"/v([0-9])"#, A.self)])
        #expect(router.match("/demo") != nil)
        #expect(router.match("/demo/") == nil)
        #expect(router.match("/demox") == nil)
        #expect(router.match("/x/demo") == nil)
        #expect(router.match("/v1") != nil)
        #expect(router.match("/v12") == nil)
    }

    @Test func unmatchedOptionalGroupsAreEmptyAndPOSIXClassesWork() throws {
        let router = Router([Route(#"/v([[:digit:]]+)(/x)?"#, A.self)])
        #expect(router.match("/v12")?.1 == ["12", ""])
        #expect(router.match("/v3/x")?.1 == ["3", "/x"])
    }

    @Test(arguments: [
        (#"/items/(\w+)"#, "/items/"), ("/ab?c/(.*)", "/a"), ("/abc*", "/ab"), ("/x+", "/"), (#"/a{2}/(.*)"#, "/"),
        ("/a|/b(.*)", ""), ("(?i)/x", ""), (#"/v1\.0/(.*)"#, "/v1"), ("/", "/")
    ])
    func theLiteralPrefixIsOnlyWhatEveryMatchStartsWith(pattern: String, prefix: String) {
        #expect(Route.literalPrefix(pattern, special: Set("\\^$.|?*+()[]{}")) == Array(prefix.utf8))
    }

    @Test func thePrefixTestNeverHidesAMatch() {
        let router = Router([Route("/ab?c/(.*)", A.self), Route("/a|/b(x)", B.self), Route("(?i)/up", B.self)])
        #expect(router.match("/ac/1")?.1 == ["1"])
        #expect(router.match("/abc/2")?.1 == ["2"])
        #expect(router.match("/a") != nil)
        #expect(router.match("/bx")?.1 == ["x"])
        #expect(router.match("/UP") != nil)
        #expect(router.match("/b/1") == nil)
    }

    @Test func anInvalidPatternIsReportedNotFatal() {
        let r = Route("/items/(unclosed", A.self)
        #expect(r.patternError?.contains("invalid route pattern /items/(unclosed") == true)
        #expect(r.match("/items/(unclosed") == nil)
    }

    @Test func literalRoutesMatchModelNamesWithDots() {
        let router = Router([Route(literal: "/all-minilm.v2", A.self)])
        #expect(router.match("/all-minilm.v2") != nil)
        #expect(router.match("/all-minilmXv2") == nil)
    }

    @Test func formDecoding() {
        let pairs = URLCoding.parseForm(Array("a=1&b=x+y%21&a=2&flag".utf8))
        #expect(pairs.map(\.0) == ["a", "b", "a", "flag"])
        #expect(pairs.map(\.1) == ["1", "x y!", "2", ""])
        #expect(URLCoding.decode(Array("%zz%4".utf8), plusIsSpace: false) == "%zz%4")
    }
}

/// X-Forwarded-For is believed only from trusted proxies.
struct ForwardedForTests {
    @Test(arguments: [
        ("127.0.0.1", "203.0.113.7", ["127.0.0.1"], "203.0.113.7"),
        ("10.0.0.9", "203.0.113.7", ["127.0.0.1"], "10.0.0.9"),  // an untrusted peer says nothing
        ("127.0.0.1", "203.0.113.7, 10.0.0.2", ["127.0.0.1", "10.0.0.2"], "203.0.113.7"),
        ("127.0.0.1", "198.51.100.1, 203.0.113.7", ["127.0.0.1"], "203.0.113.7"),  // the client may forge the left part
        ("127.0.0.1", "evil.example, 203.0.113.7", ["127.0.0.1"], "203.0.113.7"),
        ("127.0.0.1", "not-an-address", ["127.0.0.1"], "127.0.0.1"),
        ("10.1.1.1", "2001:db8::1", ["*"], "2001:db8::1"),
        ("127.0.0.1", "10.0.0.2", ["127.0.0.1", "10.0.0.2"], "10.0.0.2")  // all trusted: the leftmost
    ])
    func theClientIsTheFirstUntrustedHopFromTheRight(peer: String, header: String, trusted: [String], client: String) {
        #expect(ForwardedFor.client(peer: peer, header: header, trusted: trusted) == client)
    }

    @Test func addressesOnly() {
        #expect(ForwardedFor.isAddress("192.168.0.1") && ForwardedFor.isAddress("::1") && ForwardedFor.isAddress("fe80::1:2"))
        #expect(!ForwardedFor.isAddress("256.1.1.1") && !ForwardedFor.isAddress("1.2.3") && !ForwardedFor.isAddress("example.com"))
        #expect(!ForwardedFor.isAddress("") && !ForwardedFor.isAddress("1.2.3.4:80"))
        #expect(ForwardedFor.client(peer: "127.0.0.1", header: nil, trusted: ["*"]) == "127.0.0.1")
    }
}

struct UnservedModelTests {
    final class Embedder: EmbeddingModel {
        init(context: ModelContext) throws {}
        var dimensions: Int { 2 }
        func infer(_ request: InferenceRequest) throws -> JSON { [:] }
    }

    @Test func aKnownModelThatIsNotServedIsSaidWithHowToServeIt() {
        var registry = ModelRegistry.builtin
        registry.register(Embedder.self, as: "minilm")
        let known = registry.entries
        #expect(
            UnservedModel.hint(path: "/echo", served: ["demo"], known: known)
                == "the model echo is not served here (this server serves demo); start mserve with it: mserve [options] demo echo")
        #expect(
            UnservedModel.hint(path: "/v1/embeddings", served: ["demo", "sleep"], known: known)
                == "no embedding model is served (this server serves demo, sleep); minilm is one: start mserve with it: mserve [options] demo sleep minilm"
        )
        // No built-in chat model in this registry: said without a name to serve.
        #expect(
            UnservedModel.hint(path: "/v1/chat/completions", served: ["demo"], known: known) == "no chat model is served (this server serves demo)")
        #expect(UnservedModel.hint(path: "/nope", served: ["demo"], known: known) == nil)
        #expect(UnservedModel.hint(path: "/echo/x", served: ["demo"], known: known) == nil)
    }
}
