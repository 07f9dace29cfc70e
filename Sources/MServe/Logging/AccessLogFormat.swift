import MServeSystem

/// A custom access-log line in gunicorn's `access_log_format` syntax: `%(h)s %(l)s %(u)s %(t)s
/// "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`.  Atoms: h remote address, l and u "-", t time in brackets,
/// r request line, m method, U path, q query, H protocol, s status, B body bytes, b body bytes or
/// "-", f referer, a user agent, T seconds (whole), M milliseconds, D microseconds, L seconds
/// (decimal), p "<pid>", rid the recordid, trace the W3C trace id (the caller's, or the one the
/// request began), {name}i a request header, {name}o a response header,
/// {name}e an environment variable.
public struct AccessLogFormat: Sendable, Equatable {
    enum Atom: Sendable, Equatable {
        case literal([UInt8])
        case remoteHost, dash, user, time, requestLine, method, path, query, proto, status, bytes, bytesOrDash
        case referer, userAgent, seconds, millis, micros, decimalSeconds, pid, recordID, trace
        case requestHeader(String), responseHeader(String), environment([UInt8])
    }

    let atoms: [Atom]

    public init(parsing text: String, environment: [String: String] = ProcessEnvironment.variables()) throws(ConfigError) {
        var atoms: [Atom] = []
        var literal: [UInt8] = []
        var rest = Substring(text)
        while let percent = rest.firstIndex(of: "%") {
            literal += Array(rest[..<percent].utf8)
            let after = rest[rest.index(after: percent)...]
            if after.hasPrefix("%") {
                literal.append(UInt8(ascii: "%"))
                rest = after.dropFirst()
                continue
            }
            guard after.hasPrefix("("), let close = after.firstIndex(of: ")"),
                after[after.index(after: close)...].hasPrefix("s")
            else {
                throw ConfigError("access_logformat: expected %(NAME)s at '\(after.prefix(12))'")
            }
            let name = String(after[after.index(after: after.startIndex)..<close])
            if !literal.isEmpty { atoms.append(.literal(literal)); literal = [] }
            atoms.append(try AccessLogFormat.atom(name, environment: environment))
            rest = after[after.index(close, offsetBy: 2)...]
        }
        literal += Array(rest.utf8)
        if !literal.isEmpty { atoms.append(.literal(literal)) }
        self.atoms = atoms
    }

    private static func atom(_ name: String, environment: [String: String]) throws(ConfigError) -> Atom {
        if name.hasPrefix("{") && name.count > 3, let close = name.lastIndex(of: "}") {
            let key = String(name[name.index(after: name.startIndex)..<close])
            switch name[name.index(after: close)...] {
            case "i": return .requestHeader(key)
            case "o": return .responseHeader(key)
            case "e": return .environment(Array((environment[key] ?? "-").utf8))
            default: break
            }
        }
        let simple: [String: Atom] = [
            "h": .remoteHost, "l": .dash, "u": .user, "t": .time, "r": .requestLine, "m": .method, "U": .path, "q": .query,
            "H": .proto, "s": .status, "B": .bytes, "b": .bytesOrDash, "f": .referer, "a": .userAgent, "T": .seconds,
            "M": .millis, "D": .micros, "L": .decimalSeconds, "p": .pid, "rid": .recordID, "trace": .trace
        ]
        guard let a = simple[name] else {
            throw ConfigError("access_logformat: unknown atom %(\(name))s (h l u t r m U q H s B b f a T M D L p rid {header}i {header}o {var}e)")
        }
        return a
    }

    func render(_ e: AccessLog.Entry, into line: inout ByteWriter, stamp: (inout ByteWriter) -> Void) {
        func text(_ s: String) { LogText.appendEscaped(s, to: &line) }
        let path = e.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        for atom in atoms {
            switch atom {
            case .literal(let bytes): line.append(contentsOf: bytes)
            case .remoteHost: text(e.remoteHost)
            case .dash: line.append(UInt8(ascii: "-"))
            case .time:
                line.append(UInt8(ascii: "["))
                stamp(&line)
                line.append(UInt8(ascii: "]"))
            case .requestLine: text("\(e.method) \(e.target) \(e.httpVersion)")
            case .method: text(e.method)
            case .path: text(String(path.first ?? ""))
            case .query: text(path.count > 1 ? String(path[1]) : "")
            case .proto: text(e.httpVersion)
            case .status: line.appendDecimal(e.status)
            case .bytes: line.appendDecimal(e.bytes)
            case .bytesOrDash: if e.bytes == 0 { line.append(UInt8(ascii: "-")) } else { line.appendDecimal(e.bytes) }
            case .referer: text(e.referer ?? "-")
            case .userAgent: text(e.userAgent ?? "-")
            case .seconds: line.appendDecimal(Int(e.durationSeconds))
            case .millis: line.appendDecimal(Int(e.durationSeconds * 1000))
            case .micros: line.appendDecimal(Int(e.durationSeconds * 1_000_000))
            case .decimalSeconds: AccessLog.appendSeconds(e.durationSeconds, to: &line)
            case .pid: text("<\(e.pid)>")
            case .recordID: text(e.recordID)
            case .trace: text(e.traceID ?? "-")
            case .user: text(e.user ?? "-")
            case .requestHeader(let name):
                // A key or signature never reaches a log line.
                text(LogText.isSecret(header: name) ? "[redacted]" : e.requestHeaders.first { $0.name.equalsIgnoringASCIICase(name) }?.value ?? "-")
            case .responseHeader(let name):
                text(e.responseHeaders.first { $0.0.equalsIgnoringASCIICase(name) }?.1 ?? "-")
            case .environment(let bytes): line.append(contentsOf: bytes)
            }
        }
    }
}
