import MServe
/// Every setting is declared once here; the command-line parser, the config-file loader, `--help`
/// and the test that checks `conf/mserve.toml` documents every key all read this table
/// (gunicorn's `config.py` pattern).
public struct Setting: Sendable {
    public let key: String
    public let flags: [String]
    /// Shown in --help; nil for a boolean flag that takes no value.
    public let metavar: String?
    public let help: String
    public let defaultText: String
    /// A repeatable flag: the first use on the command line replaces the file's list, later ones add.
    public let repeatable: Bool
    let apply: @Sendable (inout Settings, JSON, _ fromCommandLine: Bool) throws(ConfigError) -> Void

    /// Applies a value from the command line (text) or the config file (typed), naming `source` in errors.
    func set(_ settings: inout Settings, _ value: JSON, source: String, fromCommandLine: Bool) throws(ConfigError) {
        do {
            try apply(&settings, value, fromCommandLine)
        } catch {
            throw ConfigError("\(source): \(error.message)")
        }
    }
}

extension Setting {
    static func int(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, Int> & Sendable,
                    min: Int, metavar: String = "INT", default d: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: metavar, help: help, defaultText: d, repeatable: false) { s, v, _ throws(ConfigError) in
            let n: Int
            switch v {
            case .int(let i): n = Int(i)
            case .string(let t):
                guard let i = Int(t) else { throw ConfigError("expected an integer, got '\(t)'") }
                n = i
            default: throw ConfigError("expected an integer, got a \(v.typeName)")
            }
            guard n >= min else { throw ConfigError("must be at least \(min), got \(n)") }
            s[keyPath: kp] = n
        }
    }

    /// Byte sizes accept a plain number or a suffix: 512k, 10m, 1g.
    static func size(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, Int> & Sendable,
                     default d: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: "BYTES", help: help, defaultText: d, repeatable: false) { s, v, _ throws(ConfigError) in
            let n: Int
            switch v {
            case .int(let i): n = Int(i)
            case .string(let t):
                guard let parsed = parseSize(t) else { throw ConfigError("expected a size such as 1048576, 512k or 10m, got '\(t)'") }
                n = parsed
            default: throw ConfigError("expected a size, got a \(v.typeName)")
            }
            guard n >= 1 else { throw ConfigError("must be at least 1 byte, got \(n)") }
            s[keyPath: kp] = n
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

    /// Seconds, fractions allowed, as gunicorn's timeouts.
    static func seconds(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, Double> & Sendable,
                        default d: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: "SECONDS", help: help, defaultText: d, repeatable: false) { s, v, _ throws(ConfigError) in
            let x: Double
            switch v {
            case .int(let i): x = Double(i)
            case .double(let f): x = f
            case .string(let t):
                guard let f = Double(t) else { throw ConfigError("expected a number of seconds, got '\(t)'") }
                x = f
            default: throw ConfigError("expected a number of seconds, got a \(v.typeName)")
            }
            guard x.isFinite, x > 0 else { throw ConfigError("must be a positive number of seconds") }
            s[keyPath: kp] = x
        }
    }

    static func string(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, String> & Sendable,
                       metavar: String, default d: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: metavar, help: help, defaultText: d, repeatable: false) { s, v, _ throws(ConfigError) in
            guard case .string(let t) = v, !t.isEmpty else { throw ConfigError("expected a non-empty string") }
            s[keyPath: kp] = t
        }
    }

    static func optionalString(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, String?> & Sendable,
                               metavar: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: metavar, help: help, defaultText: "none", repeatable: false) { s, v, _ throws(ConfigError) in
            guard case .string(let t) = v, !t.isEmpty else { throw ConfigError("expected a non-empty string") }
            s[keyPath: kp] = t
        }
    }

    static func flag(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, Bool> & Sendable, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: nil, help: help, defaultText: "false", repeatable: false) { s, v, _ throws(ConfigError) in
            switch v {
            case .bool(let b): s[keyPath: kp] = b
            case .string("true"): s[keyPath: kp] = true
            case .string("false"): s[keyPath: kp] = false
            default: throw ConfigError("expected true or false")
            }
        }
    }

    static func list(_ key: String, _ flags: [String], _ kp: WritableKeyPath<Settings, [String]> & Sendable,
                     metavar: String, default d: String, _ help: String) -> Setting {
        Setting(key: key, flags: flags, metavar: metavar, help: help, defaultText: d, repeatable: true) { s, v, fromCommandLine throws(ConfigError) in
            switch v {
            case .string(let t) where !t.isEmpty:
                s[keyPath: kp] = fromCommandLine ? s[keyPath: kp] + [t] : [t]
            case .array(let items):
                var out: [String] = []
                for item in items {
                    guard case .string(let t) = item, !t.isEmpty else { throw ConfigError("expected a list of strings") }
                    out.append(t)
                }
                guard !out.isEmpty else { throw ConfigError("must not be empty") }
                s[keyPath: kp] = out
            default: throw ConfigError("expected a string or a list of strings")
            }
        }
    }
}

