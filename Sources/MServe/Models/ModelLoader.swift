import MServeSystem

/// A model as loaded, before a worker serves it (WorkerAssembly makes its ServedModel): in each
/// worker after fork, or once in the master with --preload (then shared by every worker).
package struct LoadedModel {
    package let name: String
    package let summary: String
    package let device: String
    package let instance: any Model

    package init(name: String, summary: String, device: String, instance: any Model) {
        self.name = name
        self.summary = summary
        self.device = device
        self.instance = instance
    }
}

/// Creates the models: in each worker after fork, or once in the master with --preload.
package enum ModelLoader {
    /// `slot` is the worker's slot, or -1 for models preloaded in the master (shared by all).
    package static func load(_ settings: Settings, registry: ModelRegistry, slot: Int, logger: Logger) throws(ModelLoadError) -> [LoadedModel] {
        var models: [LoadedModel] = []
        for name in settings.models {
            let ms = settings.settings(forModel: name)
            guard let entry = registry.entry(named: name, settings: ms) else { throw ModelLoadError("unknown model \(name)") }
            var options = ms.options
            // --pythonpath and --python-venv reach the Python models (which may override it in their table).
            if options["python"] != nil {
                if options["pythonpath"] == nil, let path = settings.pythonPath { options["pythonpath"] = .string(path) }
                if options["python_venv"] == nil, let venv = settings.pythonVenv { options["python_venv"] = .string(venv) }
            }
            // model_dir is the server's to give (every model may have one), not a model option.
            let dir = options.removeValue(forKey: "model_dir")?.stringValue ?? settings.modelDir
            let ctx = ModelContext(
                name: name, slot: slot, device: ms.device, options: options, modelDir: dir, logger: logger,
                runtime: settings.runtime(forModel: name, generative: entry.generative))
            let started = monotonicSeconds()
            do {
                let instance = try entry.make(ctx)
                models.append(LoadedModel(name: name, summary: entry.summary, device: ms.device, instance: instance))
                logger.info("model \(name) loaded in \(String(format3: monotonicSeconds() - started)) s on \(ms.device)")
            } catch {
                // Name where its options came from: a bad value there is the likeliest cause.
                let source = settings.modelSettings[name] == nil ? "" : " (options: [model.\(name)] in \(settings.config ?? "the config"))"
                throw ModelLoadError("model \(name) failed to load\(source): \(error)")
            }
        }
        return models
    }
}
