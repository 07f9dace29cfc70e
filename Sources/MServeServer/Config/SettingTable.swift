import MServe

/// Every setting is declared once here: its key and flags, its type and default (the default is
/// `Settings`'s own value, and --help and the README show it formatted from there), its validator,
/// whether `[model.NAME]` may override it, and whether HUP applies it or it needs a restart.  The
/// command-line parser, the config-file loader, --help, the reload and the tests that check
/// `conf/mserve.toml` and the README's options table all read this table (gunicorn's `config.py`).
public struct Setting: Sendable {
    /// Whether a `[model.NAME]` table may set its own value.
    public enum Scope: Sendable { case global, perModel }
    /// Whether HUP applies a changed value, or keeps the running one until a restart.
    public enum Reload: Sendable { case live, restart }

    public let key: String
    public let flags: [String]
    /// Shown in --help; nil for a boolean flag that takes no value.
    public let metavar: String?
    public let help: String
    /// A repeatable flag: the first use on the command line replaces the file's list, later ones add.
    public let repeatable: Bool
    public let scope: Scope
    public let reload: Reload
    private let apply: @Sendable (inout ServerSettings, JSON, _ fromCommandLine: Bool) throws(ConfigError) -> Void
    private let applyToModel: (@Sendable (inout ModelSettings, JSON) throws(ConfigError) -> Void)?
    private let format: @Sendable (ServerSettings) -> String
    private let same: @Sendable (ServerSettings, ServerSettings) -> Bool
    private let keep: @Sendable (inout ServerSettings, ServerSettings) -> Void

    /// Where a setting's value lives: a field of the settings, or a field of `ModelLimits`, which
    /// is both the global value (`Settings.limits`) and what a `[model.NAME]` table may override.
    struct Place<T: Sendable>: Sendable {
        let get: @Sendable (ServerSettings) -> T
        let set: @Sendable (inout ServerSettings, T) -> Void
        let limit: (WritableKeyPath<ModelLimits, T> & Sendable)?

        static func field(_ kp: WritableKeyPath<ServerSettings, T> & Sendable) -> Place {
            Place(get: { $0[keyPath: kp] }, set: { $0[keyPath: kp] = $1 }, limit: nil)
        }

        static func limit(_ kp: WritableKeyPath<ModelLimits, T> & Sendable) -> Place {
            Place(get: { $0.serving.limits[keyPath: kp] }, set: { $0.serving.limits[keyPath: kp] = $1 }, limit: kp)
        }
    }

    /// A setting of type `T` at `kp`, read from text (command line) or typed values (TOML) by `parse`,
    /// which also validates.
    static func make<T: Equatable & Sendable>(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, T> & Sendable, metavar: String?,
        reload: Reload = .live, repeatable: Bool = false, show: @escaping @Sendable (T) -> String, _ help: String,
        parse: @escaping @Sendable (JSON, _ fromCommandLine: Bool, _ current: T) throws(ConfigError) -> T
    ) -> Setting {
        make(key, flags, .field(kp), metavar: metavar, reload: reload, repeatable: repeatable, show: show, help, parse: parse)
    }

    static func make<T: Equatable & Sendable>(
        _ key: String, _ flags: [String], _ place: Place<T>, metavar: String?, reload: Reload = .live, repeatable: Bool = false,
        show: @escaping @Sendable (T) -> String, _ help: String,
        parse: @escaping @Sendable (JSON, _ fromCommandLine: Bool, _ current: T) throws(ConfigError) -> T
    ) -> Setting {
        let apply: @Sendable (inout ServerSettings, JSON, Bool) throws(ConfigError) -> Void = { s, v, cli throws(ConfigError) in
            place.set(&s, try parse(v, cli, place.get(s)))
        }
        var applyToModel: (@Sendable (inout ModelSettings, JSON) throws(ConfigError) -> Void)? = nil
        if let limit = place.limit {
            applyToModel = { m, v throws(ConfigError) in
                let value = try parse(v, false, ModelLimits()[keyPath: limit])
                m.limitOverrides.removeAll { $0.key == key }
                m.limitOverrides.append(LimitOverride(key: key, limit, value))
            }
        }
        return Setting(
            key: key, flags: flags, metavar: metavar, help: help, repeatable: repeatable,
            scope: place.limit == nil ? .global : .perModel, reload: reload, apply: apply, applyToModel: applyToModel,
            format: { show(place.get($0)) }, same: { place.get($0) == place.get($1) }, keep: { place.set(&$0, place.get($1)) })
    }

