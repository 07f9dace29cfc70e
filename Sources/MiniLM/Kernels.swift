#if canImport(Glibc)
import Glibc
#endif

/// The element-wise parts of the encoder, on rows of contiguous floats, vectorised with SIMD8
/// (AVX on x86-64).  Everything heavier is a BLAS matrix product.
enum Kernels {
    typealias V = SIMD8<Float>

    /// y = LayerNorm(x + residual) * gamma + beta, row by row, in place in x (eps as BERT: 1e-12).
    static func addLayerNorm(_ x: UnsafeMutablePointer<Float>, adding residual: UnsafePointer<Float>?, rows: Int, width: Int,
                             gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float) {
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
                let v = (raw.loadUnaligned(fromByteOffset: i * 32, as: V.self) - mean) * inv
                    * g.loadUnaligned(fromByteOffset: i * 32, as: V.self) + b.loadUnaligned(fromByteOffset: i * 32, as: V.self)
                raw.storeBytes(of: v, toByteOffset: i * 32, as: V.self)
            }
        }
    }

    /// Each of `rows` rows of `out` (stride `width`) set to `bias`: a matrix product then adds onto it.
    static func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, width: Int, with bias: UnsafePointer<Float>) {
        for r in 0..<rows { (out + r * width).update(from: bias, count: width) }
    }

    /// GELU with erf, as BERT's "gelu": x/2 * (1 + erf(x/sqrt 2)), in place.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let k: Float = 0.7071067811865476
        for i in 0..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + erff(v * k))
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
