import MServe
import MServeSystem

/// `mserve ctl`: gunicornc for mserve.  One command with `-c`, else a prompt (or commands read
/// from standard input, one per line, when it is not a terminal).
public enum ControlClient {
    struct Options: Sendable {
        var path: String?
        var pidfile: String?
        var bind: String?
        var command: String?
        var json = false
    }

    static let commandLine = CommandOptions<Options>(
        synopsis: "usage: mserve ctl [-s PATH | -b ADDRESS | -p PIDFILE] [-c COMMAND] [-j]",
        description: """
            Talks to a running mserve master through its control socket.  Without -s, -b or -p it \
            finds the running servers in $XDG_RUNTIME_DIR/mserve (else ~/.mserve): with one, it talks to \
            it; with several, it lists them and stops.  It names the server it reached on standard error.
            """,
        options: [
            .text(["-s", "--socket"], "PATH", "the socket (what the server logged as \"Control socket:\")") { $0.path = $1 },
            .text(["-b", "--bind"], "ADDRESS", "the server whose first --bind is ADDRESS (127.0.0.1:8081)") { $0.bind = $1 },
            .text(["-p", "--pid"], "PIDFILE", "the server's pid file, to find the socket beside it") { $0.pidfile = $1 },
            .text(["-c", "--command"], "TEXT", "run one command and exit (status 1 if it failed)") { $0.command = $1 },
            .flag(["-j", "--json"], "print the reply as JSON, for scripts") { $0.json = true }
        ],
        notes: "Commands: `help` lists them (show workers, worker add 2, drain, reload, ...).")

    public static func run(_ arguments: [String]) -> Int32 {
        commandLine.run(arguments, as: "mserve ctl", from: Options()) { options, rest throws(ConfigError) in
            if let extra = rest.first { throw ConfigError("unexpected argument \(extra)") }
            return talk(options)
        }
    }

    /// Finds the server (the socket named, or the one running), then runs one command or a session.
    private static func talk(_ options: Options) -> Int32 {
        let (path, pidfile, bind, command, json) = (options.path, options.pidfile, options.bind, options.command, options.json)
        let directory = ServerSettings.controlSocketDirectory(environment: ProcessEnvironment.variables())
        let session: Session
        if let chosen = path ?? pidfile.map(ServerSettings.controlSocket(besidePidFile:))
            ?? bind.map({ directory + "/" + ServerSettings.controlSocketName(bind: $0) })
        {
            do { session = try Session(path: chosen) } catch {
                printError(
                    "mserve ctl: \(error) (is the server running, and is this its control socket? "
                        + "It logs its path at start as \"Control socket:\")")
                return ExitCode.failure
            }
        } else {
            let running = Session.running(in: directory)
            guard running.count == 1, let only = running.first else {
                if running.isEmpty {
                    printError(
                        "mserve ctl: no running server has a control socket in \(directory) "
                            + "(a server started with --control-socket PATH or --pid FILE: -s PATH or -p FILE)")
                } else {
                    printError(
                        "mserve ctl: \(running.count) servers are running; choose one with -s PATH (or -b ADDRESS):\n"
                            + running.map { "  -s \($0.path)   \($0.identity)" }.joined(separator: "\n"))
                    for candidate in running { Socket.close(candidate.fd) }
                }
                return ExitCode.failure
            }
            session = only
        }
        defer { Socket.close(session.fd) }
        // Which server this is, before anything is done to it.
        printError("mserve ctl: \(session.path): \(session.identity)")
        if let command { return session.run(command, json: json) ? ExitCode.ok : ExitCode.failure }
        let interactive = StandardStream.inputIsTerminal
        while true {
            if interactive { print("mserve> ", terminator: "") }
            guard let line = readLine() else { break }
            let text = line.trimmingSpaces()
            if text.isEmpty { continue }
            if text == "quit" || text == "exit" { break }
            if !session.run(String(text), json: json) && !session.connected { return ExitCode.failure }
        }
        if interactive { print("") }
        return ExitCode.ok
    }

    /// One connection, kept for every command of an interactive session.
    final class Session {
        let fd: Int32
        let path: String
        private var nextID = 1
        private(set) var connected = true

        init(path: String) throws(SystemError) {
            self.path = path
            fd = try Socket.connectUnix(path: path, timeout: 30)
        }

