#if canImport(Glibc)
    import Glibc
#endif

/// The element-wise parts of the encoder, on rows of contiguous floats, vectorised with SIMD8
/// (AVX on x86-64).  Everything heavier is a BLAS matrix product.
enum Kernels {
    typealias V = SIMD8<Float>

    /// y = LayerNorm(x + residual) * gamma + beta, row by row, in place in x (eps as BERT: 1e-12).
    static func addLayerNorm(
        _ x: UnsafeMutablePointer<Float>, adding residual: UnsafePointer<Float>?, rows: Int, width: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float
    ) {
        precondition(width % V.scalarCount == 0)
        let lanes = width / V.scalarCount
        for r in 0..<rows {
            let row = x + r * width
            let raw = UnsafeMutableRawPointer(row)
            var sum = V()
            if let residual {
                let res = UnsafeRawPointer(residual + r * width)
                for i in 0..<lanes {
                    let v = raw.loadUnaligned(fromByteOffset: i * 32, as: V.self) + res.loadUnaligned(fromByteOffset: i * 32, as: V.self)
                    raw.storeBytes(of: v, toByteOffset: i * 32, as: V.self)
                    sum += v
                }
            } else {
                for i in 0..<lanes { sum += raw.loadUnaligned(fromByteOffset: i * 32, as: V.self) }
            }
            let mean = sum.sum() / Float(width)
            var sq = V()
            for i in 0..<lanes {
                let d = raw.loadUnaligned(fromByteOffset: i * 32, as: V.self) - mean
                sq += d * d
            }
            let inv = 1 / (sq.sum() / Float(width) + eps).squareRoot()
            let g = UnsafeRawPointer(gamma), b = UnsafeRawPointer(beta)
            for i in 0..<lanes {
                let v =
                    (raw.loadUnaligned(fromByteOffset: i * 32, as: V.self) - mean) * inv
                    * g.loadUnaligned(fromByteOffset: i * 32, as: V.self) + b.loadUnaligned(fromByteOffset: i * 32, as: V.self)
                raw.storeBytes(of: v, toByteOffset: i * 32, as: V.self)
            }
        }
    }

    /// Each of `rows` rows of `out` (stride `width`) set to `bias`: a matrix product then adds onto it.
    static func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, width: Int, with bias: UnsafePointer<Float>) {
        for r in 0..<rows { (out + r * width).update(from: bias, count: width) }
    }

    /// GELU with erf, as BERT's "gelu": x/2 * (1 + erf(x/√2)), in place.  libm's erff was a seventh
    /// of the encoder's time; this is XLA's rational approximation of erf on [-4, 4] (error below
    /// 1e-7 there; erf is ±1 to float precision beyond), eight lanes at a time.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let raw = UnsafeMutableRawPointer(x)
        var i = 0
        while i + V.scalarCount <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            raw.storeBytes(of: geluLanes(v), toByteOffset: i * 4, as: V.self)
            i += V.scalarCount
        }
        while i < count {
            var tail = V(repeating: 0)
            tail[0] = x[i]
            x[i] = geluLanes(tail)[0]
            i += 1
        }
    }

    @inline(__always) static func geluLanes(_ v: V) -> V {
        var t = v * 0.7071067811865476
        t.clamp(lowerBound: V(repeating: -4), upperBound: V(repeating: 4))
        let t2 = t * t
        var p = t2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = p * t2 + -2.10102402082508e-06
        p = p * t2 + -5.69250639462346e-05
        p = p * t2 + -7.34990630326855e-04
        p = p * t2 + -2.95459980854025e-03
        p = p * t2 + -1.60960333262415e-02
        var q = t2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = q * t2 + -1.68282697438203e-03
        q = q * t2 + -7.37332916720468e-03
        q = q * t2 + -1.42647390514189e-02
        return 0.5 * v * (1 + t * p / q)
    }

    /// One head of self-attention over one sequence of `n` tokens with head size 32 (MiniLM's):
    /// out_i = Σ_j softmax_j(q_i·k_j · scale) v_j.  For short sequences this beats two sgemm calls,
    /// whose packing costs more than the arithmetic; `scores` holds n floats.
    static func attention32(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
        n: Int, scale: Float, scores: UnsafeMutablePointer<Float>,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ lane: Int) -> V {
            UnsafeRawPointer(p).loadUnaligned(fromByteOffset: lane * 32, as: V.self)
        }
        for i in 0..<n {
            let qi = q + i * stride
            let q0 = load(qi, 0), q1 = load(qi, 1), q2 = load(qi, 2), q3 = load(qi, 3)
            var m = -Float.infinity
            for j in 0..<n {
                let kj = k + j * stride
                let d = (q0 * load(kj, 0) + q1 * load(kj, 1) + q2 * load(kj, 2) + q3 * load(kj, 3)).sum() * scale
                scores[j] = d
                m = max(m, d)
            }
            var sum: Float = 0
            for j in 0..<n {
                let e = expf(scores[j] - m)
                scores[j] = e
                sum += e
            }
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for j in 0..<n {
                let vj = v + j * stride
                let p = V(repeating: scores[j])
                a0 += p * load(vj, 0); a1 += p * load(vj, 1); a2 += p * load(vj, 2); a3 += p * load(vj, 3)
            }
            let inv = V(repeating: 1 / sum)
            let o = UnsafeMutableRawPointer(out + i * outStride)
            o.storeBytes(of: a0 * inv, toByteOffset: 0, as: V.self)
            o.storeBytes(of: a1 * inv, toByteOffset: 32, as: V.self)
            o.storeBytes(of: a2 * inv, toByteOffset: 64, as: V.self)
            o.storeBytes(of: a3 * inv, toByteOffset: 96, as: V.self)
        }
    }

    /// Softmax of each of `rows` rows of length `n` (stride `n`), in place.
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        for r in 0..<rows {
            let row = x + r * n
            var m = -Float.infinity
            for i in 0..<n { m = max(m, row[i]) }
            var s: Float = 0
            for i in 0..<n {
                let e = expf(row[i] - m)
                row[i] = e
                s += e
            }
            let inv = 1 / s
            for i in 0..<n { row[i] *= inv }
        }
    }
}
