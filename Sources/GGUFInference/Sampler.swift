#if canImport(Glibc)
    import Glibc
#endif

/// How the next token is chosen, in OpenAI's terms.
public struct SamplingParameters: Equatable, Sendable {
    /// 0: greedy (the most likely token, always).
    public var temperature: Float = 1
    /// Nucleus: the fewest most-likely tokens whose probabilities reach `topP` (1: all).
    public var topP: Float = 1
    /// The `topK` most likely only (0: no limit).
    public var topK = 0
    /// The same seed, prompt and parameters give the same tokens; nil: a random seed.
    public var seed: UInt64?
    /// Subtracted from a token's logit once it has been generated (presence), and per time
    /// (frequency), over the tokens generated so far, as OpenAI and vLLM define them.
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// With each token, its log-probability and this many of the most likely tokens' (0-20); nil: none.
    public var logprobs: Int?
    /// Added to these tokens' logits before anything else (OpenAI's `logit_bias`).
    public var logitBias: [Int32: Float] = [:]

    public init(
        temperature: Float = 1, topP: Float = 1, topK: Int = 0, seed: UInt64? = nil,
        presencePenalty: Float = 0, frequencyPenalty: Float = 0, logprobs: Int? = nil
    ) {
        self.logprobs = logprobs
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
    }
}