        /// The servers whose sockets in `directory` answer (a file left by a killed server does not).
        static func running(in directory: String) -> [Session] {
            directoryEntries(directory).filter { $0.hasPrefix("mserve") && $0.hasSuffix(".ctl") }.sorted().compactMap { name in
                try? Session(path: directory + "/" + name)
            }
        }

        /// "mserve pid 4242, listening at 127.0.0.1:8081, serving demo", from `show stats`.
        var identity: String {
            guard case .success(let reply) = exchange("show stats"), let data = reply["data"] else { return "(it did not say who it is)" }
            func list(_ key: String) -> String {
                guard case .array(let items)? = data[key] else { return "?" }
                return items.compactMap(\.stringValue).joined(separator: ", ")
            }
            return "mserve pid \(data["pid"]?.text ?? "?"), listening at \(list("listening")), serving \(list("models"))"
        }

        /// One command's reply.
        func exchange(_ command: String) -> Result<JSON, SystemError> {
            let id = nextID
            nextID += 1
            let request: JSON = ["id": .int(Int64(id)), "command": .string(command), "args": []]
            do throws(SystemError) {
                try Socket.sendAll(fd, ControlFrameDecoder.encode(request.serialized()))
                guard let header = try Socket.receive(fd, count: 4) else { throw SystemError("the server closed the connection") }
                let length = header.reduce(0) { $0 << 8 | Int($1) }
                guard length <= ControlFrameDecoder.maxPayload * 64, let payload = try Socket.receive(fd, count: length) else {
                    throw SystemError("the server closed the connection")
                }
                guard case .success(let v) = Result(catching: { () throws(JSONParseError) in try JSONParser.parse(payload) }) else {
                    throw SystemError("the reply is not JSON")
                }
                return .success(v)
            } catch {
                connected = false
                return .failure(error)
            }
        }

        /// Sends one command and prints its reply; false if it failed.
        func run(_ command: String, json: Bool) -> Bool {
            let reply: JSON
            switch exchange(command) {
            case .success(let r): reply = r
            case .failure(let error):
                printError("mserve ctl: \(error)")
                return false
            }
            if json {
                print(reply.text)
                return reply["status"] == "ok"
            }
            guard reply["status"] == "ok" else {
                printError("error: \(reply["error"].map { if case .string(let s) = $0 { return s } else { return $0.text } } ?? reply.text)")
                return false
            }
            print(ControlClient.render(reply["data"] ?? .null), terminator: "")
            return true
        }
    }

    /// A reply's data for people: scalars as `key: value`, lists of objects as aligned tables
    /// (their nested lists as tables of their own, under the row's name).
    static func render(_ data: JSON, indent: String = "") -> String {
        guard case .object(let pairs) = data else { return indent + scalar(data) + "\n" }
        var out = ""
        for (key, value) in pairs {
            switch value {
            case .array(let rows) where rows.contains(where: \.isObject):
                out += "\(indent)\(key):\n" + table(rows, indent: indent + "  ")
            case .object:
                out += "\(indent)\(key):\n" + render(value, indent: indent + "  ")
            default:
                out += "\(indent)\(key): \(scalar(value))\n"
            }
        }
        return out
    }

    private static func table(_ rows: [JSON], indent: String) -> String {
        var columns: [String] = []
        for case .object(let pairs) in rows {
            for (k, v) in pairs where !columns.contains(k) {
                if case .array(let inner) = v, inner.contains(where: \.isObject) { continue }
                columns.append(k)
            }
        }
        var out = aligned([columns] + rows.map { row in columns.map { row[$0].map(scalar) ?? "" } }, indent: indent)
        for row in rows {
            guard case .object(let pairs) = row else { continue }
            for (k, v) in pairs {
                guard case .array(let inner) = v, inner.contains(where: \.isObject) else { continue }
                let name = row["name"].map(scalar) ?? row["pid"].map(scalar) ?? ""
                out += "\(indent)\(name) \(k):\n" + table(inner, indent: indent + "  ")
            }
        }
        return out
    }

    /// Rows of cells (the first is the header) in columns two spaces apart.
    static func aligned(_ rows: [[String]], indent: String = "") -> String {
        let widths = (rows.first ?? []).indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { values in
            indent
                + zip(values, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ")
                .trimmingTrailingSpaces() + "\n"
        }.joined()
    }

    private static func scalar(_ v: JSON) -> String {
        switch v {
        case .string(let s): return s
        case .array(let items): return items.map(scalar).joined(separator: ", ")
        default: return v.text
        }
    }
}

private extension String {
    func trimmingTrailingSpaces() -> String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
