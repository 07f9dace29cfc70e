import COpenBLAS

/// The dimensions of a BERT encoder, from config.json.
public struct BertConfig: Sendable, Equatable {
    public var hidden = 384
    public var layers = 6
    public var heads = 12
    public var intermediate = 1536
    public var vocabulary = 30522
    public var positions = 512
    public var typeVocabulary = 2
    public var layerNormEps: Float = 1e-12
}

/// A BERT encoder's forward pass over a packed batch: the tokens of every sequence one after the
/// other, no padding.  Matrix products over all tokens at once go to BLAS (one sgemm each for the
/// fused query/key/value projection, the attention output, and the two feed-forward layers);
/// attention runs per sequence and head (two small sgemms each), so no token attends across
/// sequences and no work is spent on padding.
public final class BertEncoder: @unchecked Sendable {
    struct Layer {
        /// [3*hidden, hidden]: query, key and value stacked (copied once at load), and their biases.
        let qkv: UnsafeMutableBufferPointer<Float>
        let qkvBias: UnsafeMutableBufferPointer<Float>
        let attentionOut: UnsafeBufferPointer<Float>, attentionOutBias: UnsafeBufferPointer<Float>
        let attentionNormGamma: UnsafeBufferPointer<Float>, attentionNormBeta: UnsafeBufferPointer<Float>
        let intermediate: UnsafeBufferPointer<Float>, intermediateBias: UnsafeBufferPointer<Float>
        let output: UnsafeBufferPointer<Float>, outputBias: UnsafeBufferPointer<Float>
        let outputNormGamma: UnsafeBufferPointer<Float>, outputNormBeta: UnsafeBufferPointer<Float>
    }

    public let config: BertConfig
    /// Sequences up to this long get attention from Kernels.attention32, longer ones from sgemm.
    static let directAttentionLimit = 128
    /// Keeps the mapping alive: the weights below point into it.
    private let weights: SafeTensors
    private let wordEmbeddings: UnsafeBufferPointer<Float>
    private let positionEmbeddings: UnsafeBufferPointer<Float>
    private let typeEmbeddings: UnsafeBufferPointer<Float>
    private let embeddingNormGamma: UnsafeBufferPointer<Float>, embeddingNormBeta: UnsafeBufferPointer<Float>
    private let layers: [Layer]

