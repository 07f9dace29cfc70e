/// `gemma3` files (Gemma 3): llama's block with the embedding scaled by √width, GELU (tanh) in
/// place of SiLU, RMSNorm of each head's query and key before NeoX RoPE, of attention's output and
/// of the feed-forward's before each joins the residual; heads wider than width / heads
/// (`attention.key_length`); five local layers of `attention.sliding_window` positions (RoPE base
/// 10,000) to every global one (the file's `rope.freq_base`, positions divided by
/// `rope.scaling.factor` where the file has one: 4B and larger), as llama.cpp's gemma3 graph runs
/// them; queries scaled by 1/√key_length (27B's, 62 layers: 1/√(width / heads)).  The file's norm
/// gains already hold Gemma's "1 +".
extension LlamaModel.Config {
    init(gemma3 file: GGUFFile, vocabulary: Int) throws(GGUFError) {
        let dim = try file.int("{arch}.embedding_length"), heads = try file.int("{arch}.attention.head_count")
        let headDim = try file.int("{arch}.attention.key_length")
        guard heads > 0, headDim > 0, headDim % 16 == 0, file.metadata[file.resolved("{arch}.attention.value_length")]?.intValue ?? headDim == headDim
        else {
            throw GGUFError(file.path, "attention.key_length \(headDim) must be a multiple of 16 and equal value_length")
        }
        self.init(
            layers: try file.int("{arch}.block_count"), dim: dim, heads: heads,
            kvHeads: try file.int("{arch}.attention.head_count_kv"), headDim: headDim,
            feedForward: try file.int("{arch}.feed_forward_length"), vocabulary: vocabulary,
            context: try file.int("{arch}.context_length"),
            eps: Float(file.double("{arch}.attention.layer_norm_rms_epsilon", default: 1e-6)),
            ropeBase: Float(file.double("{arch}.rope.freq_base", default: 1_000_000)),
            ropeHalves: true, embeddingScale: Float(dim).squareRoot(), activation: .geluTanh, sandwichNorms: true,
            slidingWindow: file.metadata[file.resolved("{arch}.attention.sliding_window")]?.intValue ?? 0, globalEvery: 6,
            localRopeBase: Float(file.double("{arch}.rope.freq_base_swa", default: 10_000)))
        if let factor = file.metadata[file.resolved("{arch}.rope.scaling.factor")]?.doubleValue, factor > 0 {
            globalPositionScale = Float(1 / factor)
        }
        if layers == 62 { attentionScale = 1 / (Float(dim) / Float(heads)).squareRoot() }
    }
}
