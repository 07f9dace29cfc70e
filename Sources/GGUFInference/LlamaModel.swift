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
/// head is the file's output.weight, or where it has none the token embedding (tied).
public final class LlamaModel: @unchecked Sendable {
    public struct Config: Equatable, Sendable {
        public let layers, dim, heads, kvHeads, headDim, feedForward, vocabulary, context: Int
        public let eps: Float
        public let ropeBase: Float
        /// RoPE on the first half of a head with the second (NeoX's, as qwen2 and gemma3 files lay
        /// Q and K out) rather than on adjacent pairs (llama's GGUF layout).
        public var ropeHalves = false
        /// The token embedding's scale (Gemma's: the square root of the width).
        public var embeddingScale: Float = 1
        public var activation: FeedForwardActivation = .silu
        /// Gemma's RMSNorms of each head's query and key and of attention's and the feed-forward's
        /// outputs (`attn_q_norm`, `attn_k_norm`, `post_attention_norm`, `post_ffw_norm`): all four.
        public var sandwichNorms = false
        /// Gemma 3's local layers: each token attends to this many positions, itself included, with
        /// RoPE of `localRopeBase`; every `globalEvery`th layer attends to all (0: none is local).
        public var slidingWindow = 0
        public var globalEvery = 0
        public var localRopeBase: Float = 10_000
        /// Linear RoPE scaling of the global layers (1 / `rope.scaling.factor`).
        public var globalPositionScale: Float = 1
        /// Queries' scale before softmax: 1/√headDim unless the architecture says otherwise.
        public var attentionScale: Float?
        /// The width of a token's queries (and of attention's output): heads × headDim, which
        /// Gemma's files make other than the embedding's.
        public var qDim: Int { heads * headDim }
        public func isLocal(_ layer: Int) -> Bool { slidingWindow > 0 && globalEvery > 0 && (layer + 1) % globalEvery != 0 }
        /// What one token's keys and values take in the cache (float32, every layer).
        public var kvBytesPerToken: Int { layers * 2 * kvHeads * headDim * MemoryLayout<Float>.size }
        public var kvDim: Int { kvHeads * headDim }
        /// The position at which a token's attention costs as much again as its products with the
        /// weights (what the batch scheduler budgets a step with): weights per token over keys and
        /// values read per position, divided by how much slower a multiply-add of attention runs
        /// than one of the quantized products here (measured ~6 with benchmark/long_prompt.py:
        /// prefill of 500, 1,000, 2,000 tokens fitted to a·n + b·n²/2).
        public var attentionSpan: Int {
            let weights = layers * (2 * dim * qDim + 2 * dim * kvDim + 3 * dim * feedForward)
            let attention = layers * heads * headDim * 2
            return max(64, weights / attention / 6)
        }
    }

    /// The feed-forward's gate: SiLU (llama's SwiGLU) or GELU's tanh approximation (Gemma's GeGLU).
    public enum FeedForwardActivation: Sendable { case silu, geluTanh }

    struct Layer {
        let attnNorm, ffnNorm: [Float]
        let q, k, v, o, gate, up, down: QuantizedMatrix
        /// qwen2's biases on the query, key and value projections (none in llama files).
        let qBias, kBias, vBias: [Float]?
        /// Gemma 3's RMSNorm of each head's query and key (before RoPE), and of attention's and the
        /// feed-forward's outputs (before each joins the residual).
        let qNorm, kNorm, postAttentionNorm, postFeedForwardNorm: [Float]?
    }

    /// What this forward pass runs: llama, qwen2 (llama with biases on q, k, v and NeoX RoPE) and
    /// gemma3 (Gemma3Architecture.swift).
    public static let architectures = ["llama", "qwen2", "gemma3"]

    /// How the inputs of the weight products are held: float32 (exact, the reference's way, with
    /// float kernels), or quantized in blocks of 32 for integer dot products on x86 (llama.cpp's
    /// way): int16 (within 0.01 of float32's logits, several times faster), or int8 (faster still;
    /// the input most sensitive to rounding, attention's, stays at 16 bits).  Elsewhere than x86, float32.
    public enum Activations: String, Sendable { case float32, int16, int8 }

