import MServeSystem
import Testing

@testable import MServe
@testable import MServeServer

@Suite struct ConfigTests {
    func parse(_ args: [String], files: [String: String] = [:], environment: [String: String] = [:]) throws(ConfigError) -> ServerSettings {
        let inv = try CommandLineParser.parse(args, environment: environment) { (path) throws(ConfigError) -> String in
            guard let t = files[path] else { throw ConfigError("no file \(path)") }
            return t
        }
        guard case .serve(let s) = inv else { throw ConfigError("not serve") }
        return s
    }

    @Test func defaultsAndGunicornFlags() throws {
        let s = try parse(["-w", "4", "-b", "0.0.0.0:8081", "demo"])
        #expect(s.workers == 4)
        #expect(s.binds == ["0.0.0.0:8081"])
        #expect(s.serving.models == ["demo"])
        #expect(s.gracefulTimeout == 30)
        #expect(s.accessLogfile == "-")
    }

    @Test func inlineValuesAndRepeatedBinds() throws {
        let s = try parse(["--workers=3", "-w2", "-b", "127.0.0.1:1", "-b", "[::1]:2", "--max-body-size", "2m", "demo", "echo"])
        #expect(s.workers == 2)
        #expect(s.binds == ["127.0.0.1:1", "[::1]:2"])
        #expect(s.serving.maxBodySize == 2 << 20)
        #expect(s.serving.models == ["demo", "echo"])
    }

    /// A yes-or-no setting takes the same spellings wherever it is given: a flag, a config key.
    @Test func booleansAreReadOneWay() throws {
        let s = try parse(["-c", "m.toml", "--ui", "no", "demo"], files: ["m.toml": "preload = \"on\"\ncheck_config = \"YES\"\n"])
        #expect(s.preload && s.checkConfig && !s.serving.ui)
        #expect(throws: ConfigError.self) { try parse(["-c", "m.toml", "demo"], files: ["m.toml": "preload = \"maybe\"\n"]) }
        for (text, value) in [("true", true), ("Off", false), ("yes", true), ("0", false)] {
            #expect(BooleanSetting.value(.string(text)) == value)
        }
        #expect(BooleanSetting.value(.bool(false)) == false && BooleanSetting.value(.int(1)) == true)
        #expect(BooleanSetting.value(.string("maybe")) == nil && BooleanSetting.value(.int(2)) == nil)
    }

