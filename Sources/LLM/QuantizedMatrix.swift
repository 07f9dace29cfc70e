#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Pointers shared by the threads of one product: they read the input and write disjoint rows of
/// the output, and the product waits for all of them.
struct SharedPointers: @unchecked Sendable {
    let input: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
}

/// A weight matrix as the file stores it (rows of quantized blocks), multiplied without being
/// dequantized: each block's scale (and minimum) applied to the dot product of its integers with
/// the input.  `y = W·x` with W of `rows` × `columns`, x of `columns`.
struct QuantizedMatrix: @unchecked Sendable {
    let type: GGMLType
    let rows: Int
    let columns: Int
    let base: UnsafeRawPointer
    let rowBytes: Int

    init(_ file: GGUFFile, _ t: GGUFFile.Tensor) {
        type = t.type
        columns = t.shape[0]
        rows = t.rows
        base = file.data(t).baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        rowBytes = t.rowBytes
    }

    /// One row as float32 (the embedding lookup).
    func row(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        type.dequantize(UnsafeRawBufferPointer(start: base + i * rowBytes, count: rowBytes),
                        into: UnsafeMutableBufferPointer(start: out, count: columns))
    }

    /// `n` input rows of `columns` in `x`, `n` output rows of `rows` in `y`: each weight row is read
    /// once and applied to every input, the row ranges split between threads.
    func multiply(_ x: [Float], _ n: Int, into y: inout [Float]) {
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let p = SharedPointers(input: xp.baseAddress!, output: yp.baseAddress!)
                let chunks = QuantizedMatrix.threads(for: rows * n)
                let per = (rows + chunks - 1) / chunks
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let range = (c * per)..<min(rows, (c + 1) * per)
                    for r in range {
                        let row = base + r * rowBytes
                        for i in 0..<n { p.output[i * rows + r] = dot(row, p.input + i * columns) }
                    }
                }
            }
        }
    }

    /// Threads for a product of `work` row·vector dots: one for small ones.
    static func threads(for work: Int) -> Int { work < 4096 ? 1 : cores }
    static let cores = max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    @inline(__always)
    func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        switch type {
        case .q8_0: return QuantizedMatrix.dotQ8_0(row, x, columns)
        case .q4_1: return QuantizedMatrix.dotQ4_1(row, x, columns)
        case .q4_0, .f16, .f32:
            var values = [Float](repeating: 0, count: columns)
            values.withUnsafeMutableBufferPointer { type.dequantize(UnsafeRawBufferPointer(start: row, count: rowBytes), into: $0) }
            var s: Float = 0
            for c in 0..<columns { s += values[c] * x[c] }
            return s
        }
    }

    /// Σ over 32-value blocks of d · Σ q·x.
    static func dotQ8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var total: Float = 0
        for b in 0..<(n / 32) {
            let block = row + b * 34
            let q = (block + 2).assumingMemoryBound(to: Int8.self)
            let xb = x + b * 32
            var s = SIMD8<Float>()
            for j in stride(from: 0, to: 32, by: 8) {
                let qs = SIMD8<Float>(Float(q[j]), Float(q[j + 1]), Float(q[j + 2]), Float(q[j + 3]),
                                      Float(q[j + 4]), Float(q[j + 5]), Float(q[j + 6]), Float(q[j + 7]))
                let xs = UnsafeRawPointer(xb + j).loadUnaligned(as: SIMD8<Float>.self)
                s += qs * xs
            }
            total += GGMLType.half(block) * s.sum()
        }
        return total
    }

    /// Σ over blocks of d · Σ q·x + m · Σ x, the low nibbles holding a block's first 16 values.
    static func dotQ4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var total: Float = 0
        for b in 0..<(n / 32) {
            let block = row + b * 20
            let q = (block + 4).assumingMemoryBound(to: UInt8.self)
            let xb = x + b * 32
            var s = SIMD8<Float>()
            var sx = SIMD8<Float>()
            for j in stride(from: 0, to: 16, by: 8) {
                let lo = SIMD8<Float>(Float(q[j] & 15), Float(q[j + 1] & 15), Float(q[j + 2] & 15), Float(q[j + 3] & 15),
                                      Float(q[j + 4] & 15), Float(q[j + 5] & 15), Float(q[j + 6] & 15), Float(q[j + 7] & 15))
                let hi = SIMD8<Float>(Float(q[j] >> 4), Float(q[j + 1] >> 4), Float(q[j + 2] >> 4), Float(q[j + 3] >> 4),
                                      Float(q[j + 4] >> 4), Float(q[j + 5] >> 4), Float(q[j + 6] >> 4), Float(q[j + 7] >> 4))
                let x0 = UnsafeRawPointer(xb + j).loadUnaligned(as: SIMD8<Float>.self)
                let x1 = UnsafeRawPointer(xb + 16 + j).loadUnaligned(as: SIMD8<Float>.self)
                s += lo * x0 + hi * x1
                sx += x0 + x1
            }
            total += GGMLType.half(block) * s.sum() + GGMLType.half(block + 2) * sx.sum()
        }
        return total
    }
}