    public let file: GGUFFile
    public let config: Config
    public let activations: Activations
    /// The threads a forward pass's products are split between.
    let pool: ComputePool
    let embedding: QuantizedMatrix
    let output: QuantizedMatrix
    /// Llama 3.1+'s `rope_freqs.weight`: pair i's angle divided by its factor (long wavelengths
    /// stretched); ones where the file has none.
    let ropeFactors: [Float]
    let outputNorm: [Float]
    let layers: [Layer]

    public init(file: GGUFFile, activations: Activations = .float32, threads: Int = ComputePool.cores) throws(GGUFError) {
        self.file = file
        self.activations = activations
        pool = ComputePool(threads: threads)
        let architecture = try file.requireArchitecture(LlamaModel.architectures)
        let embed = try file.tensor("token_embd.weight")
        config = architecture == "gemma3" ? try Config(gemma3: file, vocabulary: embed.rows) : try Config(llama: file, vocabulary: embed.rows)
        guard config.heads % config.kvHeads == 0 else { throw GGUFError(file.path, "head_count is not a multiple of head_count_kv") }
        embedding = QuantizedMatrix(file, embed)
        if let freqs = file.tensorsByName["rope_freqs.weight"] {
            guard freqs.elementCount == config.headDim / 2 else {
                throw GGUFError(file.path, "rope_freqs.weight has \(freqs.elementCount) values, not \(config.headDim / 2)")
            }
            ropeFactors = file.dequantize(freqs, rows: 0..<1)
        } else {
            ropeFactors = Array(repeating: 1, count: config.headDim / 2)
        }
        // The output head: its own matrix where the file has one, else the token embedding (tied).
        if let head = file.tensorsByName["output.weight"] {
            guard head.shape == embed.shape else {
                throw GGUFError(file.path, "output.weight is \(head.shape), token_embd.weight \(embed.shape): they must agree")
            }
            output = QuantizedMatrix(file, head)
        } else {
            output = embedding
        }
        outputNorm = file.dequantize(try file.tensor("output_norm.weight"), rows: 0..<1)
        var layers: [Layer] = []
        for i in 0..<config.layers {
            func m(_ name: String) throws(GGUFError) -> QuantizedMatrix { QuantizedMatrix(file, try file.tensor("blk.\(i).\(name).weight")) }
            func norm(_ name: String) throws(GGUFError) -> [Float] { file.dequantize(try file.tensor("blk.\(i).\(name).weight"), rows: 0..<1) }
            func bias(_ name: String, _ count: Int) throws(GGUFError) -> [Float]? {
                guard let t = file.tensorsByName["blk.\(i).\(name).bias"] else { return nil }
                guard t.elementCount == count else { throw GGUFError(file.path, "\(t.name) has \(t.elementCount) values, not \(count)") }
                return file.dequantize(t, rows: 0..<1)
            }
            let sandwich = config.sandwichNorms
            func gemmaNorm(_ name: String, _ count: Int) throws(GGUFError) -> [Float]? {
                guard sandwich else { return nil }
                let gain = try norm(name)
                guard gain.count == count else { throw GGUFError(file.path, "blk.\(i).\(name).weight has \(gain.count) values, not \(count)") }
                return gain
            }
            layers.append(
                Layer(
                    attnNorm: try norm("attn_norm"), ffnNorm: try norm("ffn_norm"), q: try m("attn_q"), k: try m("attn_k"),
                    v: try m("attn_v"), o: try m("attn_output"), gate: try m("ffn_gate"), up: try m("ffn_up"),
                    down: try m("ffn_down"), qBias: try bias("attn_q", config.qDim), kBias: try bias("attn_k", config.kvDim),
                    vBias: try bias("attn_v", config.kvDim), qNorm: try gemmaNorm("attn_q_norm", config.headDim),
                    kNorm: try gemmaNorm("attn_k_norm", config.headDim),
                    postAttentionNorm: try gemmaNorm("post_attention_norm", config.dim),
                    postFeedForwardNorm: try gemmaNorm("post_ffw_norm", config.dim)))
        }
        self.layers = layers
    }