/// Picks tokens from logits for one sequence: penalties, then greedy at temperature 0, else
/// temperature, top-k, top-p and a draw from its own seeded generator.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: Xoshiro256
    /// Tokens generated so far and how often (for the penalties).
    private var counts: [Int32: Int] = [:]

    public init(_ p: SamplingParameters) {
        parameters = p
        rng = Xoshiro256(seed: p.seed ?? UInt64.random(in: 0...UInt64.max))
    }

    public mutating func next(_ logits: [Float]) -> Int32 { sample(logits).token }

    /// The next token, and with `logprobs` asked for, its log-probability and the most likely
    /// tokens' in the distribution it was drawn from: after the penalties and the temperature
    /// (and the logit bias; the logits as they are at temperature 0, where the draw is greedy), before top-k and top-p
    /// cut it (as vLLM and llama.cpp report them).
    public mutating func sample(_ logits: [Float]) -> (token: Int32, logprobs: TokenLogprobs?) {
        let l = adjusted(logits)
        return chosen(pick(l), l)
    }

    /// Constrained (a grammar): the token drawn as `sample` draws it if `accepts` takes it, as
    /// llama.cpp's grammar sampler does, so that a constraint costs a check per token while the
    /// model keeps to it; else drawn again from the tokens `allowed` leaves (the log-probabilities
    /// then those of that distribution).  nil when nothing is allowed.
    public mutating func sample(_ logits: [Float], accepts: (Int32) -> Bool, allowed: () -> [Bool]) -> (token: Int32, logprobs: TokenLogprobs?)? {
        var l = adjusted(logits)
        let first = pick(l)
        if accepts(first) { return chosen(first, l) }
        let mask = allowed()
        guard mask.contains(true) else { return nil }
        for i in l.indices where i >= mask.count || !mask[i] { l[i] = -.infinity }
        return chosen(pick(l), l)
    }

    /// The logits with the bias and penalties applied.
    private func adjusted(_ logits: [Float]) -> [Float] {
        var l = logits
        for (id, bias) in parameters.logitBias where l.indices.contains(Int(id)) { l[Int(id)] += bias }
        if parameters.presencePenalty != 0 || parameters.frequencyPenalty != 0 {
            for (id, n) in counts where l.indices.contains(Int(id)) {
                l[Int(id)] -= parameters.presencePenalty + Float(n) * parameters.frequencyPenalty
            }
        }
        return l
    }

    private mutating func chosen(_ id: Int32, _ l: [Float]) -> (token: Int32, logprobs: TokenLogprobs?) {
        counts[id, default: 0] += 1
        guard let k = parameters.logprobs else { return (id, nil) }
        return (id, TokenLogprobs(l, temperature: parameters.temperature > 0 ? parameters.temperature : 1, chosen: id, top: k))
    }

    private mutating func pick(_ l: [Float]) -> Int32 {
        guard parameters.temperature > 0 else { return Int32(Sampler.argmax(l)) }
        let (p, total) = Sampler.probabilities(l, temperature: parameters.temperature)
        let k = parameters.topK > 0 ? min(parameters.topK, l.count) : l.count
        guard k < l.count || parameters.topP < 1 else { return drawAny(p, mass: total) }
        // The candidates, most likely first, without sorting the whole vocabulary: those at or above
        // a threshold lowered (1/2, 1/4, 1/16, 1/256, ...) until they are k (top-k) or hold top_p
        // of the mass (the nucleus); only they are sorted.
        let needed = k < l.count ? Float.infinity : parameters.topP * total
        var threshold: Float = 0.5
        var candidates: [Int] = []
        while true {
            candidates = p.indices.filter { p[$0] >= threshold }
            let mass = candidates.reduce(Float(0)) { $0 + p[$1] }
            if candidates.count >= k || mass >= needed || threshold == 0 { break }
            threshold = threshold < 1e-30 ? 0 : threshold * threshold
        }
        candidates.sort { p[$0] > p[$1] }
        if candidates.count > k { candidates.removeLast(candidates.count - k) }
        // Nucleus: the fewest whose share of the candidates' mass reaches top_p (at least one).
        let pool = candidates.reduce(Float(0)) { $0 + p[$1] }
        var keep = candidates.count, sum: Float = 0
        if parameters.topP < 1 {
            for (i, c) in candidates.enumerated() {
                sum += p[c]
                if sum >= parameters.topP * pool { keep = i + 1; break }
            }
        }
        let kept = Array(candidates.prefix(keep))
        return draw(p, kept, mass: kept.reduce(Float(0)) { $0 + p[$1] })
    }

    /// Probabilities up to a common factor (the most likely token's is 1): exp((l − peak) / T),
    /// and their sum, eight at a time: a vocabulary of 262,144 (Gemma's) took libm's exp, one at a
    /// time, and a sum whose every addition waited on the last 1.4 ms a token and sequence on the
    /// engine's thread.  0 for a token a grammar forbids (−∞).
    static func probabilities(_ l: [Float], temperature: Float) -> (p: [Float], total: Float) {
        let n = l.count, whole = n - n % 8
        var p = [Float](repeating: 0, count: n), total: Float = 0
        l.withUnsafeBufferPointer { lp in
            p.withUnsafeMutableBufferPointer { pp in
                guard let from = lp.baseAddress, let to = pp.baseAddress else { return }
                @inline(__always) func eight(_ i: Int) -> SIMD8<Float> { UnsafeRawPointer(from + i).loadUnaligned(as: SIMD8<Float>.self) }
                var top = SIMD8<Float>(repeating: -.infinity)
                for i in stride(from: 0, to: whole, by: 8) {
                    let x = eight(i)
                    top = top.replacing(with: x, where: x .> top)
                }
                var peak = top.max()
                for i in whole..<n { peak = max(peak, from[i]) }
                var sums = SIMD8<Float>()
                for i in stride(from: 0, to: whole, by: 8) {
                    let e = exp8((eight(i) - peak) / temperature)
                    UnsafeMutableRawPointer(to + i).storeBytes(of: e, as: SIMD8<Float>.self)
                    sums += e
                }
                total = sums.sum()
                guard whole < n else { return }
                // The last few, padded with −∞ (whose exponential is 0).
                var x = SIMD8<Float>(repeating: -.infinity)
                for j in 0..<(n - whole) { x[j] = from[whole + j] }
                let e = exp8((x - peak) / temperature)
                for j in 0..<(n - whole) { to[whole + j] = e[j] }
                total += e.sum()
            }
        }
        return (p, total)
    }

    /// One draw among `candidates` in proportion to `p`, whose sum over them is `mass`.
    private mutating func draw(_ p: [Float], _ candidates: some BidirectionalCollection<Int>, mass: Float) -> Int32 {
        Sampler.locate(p, candidates, rng.nextUnit() * mass)
    }

    /// `draw` among all tokens: eights passed over by their sums, then token by token from the
    /// eight where the draw falls.
    private mutating func drawAny(_ p: [Float], mass: Float) -> Int32 {
        var u = rng.nextUnit() * mass, i = 0
        p.withUnsafeBufferPointer { pp in
            guard let base = pp.baseAddress else { return }
            while i + 8 <= pp.count {
                let eight = UnsafeRawPointer(base + i).loadUnaligned(as: SIMD8<Float>.self).sum()
                if u - eight <= 0 { break }
                u -= eight
                i += 8
            }
        }
        let found = Sampler.locate(p, i..<p.count, u)
        // Rounding can leave the draw past the last token with any probability after `i`.
        return p[Int(found)] > 0 ? found : Sampler.locate(p, p.indices, .infinity)
    }

    /// The candidate where `u` (a point in [0, their mass)) falls: the last with a probability if
    /// rounding leaves it beyond them.
    private static func locate(_ p: [Float], _ candidates: some BidirectionalCollection<Int>, _ u: Float) -> Int32 {
        var u = u
        for c in candidates where p[c] > 0 {
            u -= p[c]
            if u <= 0 { return Int32(c) }
        }
        return Int32(candidates.last { p[$0] > 0 } ?? candidates.first ?? 0)
    }

    static func argmax(_ l: [Float]) -> Int {
        var best = 0
        for i in l.indices where l[i] > l[best] { best = i }
        return best
    }
}

