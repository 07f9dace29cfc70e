import Testing

@testable import GGUFInference

#if canImport(Glibc)
    import Glibc
#endif

struct SamplerTests {
    let logits: [Float] = [1, 3, 2, 0.5, 2.9]

    /// The probabilities the draw weighs (vectorized): libm's exp((l − peak) / T) within float
    /// rounding, 0 for a forbidden token (−∞), whatever the count (not a multiple of 8 here).
    @Test func probabilitiesAreTheExponentials() {
        let l: [Float] = (0..<1003).map { Float(($0 * 7919) % 2000) / 100 - 15 } + [-.infinity, 6]
        let peak = l.max() ?? 0
        let (p, total) = Sampler.probabilities(l, temperature: 0.7)
        #expect(p.count == l.count && p[1003] == 0 && p[1004] == 1)
        var sum: Double = 0
        for i in 0..<1003 {
            let want = exp(Double((l[i] - peak) / 0.7))
            sum += want
            #expect(abs(Double(p[i]) - want) <= 3e-7 * want, "at \(l[i]): \(p[i]) vs \(want)")
        }
        #expect(abs(Double(total) - (sum + 1)) <= 1e-5 * sum)
        // All negative and fewer than eight: the padding does not count.
        let few = Sampler.probabilities([-3, -1, -2], temperature: 1)
        #expect(few.p[1] == 1 && abs(few.total - (1 + exp(-1) + exp(-2))) < 1e-6)
    }

    @Test func temperatureZeroIsGreedy() {
        var s = Sampler(SamplingParameters(temperature: 0))
        #expect((0..<5).map { _ in s.next(logits) } == [1, 1, 1, 1, 1])
    }

    @Test func theSameSeedGivesTheSameTokensAndAnotherSeedOthers() {
        func run(_ seed: UInt64) -> [Int32] {
            var s = Sampler(SamplingParameters(temperature: 1.5, seed: seed))
            return (0..<40).map { _ in s.next(logits) }
        }
        #expect(run(7) == run(7))
        #expect(run(7) != run(8))
        #expect(Set(run(7)).count > 2)
    }

    @Test func topKAndTopPLimitTheCandidates() {
        var k = Sampler(SamplingParameters(temperature: 5, topK: 2, seed: 1))
        #expect(Set((0..<200).map { _ in k.next(logits) }) == [1, 4])
        // Probabilities at T=1: 3 → .40, 2.9 → .36, 2 → .15, ...; top_p 0.7 keeps the first two.
        var p = Sampler(SamplingParameters(temperature: 1, topP: 0.7, seed: 1))
        #expect(Set((0..<200).map { _ in p.next(logits) }) == [1, 4])
        var one = Sampler(SamplingParameters(temperature: 1, topP: 0.01, seed: 1))
        #expect(Set((0..<50).map { _ in one.next(logits) }) == [1])
    }

    /// Draws follow the distribution: within the top k, and over the whole vocabulary (a long tail
    /// of unlikely tokens holds its share), found without sorting it.
    @Test func drawsFollowTheDistribution() {
        let l: [Float] = [0, 1, 2, 0.5] + Array(repeating: -5, count: 1000)
        func shares(_ p: SamplingParameters) -> [Int: Double] {
            var s = Sampler(p), counts: [Int: Int] = [:]
            for _ in 0..<20000 { counts[Int(s.next(l)), default: 0] += 1 }
            return counts.mapValues { Double($0) / 20000 }
        }
        let top3 = shares(SamplingParameters(temperature: 1, topK: 3, seed: 9))
        let z = exp(2.0) + exp(1.0) + exp(0.5)
        #expect(Set(top3.keys) == [1, 2, 3])
        #expect(abs((top3[2] ?? 0) - exp(2.0) / z) < 0.02 && abs((top3[1] ?? 0) - exp(1.0) / z) < 0.02)
        let all = shares(SamplingParameters(temperature: 1, seed: 9))
        let whole = 1 + exp(1.0) + exp(2.0) + exp(0.5) + 1000 * exp(-5.0)
        let tail = all.filter { $0.key >= 4 }.values.reduce(0, +)
        #expect(abs(tail - 1000 * exp(-5.0) / whole) < 0.02 && abs((all[2] ?? 0) - exp(2.0) / whole) < 0.02)
        // The nucleus: 2 and 1 hold 0.73 of the mass (above 0.6); 3 and the tail are cut.
        #expect(Set(shares(SamplingParameters(temperature: 1, topP: 0.6, seed: 9)).keys) == [1, 2])
    }

    @Test func frequencyAndPresencePenaltiesPushRepeatsDown() {
        var s = Sampler(SamplingParameters(temperature: 0, presencePenalty: 0.2))
        // 1 (3.0), then 4 (2.9 beats 3.0 − 0.2), then 1 again (2.8 beats 2.9 − 0.2): presence counts once.
        #expect([s.next(logits), s.next(logits), s.next(logits)] == [1, 4, 1])
        var f = Sampler(SamplingParameters(temperature: 0, frequencyPenalty: 0.6))
        // 1 (3.0); 4 (2.9 > 2.4); 1 (2.4 > 2.3, 2.0); 4 (2.3 > 1.8): frequency counts every time.
        #expect((0..<4).map { _ in f.next(logits) } == [1, 4, 1, 4])
        var g = Sampler(SamplingParameters(temperature: 0, frequencyPenalty: 0.6))
        #expect((0..<6).map { _ in g.next(logits) }.contains(2))
    }

    @Test func stopStringsAreHeldBackAcrossPiecesAndCutTheText() {
        var m = StopMatcher(["</end>", "STOP"])
        var shown = ""
        for piece in ["Hello <", "/en", "d> never"] { shown += m.feed(piece) }
        #expect(shown == "Hello " && m.stopped)
        var n = StopMatcher(["STOP"])
        #expect(n.feed("a ST") == "a ")
        #expect(n.feed("AY") == "STAY")
        #expect(n.feed(" S") == " ")
        #expect(n.finish() == "S" && !n.stopped)
    }
}
