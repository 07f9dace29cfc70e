import MServe

/// `--announce haproxy://HOST:PORT/BACKEND`: the master adds itself to that HAProxy backend through
/// its runtime API (a dynamic server) once every worker serves, puts itself in drain when it
/// begins to leave, and deletes itself once stopped: how FastChat's and HepAI's workers register
/// with their controller, done on a real balancer.  The commands are pure; `HAProxyRuntime` sends them.
public struct Announcement: Equatable, Sendable {
    /// HAProxy's runtime API (`stats socket ipv4@HOST:PORT level admin`).
    public var apiHost: String
    public var apiPort: Int
    public var backend: String
    /// The server's name in the backend, and the address HAProxy connects to.
    public var server: String
    public var address: String
    /// Server keywords: the backend's `default-server` line is not applied to dynamic servers.
    public var options: String

    public static let defaultOptions = "check inter 1s fall 2 rise 2 weight 100"

    public init(apiHost: String, apiPort: Int, backend: String, server: String, address: String, options: String) {
        self.apiHost = apiHost
        self.apiPort = apiPort
        self.backend = backend
        self.server = server
        self.address = address
        self.options = options
    }

    /// `haproxy://HOST:PORT/BACKEND`.
    public init(url: String, server: String?, address: String, agentPort: Int?, options: String?) throws(ConfigError) {
        guard url.hasPrefix("haproxy://") else { throw ConfigError("expected haproxy://HOST:PORT/BACKEND, got '\(url)'") }
        let rest = url.dropFirst("haproxy://".count)
        guard let slash = rest.firstIndex(of: "/"), let colon = rest[..<slash].lastIndex(of: ":") else {
            throw ConfigError("expected haproxy://HOST:PORT/BACKEND, got '\(url)'")
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let backend = String(rest[rest.index(after: slash)...])
        guard !host.isEmpty, let port = Int(rest[rest.index(after: colon)..<slash]), (1...65535).contains(port) else {
            throw ConfigError("expected haproxy://HOST:PORT/BACKEND with a port from 1 to 65535, got '\(url)'")
        }
        guard Announcement.isName(backend) else { throw ConfigError("backend name '\(backend)' is empty or has characters HAProxy refuses") }
        let name = server ?? "mserve-" + String(address.map { $0.isLetter || $0.isNumber ? $0 : "-" })
        guard Announcement.isName(name) else { throw ConfigError("server name '\(name)' is empty or has characters HAProxy refuses") }
        var keywords = options ?? Announcement.defaultOptions
        if let agentPort, !keywords.contains("agent-check") { keywords += " agent-check agent-port \(agentPort) agent-inter 1s" }
        self.init(apiHost: host, apiPort: port, backend: backend, server: name, address: address, options: keywords)
    }

    /// Letters, digits and `-_.:`, as HAProxy accepts in proxy and server names.
    static func isName(_ s: String) -> Bool {
        !s.isEmpty
            && s.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0))
            }
    }

    var target: String { "\(backend)/\(server)" }

    /// Added in maintenance, as every dynamic server is; its checks are switched on, then it is put
    /// in service.  A server of that name left by an earlier run (killed before it could delete
    /// itself) is taken over: `register` after `add` failed with "already exists".
    public var addCommand: String { "add server \(target) \(address) \(options)" }
    public var enableCommands: [String] {
        let words = options.split(separator: " ")
        return (words.contains("check") ? ["enable health \(target)"] : [])
            + (words.contains("agent-check") ? ["enable agent \(target)"] : [])
            + ["set server \(target) state ready"]
    }
    public var takeOverCommands: [String] { ["set server \(target) addr \(addressHost) port \(addressPort)"] + enableCommands }
    public var drainCommand: String { "set server \(target) state drain" }
    /// Once stopped: out of service, its idle connections closed, then deleted.
    public var removeCommands: [String] {
        ["set server \(target) state maint", "shutdown sessions server \(target)", "del server \(target)"]
    }

    private var addressHost: String {
        guard let colon = address.lastIndex(of: ":") else { return address }
        let h = address[..<colon]
        return h.hasPrefix("[") ? String(h.dropFirst().dropLast()) : String(h)
    }
    private var addressPort: String { address.lastIndex(of: ":").map { String(address[address.index(after: $0)...]) } ?? "" }

    /// HAProxy's answer to a command: success is an empty answer or one of its confirmations.
    public static func failure(in answer: String) -> String? {
        let text = String(answer.unicodeScalars.filter { $0 != "\n" && $0 != "\r" }).trimmingSpaces()
        let confirmations = ["New server registered.", "Server deleted."]
        return text.isEmpty || confirmations.contains(text) ? nil : text
    }
}

extension ServerSettings {
    /// --agent-bind, parsed (a TCP address).
    func agentAddress() throws(ConfigError) -> BindAddress? {
        guard let text = agentBind else { return nil }
        let a = try BindAddress(parsing: text)
        guard a.unixPath == nil else { throw ConfigError("--agent-bind: HAProxy's agent-check needs HOST:PORT, not a unix socket") }
        return a
    }

    /// --announce with its name, address and keywords; nil without --announce.
    func announcement() throws(ConfigError) -> Announcement? {
        guard let url = announce else { return nil }
        let address: String
        if let given = announceAddress {
            let a = try BindAddress(parsing: given)
            guard a.unixPath == nil, a.port != 0 else { throw ConfigError("--announce-address: expected HOST:PORT with a port, got '\(given)'") }
            address = a.description
        } else {
            let first = try binds.first.map { (b) throws(ConfigError) in try BindAddress(parsing: b) }
            guard let first, first.unixPath == nil, first.port != 0, !["0.0.0.0", "::", "*"].contains(first.host) else {
                throw ConfigError("--announce: the first --bind is not an address HAProxy can connect to; give --announce-address HOST:PORT")
            }
            address = first.description
        }
        let agentPort = try agentAddress()?.port
        guard agentPort != 0 else { throw ConfigError("--agent-bind with --announce: give the agent a fixed port") }
        return try Announcement(url: url, server: announceName, address: address, agentPort: agentPort, options: announceOptions)
    }
}
