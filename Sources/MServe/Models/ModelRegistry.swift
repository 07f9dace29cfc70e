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

    /// The model type that serves Python code, `[model.NAME] python = "module:Attribute"` (or
    /// `NAME=module:Attribute` on the command line): set by MServePython's `registerPython`.
    public var python: (any Model.Type)?
    private var makePython: (@Sendable (ModelContext) throws -> any Model)?

    public mutating func registerPython<M: Model>(_ type: M.Type, make: @escaping @Sendable (ModelContext) throws -> any Model) {
        python = M.self
        makePython = make
    }

    /// The entry a model is served by: Python code its settings name, else a registered name.
    public func entry(named name: String, settings: ModelSettings) -> Entry? {
        guard case .string(let spec)? = settings.options["python"] else { return entry(named: name) }
        guard let python, let makePython else { return nil }
        return Entry(name: name, summary: "Python: \(spec)", type: python, make: makePython)
    }

    /// Every requested name must be known (registered, or Python code in its settings): the message
    /// lists what is.  Every key of a `[model.NAME]` table must be one of the model's options
    /// (when it declares them) or one of `serverKeys` (which the config reader has taken out
    /// already; here they only help the suggestion).
    public func check(_ models: [String], settings: Settings = Settings(), serverKeys: [String] = []) throws(ConfigError) {
        if models.isEmpty {
            throw ConfigError("no model given; known models: \(names.joined(separator: ", "))")
        }
        for m in models where entry(named: m, settings: settings.settings(forModel: m)) == nil {
            if settings.settings(forModel: m).options["python"] != nil {
                throw ConfigError("model '\(m)' is Python code, and this mserve was built without Python (MServePython)")
            }
            throw ConfigError("unknown model '\(m)'; known models: \(names.joined(separator: ", ")), or NAME=module:Attribute for Python")
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
                throw ConfigError("\(settings.config ?? "config"): [model.\(m)]: unknown option '\(key)'"
                                  + "\(Spelling.suggestion(for: key, among: known + serverKeys)); \(listed)")
            }
        }
    }
}
