import MServeHTTP

/// Everything the master and its workers are configured with, after defaults, the config file and
/// the command line have been applied in that order.
public struct Settings: Sendable, Equatable {
    public var models: [String] = []
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
    public var clientTimeout = 30.0
    public var keepAlive = 5.0
    public var maxBodySize = 10 * 1024 * 1024
    public var maxHeaderSize = 16 * 1024
    public var accessLogfile = "-"
    /// gunicorn's access_log_format atoms; empty: mserve's own format.
    public var accessLogformat = ""
    public var errorLogfile = "-"
    public var logLevel = LogLevel.info
    public var logBodyLimit = 1024
    public var healthPath = "/healthz"
    public var readyPath = "/readyz"
    public var metricsPath = "/metrics"
    /// API keys (`--keys-file`): nil, every request is served; set, every route but the open ones
    /// needs a key.  `apiKeys` is the file as read by the master (at start and on each HUP), which
    /// its workers inherit.
    public var keysFile: String? = nil
    public var apiKeys: [APIKey] = []
    /// Peers trusted to say who the client was (X-Forwarded-For); "*" trusts every peer.
    public var forwardedAllowIPs = ["127.0.0.1", "::1"]
    /// The web page at `/` for browsers and the status page (`--ui off`: JSON only).
    public var ui = true
    /// HAProxy's agent-check port, served by the master (HOST:PORT).
    public var agentBind: String? = nil
    /// `haproxy://HOST:PORT/BACKEND`: register with that HAProxy's runtime API; as this server name,
    /// at this address, with these server keywords.
    public var announce: String? = nil
    public var announceName: String? = nil
    public var announceAddress: String? = nil
    public var announceOptions: String? = nil
    /// How far a signed request's timestamp may be from now, in seconds.
    public var signatureWindow = 300.0
    /// Whether /metrics needs a key when keys are on: "open" or "keyed".
    public var metricsAccess = "open"
    public var maxRequests = 0
    public var maxRequestsJitter = 0
    public var limitConcurrency = 1
    public var queueSize = 16
    public var requestTimeout = 30.0
    public var maxBatchSize = 32
    public var batchTimeoutMs = 0
    public var kvCacheTokens = 16_384
    /// A stream quiet this long gets an SSE comment (0: never).
    public var streamPing = 10.0
    /// A stream's bytes a connection may hold unsent before its model is paused (backpressure).
    public var streamBuffer = 1 << 20
    public var modelDir: String? = nil
    /// Directories Python models import from (gunicorn's --pythonpath), comma-separated.
    public var pythonPath: String? = nil
    /// The virtual environment Python models import packages from (else $VIRTUAL_ENV).
    public var pythonVenv: String? = nil
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
    public var config: String? = nil
    public var checkConfig = false
    public var preload = false
    /// `[model.NAME]` tables of the config file.
    public var modelSettings: [String: ModelSettings] = [:]

    public init() {}

    /// Where the control socket goes: --control-socket; else beside the pid file (`mserve.pid`:
    /// `mserve.ctl`); else in `controlSocketDirectory`, named after the first bind, so that two
    /// servers of one user never share one (nil with --no-control-socket).  `bound`: the first
    /// address as bound (a port 0 made a real one).
    public func controlSocketPath(environment: [String: String], bound: String) -> String? {
        if noControlSocket { return nil }
        if let controlSocket { return controlSocket }
        if let pidfile { return Settings.controlSocket(besidePidFile: pidfile) }
        return Settings.controlSocketDirectory(environment: environment) + "/"
            + Settings.controlSocketName(bind: bound)
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

    public func settings(forModel name: String) -> ModelSettings {
        modelSettings[name] ?? ModelSettings()
    }
}

/// Per-model settings from the config file's `[model.NAME]` table: `device`, and every other key
/// passed to the model as an option.
public struct ModelSettings: Sendable, Equatable {
    public var device = "cpu"
    public var options: [String: JSON] = [:]
    /// Who may use the model when keys are on (HepAI's "groups: all; users: a, b; owner: c").
    public var permission: ModelPermission?
    /// Per-model values of the settings whose scope is per-model (SettingTable), where the table sets them.
    public var limitConcurrency: Int?
    public var queueSize: Int?
    public var requestTimeout: Double?
    public var maxBatchSize: Int?
    public var batchTimeoutMs: Int?
    public var kvCacheTokens: Int?

    public init(device: String = "cpu", options: [String: JSON] = [:]) {
        self.device = device
        self.options = options
    }
}

/// How a worker runs one model: its threads, queue and deadline.
public struct ModelRuntime: Sendable, Equatable {
    public var concurrency: Int
    public var queueSize: Int
    public var requestTimeout: Double
    /// Batching models: the most inputs one pass takes, and how long a pass may wait for more.
    /// Generative models: the most sequences one step takes.
    public var maxBatchSize = 1
    public var batchTimeout = 0.0
    /// Generative models: the tokens the KV cache holds, over all running sequences.
    public var kvCacheTokens = 16_384

    public init(
        concurrency: Int, queueSize: Int, requestTimeout: Double, maxBatchSize: Int = 1, batchTimeout: Double = 0,
        kvCacheTokens: Int = 16_384
    ) {
        self.concurrency = concurrency
        self.queueSize = queueSize
        self.requestTimeout = requestTimeout
        self.maxBatchSize = maxBatchSize
        self.batchTimeout = batchTimeout
        self.kvCacheTokens = kvCacheTokens
    }
}

extension Settings {
    /// The model's own table wins over the global settings.  A generative model's concurrency is
    /// the sequences a step takes (its engine runs them; no thread is given to a request).
    public func runtime(forModel name: String, generative: Bool = false) -> ModelRuntime {
        let m = settings(forModel: name)
        let batch = m.maxBatchSize ?? maxBatchSize
        return ModelRuntime(
            concurrency: generative ? batch : m.limitConcurrency ?? limitConcurrency, queueSize: m.queueSize ?? queueSize,
            requestTimeout: m.requestTimeout ?? requestTimeout, maxBatchSize: batch,
            batchTimeout: Double(m.batchTimeoutMs ?? batchTimeoutMs) / 1000, kvCacheTokens: m.kvCacheTokens ?? kvCacheTokens)
    }
}

/// A bad setting, named the way the user wrote it (flag or config key), with what is wrong.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Settings {
    /// What the HTTP layer enforces.
    package var httpLimits: HTTPServer.Limits {
        HTTPServer.Limits(
            maxHeaderSize: maxHeaderSize, maxBodySize: maxBodySize,
            timeouts: ConnectionTimeouts(keepAlive: keepAlive, client: clientTimeout))
    }
}
