import MServeHTTP

/// What a worker's handlers, models and HTTP layer are configured with: the part of the
/// configuration a model author's code sees (`HandlerContext.settings`).  The master's own settings
/// (sockets, workers, users, TLS files, logs, the balancer, the control socket) are MServeServer's
/// `ServerSettings`, which holds these as `serving`.
public struct Settings: Sendable, Equatable {
    public var models: [String] = []
    public var clientTimeout = 30.0
    public var keepAlive = 5.0
    public var maxBodySize = 10 * 1024 * 1024
    public var maxHeaderSize = 16 * 1024
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
    /// How far a signed request's timestamp may be from now, in seconds.
    public var signatureWindow = 300.0
    /// Whether /metrics needs a key when keys are on: "open" or "keyed".
    public var metricsAccess = "open"
    /// Every model's limits, unless its `[model.NAME]` table sets its own.
    public var limits = ModelLimits()
    /// A stream quiet this long gets an SSE comment (0: never).
    public var streamPing = 10.0
    /// A stream's bytes a connection may hold unsent before its model is paused (backpressure).
    public var streamBuffer = 1 << 20
    public var modelDir: String? = nil
    /// Directories Python models import from (gunicorn's --pythonpath), comma-separated.
    public var pythonPath: String? = nil
    /// The virtual environment Python models import packages from (else $VIRTUAL_ENV).
    public var pythonVenv: String? = nil
    /// The config file the settings were read from (named in messages about its model tables).
    public var config: String? = nil
    /// `[model.NAME]` tables of the config file.
    public var modelSettings: [String: ModelSettings] = [:]

    public init() {}

    public func settings(forModel name: String) -> ModelSettings {
        modelSettings[name] ?? ModelSettings()
    }

    /// The global limits with the model's own table's values over them: the table wins wherever
    /// the global value came from (default, file, environment or flag).
    public func limits(forModel name: String) -> ModelLimits {
        var l = limits
        for o in settings(forModel: name).limitOverrides { o.apply(&l) }
        return l
    }
}

/// The settings a `[model.NAME]` table may give one model; every other model has the global
/// values (`Settings.limits`).  A new per-model setting is a field here and its line in
/// MServeServer's `SettingTable` (which declares its key, flag, check and help).
public struct ModelLimits: Sendable, Equatable {
    /// Inferences at once per worker, each on its own model thread.
    public var limitConcurrency = 1
    public var queueSize = 16
    public var requestTimeout = 30.0
    /// Batching models: the most inputs one pass takes; generative models: the most sequences one step takes.
    public var maxBatchSize = 32
    public var batchTimeoutMs = 0
    /// Generative models: the tokens the KV cache holds, over all running sequences.
    public var kvCacheTokens = 16_384

    public init() {}
}

/// One value a `[model.NAME]` table gave a per-model setting, applied over the global limits.
public struct LimitOverride: Sendable, Equatable {
    public let key: String
    /// The value as text: what two overrides are compared by (a reload's "did it change").
    public let value: String
    let apply: @Sendable (inout ModelLimits) -> Void

    public init<T: Sendable>(key: String, _ field: WritableKeyPath<ModelLimits, T> & Sendable, _ value: T) {
        self.key = key
        self.value = String(describing: value)
        apply = { $0[keyPath: field] = value }
    }

    public static func == (a: LimitOverride, b: LimitOverride) -> Bool { a.key == b.key && a.value == b.value }
}

/// Per-model settings from the config file's `[model.NAME]` table: `device`, and every other key
/// passed to the model as an option.
public struct ModelSettings: Sendable, Equatable {
    public var device = "cpu"
    public var options: [String: JSON] = [:]
    /// Who may use the model when keys are on (HepAI's "groups: all; users: a, b; owner: c").
    public var permission: ModelPermission?
    /// The table's values of per-model settings (`ModelLimits`), in the order read.
    public var limitOverrides: [LimitOverride] = []

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
    /// A generative model's concurrency is the sequences a step takes (its engine runs them; no
    /// thread is given to a request).
    public func runtime(forModel name: String, generative: Bool = false) -> ModelRuntime {
        let l = limits(forModel: name)
        return ModelRuntime(
            concurrency: generative ? l.maxBatchSize : l.limitConcurrency, queueSize: l.queueSize, requestTimeout: l.requestTimeout,
            maxBatchSize: l.maxBatchSize, batchTimeout: Double(l.batchTimeoutMs) / 1000, kvCacheTokens: l.kvCacheTokens)
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
