/// A 404 for a path a model this mserve knows would answer, had it been started with it (`/echo`
/// on a server of `demo`, `/v1/embeddings` without an embedding model): the answer says so, and
/// how to serve it, instead of a bare "no route" (pure).
enum UnservedModel {
    static func hint(path: String, served: [String], known: [ModelRegistry.Entry]) -> String? {
        let now = served.isEmpty ? "" : " (this server serves \(served.joined(separator: ", ")))"
        func serve(_ name: String) -> String { "start mserve with it: mserve [options] \((served + [name]).joined(separator: " "))" }
        let openAI: (kind: String, fits: (ModelRegistry.Entry) -> Bool)? =
            switch path {
            case "/v1/embeddings": ("embedding", { $0.type is any EmbeddingModel.Type })
            case "/v1/chat/completions", "/v1/completions", "/v1/responses": ("chat", \.generative)
            default: nil
            }
        if let openAI {
            guard let model = known.first(where: openAI.fits) else { return "no \(openAI.kind) model is served\(now)" }
            return "no \(openAI.kind) model is served\(now); \(model.name) is one: \(serve(model.name))"
        }
        let name = String(path.dropFirst())
        guard path.hasPrefix("/"), !name.contains("/"), known.contains(where: { $0.name == name }), !served.contains(name) else { return nil }
        return "the model \(name) is not served here\(now); \(serve(name))"
    }
}
