import MServe
import MServeBench
import MServeSystem

/// The command line of `mserve`, reusable by a user's own executable with their models registered
/// and, if they like, their own tornado-style handlers (tried before the built-in routes):
///
///     var models = ModelRegistry.builtin
///     models.register(MyModel.self, as: "mine")
///     MServeMain.serve(models: models, routes: [Route(#"/hello/(\w+)"#, HelloHandler.self)])
public enum MServeMain {
    /// Runs the command line and exits the process with its code.
    public static func serve(
        arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        models registry: ModelRegistry = .builtin, routes: [Route] = []
    ) -> Never {
        exitProcess(run(arguments: arguments, models: registry, routes: routes))
    }

    public static func run(
        arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        models registry: ModelRegistry = .builtin, routes: [Route] = []
    ) -> Int32 {
        if arguments.first == "ctl" { return ControlClient.run(Array(arguments.dropFirst())) }
        if arguments.first == "bench" { return BenchCommand.run(Array(arguments.dropFirst())) }
        if arguments.first == "keys" { return KeysCommand.run(Array(arguments.dropFirst())) }
        let settings: ServerSettings
        do {
            switch try CommandLineParser.parse(arguments) {
            case .help:
                print(CommandLineParser.usage(knownModels: registry.names), terminator: "")
                return ExitCode.ok
            case .version:
                print("mserve \(MServeVersion.string)")
                return ExitCode.ok
            case .serve(let s):
                settings = try check(s, registry)
            }
            if let bad = routes.lazy.compactMap(\.patternError).first { throw ConfigError(bad) }
        } catch {
            printError("mserve: error: \(error)")
            return ExitCode.usage
        }

        if let dir = settings.chdir {
            do { try changeDirectory(dir) } catch {
                printError("mserve: error: --chdir: \(error)")
                return ExitCode.usage
            }
        }
        let logs: ProcessLogs
        do {
            let errorFile = try LogFile(path: settings.errorLogfile, standardFD: StandardStream.error)
            let accessFile = settings.accessLogfile == "off" ? nil : try LogFile(path: settings.accessLogfile, standardFD: StandardStream.output)
            logs = ProcessLogs(logger: Logger(file: errorFile, level: settings.logLevel), accessLog: accessFile.map(AccessLog.init))
            // swift-log's Logger lines (a model's, a library's) go to the error log, in the workers too.
            SwiftLogHandler.bootstrap(logs.logger)
        } catch {
            printError("mserve: error: \(error)")
            return ExitCode.usage
        }

        if settings.checkConfig {
            // The models are loaded too, so that their options ([model.NAME]) are checked as a
            // start would check them, including tables of models not served now.
            var all = settings.serving
            all.models = all.models + all.modelSettings.keys.sorted().filter { !all.models.contains($0) }
            do {
                _ = try ModelLoader.load(all, registry: registry, slot: -1, logger: logs.logger)
            } catch {
                printError("mserve: error: \(error.message)")
                return ExitCode.usage
            }
            print(
                "configuration OK: models \(settings.serving.models.joined(separator: ", ")), \(settings.workers) workers, bind \(settings.binds.joined(separator: " "))"
            )
            return ExitCode.ok
        }
        // HUP re-reads the same command line and config file, with the same checks.
        let reread: () throws -> ServerSettings = {
            guard case .serve(let s) = try CommandLineParser.parse(arguments) else { throw ConfigError("no settings") }
            return try check(s, registry)
        }
        let code: Int32
        do {
            code = try Master(settings: settings, rereadSettings: reread, registry: registry, routes: routes, logs: logs).run()
        } catch {
            logs.logger.critical("\(error)")
            code = ExitCode.failure
        }
        logs.flush()
        return code
    }
}

/// What must hold before a master starts (or accepts a reload), beyond each value's own validator
/// (SettingTable): known models, settings that need each other (--group and --user, the TLS
/// files), a readable keys file (read here, so that a bad one leaves the running keys in force).
private func check(_ given: ServerSettings, _ registry: ModelRegistry) throws(ConfigError) -> ServerSettings {
    var settings = given
    if let path = settings.serving.keysFile { settings.serving.apiKeys = try KeysFile.load(path) }
    try registry.check(settings.serving.models, settings: settings.serving, serverKeys: ["device", "model_dir"] + SettingTable.perModelKeys.sorted())
    for (name, ms) in settings.serving.modelSettings where registry.entry(named: name, settings: ms) == nil {
        throw ConfigError("config: [model.\(name)] names an unknown model; known models: \(registry.names.joined(separator: ", "))")
    }
    _ = try settings.agentAddress()
    _ = try settings.announcement()
    if settings.group != nil && settings.user == nil { throw ConfigError("--group needs --user") }
    _ = try settings.tlsContext()
    if let user = settings.user {
        do { _ = try Identity.lookup(user: user, group: settings.group) } catch { throw ConfigError("--user/--group: \(error)") }
    }
    return settings
}

extension ServerSettings {
    /// The TLS context --certfile asks for (nil: plain HTTP); a missing or bad file is a ConfigError.
    func tlsContext() throws(ConfigError) -> TLSContext? {
        guard let cert = certfile else {
            if keyfile != nil || caCerts != nil { throw ConfigError("--keyfile and --ca-certs need --certfile") }
            if certReqs != .none { throw ConfigError("--cert-reqs needs --certfile") }
            return nil
        }
        guard let key = keyfile else { throw ConfigError("--certfile needs --keyfile") }
        if certReqs != .none && caCerts == nil { throw ConfigError("--cert-reqs \(certReqs.rawValue) needs --ca-certs") }
        do {
            return try TLSContext(certificate: cert, key: key, caCertificates: caCerts, clientCertificates: certReqs)
        } catch {
            throw ConfigError("TLS: \(error)")
        }
    }
}
