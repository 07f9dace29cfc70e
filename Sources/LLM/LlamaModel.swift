#if canImport(Glibc)
import Glibc
#endif

/// A llama-architecture model from a GGUF file (SmolLM2-135M-Instruct): the weights stay in the
/// mapped file, quantized; activations and the KV cache are float32.  One `Sequence` per
/// conversation holds its KV cache; `step` runs one token through every block and returns the
/// logits for the next.
///
/// The block: RMSNorm, grouped-query attention (RoPE over the whole head, rotating adjacent pairs
/// as GGUF's llama layout stores Q and K), a residual; RMSNorm, SwiGLU, a residual.  The output
/// head is the token embedding, tied.
public final class LlamaModel: @unchecked Sendable {
    public struct Config: Equatable, Sendable {
        public let layers, dim, heads, kvHeads, headDim, feedForward, vocabulary, context: Int
        public let eps: Float
        public let ropeBase: Float
        public var kvDim: Int { kvHeads * headDim }
    }

    struct Layer {
        let attnNorm, ffnNorm: [Float]
        let q, k, v, o, gate, up, down: QuantizedMatrix
    }

    public let file: GGUFFile
    public let config: Config
    let embedding: QuantizedMatrix
    let outputNorm: [Float]
    let layers: [Layer]

    public init(file: GGUFFile) throws(GGUFError) {
        self.file = file
        try file.requireArchitecture("llama")
        let dim = try file.int("{arch}.embedding_length"), heads = try file.int("{arch}.attention.head_count")
        guard heads > 0, dim % heads == 0 else { throw GGUFError(file.path, "embedding_length \(dim) is not a multiple of head_count \(heads)") }
        let embed = try file.tensor("token_embd.weight")
        config = Config(layers: try file.int("{arch}.block_count"), dim: dim, heads: heads,
                        kvHeads: try file.int("{arch}.attention.head_count_kv"), headDim: dim / heads,
                        feedForward: try file.int("{arch}.feed_forward_length"), vocabulary: embed.rows,
                        context: try file.int("{arch}.context_length"),
                        eps: Float(file.metadata["llama.attention.layer_norm_rms_epsilon"]?.doubleValue ?? 1e-5),
                        ropeBase: Float(file.metadata["llama.rope.freq_base"]?.doubleValue ?? 10_000))
        guard config.heads % config.kvHeads == 0 else { throw GGUFError(file.path, "head_count is not a multiple of head_count_kv") }
        if file.tensorsByName["output.weight"] != nil { throw GGUFError(file.path, "an untied output head (output.weight) is not supported yet") }
        embedding = QuantizedMatrix(file, embed)
        outputNorm = file.dequantize(try file.tensor("output_norm.weight"), rows: 0..<1)
        var layers: [Layer] = []
        for i in 0..<config.layers {
            func m(_ name: String) throws(GGUFError) -> QuantizedMatrix { QuantizedMatrix(file, try file.tensor("blk.\(i).\(name).weight")) }
            func norm(_ name: String) throws(GGUFError) -> [Float] { file.dequantize(try file.tensor("blk.\(i).\(name).weight"), rows: 0..<1) }
            layers.append(Layer(attnNorm: try norm("attn_norm"), ffnNorm: try norm("ffn_norm"), q: try m("attn_q"), k: try m("attn_k"),
                                v: try m("attn_v"), o: try m("attn_output"), gate: try m("ffn_gate"), up: try m("ffn_up"),
                                down: try m("ffn_down")))
        }
        self.layers = layers
    }

    /// One conversation's KV cache: per layer, `count` positions of keys and of values.
    public final class Sequence {
        public private(set) var count = 0
        var keys: [[Float]]
        var values: [[Float]]

        init(_ c: Config) {
            keys = Array(repeating: [], count: c.layers)
            values = Array(repeating: [], count: c.layers)
        }

        func advance() { count += 1 }
    }

    public func newSequence() -> Sequence { Sequence(config) }

