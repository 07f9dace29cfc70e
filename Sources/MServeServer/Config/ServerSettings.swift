import MServe
import MServeSystem

/// Everything the master and its workers are configured with, after defaults, the config file and
/// the command line have been applied in that order: the master's own settings here, and what a
/// worker's handlers and models see as `serving` (MServe's `Settings`).
public struct ServerSettings: Sendable, Equatable {
    public var serving = Settings()
    public var binds: [String] = ["127.0.0.1:8000"]
    public var workers = 1
    public var backlog = 2048
    /// Permissions of `unix:PATH` sockets.
    public var unixSocketMode: UInt32 = 0o660
    public var gracefulTimeout = 30.0
    /// How long a worker told to retire (reload, scale-down, max-requests, a replacement) may finish
    /// what it has before it is stopped: long enough for a long generation, short enough that an
    /// old worker with an old keys file cannot linger.
    public var retireTimeout = 300.0
    /// Long enough for conf/haproxy/mserve.cfg's checks (inter 1s, fall 2) to take the server out.
    public var drainSeconds = 5.0
    public var timeout = 30.0
    public var bootTimeout = 300.0
    public var accessLogfile = "-"
    /// gunicorn's access_log_format atoms; empty: mserve's own format.
    public var accessLogformat = ""
    public var errorLogfile = "-"
    public var logLevel = LogLevel.info
    /// HAProxy's agent-check port, served by the master (HOST:PORT).
    public var agentBind: String? = nil
    /// `haproxy://HOST:PORT/BACKEND`: register with that HAProxy's runtime API; as this server name,
    /// at this address, with these server keywords.
    public var announce: String? = nil
    public var announceName: String? = nil
    public var announceAddress: String? = nil
    public var announceOptions: String? = nil
    public var maxRequests = 0
    public var maxRequestsJitter = 0
    public var pidfile: String? = nil
    /// The master's control socket (`mserve ctl`): nil for the default place (`controlSocketPath`).
    public var controlSocket: String? = nil
    public var controlSocketMode: UInt32 = 0o600
    public var noControlSocket = false
    /// Run the workers, and the master once it has bound its sockets, as this user and group.
    public var user: String? = nil
    public var group: String? = nil
    /// Change to this directory before loading the models.
    public var chdir: String? = nil
    /// HTTPS: the certificate chain and key (PEM), the CAs for client certificates, and whether a
    /// client must present one.
    public var certfile: String? = nil
    public var keyfile: String? = nil
    public var caCerts: String? = nil
    public var certReqs = TLSContext.ClientCertificates.none
    public var checkConfig = false
    public var preload = false

    public init() {}

    /// Where the control socket goes: --control-socket; else beside the pid file (`mserve.pid`:
    /// `mserve.ctl`); else in `controlSocketDirectory`, named after the first bind, so that two
    /// servers of one user never share one (nil with --no-control-socket).  `bound`: the first
    /// address as bound (a port 0 made a real one).
    public func controlSocketPath(environment: [String: String], bound: String) -> String? {
        if noControlSocket { return nil }
        if let controlSocket { return controlSocket }
        if let pidfile { return ServerSettings.controlSocket(besidePidFile: pidfile) }
        return ServerSettings.controlSocketDirectory(environment: environment) + "/"
            + ServerSettings.controlSocketName(bind: bound)
    }

    /// `$XDG_RUNTIME_DIR/mserve`, else `~/.mserve`: where `mserve ctl` looks for running servers.
    public static func controlSocketDirectory(environment: [String: String]) -> String {
        if let dir = environment["XDG_RUNTIME_DIR"], !dir.isEmpty { return dir + "/mserve" }
        return (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp") + "/.mserve"
    }

    /// `mserve-127.0.0.1-8081.ctl` for a bind of 127.0.0.1:8081 (`mserve ctl -b` finds it by the
    /// address).
    public static func controlSocketName(bind: String) -> String {
        var slug = ""
        for c in bind.unicodeScalars where c != "[" && c != "]" {
            slug.unicodeScalars.append(c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "-" ? c : c == ":" ? "-" : "_")
        }
        // A Unix socket's path must fit in 108 bytes, directory included.
        return "mserve-\(slug.prefix(48)).ctl"
    }

    /// `run/mserve.pid` → `run/mserve.ctl`: a pid file is one server's, and so is this.
    public static func controlSocket(besidePidFile pidfile: String) -> String {
        let base = pidfile.hasSuffix(".pid") ? String(pidfile.dropLast(4)) : pidfile
        return base + ".ctl"
    }
}