    deinit { pool.shutdown() }

    public var threads: Int { pool.threads }

    /// One conversation's state in the model: its KV cache.
    public final class Sequence {
        public let cache: KVCache
        /// Positions in the cache.
        public var count: Int { cache.count }

        init(_ cache: KVCache) { self.cache = cache }
    }

    /// A sequence whose cache takes its blocks from `pool` (a worker's, shared by its sequences).
    public func newSequence(pool: KVBlockPool) -> Sequence { Sequence(KVCache(pool: pool)) }

    /// A sequence with a pool of its own, for the model's whole context (tests, tools).
    public func newSequence() -> Sequence {
        do {
            return newSequence(pool: try KVBlockPool(config: config, tokens: config.context + KVBlockPool.defaultBlockTokens))
        } catch {
            fatalError("\(error)")  // address space for one context: only exhausted address space refuses it
        }
    }

    /// Feeds one token at the sequence's next position; the logits for the token after it.
    public func step(_ token: Int32, _ seq: Sequence) -> [Float] {
        forward([BatchEntry(seq, [token], prompt: false)])[0] ?? []
    }

    /// One sequence's part of a forward pass: its next tokens (a prompt chunk, or the one token
    /// to decode), whether the logits after its last one are wanted, and whether its tokens are
    /// a prompt's: those are multiplied in float32 by the prompt kernel (FloatMatrixProduct),
    /// many at once, where the CPU has it; a decode's by the activations' kernels.
    public struct BatchEntry {
        public let sequence: Sequence
        public let tokens: [Int32]
        public let wantsLogits: Bool
        public let prompt: Bool
        public init(_ sequence: Sequence, _ tokens: [Int32], wantsLogits: Bool = true, prompt: Bool = true) {
            self.sequence = sequence
            self.tokens = tokens
            self.wantsLogits = wantsLogits
            self.prompt = prompt
        }
    }