    /// The default, as --help and the README show it.
    public var defaultText: String { format(ServerSettings()) }

    /// The value these settings have, as --help would show it (`show config`).
    public func valueText(_ settings: ServerSettings) -> String { format(settings) }

    /// Applies a value from the command line (text) or the config file (typed), naming `source` in errors.
    func set(_ settings: inout ServerSettings, _ value: JSON, source: String, fromCommandLine: Bool) throws(ConfigError) {
        do {
            try apply(&settings, value, fromCommandLine)
        } catch {
            throw ConfigError("\(source): \(error.message)")
        }
    }

    /// Applies a `[model.NAME]` override, with the same checks as the global key.
    func set(_ model: inout ModelSettings, _ value: JSON, source: String) throws(ConfigError) {
        guard let applyToModel else { throw ConfigError("\(source): not a per-model setting") }
        do {
            try applyToModel(&model, value)
        } catch {
            throw ConfigError("\(source): \(error.message)")
        }
    }

    /// For HUP: whether two configurations agree on this setting, and how to keep the running value.
    func isSame(_ a: ServerSettings, _ b: ServerSettings) -> Bool { same(a, b) }
    func keepRunning(_ next: inout ServerSettings, from running: ServerSettings) { keep(&next, running) }
}

extension Setting {
    static func int(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, Int> & Sendable, min: Int,
        metavar: String = "INT", _ help: String
    ) -> Setting {
        int(key, flags, .field(kp), min: min, metavar: metavar, help)
    }

    static func int(_ key: String, _ flags: [String], limit: WritableKeyPath<ModelLimits, Int> & Sendable, min: Int, _ help: String) -> Setting {
        int(key, flags, .limit(limit), min: min, metavar: "INT", help)
    }

    private static func int(_ key: String, _ flags: [String], _ place: Place<Int>, min: Int, metavar: String, _ help: String) -> Setting {
        make(key, flags, place, metavar: metavar, show: { String($0) }, help) { v, _, _ throws(ConfigError) in
            let n = try whole(v, from: { Int($0) }, expected: "an integer", example: "an integer")
            guard n >= min else { throw ConfigError("must be at least \(min), got \(n)") }
            return n
        }
    }

    /// A whole number from TOML's integer or from text (`parse`); `expected` and `example` name what
    /// was wanted in the two errors.
    private static func whole(_ v: JSON, from parse: (String) -> Int?, expected: String, example: String) throws(ConfigError) -> Int {
        switch v {
        case .int(let i): return Int(i)
        case .string(let t):
            guard let n = parse(t) else { throw ConfigError("expected \(example), got '\(t)'") }
            return n
        default: throw ConfigError("expected \(expected), got a \(v.typeName)")
        }
    }

    /// Byte sizes accept a plain number or a suffix: 512k, 10m, 1g.
    static func size(_ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, Int> & Sendable, _ help: String) -> Setting {
        make(key, flags, kp, metavar: "BYTES", show: showSize, help) { v, _, _ throws(ConfigError) in
            let n = try whole(v, from: parseSize, expected: "a size", example: "a size such as 1048576, 512k or 10m")
            guard n >= 1 else { throw ConfigError("must be at least 1 byte, got \(n)") }
            return n
        }
    }

