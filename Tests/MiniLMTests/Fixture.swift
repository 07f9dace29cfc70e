import MServeJSON

@testable import MiniLM

#if canImport(Glibc)
    import Glibc
#endif

/// The model files (scripts/fetch-minilm puts them in models/all-MiniLM-L6-v2; MSERVE_MINILM_DIR
/// overrides) and the committed reference of Tests/fixtures/minilm.
enum Fixture {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    static var modelDir: String {
        if let p = getenv("MSERVE_MINILM_DIR") { return String(cString: p) }
        return root + "/models/all-MiniLM-L6-v2"
    }

    struct Sentence {
        let text: String
        let ids: [Int32]
        let embedding: [Float]
    }

    static let sentences: [Sentence] = {
        let json = try! SentenceEmbedder.readJSON(root + "/Tests/fixtures/minilm/reference.json")
        guard case .array(let rows)? = json["sentences"] else { fatalError("reference.json has no sentences") }
        return rows.map { r in
            guard case .array(let ids)? = r["ids"], case .array(let e)? = r["embedding"] else { fatalError("bad row") }
            return Sentence(
                text: r["text"]!.stringValue!,
                ids: ids.map { if case .int(let v) = $0 { Int32(v) } else { fatalError() } },
                embedding: e.map { Float($0.doubleValue!) })
        }
    }()

    /// Loaded once for all tests (hashing and mapping 90 MB).
    static let embedder: SentenceEmbedder = {
        do { return try SentenceEmbedder(directory: modelDir) } catch {
            fatalError("MiniLM tests need the model: bash scripts/fetch-minilm (\(error))")
        }
    }()
}
