/// `llama` (SmolLM2, Llama 2 and 3.x, Mistral) and `qwen2` files: their hyper-parameters under the
/// architecture's key prefix.  qwen2 is llama with biases on q, k, v (read where the file has them)
/// and NeoX's RoPE.
extension LlamaModel.Config {
    init(llama file: GGUFFile, vocabulary: Int) throws(GGUFError) {
        let dim = try file.int("{arch}.embedding_length"), heads = try file.int("{arch}.attention.head_count")
        guard heads > 0, dim % heads == 0 else { throw GGUFError(file.path, "embedding_length \(dim) is not a multiple of head_count \(heads)") }
        self.init(
            layers: try file.int("{arch}.block_count"), dim: dim, heads: heads,
            kvHeads: try file.int("{arch}.attention.head_count_kv"), headDim: dim / heads,
            feedForward: try file.int("{arch}.feed_forward_length"), vocabulary: vocabulary,
            context: try file.int("{arch}.context_length"),
            eps: Float(file.double("{arch}.attention.layer_norm_rms_epsilon", default: 1e-5)),
            ropeBase: Float(file.double("{arch}.rope.freq_base", default: 10_000)),
            ropeHalves: file.metadata["general.architecture"]?.stringValue == "qwen2")
    }
}
