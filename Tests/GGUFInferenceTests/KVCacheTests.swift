import Testing

@testable import GGUFInference

/// The paged KV cache: blocks from a worker's pool, given back when a sequence ends; attention
/// over blocks equals attention over one run of positions.
struct KVCacheTests {
    static let config = LlamaModel.Config(
        layers: 2, dim: 128, heads: 2, kvHeads: 1, headDim: 64, feedForward: 256,
        vocabulary: 10, context: 256, eps: 1e-5, ropeBase: 10_000)

    @Test func sequencesTakeBlocksAsTheyGrowAndGiveThemBack() throws {
        let pool = try KVBlockPool(config: Self.config, tokens: 100, blockTokens: 16)
        #expect(pool.blockCount == 6 && pool.freeBlocks == 6)
        let a = KVCache(pool: pool)
        #expect(a.makeRoom(for: 17) && a.blocks.count == 2)
        a.append(Array(repeating: 5, count: 17))
        #expect(a.makeRoom(for: 15) && a.blocks.count == 2)  // 32 positions: still two blocks
        #expect(a.makeRoom(for: 16) && a.blocks.count == 3)
        do {
            let b = KVCache(pool: pool)
            #expect(b.makeRoom(for: 48))
            #expect(pool.freeBlocks == 0)
            // Short of blocks: nothing taken, the cache as it was.
            #expect(!a.makeRoom(for: 48) && a.blocks.count == 3)
        }
        // b ended (dropped): its blocks are free again, most recently freed taken first.
        #expect(pool.freeBlocks == 3)
        let c = KVCache(pool: pool)
        #expect(c.makeRoom(for: 1))
        #expect(Set(c.blocks).isDisjoint(with: a.blocks))
        a.release()
        #expect(pool.freeBlocks == 5 && a.blocks.isEmpty && a.count == 0)
    }

    /// The same keys and values in blocks of 1, 5 and 16 (runs cut at every block's edge, a
    /// window that starts inside a block) give the same attention as in one block holding all.
    @Test(arguments: [64, 256])
    func attentionOverBlocksEqualsAttentionOverOneRun(headDim: Int) throws {
        let config = LlamaModel.Config(
            layers: 2, dim: 128, heads: 1, kvHeads: 1, headDim: headDim, feedForward: 256,
            vocabulary: 10, context: 256, eps: 1e-5, ropeBase: 10_000)
        let positions = 53
        var rng = SplitMix(seed: 7)
        let keys = (0..<(positions * headDim)).map { _ in rng.float() }, values = (0..<(positions * headDim)).map { _ in rng.float() }
        let q = (0..<headDim).map { _ in rng.float() }
        func attention(blockTokens: Int, window: Range<Int>) throws -> [Float] {
            let pool = try KVBlockPool(config: config, tokens: 64, blockTokens: blockTokens)
            let cache = KVCache(pool: pool)
            #expect(cache.makeRoom(for: positions))
            for p in 0..<positions {
                for layer in 0..<2 {
                    let at = cache.keys(at: p, layer: layer)
                    for i in 0..<headDim {
                        at[i] = keys[p * headDim + i] + Float(layer)
                        at[pool.valueOffset + i] = values[p * headDim + i] - Float(layer)
                    }
                }
            }
            cache.append(Array(repeating: 1, count: positions))
            var scores = [Float](repeating: 0, count: positions), out = [Float](repeating: 0, count: headDim)
            q.withUnsafeBufferPointer { qp in
                scores.withUnsafeMutableBufferPointer { sp in
                    out.withUnsafeMutableBufferPointer { op in
                        LlamaModel.attend(
                            qp.baseAddress!, KVView(cache: cache, layer: 1), offset: 0, positions: window, headDim, 0.125,
                            scores: sp.baseAddress!, into: op.baseAddress!)
                    }
                }
            }
            return out
        }
        for window in [0..<positions, 7..<positions, 16..<33] {
            let whole = try attention(blockTokens: 64, window: window)
            for blockTokens in [1, 5, 16] {
                let paged = try attention(blockTokens: blockTokens, window: window)
                #expect(zip(paged, whole).allSatisfy { abs($0 - $1) < 1e-5 }, "blocks of \(blockTokens), window \(window)")
            }
            // The layer's own values: the keys and values of layer 0 (offset by 1) were not read.
            #expect(whole.allSatisfy { $0 < 0.5 })
        }
    }
}

