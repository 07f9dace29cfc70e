// Generated from a ```swift block of README.md by scripts/readme-snippets; edit the README, not this.
import MServe
import MServeServer

final class Hello: RequestHandler {
    override func get(_ args: [String]) throws {
        write(["hello": .string(args[0]), "lang": .string(try argument("lang", default: "en"))])
    }
}
MServeMain.serve(models: .builtin, routes: [Route(#"/hello/(\w+)"#, Hello.self)])
