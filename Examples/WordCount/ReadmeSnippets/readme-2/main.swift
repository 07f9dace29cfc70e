// Generated from a ```swift block of the docs (README.md, docs/) by scripts/readme-snippets; edit the docs, not this.
import MServe
import MServeServer

final class Hello: RequestHandler {
    override func get(_ args: [String]) throws {
        write(["hello": .string(args[0]), "lang": .string(try argument("lang", default: "en"))])
    }
}
MServeMain.serve(models: .builtin, routes: [Route(#"/hello/(\w+)"#, Hello.self)])
