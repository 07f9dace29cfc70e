import MServeSystem
import MServeTesting
import Testing

@testable import MServe

#if canImport(Glibc)
    import Glibc
#endif

/// The router, handlers and HTTP layer in-process, through MServeTesting's TestServer.
@Suite(.serialized) struct HandlerTests {
    func roundTrip(_ raw: String, routes: [Route]) throws -> TestResponse {
        let responses = try TestServer(routes: routes).exchange(raw)
        return try #require(responses.first)
    }

    func post(_ path: String, _ body: String, type: String = "application/json") -> String {
        "POST \(path) HTTP/1.1\r\nHost: t\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    final class Echoes: RequestHandler {
        override class var allowedMethods: [HTTPMethod] { [.GET, .POST] }
        override func get(_ args: [String]) throws { try reply(args) }
        override func post(_ args: [String]) throws { try reply(args) }

        func reply(_ args: [String]) throws {
            setStatus(201)
            setHeader("X-Args", args.joined(separator: ","))
            write([
                "a": .string(try argument("a")), "b": .string(try argument("b", default: "dflt")),
                "all": .array(try arguments("a").map { .string($0) })
            ])
        }
    }

    @Test func argumentsFromQueryFormAndJSON() throws {
        let routes = [Route(#"/e/(\w+)/([0-9]+)"#, Echoes.self)]
        var r = try roundTrip("GET /e/x/7?a=1&a=two%20words HTTP/1.1\r\nHost: t\r\n\r\n", routes: routes)
        #expect(r.status == 201)
        #expect(r.headers["x-args"] == "x,7")
        #expect(r.json?["a"] == "two words")
        #expect(r.json?["b"] == "dflt")
        #expect(r.json?["all"] == ["1", "two words"])
        r = try roundTrip(post("/e/y/1?a=q", "a=f&b=form+b", type: "application/x-www-form-urlencoded"), routes: routes)
        #expect(r.json?["all"] == ["q", "f"])
        #expect(r.json?["b"] == "form b")
        r = try roundTrip(post("/e/y/1", #"{"recordid": "j1", "a": 5, "b": "json"}"#), routes: routes)
        #expect(r.json?["a"] == "5" && r.json?["b"] == "json")
        #expect(r.json?["recordid"] == "j1")
        #expect(r.headers["x-request-id"] == "j1")
    }

    @Test func missingArgumentIs400WithTheRecordID() throws {
        let r = try roundTrip("GET /e/x/1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: m1\r\n\r\n", routes: [Route(#"/e/(\w+)/([0-9]+)"#, Echoes.self)])
        #expect(r.status == 400)
        #expect(r.json == ["recordid": "m1", "error": ["code": 400, "message": "missing argument a"]])
    }

    final class Guarded: RequestHandler {
        nonisolated(unsafe) static var calls: [String] = []
        override func prepare() throws {
            Guarded.calls.append("prepare")
            if request.header("Authorization") == nil {
                setStatus(401)
                write(["error": "no"])
                finish()
            }
        }
        override func get(_ args: [String]) throws {
            Guarded.calls.append("get")
            write("plain")
        }
        override func onFinish() { Guarded.calls.append("onFinish") }
    }

    @Test func prepareMayFinishAndOnFinishRunsOnce() throws {
        Guarded.calls = []
        var r = try roundTrip("GET /g HTTP/1.1\r\nHost: t\r\n\r\n", routes: [Route("/g", Guarded.self)])
        #expect(r.status == 401)
        #expect(Guarded.calls == ["prepare", "onFinish"])
        Guarded.calls = []
        r = try roundTrip("GET /g HTTP/1.1\r\nHost: t\r\nAuthorization: x\r\n\r\n", routes: [Route("/g", Guarded.self)])
        #expect(r.status == 200 && r.text == "plain")
        #expect(r.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(Guarded.calls == ["prepare", "get", "onFinish"])
    }

    final class Broken: RequestHandler {
        struct Oops: Error {}
        override func get(_ args: [String]) throws { throw Oops() }
        override func post(_ args: [String]) throws {
            setHeader("X-Evil", "a\r\nSet-Cookie: x=1")
            write("ok")
        }
    }

    @Test func handlerErrorsAre500AndHeaderInjectionIsDropped() throws {
        let routes = [Route("/b", Broken.self)]
        var r = try roundTrip("GET /b HTTP/1.1\r\nHost: t\r\n\r\n", routes: routes)
        #expect(r.status == 500)
        #expect(r.json?["error"]?["code"] == 500)
        r = try roundTrip(post("/b", "{}"), routes: routes)
        #expect(r.status == 200)
        #expect(r.headers["x-evil"] == nil && r.headers["set-cookie"] == nil)
    }

    @Test func firstMatchingRouteWinsAndUnknownMethodsAre405() throws {
        let routes = [Route("/g", Guarded.self), Route("/(.*)", Echoes.self)]
        var r = try roundTrip("GET /g HTTP/1.1\r\nHost: t\r\nAuthorization: x\r\n\r\n", routes: routes)
        #expect(r.text == "plain")
        r = try roundTrip("BREW /other HTTP/1.1\r\nHost: t\r\n\r\n", routes: routes)
        #expect(r.status == 405 && r.headers["allow"] == "GET, HEAD, POST")
        r = try roundTrip("GET /nothing?a=1 HTTP/1.1\r\nHost: t\r\n\r\n", routes: [Route("/g", Guarded.self)])
        #expect(r.status == 404)
    }
}
