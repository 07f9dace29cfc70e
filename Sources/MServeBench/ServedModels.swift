import MServe
import MServeSystem

/// Which models a server serves, asked once before a run (`GET /v1/models`, blocking): the body of
/// an OpenAI request must name one, and the name a user guesses is the usual first failure.
enum ServedModels {
    static func list(_ options: BenchOptions) throws(ConfigError) -> [(id: String, kind: String?)] {
        var head = "GET /v1/models HTTP/1.1\r\nHost: \(options.host):\(options.port)\r\nUser-Agent: mserve-bench\r\nConnection: close\r\n"
        // The user's headers carry the key a keyed server asks for.
        for (n, v) in options.headers where !["content-type", "content-length", "accept"].contains(n.lowercased()) { head += "\(n): \(v)\r\n" }
        let response: [UInt8]
        do {
            let fd = try Socket.connectTCP(host: options.host, port: options.port, timeout: 10)
            defer { Socket.close(fd) }
            try Socket.sendAll(fd, Array((head + "\r\n").utf8))
            response = try Socket.receiveToEnd(fd, limit: 4 << 20)
        } catch {
            throw ConfigError("asking the server for its models (GET /v1/models): \(error)")
        }
        var parser = ResponseParser()
        var body: [UInt8] = []
        let complete: Bool
        do {
            complete =
                try response.withUnsafeBytes { raw throws(ResponseParseError) in
                    try parser.consume(raw) { bytes, _ in body += bytes }.complete
                } || parser.finishAtClose()
        } catch {
            throw ConfigError("GET /v1/models: a bad response (\(error))")
        }
        guard complete, parser.status == 200 else {
            let said = String(decoding: body.prefix(300), as: UTF8.self)
            throw ConfigError("GET /v1/models answered \(parser.status) \(said): name the model with --model")
        }
        guard case .success(let list) = Result(catching: { () throws(JSONParseError) in try JSONParser.parse(body) }),
            case .array(let data)? = list["data"]
        else {
            throw ConfigError("GET /v1/models: not OpenAI's list of models: name the model with --model")
        }
        return data.compactMap { m in
            guard case .string(let id)? = m["id"] else { return nil }
            if case .string(let kind)? = m["kind"] { return (id, kind) }
            return (id, nil)
        }
    }
}
