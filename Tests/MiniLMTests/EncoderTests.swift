import Testing

@testable import MiniLM

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct EncoderTests {
    /// Every component of every fixture embedding within 1e-5 of sentence-transformers'.
    @Test func embeddingsMatchTheReference() {
        let e = Fixture.embedder
        var worst: Float = 0
        var worstText = ""
        for s in Fixture.sentences {
            let got = e.embed([s.ids])
            let diff = zip(got, s.embedding).map { abs($0 - $1) }.max()!
            if diff > worst { worst = diff; worstText = s.text }
        }
        #expect(worst <= 1e-5, "max abs difference \(worst) on \(worstText.prefix(60))")
    }

    /// Packing sequences of different lengths into one pass changes nothing.
    @Test func aPackedBatchEqualsOneAtATime() {
        let e = Fixture.embedder
        let seqs = Fixture.sentences.map(\.ids)
        let batched = e.embed(seqs)
        var worst: Float = 0
        for (i, s) in seqs.enumerated() {
            let one = e.embed([s])
            for j in 0..<e.dimensions { worst = max(worst, abs(one[j] - batched[i * e.dimensions + j])) }
        }
        #expect(worst <= 1e-6, "\(worst)")
    }

    /// sentence-transformers' quick-start example: cosine similarities 0.6660, 0.1046, 0.1411.
    @Test func theModelCardSimilarities() {
        let e = Fixture.embedder
        let (v, _, _) = e.embed(texts: ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
        func cos(_ a: Int, _ b: Int) -> Float { (0..<384).reduce(0) { $0 + v[a * 384 + $1] * v[b * 384 + $1] } }
        #expect(abs(cos(0, 1) - 0.6660) < 5e-5)
        #expect(abs(cos(0, 2) - 0.1046) < 5e-5)
        #expect(abs(cos(1, 2) - 0.1411) < 5e-5)
    }

    @Test func gelu() {
        var xs: [Float] = stride(from: -6, through: 6, by: 0.01).map { Float($0) }
        let want = xs.map { 0.5 * $0 * (1 + erff($0 / Float(2).squareRoot())) }
        xs.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count) }
        #expect(zip(xs, want).map { abs($0 - $1) }.max()! < 1e-6)
    }
}

@Suite struct PassSplittingTests {
    /// More tokens than one pass takes: split into passes, with the same results as alone.
    @Test func aLargeRequestRunsInSeveralPassesWithTheSameResults() {
        let e = Fixture.embedder
        let long = Fixture.sentences.first { $0.ids.count == 256 }!
        let seqs = Array(repeating: long.ids, count: SentenceEmbedder.maxTokensPerPass / 256 + 3) + [Fixture.sentences[0].ids]
        let all = e.embed(seqs)
        let alone = e.embed([long.ids]) + e.embed([Fixture.sentences[0].ids])
        let d = e.dimensions
        var worst: Float = 0
        for i in 0..<seqs.count {
            let ref = i == seqs.count - 1 ? Array(alone[d...]) : Array(alone[..<d])
            for j in 0..<d { worst = max(worst, abs(all[i * d + j] - ref[j])) }
        }
        #expect(worst <= 1e-6)
        #expect(e.largestWorkspace <= SentenceEmbedder.maxTokensPerPass * 3 / 2)
    }
}
