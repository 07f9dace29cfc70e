import Testing

@testable import GGUFInference

/// Prompt attention (many queries of one key-value head at once) against the decode's attention,
/// query by query, over a paged cache (runs cut at blocks of 5) with windows that start and end
/// inside the blocks of sixteen positions; and each query's result the same to the bit alone or
/// in any group.
struct PromptAttentionTests {
    @Test(arguments: [64, 80, 256])
    func queriesTogetherEqualEachAttendedAlone(headDim: Int) throws {
        let config = LlamaModel.Config(
            layers: 1, dim: 128, heads: 3, kvHeads: 1, headDim: headDim, feedForward: 256,
            vocabulary: 10, context: 256, eps: 1e-5, ropeBase: 10_000)
        let positions = 53
        var rng = SplitMix(seed: 11)
        let pool = try KVBlockPool(config: config, tokens: 64, blockTokens: 5)
        let cache = KVCache(pool: pool)
        #expect(cache.makeRoom(for: positions))
        for p in 0..<positions {
            let at = cache.keys(at: p, layer: 0)
            for i in 0..<headDim {
                at[i] = rng.float()
                at[pool.valueOffset + i] = rng.float()
            }
        }
        cache.append(Array(repeating: 1, count: positions))
        let view = KVView(cache: cache, layer: 0)
        let windows = [0..<1, 0..<16, 0..<17, 7..<40, 0..<53, 30..<53, 52..<53, 16..<32, 3..<4, 1..<50]
        let q = (0..<(windows.count * headDim)).map { _ in rng.float() * 2 }
        var together = [Float](repeating: .nan, count: windows.count * headDim)
        var alone = together, decoded = together
        var scores = [Float](repeating: 0, count: positions)
        q.withUnsafeBufferPointer { qp in
            guard let qBase = qp.baseAddress else { return }
            func queries(_ out: UnsafeMutablePointer<Float>, _ picked: [Int]) -> [PromptAttention.Query] {
                picked.map { PromptAttention.Query(q: qBase + $0 * headDim, out: out + $0 * headDim, positions: windows[$0]) }
            }
            together.withUnsafeMutableBufferPointer { tp in
                PromptAttention.attend(queries(tp.baseAddress!, Array(windows.indices)), view, offset: 0, headDim, 0.125)
            }
            alone.withUnsafeMutableBufferPointer { ap in
                for i in windows.indices.reversed() { PromptAttention.attend(queries(ap.baseAddress!, [i]), view, offset: 0, headDim, 0.125) }
            }
            decoded.withUnsafeMutableBufferPointer { dp in
                scores.withUnsafeMutableBufferPointer { sp in
                    for (i, w) in windows.enumerated() {
                        LlamaModel.attend(
                            qBase + i * headDim, view, offset: 0, positions: w, headDim, 0.125, scores: sp.baseAddress!,
                            into: dp.baseAddress! + i * headDim)
                    }
                }
            }
        }
        #expect(together == alone)
        let worst = zip(together, decoded).map { abs($0 - $1) }.max() ?? 1
        #expect(worst < 1e-5, "largest difference from the decode's attention \(worst)")
    }
}
