import MServe

/// What the command line asked for.
public enum Invocation: Equatable {
    case serve(ServerSettings)
    case help
    case version
}

/// gunicorn's command line: `mserve [options] MODEL [MODEL...]`.  Flags are applied after the
/// config file, so they override it.
public enum CommandLineParser {
    /// Settings come from, lowest first: defaults, `WEB_CONCURRENCY` (workers, as gunicorn reads
    /// it), the config file (`-c`, or `MSERVE_CONFIG`), `MSERVE_<KEY>` variables, the command line.
    public static func parse(
        _ args: [String], environment: [String: String] = ProcessEnvironment.variables(),
        readFile: (String) throws(ConfigError) -> String = ConfigFile.read
    )
        throws(ConfigError) -> Invocation
    {
        var flagged: [(Setting, String, String)] = []  // setting, value, flag as written
        var positional: [String] = []
        var i = 0
        var onlyPositional = false
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositional || !arg.hasPrefix("-") || arg == "-" {
                positional.append(arg)
                continue
            }
            if arg == "--" { onlyPositional = true; continue }
            if arg == "-h" || arg == "--help" { return .help }
            if arg == "-v" || arg == "--version" { return .version }
            var name = arg
            var inlineValue: String? = nil
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                inlineValue = String(arg[arg.index(after: eq)...])
            } else if !arg.hasPrefix("--"), arg.count > 2 {
                // -w4 is -w 4
                name = String(arg.prefix(2))
                inlineValue = String(arg.dropFirst(2))
            }
            guard let setting = SettingTable.setting(forFlag: name) else {
                let flags = SettingTable.all.flatMap(\.flags).filter { $0.hasPrefix("--") } + ["--help", "--version"]
                throw ConfigError("unknown option \(name)\(Spelling.suggestion(for: name, among: flags)) (see mserve --help)")
            }
            if setting.metavar == nil {
                if let inlineValue { throw ConfigError("\(name) takes no value, got '\(inlineValue)'") }
                flagged.append((setting, "true", name))
                continue
            }
            if let inlineValue {
                flagged.append((setting, inlineValue, name))
            } else {
                guard i < args.count else { throw ConfigError("\(name) needs a value (\(setting.metavar ?? "a value"))") }
                flagged.append((setting, args[i], name))
                i += 1
            }
        }

        var settings = ServerSettings()
        if let n = environment["WEB_CONCURRENCY"], let workers = SettingTable.setting(forKey: "workers") {
            try workers.set(&settings, .string(n), source: "WEB_CONCURRENCY", fromCommandLine: false)
        }
        if let path = flagged.last(where: { $0.0.key == "config" })?.1 ?? environment["MSERVE_CONFIG"] {
            settings = try ConfigFile.load(text: try readFile(path), path: path, into: settings)
            settings.serving.config = path
        }
        for s in SettingTable.all where s.key != "config" {
            let name = "MSERVE_" + s.key.uppercased()
            guard let value = environment[name] else { continue }
            // A list (bind, models) is comma-separated.
            let json: JSON =
                s.repeatable
                ? .array(value.split(separator: ",").map { .string(String($0).trimmingSpaces()) })
                : .string(value)
            try s.set(&settings, json, source: name, fromCommandLine: false)
        }
        var seenOnCommandLine: Set<String> = []
        for (setting, value, flag) in flagged {
            if setting.repeatable && !seenOnCommandLine.contains(setting.key) {
                try setting.set(&settings, .array([.string(value)]), source: flag, fromCommandLine: true)
            } else {
                try setting.set(&settings, .string(value), source: flag, fromCommandLine: true)
            }
            seenOnCommandLine.insert(setting.key)
        }
        if !positional.isEmpty {
            // NAME=path.gguf serves a GGUF file under NAME, NAME=module:Attribute Python code, as
            // [model.NAME] gguf = "..." and python = "..." do.
            settings.serving.models = []
            for p in positional {
                guard let eq = p.firstIndex(of: "=") else {
                    settings.serving.models.append(p)
                    continue
                }
                let name = String(p[..<eq]), value = String(p[p.index(after: eq)...])
                let option = value.hasSuffix(".gguf") ? "gguf" : value.contains(":") ? "python" : nil
                guard let option else { throw ConfigError("'\(p)': NAME=path.gguf serves a GGUF file, NAME=module:Attribute Python code") }
                guard !name.isEmpty else {
                    throw ConfigError("'\(p)': give the model a name, NAME=\(option == "gguf" ? "path.gguf" : "module:Attribute")")
                }
                settings.serving.models.append(name)
                settings.serving.modelSettings[name, default: ModelSettings()].options[option] = .string(value)
            }
        }
        return .serve(settings)
    }

    /// `--help`, generated from the setting table.
    public static func usage(knownModels: [String]) -> String {
        var out = """
            usage: mserve [options] MODEL [MODEL...]
                   mserve ctl [-s PATH|-b ADDR] [-c CMD]  talk to a running master (mserve ctl --help)
                   mserve bench URL [options]             load-test a server (mserve bench --help)
                   mserve keys add NAME | list --file F   manage API keys (mserve keys --help)

            Serve models over HTTP with a pre-forked master and worker processes.
            Each MODEL is served at POST /MODEL; GET / lists them.

            options:

            """
        for s in SettingTable.all where !s.flags.isEmpty {
            var left = "  " + s.flags.joined(separator: ", ")
            if let m = s.metavar { left += " " + m }
            let pad = left.count < 34 ? String(repeating: " ", count: 34 - left.count) : "\n" + String(repeating: " ", count: 34)
            let def = s.metavar == nil ? "" : " [default: \(s.defaultText)]"
            out += left + pad + s.help + def + "\n"
        }
        out += "  -h, --help                      Show this help and exit.\n"
        out += "  -v, --version                   Show the version and exit.\n"
        out += "\nmodels: " + knownModels.joined(separator: ", ") + "\n"
        return out
    }
}