    /// Feeds one token at the sequence's next position; the logits for the token after it.
    public func step(_ token: Int32, _ seq: Sequence) -> [Float] {
        let c = config
        let pos = seq.count
        var x = [Float](repeating: 0, count: c.dim)
        var h = [Float](repeating: 0, count: c.dim)
        var q = [Float](repeating: 0, count: c.dim)
        var k = [Float](repeating: 0, count: c.kvDim)
        var v = [Float](repeating: 0, count: c.kvDim)
        var att = [Float](repeating: 0, count: c.dim)
        var o = [Float](repeating: 0, count: c.dim)
        var g = [Float](repeating: 0, count: c.feedForward)
        var u = [Float](repeating: 0, count: c.feedForward)
        var scores = [Float](repeating: 0, count: pos + 1)
        x.withUnsafeMutableBufferPointer { embedding.row(Int(token), into: $0.baseAddress!) }
        let (cosT, sinT) = rope(pos)
        let group = c.heads / c.kvHeads
        let scale = 1 / Float(c.headDim).squareRoot()
        for (l, layer) in layers.enumerated() {
            LlamaModel.rmsNorm(x, layer.attnNorm, c.eps, into: &h)
            h.withUnsafeBufferPointer { hp in
                q.withUnsafeMutableBufferPointer { layer.q.multiply(hp.baseAddress!, into: $0.baseAddress!) }
                k.withUnsafeMutableBufferPointer { layer.k.multiply(hp.baseAddress!, into: $0.baseAddress!) }
                v.withUnsafeMutableBufferPointer { layer.v.multiply(hp.baseAddress!, into: $0.baseAddress!) }
            }
            LlamaModel.rotate(&q, heads: c.heads, c.headDim, cosT, sinT)
            LlamaModel.rotate(&k, heads: c.kvHeads, c.headDim, cosT, sinT)
            seq.keys[l] += k
            seq.values[l] += v
            let keys = seq.keys[l], values = seq.values[l]
            for head in 0..<c.heads {
                let kv = (head / group) * c.headDim
                let qo = head * c.headDim
                var top = -Float.infinity
                for t in 0...pos {
                    var s: Float = 0
                    for d in 0..<c.headDim { s += q[qo + d] * keys[t * c.kvDim + kv + d] }
                    scores[t] = s * scale
                    top = max(top, scores[t])
                }
                var sum: Float = 0
                for t in 0...pos {
                    scores[t] = exp(scores[t] - top)
                    sum += scores[t]
                }
                for d in 0..<c.headDim { att[qo + d] = 0 }
                for t in 0...pos {
                    let w = scores[t] / sum
                    for d in 0..<c.headDim { att[qo + d] += w * values[t * c.kvDim + kv + d] }
                }
            }
            att.withUnsafeBufferPointer { ap in o.withUnsafeMutableBufferPointer { layer.o.multiply(ap.baseAddress!, into: $0.baseAddress!) } }
            for i in 0..<c.dim { x[i] += o[i] }
            LlamaModel.rmsNorm(x, layer.ffnNorm, c.eps, into: &h)
            h.withUnsafeBufferPointer { hp in
                g.withUnsafeMutableBufferPointer { layer.gate.multiply(hp.baseAddress!, into: $0.baseAddress!) }
                u.withUnsafeMutableBufferPointer { layer.up.multiply(hp.baseAddress!, into: $0.baseAddress!) }
            }
            for i in 0..<c.feedForward { g[i] = g[i] / (1 + exp(-g[i])) * u[i] }
            g.withUnsafeBufferPointer { gp in o.withUnsafeMutableBufferPointer { layer.down.multiply(gp.baseAddress!, into: $0.baseAddress!) } }
            for i in 0..<c.dim { x[i] += o[i] }
        }
        seq.advance()
        LlamaModel.rmsNorm(x, outputNorm, c.eps, into: &h)
        var logits = [Float](repeating: 0, count: c.vocabulary)
        h.withUnsafeBufferPointer { hp in logits.withUnsafeMutableBufferPointer { embedding.multiply(hp.baseAddress!, into: $0.baseAddress!) } }
        return logits
    }

    static func rmsNorm(_ x: [Float], _ gain: [Float], _ eps: Float, into out: inout [Float]) {
        var ss: Float = 0
        for v in x { ss += v * v }
        let r = 1 / (ss / Float(x.count) + eps).squareRoot()
        for i in x.indices { out[i] = x[i] * r * gain[i] }
    }

    /// Pair i of every head turns by pos · base^(−2i/headDim).
    private func rope(_ pos: Int) -> ([Float], [Float]) {
        let half = config.headDim / 2
        var c = [Float](repeating: 0, count: half), s = [Float](repeating: 0, count: half)
        for i in 0..<half {
            let theta = Float(pos) * pow(config.ropeBase, -2 * Float(i) / Float(config.headDim))
            c[i] = cos(theta)
            s[i] = sin(theta)
        }
        return (c, s)
    }

    static func rotate(_ x: inout [Float], heads: Int, _ headDim: Int, _ c: [Float], _ s: [Float]) {
        for h in 0..<heads {
            for i in 0..<(headDim / 2) {
                let a = x[h * headDim + 2 * i], b = x[h * headDim + 2 * i + 1]
                x[h * headDim + 2 * i] = a * c[i] - b * s[i]
                x[h * headDim + 2 * i + 1] = a * s[i] + b * c[i]
            }
        }
    }
}