    static func parseSize(_ t: String) -> Int? {
        let lower = t.lowercased()
        let units: [(String, Int)] = [("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)]
        for (suffix, mult) in units where lower.hasSuffix(suffix) {
            guard let n = Int(lower.dropLast()), n >= 0, n <= Int.max / mult else { return nil }
            return n * mult
        }
        return Int(lower)
    }

    @Sendable static func showSize(_ n: Int) -> String {
        for (suffix, shift) in [("g", 30), ("m", 20), ("k", 10)] where n > 0 && n % (1 << shift) == 0 { return "\(n >> shift)\(suffix)" }
        return String(n)
    }

    /// Seconds, fractions allowed, as gunicorn's timeouts.
    static func seconds(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, Double> & Sendable, _ help: String,
        zeroAllowed: Bool = false
    ) -> Setting {
        seconds(key, flags, .field(kp), help, zeroAllowed: zeroAllowed)
    }

    static func seconds(_ key: String, _ flags: [String], limit: WritableKeyPath<ModelLimits, Double> & Sendable, _ help: String) -> Setting {
        seconds(key, flags, .limit(limit), help, zeroAllowed: false)
    }

    private static func seconds(_ key: String, _ flags: [String], _ place: Place<Double>, _ help: String, zeroAllowed: Bool) -> Setting {
        make(key, flags, place, metavar: "SECONDS", show: { String(seconds: $0) }, help) { v, _, _ throws(ConfigError) in
            let x: Double
            switch v {
            case .int(let i): x = Double(i)
            case .double(let f): x = f
            case .string(let t):
                guard let f = Double(t) else { throw ConfigError("expected a number of seconds, got '\(t)'") }
                x = f
            default: throw ConfigError("expected a number of seconds, got a \(v.typeName)")
            }
            guard x.isFinite, x > 0 || (zeroAllowed && x == 0) else {
                throw ConfigError(zeroAllowed ? "must be 0 or a positive number of seconds" : "must be a positive number of seconds")
            }
            return x
        }
    }

    /// `check`: the value's own validator (a ConfigError saying what is wrong), run as it is read.
    static func string(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, String> & Sendable,
        metavar: String, reload: Reload = .live, check: (@Sendable (String) throws(ConfigError) -> Void)? = nil, _ help: String
    ) -> Setting {
        make(key, flags, kp, metavar: metavar, reload: reload, show: { $0 }, help) { v, _, _ throws(ConfigError) in
            guard case .string(let t) = v, !t.isEmpty else { throw ConfigError("expected a non-empty string") }
            try check?(t)
            return t
        }
    }

    /// A route's path: `/...`, or `off`.
    static let pathOrOff: @Sendable (String) throws(ConfigError) -> Void = { path throws(ConfigError) in
        guard path == "off" || path.hasPrefix("/") else { throw ConfigError("must start with / or be off, got '\(path)'") }
    }

    static func optionalString(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, String?> & Sendable,
        metavar: String, reload: Reload = .live, _ help: String
    ) -> Setting {
        make(key, flags, kp, metavar: metavar, reload: reload, show: { $0 ?? "none" }, help) { v, _, _ throws(ConfigError) in
            guard case .string(let t) = v, !t.isEmpty else { throw ConfigError("expected a non-empty string") }
            return t
        }
    }

    static func octalMode(_ v: JSON) throws(ConfigError) -> UInt32 {
        guard case .string(let t) = v, let mode = UInt32(t, radix: 8), mode <= 0o777 else {
            throw ConfigError("expected an octal mode such as 0660, got \(v.text)")
        }
        return mode
    }

    static func flag(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, Bool> & Sendable,
        reload: Reload = .live, _ help: String
    ) -> Setting {
        make(key, flags, kp, metavar: nil, reload: reload, show: { $0 ? "on" : "off" }, help) { v, _, _ throws(ConfigError) in
            guard let b = BooleanSetting.value(v) else { throw ConfigError("expected \(BooleanSetting.expected)") }
            return b
        }
    }

    static func list(
        _ key: String, _ flags: [String], _ kp: WritableKeyPath<ServerSettings, [String]> & Sendable,
        metavar: String, reload: Reload = .live, check: (@Sendable (String) throws(ConfigError) -> Void)? = nil, _ help: String
    ) -> Setting {
        make(
            key, flags, kp, metavar: metavar, reload: reload, repeatable: true,
            show: { $0.isEmpty ? "none" : $0.joined(separator: ", ") }, help
        ) { v, fromCommandLine, current throws(ConfigError) in
            switch v {
            case .string(let t) where !t.isEmpty:
                try check?(t)
                return fromCommandLine ? current + [t] : [t]
            case .array(let items):
                var out: [String] = []
                for item in items {
                    guard case .string(let t) = item, !t.isEmpty else { throw ConfigError("expected a list of strings") }
                    try check?(t)
                    out.append(t)
                }
                guard !out.isEmpty else { throw ConfigError("must not be empty") }
                return out
            default: throw ConfigError("expected a string or a list of strings")
            }
        }
    }
}

public enum SettingTable {
    public static let all: [Setting] = [
        .optionalString(
            "config", ["-c", "--config"], \.serving.config, metavar: "FILE",
            "Load settings from this TOML file (see conf/mserve.toml); command-line flags override it."),
        .list(
            "bind", ["-b", "--bind"], \.binds, metavar: "ADDRESS", reload: .restart,
            check: { b throws(ConfigError) in _ = try BindAddress(parsing: b) },
            "Listen on HOST:PORT ([HOST]:PORT for IPv6). Repeat to listen on several addresses; port 0 picks a free port."),
        .int(
            "workers", ["-w", "--workers"], \.workers, min: 1,
            "Number of worker processes; each owns its own instance of every model."),
        .make(
            "unix_socket_mode", ["--unix-socket-mode"], \.unixSocketMode, metavar: "MODE", show: { "0" + String($0, radix: 8) },
            "Permissions of unix:PATH sockets (octal); with --user/--group the socket is theirs, so 0660 lets the group's balancer in."
        ) { v, _, _ throws(ConfigError) in
            try Setting.octalMode(v)
        },
        .int(
            "backlog", ["--backlog"], \.backlog, min: 1,
            "Connections the kernel may queue on each worker's socket before refusing more."),
        .seconds(
            "graceful_timeout", ["--graceful-timeout"], \.gracefulTimeout,
            "On TERM, how long workers may finish in-flight requests before they are killed."),
        .seconds(
            "retire_timeout", ["--retire-timeout"], \.retireTimeout,
            "A worker retired by HUP, TTOU, max-requests or a replacement finishes its in-flight requests and streams within this long; then it is stopped (QUIT, then SIGKILL)."
        ),
        .seconds(
            "drain_seconds", ["--drain-seconds"], \.drainSeconds,
            "On TERM, how long /readyz answers 503 while every request is still served, so that a balancer's health checks take this server out first; 0 stops at once.  INT and QUIT never drain.",
            zeroAllowed: true),
        .seconds(
            "timeout", ["-t", "--timeout"], \.timeout,
            "A worker whose event loop has not reported for this long is killed (SIGABRT, then SIGKILL) and replaced.  Inference runs on model threads and does not count."
        ),
        .seconds(
            "boot_timeout", ["--boot-timeout"], \.bootTimeout,
            "How long a worker may take to load its models and start serving before it is killed."),
        .seconds(
            "client_timeout", ["--client-timeout"], \.serving.clientTimeout,
            "How long a client may take to send a request or read an answer."),
        .seconds(
            "keep_alive", ["--keep-alive"], \.serving.keepAlive,
            "How long a keep-alive connection may stay idle between requests before it is closed.  A balancer's idle timeout for its pooled connections must be shorter."
        ),
        .size(
            "max_body_size", ["--max-body-size"], \.serving.maxBodySize,
            "Largest request body accepted; larger ones get 413."),
        .size(
            "max_header_size", ["--max-header-size"], \.serving.maxHeaderSize,
            "Largest request line plus headers accepted; larger ones get 431."),
        .string(
            "access_logfile", ["--access-logfile"], \.accessLogfile, metavar: "FILE", reload: .restart,
            "Access log: a path, '-' for stdout, or 'off'."),
        .make(
            "access_logformat", ["--access-logformat"], \.accessLogformat, metavar: "FORMAT", show: { $0.isEmpty ? "mserve's" : $0 },
            "Access log line in gunicorn's atoms (%(h)s %(t)s \"%(r)s\" %(s)s %(b)s %(a)s %(L)s %(rid)s %(trace)s %({x-forwarded-for}i)s ...); unset: mserve's format."
        ) { v, _, _ throws(ConfigError) in
            guard case .string(let t) = v else { throw ConfigError("expected a string") }
            _ = try AccessLogFormat(parsing: t)
            return t
        },
        .string(
            "error_logfile", ["--error-logfile"], \.errorLogfile, metavar: "FILE", reload: .restart,
            "Error (application) log: a path or '-' for stderr."),
        .make(
            "log_level", ["--log-level"], \.logLevel, metavar: "LEVEL", show: { $0.name.lowercased() },
            "debug, info, warning, error or critical. Request and response lines are at info."
        ) { v, _, _ throws(ConfigError) in
            guard case .string(let t) = v, let level = LogLevel(name: t) else {
                throw ConfigError("expected one of debug, info, warning, error, critical")
            }
            return level
        },
        .int(
            "log_body_limit", ["--log-body-limit"], \.serving.logBodyLimit, min: 0, metavar: "BYTES",
            "How many bytes of each request and response body the request/response log lines show."),
        .string(
            "health_path", ["--health-path"], \.serving.healthPath, metavar: "PATH", check: Setting.pathOrOff,
            "Liveness: 200 while the worker's event loop runs.  'off' disables it."),
        .string(
            "ready_path", ["--ready-path"], \.serving.readyPath, metavar: "PATH", check: Setting.pathOrOff,
            "Readiness: 503 until every worker has loaded its models, and while stopping.  'off' disables it."),
        .string(
            "metrics_path", ["--metrics-path"], \.serving.metricsPath, metavar: "PATH", check: Setting.pathOrOff,
            "Prometheus metrics of all workers, whichever answers.  'off' disables it."),
        .make(
            "forwarded_allow_ips", ["--forwarded-allow-ips"], \.serving.forwardedAllowIPs, metavar: "ADDRESSES",
            show: { $0.joined(separator: ",") },
            "Proxies (addresses, comma-separated, or *) whose X-Forwarded-For names the client in the access log."
        ) { v, _, _ throws(ConfigError) in
            let items: [String]
            switch v {
            case .string(let t): items = t.split(separator: ",").map { String($0.trimmingSpaces()) }.filter { !$0.isEmpty }
            case .array(let a): items = a.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
            default: throw ConfigError("expected addresses separated by commas, or *")
            }
            for item in items where item != "*" && !ForwardedFor.isAddress(item) {
                throw ConfigError("'\(item)' is not an IP address (names and networks are not accepted)")
            }
            return items
        },
        .make(
            "ui", ["--ui"], \.serving.ui, metavar: "on/off", show: { $0 ? "on" : "off" },
            "The web page at / for browsers (a form for every model) and the status page at /status; off: JSON only."
        ) { v, _, _ throws(ConfigError) in
            guard let b = BooleanSetting.value(v) else { throw ConfigError("expected on or off (or true/false, yes/no)") }
            return b
        },
        .optionalString(
            "agent_bind", ["--agent-bind"], \.agentBind, metavar: "ADDRESS", reload: .restart,
            "Answer HAProxy's agent-check on HOST:PORT (served by the master): ready, drain or down, and a weight from free model slots and queue depth."
        ),
        .optionalString(
            "announce", ["--announce"], \.announce, metavar: "URL", reload: .restart,
            "haproxy://HOST:PORT/BACKEND: once every worker serves, add this server to that backend through HAProxy's runtime API; drain it on TERM, delete it after stopping."
        ),
        .optionalString(
            "announce_name", ["--announce-name"], \.announceName, metavar: "NAME", reload: .restart,
            "The server's name in the HAProxy backend; default mserve- and its address."),
        .optionalString(
            "announce_address", ["--announce-address"], \.announceAddress, metavar: "HOST:PORT", reload: .restart,
            "The address HAProxy connects to; default the first --bind (which must then name a specific host)."),
        .optionalString(
            "announce_options", ["--announce-options"], \.announceOptions, metavar: "KEYWORDS", reload: .restart,
            "HAProxy server keywords for the announced server; default 'check inter 1s fall 2 rise 2 weight 100', plus agent-check with --agent-bind."
        ),
        .optionalString(
            "keys_file", ["--keys-file"], \.serving.keysFile, metavar: "FILE",
            "API keys (mserve keys add writes it): every route but health, readiness and open metrics then needs a key; HUP re-reads it."),
        .seconds(
            "signature_window", ["--signature-window"], \.serving.signatureWindow,
            "Signed requests: how far their timestamp may be from now; a nonce is refused the second time within it."),
        .make(
            "metrics_access", ["--metrics-access"], \.serving.metricsAccess, metavar: "MODE", show: { $0 },
            "With keys on: whether /metrics answers without a key (open) or needs one (keyed)."
        ) { v, _, _ throws(ConfigError) in
            guard case .string(let t) = v, t == "open" || t == "keyed" else { throw ConfigError("expected open or keyed, got \(v.text)") }
            return t
        },
        .int(
            "max_requests", ["--max-requests"], \.maxRequests, min: 0,
            "Recycle a worker after this many requests (0: never); its replacement starts first."),
        .int(
            "max_requests_jitter", ["--max-requests-jitter"], \.maxRequestsJitter, min: 0,
            "Add a random 0..N to each worker's max-requests, so that workers do not recycle together."),
        .int(
            "limit_concurrency", ["--limit-concurrency"], limit: \.limitConcurrency, min: 1,
            "Inferences run at once per model per worker, each on its own model thread."),
        .int(
            "queue_size", ["--queue-size"], limit: \.queueSize, min: 0,
            "Requests that may wait per model per worker; when full, new ones get 503 at once."),
        .seconds(
            "request_timeout", ["--request-timeout"], limit: \.requestTimeout,
            "A request not answered by then gets 504; if it was still queued, it never runs."),
        .int(
            "max_batch_size", ["--max-batch-size"], limit: \.maxBatchSize, min: 1,
            "Batching models (minilm): the most inputs one forward pass takes from the queue; generative models (smollm2): the most sequences one step takes, each request one."
        ),
        .int(
            "batch_timeout_ms", ["--batch-timeout-ms"], limit: \.batchTimeoutMs, min: 0,
            "Batching models: how long a pass waits for more requests when the queue is empty (0: it takes what is queued)."),
        .int(
            "kv_cache_tokens", ["--kv-cache-tokens"], limit: \.kvCacheTokens, min: 16,
            "Generative models: the tokens their KV cache holds per worker, over all running sequences (a request waits until its prompt and max_tokens fit)."
        ),
        .seconds(
            "stream_ping", ["--stream-ping"], \.serving.streamPing,
            "A stream that has sent nothing for this long gets an SSE comment (': ping'), so that clients and proxies keep it open (0: never).",
            zeroAllowed: true),
        .int(
            "stream_buffer", ["--stream-buffer"], \.serving.streamBuffer, min: 4096, metavar: "BYTES",
            "A stream's bytes a client may leave unread before the model making it is paused (its next piece waits); it goes on when half of them are read."
        ),
        .optionalString(
            "model_dir", ["--model-dir"], \.serving.modelDir, metavar: "DIR",
            "Where models read their files (minilm: models/all-MiniLM-L6-v2 unless set); [model.NAME] model_dir overrides."),
        .optionalString(
            "pythonpath", ["--pythonpath"], \.serving.pythonPath, metavar: "DIRS",
            "Comma-separated directories Python models import from (NAME=module:Attribute), as gunicorn's --pythonpath."),
        .optionalString(
            "python_venv", ["--python-venv"], \.serving.pythonVenv, metavar: "DIR",
            "The virtual environment whose packages Python models import (default: $VIRTUAL_ENV); its Python must be the embedded one's version."),
        .optionalString(
            "certfile", ["--certfile"], \.certfile, metavar: "FILE",
            "Serve HTTPS with this certificate chain (PEM); --keyfile is its key.  HUP loads new files."),
        .optionalString("keyfile", ["--keyfile"], \.keyfile, metavar: "FILE", "The private key of --certfile (PEM)."),
        .optionalString(
            "ca_certs", ["--ca-certs"], \.caCerts, metavar: "FILE", "CA certificates (PEM) that client certificates are checked against."),
        .make(
            "cert_reqs", ["--cert-reqs"], \.certReqs, metavar: "MODE", show: { $0.rawValue },
            "Client certificates: none, optional (checked if sent) or required (0, 1, 2 as gunicorn's)."
        ) { v, _, _ throws(ConfigError) in
            let text: String
            switch v {
            case .int(let i): text = String(i)
            case .string(let t): text = t
            default: throw ConfigError("expected none, optional or required")
            }
            let byNumber: [String: TLSContext.ClientCertificates] = ["0": .none, "1": .optional, "2": .required]
            guard let mode = TLSContext.ClientCertificates(rawValue: text) ?? byNumber[text] else {
                throw ConfigError("expected none, optional or required (or 0, 1, 2), got '\(text)'")
            }
            return mode
        },
        .optionalString(
            "user", ["-u", "--user"], \.user, metavar: "USER", reload: .restart,
            "Once the sockets are bound, the master and its workers run as this user (a name or uid); mserve must start as root."),
        .optionalString(
            "group", ["-g", "--group"], \.group, metavar: "GROUP", reload: .restart,
            "With --user: the group (a name or gid); default: the user's own group."),
        .optionalString(
            "chdir", ["--chdir"], \.chdir, metavar: "DIR", reload: .restart,
            "Change to this directory before loading the models (relative model and log paths start there)."),
        .optionalString("pid", ["-p", "--pid"], \.pidfile, metavar: "FILE", reload: .restart, "Write the master's pid to this file."),
        .optionalString(
            "control_socket", ["--control-socket"], \.controlSocket, metavar: "PATH", reload: .restart,
            "The master's control socket for mserve ctl; default: beside the pid file (PIDFILE less .pid, plus .ctl), else $XDG_RUNTIME_DIR/mserve/ (else ~/.mserve/) mserve-HOST-PORT.ctl after the first bind."
        ),
        .make(
            "control_socket_mode", ["--control-socket-mode"], \.controlSocketMode, metavar: "MODE", reload: .restart,
            show: { "0" + String($0, radix: 8) },
            "Permissions of the control socket (octal); it is the only access control: 0600 lets only the server's user in."
        ) { v, _, _ throws(ConfigError) in
            try Setting.octalMode(v)
        },
        .flag("no_control_socket", ["--no-control-socket"], \.noControlSocket, reload: .restart, "Run without a control socket."),
        .flag(
            "preload", ["--preload"], \.preload, reload: .restart,
            "Load the models once in the master before forking: workers share them copy-on-write, and a respawn loads nothing."),
        .flag("check_config", ["--check-config"], \.checkConfig, "Check the configuration and the model names, then exit."),
        .list(
            "models", [], \.serving.models, metavar: "MODEL",
            "Models to serve (the command line's MODEL arguments); each is served at /NAME.")
    ]

    public static func setting(forKey key: String) -> Setting? { all.first { $0.key == key } ?? formerKeys[key].flatMap(setting(forKey:)) }
    /// Keys of earlier versions, still read.
    static let formerKeys = ["keepalive": "keep_alive"]

    /// The keys a `[model.NAME]` table may override; its other keys are the model's options.
    public static var perModelKeys: Set<String> { Set(all.filter { $0.scope == .perModel }.map(\.key)) }
    public static func setting(forFlag flag: String) -> Setting? { all.first { $0.flags.contains(flag) } }
}