/// Prefix caching: full blocks known by their prefix's hash, shared, kept after their sequence
/// ends, evicted least recently used.
struct PrefixCacheTests {
    static func filled(_ pool: KVBlockPool, _ tokens: [Int32]) -> KVCache {
        let c = KVCache(pool: pool)
        #expect(c.makeRoom(for: tokens.count))
        c.append(tokens)
        return c
    }

    @Test func aPromptThatBeginsAsAnEarlierOneTakesItsFullBlocks() throws {
        let pool = try KVBlockPool(config: KVCacheTests.config, tokens: 160, blockTokens: 16, caching: true)
        let first = Array(Int32(100)..<Int32(140))  // 40 tokens: two full blocks, 8 more
        let a = Self.filled(pool, first)
        #expect(pool.cachedBlocks == 2)
        // The same 40 and more: the two full blocks are taken, shared with a.
        let b = KVCache(pool: pool)
        #expect(b.adopt(first + [7, 8, 9]) == 32)
        #expect(b.blocks == Array(a.blocks.prefix(2)) && b.count == 32)
        // Different from the 20th token: only the first block.
        var other = first
        other[20] = 1
        #expect(KVCache(pool: pool).adopt(other) == 16)
        // Different at the first token, or shorter than a block and one: nothing.
        other[0] = 1
        #expect(KVCache(pool: pool).adopt(other) == 0)
        #expect(KVCache(pool: pool).adopt(Array(first.prefix(16))) == 0)
        // A prompt that is exactly two blocks leaves its last token to compute: one block taken.
        #expect(KVCache(pool: pool).adopt(Array(first.prefix(32))) == 16)
        let s = pool.stats
        #expect(s.queries == 5 && s.hits == 3 && s.hitTokens == 64)
        // Without caching nothing is taken, and nothing registered.
        let plain = try KVBlockPool(config: KVCacheTests.config, tokens: 160, blockTokens: 16)
        _ = Self.filled(plain, first)
        #expect(plain.cachedBlocks == 0 && KVCache(pool: plain).adopt(first) == 0)
    }

    @Test func cachedBlocksOutliveTheirSequenceUntilTheirRoomIsNeeded() throws {
        let pool = try KVBlockPool(config: KVCacheTests.config, tokens: 64, blockTokens: 16, caching: true)
        let old = Array(Int32(0)..<Int32(32)), newer = Array(Int32(50)..<Int32(82))
        do {
            _ = Self.filled(pool, old)
            _ = Self.filled(pool, newer)
        }
        // Both ended: their four blocks are idle but cached, and can be taken.
        #expect(pool.freeBlocks == 4 && pool.cachedBlocks == 4)
        #expect(KVCache(pool: pool).adopt(old + [1]) == 32)
        // Room for 16 more positions: the least recently used cached block goes (old's were
        // used last, by the adoption above), a prefix's tail before its head (a sequence gives its
        // blocks back last first, as vLLM does): newer keeps its first block.
        do {
            let c = KVCache(pool: pool)
            #expect(c.makeRoom(for: 16))
            #expect(pool.cachedBlocks == 3)
        }
        #expect(KVCache(pool: pool).adopt(newer + [1]) == 16)
        #expect(KVCache(pool: pool).adopt(old + [1]) == 32)
        // A held block is never evicted: with old's two held, only two can be had.
        let holder = KVCache(pool: pool)
        #expect(holder.adopt(old + [1]) == 32)
        #expect(pool.freeBlocks == 2 && !KVCache(pool: pool).makeRoom(for: 48))
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}
