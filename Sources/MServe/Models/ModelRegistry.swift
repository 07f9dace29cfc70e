/// Model types by the name they are served under.  `mserve` starts with the built-in models; a user's
/// own `main` adds theirs before handing over to `MServeMain.run`.
public struct ModelRegistry: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let summary: String
        public let type: any Model.Type
        public let make: @Sendable (ModelContext) throws -> any Model

        /// It generates text (`GenerativeModel`): one request per model thread while it runs.
        public var generative: Bool { type is any GenerativeModel.Type }
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public static var builtin: ModelRegistry {
        var r = ModelRegistry()
        r.register(DemoModel.self, as: "demo", summary: "per-worker running sum of cal_number")
        r.register(EchoModel.self, as: "echo", summary: "returns its JSON input")
        r.register(SleepModel.self, as: "sleep", summary: "waits {\"ms\": N} milliseconds, for load tests")
        return r
    }

    public mutating func register<M: Model>(_ type: M.Type, as name: String, summary: String = "") {
        entries.removeAll { $0.name == name }
        entries.append(Entry(name: name, summary: summary, type: M.self) { ctx in try M(context: ctx) })
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }
    public var names: [String] { entries.map(\.name) }

    /// Model types served from what an option of `[model.NAME]` names, under any NAME: Python code
    /// (`python = "module:Attribute"`, or `NAME=module:Attribute` on the command line; MServePython's
    /// `registerPython`) and a GGUF file (`gguf = "path"`, or `NAME=path.gguf`; MServeSmolLM's
    /// `registerSmolLM`).
    public struct Source: Sendable {
        public let option: String
        public let kind: String
        public let type: any Model.Type
        public let make: @Sendable (ModelContext) throws -> any Model
    }
    public private(set) var sources: [Source] = []
    /// The options that make a model a source's, whether or not this build has the source.
    static let sourceOptions = ["python": "Python code", "gguf": "a GGUF file"]

    public mutating func register<M: Model>(
        _ type: M.Type, servingOption option: String, kind: String,
        make: @escaping @Sendable (ModelContext) throws -> any Model
    ) {
        sources.removeAll { $0.option == option }
        sources.append(Source(option: option, kind: kind, type: M.self, make: make))
    }

    public mutating func registerPython<M: Model>(_ type: M.Type, make: @escaping @Sendable (ModelContext) throws -> any Model) {
        register(type, servingOption: "python", kind: "Python", make: make)
    }

    /// The entry a model is served by: what a source option of its settings names, else a
    /// registered name.
    public func entry(named name: String, settings: ModelSettings) -> Entry? {
        for source in sources {
            if case .string(let spec)? = settings.options[source.option] {
                return Entry(name: name, summary: "\(source.kind): \(spec)", type: source.type, make: source.make)
            }
        }
        if Self.sourceOptions.keys.contains(where: { settings.options[$0] != nil }) { return nil }
        return entry(named: name)
    }

    /// Every requested name must be known (registered, or a source's option in its settings): the message
    /// lists what is.  Every key of a `[model.NAME]` table must be one of the model's options
    /// (when it declares them) or one of `serverKeys` (which the config reader has taken out
    /// already; here they only help the suggestion).
    public func check(_ models: [String], settings: Settings = Settings(), serverKeys: [String] = []) throws(ConfigError) {
        if models.isEmpty {
            throw ConfigError("no model given; known models: \(names.joined(separator: ", "))")
        }
        for m in models where entry(named: m, settings: settings.settings(forModel: m)) == nil {
            for (option, what) in Self.sourceOptions.sorted(by: { $0.key < $1.key }) {
                guard let value = settings.settings(forModel: m).options[option] else { continue }
                if value.stringValue == nil { throw ConfigError("[model.\(m)] \(option) must be a string, got \(value.text)") }
                throw ConfigError("model '\(m)' is \(what), and this mserve was built without what serves it")
            }
            throw ConfigError(
                "unknown model '\(m)'; known models: \(names.joined(separator: ", ")), "
                    + "or NAME=path.gguf for a GGUF file, NAME=module:Attribute for Python")
        }
        var seen: Set<String> = []
        for m in models where !seen.insert(m).inserted {
            throw ConfigError("model '\(m)' is given twice")
        }
        // A table of a model not served now is checked too: it is served at the next reload.
        for m in models + settings.modelSettings.keys.sorted().filter({ !models.contains($0) }) {
            let ms = settings.settings(forModel: m)
            guard let known = entry(named: m, settings: ms)?.type.optionNames else { continue }
            for key in ms.options.keys.sorted() where key != "model_dir" && !known.contains(key) {
                let listed = known.isEmpty ? "it takes no options of its own" : "its options: \(known.joined(separator: ", "))"
                throw ConfigError(
                    "\(settings.config ?? "config"): [model.\(m)]: unknown option '\(key)'"
                        + "\(Spelling.suggestion(for: key, among: known + serverKeys)); \(listed)")
            }
        }
    }
}