public enum SettingTable {
    public static let all: [Setting] = [
        .optionalString("config", ["-c", "--config"], \.config, metavar: "FILE",
                        "Load settings from this TOML file (see conf/mserve.toml); command-line flags override it."),
        .list("bind", ["-b", "--bind"], \.binds, metavar: "ADDRESS", default: "127.0.0.1:8000",
              "Listen on HOST:PORT ([HOST]:PORT for IPv6). Repeat to listen on several addresses; port 0 picks a free port."),
        .int("workers", ["-w", "--workers"], \.workers, min: 1, default: "1",
             "Number of worker processes; each owns its own instance of every model."),
        .int("backlog", ["--backlog"], \.backlog, min: 1, default: "2048",
             "Connections the kernel may queue on each worker's socket before refusing more."),
        .seconds("graceful_timeout", ["--graceful-timeout"], \.gracefulTimeout, default: "30",
                 "On TERM, how long workers may finish in-flight requests before they are killed."),
        .seconds("timeout", ["-t", "--timeout"], \.timeout, default: "30",
                 "A worker whose event loop has not reported for this long is killed (SIGABRT, then SIGKILL) and replaced.  Inference runs on model threads and does not count."),
        .seconds("boot_timeout", ["--boot-timeout"], \.bootTimeout, default: "300",
                 "How long a worker may take to load its models and start serving before it is killed."),
        .seconds("client_timeout", ["--client-timeout"], \.clientTimeout, default: "30",
                 "How long a client may take to send a request or read an answer."),
        .seconds("keepalive", ["--keep-alive"], \.keepAlive, default: "5",
                 "How long a keep-alive connection may stay idle between requests before it is closed.  A balancer's idle timeout for its pooled connections must be shorter."),
        .size("max_body_size", ["--max-body-size"], \.maxBodySize, default: "10m",
              "Largest request body accepted; larger ones get 413."),
        .size("max_header_size", ["--max-header-size"], \.maxHeaderSize, default: "16k",
              "Largest request line plus headers accepted; larger ones get 431."),
        .string("access_logfile", ["--access-logfile"], \.accessLogfile, metavar: "FILE", default: "-",
                "Access log: a path, '-' for stdout, or 'off'."),
        .string("error_logfile", ["--error-logfile"], \.errorLogfile, metavar: "FILE", default: "-",
                "Error (application) log: a path or '-' for stderr."),
        Setting(key: "log_level", flags: ["--log-level"], metavar: "LEVEL",
                help: "debug, info, warning, error or critical. Request and response lines are at info.",
                defaultText: "info", repeatable: false) { s, v, _ throws(ConfigError) in
            guard case .string(let t) = v, let level = LogLevel(name: t) else {
                throw ConfigError("expected one of debug, info, warning, error, critical")
            }
            s.logLevel = level
        },
        .int("log_body_limit", ["--log-body-limit"], \.logBodyLimit, min: 0, metavar: "BYTES", default: "1024",
             "How many bytes of each request and response body the request/response log lines show."),
        .string("health_path", ["--health-path"], \.healthPath, metavar: "PATH", default: "/healthz",
                "Liveness: 200 while the worker's event loop runs.  'off' disables it."),
        .string("ready_path", ["--ready-path"], \.readyPath, metavar: "PATH", default: "/readyz",
                "Readiness: 503 until every worker has loaded its models, and while stopping.  'off' disables it."),
        .string("metrics_path", ["--metrics-path"], \.metricsPath, metavar: "PATH", default: "/metrics",
                "Prometheus metrics of all workers, whichever answers.  'off' disables it."),
        .int("max_requests", ["--max-requests"], \.maxRequests, min: 0, default: "0",
             "Recycle a worker after this many requests (0: never); its replacement starts first."),
        .int("max_requests_jitter", ["--max-requests-jitter"], \.maxRequestsJitter, min: 0, default: "0",
             "Add a random 0..N to each worker's max-requests, so that workers do not recycle together."),
        .int("limit_concurrency", ["--limit-concurrency"], \.limitConcurrency, min: 1, default: "1",
             "Inferences run at once per model per worker, each on its own model thread."),
        .int("queue_size", ["--queue-size"], \.queueSize, min: 0, default: "16",
             "Requests that may wait per model per worker; when full, new ones get 503 at once."),
        .seconds("request_timeout", ["--request-timeout"], \.requestTimeout, default: "30",
                 "A request not answered by then gets 504; if it was still queued, it never runs."),
        .int("max_batch_size", ["--max-batch-size"], \.maxBatchSize, min: 1, default: "32",
             "Batching models (minilm): the most inputs one forward pass takes from the queue."),
        .int("batch_timeout_ms", ["--batch-timeout-ms"], \.batchTimeoutMs, min: 0, default: "0",
             "Batching models: how long a pass waits for more requests when the queue is empty (0: it takes what is queued)."),
        .optionalString("model_dir", ["--model-dir"], \.modelDir, metavar: "DIR",
                        "Where models read their files (minilm: models/all-MiniLM-L6-v2 unless set); [model.NAME] model_dir overrides."),
        .optionalString("pid", ["-p", "--pid"], \.pidfile, metavar: "FILE", "Write the master's pid to this file."),
        .flag("preload", ["--preload"], \.preload,
              "Load the models once in the master before forking: workers share them copy-on-write, and a respawn loads nothing."),
        .flag("check_config", ["--check-config"], \.checkConfig, "Check the configuration and the model names, then exit."),
        .list("models", [], \.models, metavar: "MODEL", default: "none",
              "Models to serve (the command line's MODEL arguments); each is served at /NAME."),
    ]

    public static func setting(forKey key: String) -> Setting? { all.first { $0.key == key } }
    public static func setting(forFlag flag: String) -> Setting? { all.first { $0.flags.contains(flag) } }
}
