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
                var i = 0
                while i + 8 <= count {
                    let x = UnsafeRawPointer(gb + i).loadUnaligned(as: SIMD8<Float>.self)
                    let y = one(x) * UnsafeRawPointer(ub + i).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(gb + i).storeBytes(of: y, as: SIMD8<Float>.self)
                    i += 8
                }
                // The last few, in a vector padded with zeros.
                if i < count {
                    var x = SIMD8<Float>(), v = SIMD8<Float>()
                    for j in 0..<(count - i) {
                        x[j] = gb[i + j]
                        v[j] = ub[i + j]
                    }
                    let y = one(x) * v
                    for j in 0..<(count - i) { gb[i + j] = y[j] }
                }
            }
        }
    }

    /// e^x of eight floats: Cephes' expf (x = n·ln 2 + r, |r| ≤ ½ln 2; e^r by a polynomial of
    /// degree 7; 2^n into the exponent bits), within a few units in the last place of libm's.
    /// Beyond ±87 it saturates (to 2^-126 and 2^127), as the gates need; no input traps.
    @inline(__always)
    static func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let x = v.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.3))
        // Adding 1.5·2^23 rounds to an integer, which the sum's low bits then hold.
        let shifter: Float = 12_582_912
        let t = x * 1.44269504088896341 + shifter
        let n = t - shifter
        let r = (x - n * 0.693359375) + n * 2.12194440e-4
        var p = SIMD8<Float>(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let er = p * (r * r) + r + 1
        let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return er * unsafeBitCast(bits, to: SIMD8<Float>.self)
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