    public init(weights: SafeTensors, config: BertConfig) throws(WeightsError) {
        self.config = config
        self.weights = weights
        let h = config.hidden, inner = config.intermediate
        guard h % config.heads == 0, h % 8 == 0 else { throw WeightsError(weights.path, "hidden size \(h) does not suit \(config.heads) heads") }
        wordEmbeddings = try weights.floats("embeddings.word_embeddings.weight", shape: [config.vocabulary, h])
        positionEmbeddings = try weights.floats("embeddings.position_embeddings.weight", shape: [config.positions, h])
        typeEmbeddings = try weights.floats("embeddings.token_type_embeddings.weight", shape: [config.typeVocabulary, h])
        embeddingNormGamma = try weights.floats("embeddings.LayerNorm.weight", shape: [h])
        embeddingNormBeta = try weights.floats("embeddings.LayerNorm.bias", shape: [h])
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            let qkv = UnsafeMutableBufferPointer<Float>.allocate(capacity: 3 * h * h)
            let qkvBias = UnsafeMutableBufferPointer<Float>.allocate(capacity: 3 * h)
            for (j, part) in ["query", "key", "value"].enumerated() {
                let w = try weights.floats(p + "attention.self.\(part).weight", shape: [h, h])
                let b = try weights.floats(p + "attention.self.\(part).bias", shape: [h])
                (qkv.baseAddress! + j * h * h).update(from: w.baseAddress!, count: h * h)
                (qkvBias.baseAddress! + j * h).update(from: b.baseAddress!, count: h)
            }
            layers.append(
                Layer(
                    qkv: qkv, qkvBias: qkvBias,
                    attentionOut: try weights.floats(p + "attention.output.dense.weight", shape: [h, h]),
                    attentionOutBias: try weights.floats(p + "attention.output.dense.bias", shape: [h]),
                    attentionNormGamma: try weights.floats(p + "attention.output.LayerNorm.weight", shape: [h]),
                    attentionNormBeta: try weights.floats(p + "attention.output.LayerNorm.bias", shape: [h]),
                    intermediate: try weights.floats(p + "intermediate.dense.weight", shape: [inner, h]),
                    intermediateBias: try weights.floats(p + "intermediate.dense.bias", shape: [inner]),
                    output: try weights.floats(p + "output.dense.weight", shape: [h, inner]),
                    outputBias: try weights.floats(p + "output.dense.bias", shape: [h]),
                    outputNormGamma: try weights.floats(p + "output.LayerNorm.weight", shape: [h]),
                    outputNormBeta: try weights.floats(p + "output.LayerNorm.bias", shape: [h])))
        }
        self.layers = layers
    }

    deinit {
        for l in layers {
            l.qkv.deallocate()
            l.qkvBias.deallocate()
        }
    }

    /// Scratch memory for one forward pass at a time, grown to the largest batch seen and reused.
    /// Used by one thread at a time (SentenceEmbedder hands each call its own).
    public final class Workspace: @unchecked Sendable {
        var capacityTokens = 0
        var longest = 0
        var x = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        var qkv = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        var context = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        var inner = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        var scores = UnsafeMutablePointer<Float>.allocate(capacity: 1)

        public init() {}

        func reserve(tokens: Int, longest: Int, config: BertConfig) {
            if tokens > capacityTokens {
                let n = max(tokens, capacityTokens * 3 / 2)
                for p in [x, qkv, context, inner] { p.deallocate() }
                x = .allocate(capacity: n * config.hidden)
                qkv = .allocate(capacity: n * 3 * config.hidden)
                context = .allocate(capacity: n * config.hidden)
                inner = .allocate(capacity: n * config.intermediate)
                capacityTokens = n
            }
            if longest > self.longest {
                scores.deallocate()
                scores = .allocate(capacity: longest * longest)
                self.longest = longest
            }
        }

        deinit { for p in [x, qkv, context, inner, scores] { p.deallocate() } }
    }

    /// Runs the encoder over the sequences (token ids, each at most `positions` long) and writes
    /// each sequence's mean-pooled hidden state (`hidden` floats) to `pooled`, in order.
    public func meanPooled(_ sequences: [[Int32]], into pooled: UnsafeMutablePointer<Float>, workspace ws: Workspace) {
        let h = config.hidden, inner = config.intermediate, heads = config.heads, dh = h / heads
        let total = sequences.reduce(0) { $0 + $1.count }
        let longest = sequences.map(\.count).max() ?? 0
        guard total > 0 else { return }
        ws.reserve(tokens: total, longest: longest, config: config)
        let x = ws.x, qkv = ws.qkv, ctx = ws.context, mid = ws.inner, scores = ws.scores
        let T = Int32(total)

        // Embeddings: word + position + token type 0, then LayerNorm.
        var row = 0
        for seq in sequences {
            for (pos, id) in seq.enumerated() {
                let out = x + row * h
                let w = wordEmbeddings.baseAddress! + Int(id) * h
                let p = positionEmbeddings.baseAddress! + pos * h
                let t = typeEmbeddings.baseAddress!
                for i in 0..<h { out[i] = w[i] + p[i] + t[i] }
                row += 1
            }
        }
        Kernels.addLayerNorm(
            x, adding: nil, rows: total, width: h, gamma: embeddingNormGamma.baseAddress!,
            beta: embeddingNormBeta.baseAddress!, eps: config.layerNormEps)

        let scale = 1 / Float(dh).squareRoot()
        for l in layers {
            // qkv = x Wqkvᵀ + b
            Kernels.fillRows(qkv, rows: total, width: 3 * h, with: l.qkvBias.baseAddress!)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, T, Int32(3 * h), Int32(h),
                1, x, Int32(h), l.qkv.baseAddress!, Int32(h), 1, qkv, Int32(3 * h))
            // Attention, per sequence and head: softmax(q kᵀ / √dh) v.
            var start = 0
            for seq in sequences {
                let n = seq.count
                let L = Int32(n)
                for head in 0..<heads {
                    let q = qkv + start * 3 * h + head * dh
                    let k = q + h
                    let v = q + 2 * h
                    if dh == 32 && n <= BertEncoder.directAttentionLimit {
                        Kernels.attention32(
                            q: q, k: k, v: v, stride: 3 * h, n: n, scale: scale, scores: scores,
                            out: ctx + start * h + head * dh, outStride: h)
                        continue
                    }
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasTrans, L, L, Int32(dh),
                        scale, q, Int32(3 * h), k, Int32(3 * h), 0, scores, L)
                    Kernels.softmaxRows(scores, rows: n, n: n)
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, L, Int32(dh), L,
                        1, scores, L, v, Int32(3 * h), 0, ctx + start * h + head * dh, Int32(h))
                }
                start += n
            }
            // Attention output projection, residual, LayerNorm (result in x).
            Kernels.fillRows(mid, rows: total, width: h, with: l.attentionOutBias.baseAddress!)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, T, Int32(h), Int32(h),
                1, ctx, Int32(h), l.attentionOut.baseAddress!, Int32(h), 1, mid, Int32(h))
            Kernels.addLayerNorm(
                x, adding: mid, rows: total, width: h, gamma: l.attentionNormGamma.baseAddress!,
                beta: l.attentionNormBeta.baseAddress!, eps: config.layerNormEps)
            // Feed-forward: GELU(x Wiᵀ + bi) Woᵀ + bo, residual, LayerNorm.
            Kernels.fillRows(mid, rows: total, width: inner, with: l.intermediateBias.baseAddress!)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, T, Int32(inner), Int32(h),
                1, x, Int32(h), l.intermediate.baseAddress!, Int32(h), 1, mid, Int32(inner))
            Kernels.gelu(mid, count: total * inner)
            Kernels.fillRows(ctx, rows: total, width: h, with: l.outputBias.baseAddress!)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, T, Int32(h), Int32(inner),
                1, mid, Int32(inner), l.output.baseAddress!, Int32(inner), 1, ctx, Int32(h))
            Kernels.addLayerNorm(
                x, adding: ctx, rows: total, width: h, gamma: l.outputNormGamma.baseAddress!,
                beta: l.outputNormBeta.baseAddress!, eps: config.layerNormEps)
        }

        // Mean over each sequence's tokens (every token is real: nothing is padded).
        var first = 0
        for (s, seq) in sequences.enumerated() {
            let out = pooled + s * h
            out.initialize(repeating: 0, count: h)
            for t in first..<first + seq.count {
                let r = x + t * h
                for i in 0..<h { out[i] += r[i] }
            }
            let inv = 1 / Float(seq.count)
            for i in 0..<h { out[i] *= inv }
            first += seq.count
        }
    }
}
