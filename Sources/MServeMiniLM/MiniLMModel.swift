import MServe
import MiniLM

/// `minilm`: sentence-transformers' all-MiniLM-L6-v2, 384-dimensional unit-length sentence
/// embeddings, computed in Swift with OpenBLAS (Sources/MiniLM).  Batches: the requests queued
/// together run as one forward pass.  Options: `model_dir` (or --model-dir), `max_inputs` (256).
public final class MiniLMModel: BatchingModel, EmbeddingModel {
    public static let defaultDirectory = "models/all-MiniLM-L6-v2"
    public static var optionNames: [String]? { ["max_inputs"] }
    let embedder: SentenceEmbedder
    let maxInputs: Int
    public var dimensions: Int { embedder.dimensions }

    public init(context: ModelContext) throws {
        let dir = context.modelDir ?? MiniLMModel.defaultDirectory
        switch context.options["max_inputs"] {
        case nil: maxInputs = 256
        case .int(let n)? where n >= 1: maxInputs = Int(n)
        default: throw ModelLoadError("minilm: option max_inputs must be a positive integer")
        }
        guard SentenceEmbedder.blasIsThreadSafe else {
            throw ModelLoadError(
                "minilm: the OpenBLAS in use is the serial build, which gives wrong results when called from several threads; "
                    + "install libopenblas0-pthread (update-alternatives --config libopenblas.so.0-x86_64-linux-gnu)")
        }
        do {
            embedder = try SentenceEmbedder(directory: dir)
        } catch {
            throw ModelLoadError(
                "minilm: \(error).  Fetch the model with `bash scripts/fetch-minilm` (into \(MiniLMModel.defaultDirectory)) "
                    + "or point --model-dir (config: model_dir) at a directory holding all-MiniLM-L6-v2's files")
        }
    }

    /// The texts of `{"input": "text"}` or `{"input": ["text", ...]}`; 400 for anything else.
    func texts(_ input: JSON) throws(ModelInputError) -> [String] {
        switch input["input"] {
        case nil, .some(.null):
            throw ModelInputError("missing input: send {\"input\": \"text\"} or {\"input\": [\"text\", ...]}")
        case .string(let s)?:
            guard !s.isEmpty else { throw ModelInputError("input is an empty string") }
            return [s]
        case .array(let items)?:
            guard !items.isEmpty else { throw ModelInputError("input is an empty list") }
            guard items.count <= maxInputs else {
                throw ModelInputError("input has \(items.count) items; at most \(maxInputs) per request")
            }
            var out: [String] = []
            out.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item else {
                    throw ModelInputError("input[\(i)] is a \(item.typeName), expected a string (token arrays are not supported)")
                }
                guard !s.isEmpty else { throw ModelInputError("input[\(i)] is an empty string") }
                out.append(s)
            }
            return out
        case let v?:
            throw ModelInputError("input must be a string or a list of strings, got a \(v.typeName)")
        }
    }

    public func validate(_ input: JSON) throws { _ = try texts(input) }

    /// Called after `validate`, so the input is known good: count it without copying the texts.
    public func batchCost(_ input: JSON) -> Int {
        if case .array(let items)? = input["input"] { return items.count }
        return 1
    }

    /// Every text of every request in one forward pass; each request gets its own slice back.
    public func inferBatch(_ requests: [InferenceRequest]) -> [Result<JSON, any Error>] {
        var parsed: [Result<[String], any Error>] = []
        var all: [String] = []
        for r in requests {
            do throws(ModelInputError) {
                let t = try texts(r.input)
                parsed.append(.success(t))
                all += t
            } catch {
                parsed.append(.failure(error))
            }
        }
        let (vectors, tokens, truncated) = embedder.embed(texts: all)
        let d = embedder.dimensions
        var next = 0
        return parsed.map { p in
            p.map { texts in
                let range = next..<next + texts.count
                next += texts.count
                let embeddings: [JSON] = range.map { .floats(Array(vectors[$0 * d..<($0 + 1) * d])) }
                return [
                    "model": "minilm",
                    "dimensions": .int(Int64(d)),
                    "embeddings": .array(embeddings),
                    "tokens": .array(range.map { .int(Int64(tokens[$0])) }),
                    "truncated": .array(range.map { .bool(truncated[$0]) }),
                    "usage": ["prompt_tokens": .int(Int64(range.reduce(0) { $0 + tokens[$1] }))],
                    // Inputs in the forward pass that answered this request (dynamic batching at work).
                    "batch_inputs": .int(Int64(all.count))
                ]
            }
        }
    }
}

extension ModelRegistry {
    /// Adds `minilm`: what the `mserve` executable serves beside the built-in models.
    public mutating func registerMiniLM() {
        register(MiniLMModel.self, as: "minilm", summary: "all-MiniLM-L6-v2 sentence embeddings (384 dimensions); also POST /v1/embeddings")
    }
}
