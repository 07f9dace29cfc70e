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

    /// GELU with tanh's approximation (PyTorch's `gelu(approximate="tanh")`, Gemma's).
    @inline(__always) static func geluTanh(_ x: Float) -> Float {
        0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
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