    @Test func helpAndVersion() throws {
        #expect(try CommandLineParser.parse(["--help"]) == .help)
        #expect(try CommandLineParser.parse(["-v"]) == .version)
        let usage = CommandLineParser.usage(knownModels: ["demo"])
        for s in SettingTable.all where !s.flags.isEmpty { #expect(usage.contains(s.flags.last!)) }
    }

    @Test(arguments: [
        (["-w", "0", "demo"], "-w: must be at least 1"),
        (["-w", "x", "demo"], "-w: expected an integer, got 'x'"),
        (["--nope", "demo"], "unknown option --nope"),
        (["--graceful-timeout", "-1", "demo"], "--graceful-timeout: must be a positive number"),
        (["--log-level", "loud", "demo"], "--log-level: expected one of"),
        (["--check-config=yes"], "--check-config takes no value"),
        (["-b"], "-b needs a value")
    ])
    func badFlagsNameTheFlag(_ args: [String], _ expected: String) {
        do {
            _ = try parse(args)
            Issue.record("expected an error for \(args)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func configFileThenFlagsOverride() throws {
        let toml = """
            workers = 3
            bind = ["127.0.0.1:9000", "[::1]:9000"]
            graceful_timeout = 2.5
            log_level = "warning"
            models = ["demo", "sleep"]

            [model.demo]
            device = "cpu:1"
            start = 10
            """
        let s = try parse(["-c", "m.toml", "-w", "5"], files: ["m.toml": toml])
        #expect(s.workers == 5)
        #expect(s.binds == ["127.0.0.1:9000", "[::1]:9000"])
        #expect(s.gracefulTimeout == 2.5)
        #expect(s.logLevel == .warning)
        #expect(s.serving.models == ["demo", "sleep"])
        #expect(s.serving.settings(forModel: "demo") == ModelSettings(device: "cpu:1", options: ["start": .int(10)]))
        #expect(s.serving.config == "m.toml")
        // The command line's binds replace the file's.
        #expect(try parse(["-c", "m.toml", "-b", "1.2.3.4:5"], files: ["m.toml": toml]).binds == ["1.2.3.4:5"])
    }

    @Test(arguments: [
        ("wokers = 3", "m.toml: unknown key 'wokers'"),
        ("workers = \"many\"", "m.toml: workers: expected an integer, got 'many'"),
        ("workers = 0", "m.toml: workers: must be at least 1"),
        ("workers = = 3", "m.toml:1:"),
        ("[model]\ndemo = 3", "model.demo must be a table"),
        // Each value's own validator, as it is read.
        ("health_path = \"healthz\"", "m.toml: health_path: must start with / or be off, got 'healthz'"),
        ("bind = [\"127.0.0.1:1\", \"localhost\"]", "m.toml: bind:")
    ])
    func badConfigNamesTheKey(_ toml: String, _ expected: String) {
        do {
            _ = try parse(["-c", "m.toml", "demo"], files: ["m.toml": toml])
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func aFlagsValueIsCheckedAsItIsRead() {
        #expect(throws: ConfigError.self) { try parse(["--metrics-path", "metrics", "demo"]) }
        #expect(throws: ConfigError.self) { try parse(["-b", "h:70000", "demo"]) }
        #expect((try? parse(["--metrics-path", "off", "--ready-path", "/r", "demo"]))?.serving.metricsPath == "off")
    }

    @Test func bindAddresses() throws {
        #expect(try BindAddress(parsing: "127.0.0.1:8000") == BindAddress(host: "127.0.0.1", port: 8000))
        #expect(try BindAddress(parsing: "[::1]:0") == BindAddress(host: "::1", port: 0))
        #expect(try BindAddress(parsing: ":80") == BindAddress(host: "0.0.0.0", port: 80))
        #expect(throws: ConfigError.self) { try BindAddress(parsing: "localhost") }
        #expect(throws: ConfigError.self) { try BindAddress(parsing: "::1:80") }
        #expect(throws: ConfigError.self) { try BindAddress(parsing: "h:70000") }
        #expect(try BindAddress(parsing: "unix:/tmp/s").unixPath == "/tmp/s")
        #expect(try BindAddress(parsing: "unix:/tmp/s").description == "unix:/tmp/s")
        #expect(throws: ConfigError.self) { try BindAddress(parsing: "unix:") }
        #expect(throws: ConfigError.self) { try BindAddress(parsing: "unix:/" + String(repeating: "x", count: 120)) }
    }

    @Test func unknownModelsListTheKnownOnes() {
        do {
            try ModelRegistry.builtin.check(["demo", "nope"])
            Issue.record("expected an error")
        } catch {
            #expect(
                error.message
                    == "unknown model 'nope'; known models: demo, echo, sleep, or NAME=path.gguf for a GGUF file, NAME=module:Attribute for Python")
        }
    }

    @Test func aModelArgumentNamesAGGUFFileOrPythonCode() throws {
        let s = try parse(["chat=/models/llama 3.gguf", "py=pkg.mod:Model", "demo"])
        #expect(s.serving.models == ["chat", "py", "demo"])
        #expect(s.serving.settings(forModel: "chat").options == ["gguf": "/models/llama 3.gguf"])
        #expect(s.serving.settings(forModel: "py").options == ["python": "pkg.mod:Model"])
        #expect(throws: ConfigError.self) { try parse(["a=b"]) }
        #expect(throws: ConfigError("'=x.gguf': give the model a name, NAME=path.gguf")) { try parse(["=x.gguf"]) }
        // Without what serves GGUF files (a package of its own models), said plainly.
        var settings = ServerSettings()
        settings.serving.modelSettings["chat"] = ModelSettings(options: ["gguf": "/m.gguf"])
        #expect(throws: ConfigError("model 'chat' is a GGUF file, and this mserve was built without what serves it")) {
            try ModelRegistry.builtin.check(["chat"], settings: settings.serving)
        }
    }

    @Test func eachServerHasItsOwnDefaultControlSocket() {
        var settings = ServerSettings()
        let env = ["XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"]
        #expect(settings.controlSocketPath(environment: env, bound: "127.0.0.1:8081") == "/run/user/1000/mserve/mserve-127.0.0.1-8081.ctl")
        #expect(settings.controlSocketPath(environment: ["HOME": "/home/u"], bound: "[::1]:9") == "/home/u/.mserve/mserve---1-9.ctl")
        #expect(ServerSettings.controlSocketName(bind: "unix:/run/app/s.sock") == "mserve-unix-_run_app_s.sock.ctl")
        settings.pidfile = "/run/mserve/mserve.pid"
        #expect(settings.controlSocketPath(environment: env, bound: "127.0.0.1:8081") == "/run/mserve/mserve.ctl")
        settings.controlSocket = "/tmp/c.sock"
        #expect(settings.controlSocketPath(environment: env, bound: "x") == "/tmp/c.sock")
        settings.noControlSocket = true
        #expect(settings.controlSocketPath(environment: env, bound: "x") == nil)
    }

    @Test func aModelsUnknownOptionIsRefusedWithTheNearestName() {
        var settings = ServerSettings()
        settings.serving.modelSettings["sleep"] = ModelSettings(options: ["max_m": .int(5), "model_dir": .string("/m")])
        #expect(throws: ConfigError("config: [model.sleep]: unknown option 'max_m' (did you mean max_ms?); its options: max_ms, weights_mb, load_ms"))
        {
            try ModelRegistry.builtin.check(["demo"], settings: settings.serving)
        }
        settings.serving.modelSettings["sleep"] = ModelSettings(options: ["max_ms": .int(5), "model_dir": .string("/m")])
        #expect(throws: Never.self) { try ModelRegistry.builtin.check(["demo", "sleep"], settings: settings.serving) }
        settings.serving.modelSettings["echo"] = ModelSettings(options: ["device_": .string("cpu")])
        #expect(throws: ConfigError("config: [model.echo]: unknown option 'device_' (did you mean device?); it takes no options of its own")) {
            try ModelRegistry.builtin.check(["echo"], settings: settings.serving, serverKeys: ["device"])
        }
    }

    /// conf/mserve.toml is the documentation of the config file: it must mention every key.
    @Test func exampleConfigDocumentsEveryKeyAndParses() throws {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let text = try ConfigFile.read("/" + path + "/conf/mserve.toml")
        for s in SettingTable.all where s.key != "config" {
            #expect(text.contains("\(s.key) ="), "conf/mserve.toml does not document \(s.key)")
        }
        _ = try ConfigFile.load(text: text, path: "conf/mserve.toml", into: ServerSettings())
    }

    /// The options table of docs/operations.md is the command line's documentation: every flag of
    /// the setting table is in a row whose default cell shows the table's default, and every flag
    /// in a row exists.
    @Test func theOptionsTableAgreesWithTheSettingTable() throws {
        let path = #filePath.split(separator: "/").dropLast(3).joined(separator: "/")
        let readme = try ConfigFile.read("/" + path + "/docs/operations.md")
        let rows = readme.split(separator: "\n").filter { $0.hasPrefix("| `-") }.map { row in
            row.split(separator: "|", omittingEmptySubsequences: false).map { String($0.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
        }
        #expect(rows.count > 20)
        func flags(_ cell: String) -> [String] {
            cell.split(whereSeparator: { " ,`".contains($0) }).map(String.init).filter { $0.hasPrefix("-") }
        }
        for s in SettingTable.all where !s.flags.isEmpty {
            let row = rows.first { r in s.flags.allSatisfy { flags(r[1]).contains($0) } }
            #expect(row != nil, "docs/operations.md's options table has no row for \(s.flags.joined(separator: ", "))")
            guard let row, s.metavar != nil else { continue }
            #expect(row[2].contains(s.defaultText), "docs/operations.md gives \(row[2]) as the default of \(s.key); the table says \(s.defaultText)")
        }
        let known = Set(SettingTable.all.flatMap(\.flags) + ["-h", "--help", "-v", "--version"])
        for r in rows { for f in flags(r[1]) { #expect(known.contains(f), "docs/operations.md names \(f), which mserve does not have") } }
    }

    @Test func defaultsComeFromSettingsAndShowAsWritten() {
        let shown = Dictionary(uniqueKeysWithValues: SettingTable.all.map { ($0.key, $0.defaultText) })
        #expect(shown["max_body_size"] == "10m" && shown["max_header_size"] == "16k")
        #expect(shown["timeout"] == "30" && shown["keep_alive"] == "5" && shown["log_level"] == "info")
        #expect(shown["bind"] == "127.0.0.1:8000" && shown["pid"] == "none" && shown["preload"] == "off")
    }

    @Test func perModelKeysAndRestartOnlyKeysAreDeclaredInTheTable() throws {
        #expect(
            SettingTable.perModelKeys == [
                "limit_concurrency", "queue_size", "request_timeout", "max_batch_size", "batch_timeout_ms",
                "kv_cache_tokens"
            ])
        let restart = Set(SettingTable.all.filter { $0.reload == .restart }.map(\.key))
        #expect(
            restart == [
                "bind", "pid", "access_logfile", "error_logfile", "preload", "user", "group", "chdir",
                "control_socket", "control_socket_mode", "no_control_socket",
                "agent_bind", "announce", "announce_name", "announce_address", "announce_options"
            ])
        // A per-model value goes through the global key's validator.
        #expect(throws: ConfigError("c.toml: model.demo.queue_size: must be at least 0, got -1")) {
            try parse(["-c", "c.toml"], files: ["c.toml": "models = [\"demo\"]\n[model.demo]\nqueue_size = -1"])
        }
        let s = try parse(["-c", "c.toml"], files: ["c.toml": "models = [\"demo\"]\n[model.demo]\nrequest_timeout = 2.5\nbatch_timeout_ms = 7"])
        #expect(s.serving.runtime(forModel: "demo").requestTimeout == 2.5)
        #expect(s.serving.runtime(forModel: "demo").batchTimeout == 0.007)
        // The model's table wins over the global value wherever that came from (here a flag given
        // after the file); a model without a table, or a key its table leaves out, takes the global one.
        let flagged = try parse(
            ["-c", "c.toml", "--queue-size", "9", "--request-timeout", "4"],
            files: ["c.toml": "models = [\"demo\", \"sleep\"]\n[model.demo]\nqueue_size = 5"])
        #expect(flagged.serving.runtime(forModel: "demo").queueSize == 5)
        #expect(flagged.serving.runtime(forModel: "demo").requestTimeout == 4)
        #expect(flagged.serving.runtime(forModel: "sleep").queueSize == 9)
        #expect(flagged.serving.settings(forModel: "demo").limitOverrides.map(\.key) == ["queue_size"])
    }

    /// One rule: a key is its long flag without the dashes, with underscores.
    @Test func keysAreLongFlagsWithUnderscores() {
        for s in SettingTable.all {
            guard let long = s.flags.last(where: { $0.hasPrefix("--") }) else { continue }
            #expect(s.key == String(long.dropFirst(2).map { $0 == "-" ? "_" : $0 }), "\(s.key) vs \(long)")
        }
    }

    @Test func unknownKeysAndFlagsSuggestTheNearestAndFormerKeysStillWork() throws {
        #expect(throws: ConfigError("c.toml: unknown key 'keep_alve' (did you mean keep_alive?)")) {
            try parse(["-c", "c.toml"], files: ["c.toml": "keep_alve = 3"])
        }
        #expect(throws: ConfigError("unknown option --worker (did you mean --workers?) (see mserve --help)")) {
            try parse(["--worker", "2", "demo"])
        }
        #expect(throws: ConfigError("unknown option --zzzzzz (see mserve --help)")) { try parse(["--zzzzzz", "demo"]) }
        #expect(try parse(["-c", "c.toml"], files: ["c.toml": "models = [\"demo\"]\nkeepalive = 3"]).serving.keepAlive == 3)
        #expect(try parse(["-c", "c.toml"], files: ["c.toml": "models = [\"demo\"]\nkeep_alive = 4"]).serving.keepAlive == 4)
    }

    /// Flags over MSERVE_* over the file over WEB_CONCURRENCY over the defaults.
    @Test func settingsFromTheEnvironmentWithTheirPrecedence() throws {
        let file = ["c.toml": "models = [\"demo\"]\nworkers = 3\ntimeout = 7"]
        #expect(try parse(["demo"], environment: ["WEB_CONCURRENCY": "5"]).workers == 5)
        #expect(try parse(["-c", "c.toml"], files: file, environment: ["WEB_CONCURRENCY": "5"]).workers == 3)
        let s = try parse(
            ["-c", "c.toml"], files: file,
            environment: [
                "MSERVE_WORKERS": "4", "MSERVE_TIMEOUT": "9",
                "MSERVE_BIND": "127.0.0.1:1, [::1]:2"
            ])
        #expect(s.workers == 4 && s.timeout == 9 && s.binds == ["127.0.0.1:1", "[::1]:2"])
        #expect(try parse(["-c", "c.toml", "-w", "2"], files: file, environment: ["MSERVE_WORKERS": "4"]).workers == 2)
        #expect(try parse([], files: file, environment: ["MSERVE_CONFIG": "c.toml"]).timeout == 7)
        #expect(throws: ConfigError("MSERVE_WORKERS: expected an integer, got 'many'")) {
            try parse(["demo"], environment: ["MSERVE_WORKERS": "many"])
        }
    }
}