/// A sampled token's log-probability, and the most likely tokens' (most likely first).
public struct TokenLogprobs: Equatable, Sendable {
    public struct Alternative: Equatable, Sendable {
        public let id: Int32
        public let logprob: Float
    }
    public let logprob: Float
    public let top: [Alternative]

    /// log softmax(logits / temperature) at `chosen`, and at the `top` largest.
    init(_ logits: [Float], temperature: Float, chosen: Int32, top k: Int) {
        var best: [Alternative] = []  // the k largest logits so far, largest first
        var peak = -Float.infinity
        for (i, v) in logits.enumerated() {
            peak = max(peak, v)
            // A token a grammar forbids (-inf) is no alternative.
            guard k > 0, v > -.infinity, best.count < k || v > best[best.count - 1].logprob else { continue }
            let at = best.firstIndex { v > $0.logprob } ?? best.count
            best.insert(Alternative(id: Int32(i), logprob: v), at: at)
            if best.count > k { best.removeLast() }
        }
        var sum: Double = 0
        for v in logits { sum += Double(exp((v - peak) / temperature)) }
        // log p(i) = (l_i - peak) / T - log Σ exp((l_j - peak) / T)
        let norm = Float(log(sum))
        func logOf(_ v: Float) -> Float { (v - peak) / temperature - norm }
        logprob = logits.indices.contains(Int(chosen)) ? logOf(logits[Int(chosen)]) : -.infinity
        self.top = best.map { Alternative(id: $0.id, logprob: logOf($0.logprob)) }
    }
}

/// xoshiro256** seeded by splitmix64: fast, and the same sequence for the same seed everywhere.
struct Xoshiro256: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Watches generated text for stop strings (OpenAI's `stop`, up to 4): text that could be the
/// beginning of one is held back, so that a stream never shows part of a stop string; once one
/// appears, everything before it is released and generation ends (finish_reason "stop").
public struct StopMatcher: Sendable {
    public let stops: [String]
    private var held = ""
    public private(set) var stopped = false

    public init(_ stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// The text that may be shown now.
    public mutating func feed(_ text: String) -> String {
        guard !stopped else { return "" }
        held += text
        if let cut = stops.compactMap({ held.firstRange(of: $0)?.lowerBound }).min() {
            stopped = true
            defer { held = "" }
            return String(held[..<cut])
        }
        // Hold the longest tail that is a prefix of some stop string.
        var keep = 0
        for s in stops {
            for n in stride(from: min(s.count - 1, held.count), to: 0, by: -1) where held.hasSuffix(s.prefix(n)) {
                keep = max(keep, n)
                break
            }
        }
        let emit = String(held.dropLast(keep))
        held = String(held.suffix(keep))
        return emit
    }

    /// At the end without a stop: what was held back.
    public mutating func finish() -> String {
        defer { held = "" }
        return stopped ? "" : held
    }
}
