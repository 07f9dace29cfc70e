import MServe

/// One command of the control socket, parsed from gunicornc's request
/// `{"id": 1, "command": "worker add", "args": ["2"]}` (the command text is split into words and the
/// args appended).  Pure: what the master does with it is in `Master+Control`.
public enum ControlCommand: Equatable, Sendable {
    case showWorkers, showStats, showConfig, showListeners, showModels
    case workerAdd(Int), workerRemove(Int), workerKill(Int32)
    case reload, reopen
    case shutdown(graceful: Bool)
    case drain, undrain
    case keysReload
    case help

    /// Every command with its synopsis, for `help` (in this order).
    public static let synopses: [(String, String)] = [
        ("show workers", "each worker: pid, slot, state, age, last heartbeat, requests, in flight, resident memory, CPU seconds"),
        ("show stats", "the master: uptime, workers current and target, spawned, reloads, requests, restarts, readiness"),
        ("show config", "every setting's running value"),
        ("show listeners", "the addresses served, with their sockets"),
        ("show models", "per worker and model: requests, in flight, running, queued, batches"),
        ("worker add [N]", "N more workers (default 1), as TTIN"),
        ("worker remove [N]", "N fewer workers (default 1, never below one), as TTOU"),
        ("worker kill PID", "replace that worker: it finishes its requests while its replacement starts"),
        ("reload", "re-read the command line and config file, new workers replace the old (as HUP)"),
        ("reopen", "reopen the log files (as USR1)"),
        ("shutdown [graceful|quick]", "stop: finish in-flight requests (graceful, as TERM) or not (quick, as INT)"),
        ("drain", "readiness (/readyz) answers 503 draining, so balancers stop sending; requests are still served"),
        ("undrain", "readiness answers as before drain"),
        ("keys reload", "re-read the keys file; new workers take it while the old ones finish (a reload)"),
        ("help", "this list")
    ]

    /// The request's id (echoed back) and its words, or why it is not a request.
    public static func request(_ payload: [UInt8]) -> (id: JSON, words: [String])? {
        guard case .success(let v) = Result(catching: { () throws(JSONParseError) in try JSONParser.parse(payload) }),
            case .string(let command)? = v["command"]
        else { return nil }
        var words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        if case .array(let args)? = v["args"] {
            words += args.map { if case .string(let s) = $0 { return s } else { return $0.text } }
        }
        return (v["id"] ?? .null, words)
    }

    /// The command these words name, or gunicornc's error text for them.
    public static func parse(_ words: [String]) -> Result<ControlCommand, ControlError> {
        let lowered = words.map { $0.lowercased() }
        func count(_ rest: ArraySlice<String>) -> Result<Int, ControlError> {
            guard let first = rest.first else { return .success(1) }
            guard rest.count == 1, let n = Int(first), n >= 1, n <= 64 else {
                return .failure(.invalidArgument("expected a count from 1 to 64, got \(rest.joined(separator: " "))"))
            }
            return .success(n)
        }
        func noArguments(_ c: ControlCommand, _ rest: ArraySlice<String>) -> Result<ControlCommand, ControlError> {
            rest.isEmpty
                ? .success(c) : .failure(.invalidArgument("\(words.prefix(words.count - rest.count).joined(separator: " ")) takes no arguments"))
        }
        switch (lowered.first, lowered.dropFirst().first) {
        case ("show", "workers"): return noArguments(.showWorkers, lowered.dropFirst(2))
        case ("show", "stats"): return noArguments(.showStats, lowered.dropFirst(2))
        case ("show", "config"): return noArguments(.showConfig, lowered.dropFirst(2))
        case ("show", "listeners"): return noArguments(.showListeners, lowered.dropFirst(2))
        case ("show", "models"): return noArguments(.showModels, lowered.dropFirst(2))
        case ("worker", "add"): return count(lowered.dropFirst(2)).map(ControlCommand.workerAdd)
        case ("worker", "remove"): return count(lowered.dropFirst(2)).map(ControlCommand.workerRemove)
        case ("worker", "kill"):
            let rest = lowered.dropFirst(2)
            guard rest.count == 1, let pid = Int32(rest[rest.startIndex]), pid > 0 else {
                return .failure(.invalidArgument("worker kill takes one worker pid"))
            }
            return .success(.workerKill(pid))
        case ("keys", "reload"): return noArguments(.keysReload, lowered.dropFirst(2))
        case ("reload", _): return noArguments(.reload, lowered.dropFirst())
        case ("reopen", _): return noArguments(.reopen, lowered.dropFirst())
        case ("drain", _): return noArguments(.drain, lowered.dropFirst())
        case ("undrain", _): return noArguments(.undrain, lowered.dropFirst())
        case ("help", _): return noArguments(.help, lowered.dropFirst())
        case ("shutdown", let mode):
            guard lowered.count <= 2 else { return .failure(.invalidArgument("shutdown takes graceful or quick")) }
            switch mode {
            case nil, "graceful": return .success(.shutdown(graceful: true))
            case "quick": return .success(.shutdown(graceful: false))
            default: return .failure(.invalidArgument("shutdown takes graceful or quick, got \(words[1])"))
            }
        default:
            return .failure(.unknownCommand(words.joined(separator: " ")))
        }
    }
}

/// What goes back as `{"status": "error", "error": TEXT}`, in gunicornc's wording.
public enum ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownCommand(String)
    case invalidArgument(String)
    case failed(String)
    case malformed(String)

    public var description: String {
        switch self {
        case .unknownCommand(let c): return "Unknown command: \(c.isEmpty ? "(empty)" : c); try help"
        case .invalidArgument(let m): return "Invalid argument: \(m)"
        case .failed(let m): return "Command failed: \(m)"
        case .malformed(let m): return "Malformed request: \(m)"
        }
    }
}

/// A reply as sent: `{"id", "status": "ok", "data"}` or `{"id", "status": "error", "error"}`.
public enum ControlReply {
    public static func encode(id: JSON, _ result: Result<JSON, ControlError>) -> [UInt8] {
        let body: JSON
        switch result {
        case .success(let data): body = ["id": id, "status": "ok", "data": data]
        case .failure(let e): body = ["id": id, "status": "error", "error": .string(e.description)]
        }
        return ControlFrameDecoder.encode(body.serialized())
    }
}