    /// One forward pass over every entry's tokens, packed without padding: each weight matrix is
    /// read once for all of them.  Each token attends to its own sequence's cache up to its
    /// position.  Returns, per entry, the logits after its last token (nil where not wanted).
    public func forward(_ batch: [BatchEntry]) -> [[Float]?] {
        let c = config
        // Row t of every activation belongs to entry owner[t], at position pos[t] of its sequence.
        var owner: [Int] = [], pos: [Int] = []
        for (e, entry) in batch.enumerated() {
            for (j, _) in entry.tokens.enumerated() {
                owner.append(e)
                pos.append(entry.sequence.count + j)
            }
        }
        let n = owner.count
        guard n > 0 else { return batch.map { _ in nil } }
        let promptRows = FloatMatrixProduct.available ? (0..<n).filter { batch[owner[$0]].prompt } : []
        let rows = PassRows(count: n, prompt: promptRows, others: promptRows.isEmpty ? Array(0..<n) : (0..<n).filter { !batch[owner[$0]].prompt })
        for entry in batch where !entry.sequence.cache.makeRoom(for: entry.tokens.count) {
            // The engine admits a sequence only with its prompt and max_tokens reserved in blocks.
            preconditionFailure("the KV pool has no block left for a sequence it admitted")
        }
        var x = [Float](repeating: 0, count: n * c.dim)
        var h = x, o = x
        var q = [Float](repeating: 0, count: n * c.qDim), att = q
        var k = [Float](repeating: 0, count: n * c.kvDim), v = k
        var g = [Float](repeating: 0, count: n * c.feedForward), u = g
        x.withUnsafeMutableBufferPointer { xp in
            var t = 0
            for entry in batch {
                for token in entry.tokens {
                    embedding.row(Int(token), into: xp.baseAddress! + t * c.dim)
                    t += 1
                }
            }
        }
        if c.embeddingScale != 1 { for i in 0..<(n * c.dim) { x[i] *= c.embeddingScale } }
        let tables = pos.map { rope(Float($0) * c.globalPositionScale, base: c.ropeBase) }
        let localTables = c.slidingWindow > 0 ? pos.map { rope(Float($0), base: c.localRopeBase) } : tables
        let group = c.heads / c.kvHeads
        let scale = c.attentionScale ?? 1 / Float(c.headDim).squareRoot()
        // Prompt tokens in blocks of 16 of one entry: each block's queries of a key-value head are
        // PromptAttention's unit; the other rows attend one by one.
        let blockAttention = c.headDim % PromptAttention.width == 0 && !rows.prompt.isEmpty
        var promptBlocks: [Range<Int>] = []
        var lone = rows.others
        if blockAttention {
            var start = 0
            for entry in batch {
                let end = start + entry.tokens.count
                if entry.prompt {
                    promptBlocks += stride(from: start, to: end, by: PromptAttention.width).map { $0..<min($0 + PromptAttention.width, end) }
                }
                start = end
            }
        } else {
            lone = Array(0..<n)
        }
        // A row of scores per lone row and head (prompt blocks keep their own): a decode's heads
        // run on the pool's threads at once (a single sequence's decode has nothing else to split).
        let span = (pos.max() ?? 0) + 1
        var scores = [Float](repeating: 0, count: max(1, lone.count * c.heads * span))
        for (l, layer) in layers.enumerated() {
            LlamaModel.rmsNorm(x, layer.attnNorm, c.dim, c.eps, into: &h)
            var hi = input(h, c.dim, rows, sensitive: true)
            multiply(layer.q, hi, rows, into: &q)
            multiply(layer.k, hi, rows, into: &k)
            multiply(layer.v, hi, rows, into: &v)
            LlamaModel.addBias(layer.qBias, to: &q, n, c.qDim)
            LlamaModel.addBias(layer.kBias, to: &k, n, c.kvDim)
            LlamaModel.addBias(layer.vBias, to: &v, n, c.kvDim)
            if let qNorm = layer.qNorm, let kNorm = layer.kNorm {
                LlamaModel.rmsNorm(q, qNorm, c.headDim, c.eps, into: &q)
                LlamaModel.rmsNorm(k, kNorm, c.headDim, c.eps, into: &k)
            }
            let local = c.isLocal(l)
            for t in 0..<n {
                let table = local ? localTables[t] : tables[t]
                LlamaModel.rotate(&q, at: t * c.qDim, heads: c.heads, c.headDim, table, halves: c.ropeHalves)
                LlamaModel.rotate(&k, at: t * c.kvDim, heads: c.kvHeads, c.headDim, table, halves: c.ropeHalves)
            }
            // The chunk's keys and values join each cache first: a token then sees those before it.
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    guard let kBase = kp.baseAddress, let vBase = vp.baseAddress else { return }
                    for t in 0..<n {
                        let cache = batch[owner[t]].sequence.cache
                        let at = cache.keys(at: pos[t], layer: l)
                        at.update(from: kBase + t * c.kvDim, count: c.kvDim)
                        (at + cache.pool.valueOffset).update(from: vBase + t * c.kvDim, count: c.kvDim)
                    }
                }
            }
            // Every cache is complete for this layer: its blocks are read, not changed, meanwhile.
            q.withUnsafeBufferPointer { qp in
                att.withUnsafeMutableBufferPointer { ap in
                    scores.withUnsafeMutableBufferPointer { sp in
                        guard let qBase = qp.baseAddress, let aBase = ap.baseAddress, let sBase = sp.baseAddress else { return }
                        // A local layer's token sees the window's last positions, itself included.
                        func seen(_ t: Int) -> Range<Int> { (local ? max(0, pos[t] + 1 - c.slidingWindow) : 0)..<(pos[t] + 1) }
                        let loneUnits = lone.count * c.heads
                        pool.run(loneUnits + promptBlocks.count * c.kvHeads) { u in
                            guard u < loneUnits else {
                                let block = promptBlocks[(u - loneUnits) / c.kvHeads], h = (u - loneUnits) % c.kvHeads
                                let queries = block.flatMap { t in
                                    (h * group..<((h + 1) * group)).map { head in
                                        PromptAttention.Query(
                                            q: qBase + t * c.qDim + head * c.headDim, out: aBase + t * c.qDim + head * c.headDim,
                                            positions: seen(t))
                                    }
                                }
                                let view = KVView(cache: batch[owner[block.lowerBound]].sequence.cache, layer: l)
                                PromptAttention.attend(queries, view, offset: h * c.headDim, c.headDim, scale)
                                return
                            }
                            let row = u / c.heads, t = lone[row], head = u % c.heads
                            let view = KVView(cache: batch[owner[t]].sequence.cache, layer: l)
                            LlamaModel.attend(
                                qBase + t * c.qDim + head * c.headDim, view, offset: (head / group) * c.headDim,
                                positions: seen(t), c.headDim, scale, scores: sBase + (row * c.heads + head) * span,
                                into: aBase + t * c.qDim + head * c.headDim)
                        }
                    }
                }
            }
            multiply(layer.o, input(att, c.qDim, rows), rows, into: &o)
            if let post = layer.postAttentionNorm { LlamaModel.rmsNorm(o, post, c.dim, c.eps, into: &o) }
            for i in 0..<(n * c.dim) { x[i] += o[i] }
            LlamaModel.rmsNorm(x, layer.ffnNorm, c.dim, c.eps, into: &h)
            hi = input(h, c.dim, rows)
            multiply(layer.gate, hi, rows, into: &g)
            multiply(layer.up, hi, rows, into: &u)
            LlamaModel.gate(c.activation, &g, u, count: n * c.feedForward)
            multiply(layer.down, input(g, c.feedForward, rows), rows, into: &o)
            if let post = layer.postFeedForwardNorm { LlamaModel.rmsNorm(o, post, c.dim, c.eps, into: &o) }
            for i in 0..<(n * c.dim) { x[i] += o[i] }
        }
        // The last row of each entry that wants logits, through the head together.
        var lasts: [Float] = []
        var wanted: [Int] = []
        var last = -1
        for (e, entry) in batch.enumerated() {
            last += entry.tokens.count
            entry.sequence.cache.append(entry.tokens)
            guard entry.wantsLogits else { continue }
            lasts += x[(last * c.dim)..<((last + 1) * c.dim)]
            wanted.append(e)
        }
        var out = [[Float]?](repeating: nil, count: batch.count)
        guard !wanted.isEmpty else { return out }
        var normed = lasts
        LlamaModel.rmsNorm(lasts, outputNorm, c.dim, c.eps, into: &normed)
        // The logits after a prompt from its inputs at 16 bits (int8 mode): those of the exact
        // pass to about 0.001, as the prompt before them; a decode's at the activations' width.
        for promptEnds in [true, false] {
            let picked = wanted.indices.filter { batch[wanted[$0]].prompt == promptEnds }
            guard !picked.isEmpty else { continue }
            // All of one kind (the usual pass): the rows as they are, not copied.
            var inputs = normed
            if picked.count < wanted.count {
                inputs = []
                inputs.reserveCapacity(picked.count * c.dim)
                for k in picked { inputs += normed[(k * c.dim)..<((k + 1) * c.dim)] }
            }
            var logits = [Float](repeating: 0, count: picked.count * c.vocabulary)
            let q = quantized(inputs, picked.count, c.dim, sensitive: promptEnds)
            output.multiply(inputs, picked.count, pool: pool, quantized: q, into: &logits)
            for (i, k) in picked.enumerated() { out[wanted[k]] = Array(logits[(i * c.vocabulary)..<((i + 1) * c.vocabulary)]) }
        }
        return out
    }
}
