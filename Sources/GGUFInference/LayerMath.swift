#if canImport(Glibc)
    import Glibc
#endif

/// The small steps of a layer between its products: RMSNorm, GELU, RoPE, biases.
extension LlamaModel {
    /// Each `dim`-long row of `x`, normalized by its root mean square and scaled by `gain`.
    static func rmsNorm(_ x: [Float], _ gain: [Float], _ dim: Int, _ eps: Float, into out: inout [Float]) {
        for r in 0..<(x.count / dim) {
            var ss: Float = 0
            for i in 0..<dim { ss += x[r * dim + i] * x[r * dim + i] }
            let scale = 1 / (ss / Float(dim) + eps).squareRoot()
            for i in 0..<dim { out[r * dim + i] = x[r * dim + i] * scale * gain[i] }
        }
    }

    /// The feed-forward's gate: each `g[i]` through the activation, times `u[i]`, eight at a
    /// time.  SiLU is g·σ(g); GELU's tanh approximation (PyTorch's `gelu(approximate="tanh")`,
    /// Gemma's) is ½g(1 + tanh y) = g·σ(2y), y = √(2/π)(g + 0.044715g³): one exponential each,
    /// vectorized (libm's scalar tanhf and expf were 5% of a batched Gemma step, on one thread).
    static func gate(_ activation: FeedForwardActivation, _ g: inout [Float], _ u: [Float], count: Int) {
        precondition(g.count >= count && u.count >= count)
        @inline(__always) func one(_ x: SIMD8<Float>) -> SIMD8<Float> {
            switch activation {
            case .silu: return x / (1 + exp8(-x))
            case .geluTanh: return x / (1 + exp8(-1.5957691216057308 * (x + 0.044715 * x * x * x)))
            }
        }
        g.withUnsafeMutableBufferPointer { gp in
            u.withUnsafeBufferPointer { up in
                guard let gb = gp.baseAddress, let ub = up.baseAddress else { return }
                eightAtATime(count, UnsafePointer(gb), ub, into: gb) { x, v in one(x) * v }
            }
        }
    }

    /// Pair i of every head turns by pos · base^(−2i/headDim) / factor i.
    func rope(_ pos: Float, base: Float) -> (cos: [Float], sin: [Float]) {
        let half = config.headDim / 2
        var c = [Float](repeating: 0, count: half), s = [Float](repeating: 0, count: half)
        for i in 0..<half {
            let theta = pos * pow(base, -2 * Float(i) / Float(config.headDim)) / ropeFactors[i]
            c[i] = cos(theta)
            s[i] = sin(theta)
        }
        return (c, s)
    }

    /// Pair i of each head is (2i, 2i + 1), or with `halves` (i, i + headDim/2).
    static func rotate(
        _ x: inout [Float], at offset: Int, heads: Int, _ headDim: Int, _ table: (cos: [Float], sin: [Float]),
        halves: Bool = false
    ) {
        let half = headDim / 2
        for h in 0..<heads {
            let base = offset + h * headDim
            for i in 0..<half {
                let first = halves ? base + i : base + 2 * i, second = halves ? base + i + half : base + 2 * i + 1
                let a = x[first], b = x[second]
                x[first] = a * table.cos[i] - b * table.sin[i]
                x[second] = a * table.sin[i] + b * table.cos[i]
            }
        }
    }

    /// `bias` added to each of `n` rows of `width` in `x` (nothing without one).
    static func addBias(_ bias: [Float]?, to x: inout [Float], _ n: Int, _ width: Int) {
        guard let bias else { return }
        for t in 0..<n {
            for j in 0..<width { x[t * width + j] += bias[j] }
        }
    }
}
