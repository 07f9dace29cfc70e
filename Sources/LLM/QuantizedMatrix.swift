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

/// One product's output, written in disjoint rows by its threads.
struct OutputPointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    init(_ pointer: UnsafeMutablePointer<Float>) { self.pointer = pointer }
}

/// Quantized inputs as the threads of one product read them (Q8Activations).
struct QuantizedInput: @unchecked Sendable {
    let values: UnsafePointer<Int16>
    let scales: UnsafePointer<Float>
    let sums: UnsafePointer<Float>

    /// The input from its block `b` on.
    func block(_ b: Int) -> QuantizedInput {
        QuantizedInput(values: values + b * 32, scales: scales + b, sums: sums + b)
    }

    /// Block `b`'s even-indexed values and its odd ones.
    @inline(__always)
    func values(_ b: Int) -> (even: SIMD16<Int16>, odd: SIMD16<Int16>) {
        let p = UnsafeRawPointer(values + b * 32)
        return (p.loadUnaligned(as: SIMD16<Int16>.self), p.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self))
    }

    /// What a Q4_1 lane k meets, for two rows at once: values 2k, 2k+1, 2k+16 and 2k+17.
    struct Pairs {
        let a, b, c, d: SIMD16<Int16>
    }

    @inline(__always)
    func pairs(_ b: Int) -> Pairs {
        let (even, odd) = values(b)
        return Pairs(a: SIMD16(lowHalf: even.lowHalf, highHalf: even.lowHalf), b: SIMD16(lowHalf: odd.lowHalf, highHalf: odd.lowHalf),
                     c: SIMD16(lowHalf: even.highHalf, highHalf: even.highHalf), d: SIMD16(lowHalf: odd.highHalf, highHalf: odd.highHalf))
    }
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
    /// once and applied to every input, the row ranges split between threads.  With `quantized`
    /// (the same inputs as 8-bit blocks), Q4_1 and Q8_0 rows take integer dot products, four rows
    /// at a time (llama.cpp's way: the weights' integers times the inputs', one scale per block).
    func multiply(_ x: [Float], _ n: Int, quantized: Q8Activations? = nil, into y: inout [Float]) {
        if let quantized, type == .q4_1 || type == .q8_0 { return multiply(quantized, into: &y) }
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let p = SharedPointers(input: xp.baseAddress!, output: yp.baseAddress!)
                let chunks = QuantizedMatrix.threads(for: rows * n * columns)
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

    private func multiply(_ x: Q8Activations, into y: inout [Float]) {
        precondition(x.columns == columns)
        let n = x.count, blocks = columns / 32
        x.values.withUnsafeBufferPointer { values in
            x.scales.withUnsafeBufferPointer { scales in
                x.sums.withUnsafeBufferPointer { sums in
                    y.withUnsafeMutableBufferPointer { yp in
                        let input = QuantizedInput(values: values.baseAddress!, scales: scales.baseAddress!, sums: sums.baseAddress!)
                        let output = OutputPointer(yp.baseAddress!)
                        let groups = (rows + 3) / 4
                        let chunks = QuantizedMatrix.threads(for: rows * n * columns)
                        let per = (groups + chunks - 1) / chunks
                        DispatchQueue.concurrentPerform(iterations: chunks) { c in
                            for g in (c * per)..<min(groups, (c + 1) * per) {
                                let r0 = g * 4
                                for i in 0..<n {
                                    let at = input.block(i * blocks)
                                    let out = output.pointer + i * rows + r0
                                    if r0 + 4 <= rows {
                                        dot4(base + r0 * rowBytes, at, blocks, out)
                                    } else {
                                        for r in r0..<rows { out[r - r0] = dot1(base + r * rowBytes, at, blocks) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Threads for a product of `work` multiply-adds: one for small ones, where handing out the
    /// work would cost more than it saves.
    static func threads(for work: Int) -> Int { work < 1 << 17 ? 1 : cores }
    static let cores = max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// Four consecutive rows times one quantized input, two rows in each 256-bit vector.
    @inline(__always)
    private func dot4(_ row: UnsafeRawPointer, _ x: QuantizedInput, _ blocks: Int, _ out: UnsafeMutablePointer<Float>) {
        var a01 = SIMD8<Float>(), a23 = SIMD8<Float>()
        var mins = SIMD4<Float>()
        let s = rowBytes
        if type == .q4_1 {
            for b in 0..<blocks {
                let pairs = x.pairs(b), dx = x.scales[b]
                let p = row + b * 20
                a01 += QuantizedMatrix.q4_1(p, p + s, pairs, dx)
                a23 += QuantizedMatrix.q4_1(p + 2 * s, p + 3 * s, pairs, dx)
                mins += SIMD4(GGMLType.half(p + 2), GGMLType.half(p + s + 2), GGMLType.half(p + 2 * s + 2), GGMLType.half(p + 3 * s + 2)) * x.sums[b]
            }
        } else {
            for b in 0..<blocks {
                let (even, odd) = x.values(b), dx = x.scales[b]
                let p = row + b * 34
                a01 += QuantizedMatrix.q8_0(p, p + s, even, odd, dx)
                a23 += QuantizedMatrix.q8_0(p + 2 * s, p + 3 * s, even, odd, dx)
            }
        }
        out[0] = a01.lowHalf.sum() + mins[0]
        out[1] = a01.highHalf.sum() + mins[1]
        out[2] = a23.lowHalf.sum() + mins[2]
        out[3] = a23.highHalf.sum() + mins[3]
    }

    /// One row times one quantized input (the rows after the last four).
    private func dot1(_ row: UnsafeRawPointer, _ x: QuantizedInput, _ blocks: Int) -> Float {
        var a = SIMD8<Float>()
        var mins: Float = 0
        for b in 0..<blocks {
            if type == .q4_1 {
                a += QuantizedMatrix.q4_1(row + b * 20, row + b * 20, x.pairs(b), x.scales[b])
                mins += GGMLType.half(row + b * 20 + 2) * x.sums[b]
            } else {
                let (even, odd) = x.values(b)
                a += QuantizedMatrix.q8_0(row + b * 34, row + b * 34, even, odd, x.scales[b])
            }
        }
        return a.lowHalf.sum() + mins
    }

    /// The 16-bit lanes' pairs summed into 32-bit lanes (sign-extended with shifts).
    @inline(__always)
    static func sumPairs(_ p: SIMD16<Int16>) -> SIMD8<Int32> {
        let v = unsafeBitCast(p, to: SIMD8<Int32>.self)
        return ((v &<< 16) &>> 16) &+ (v &>> 16)
    }

    /// Integers below 2^22 as floats, without a conversion instruction: added to 1.5·2^23's bits,
    /// they are its mantissa.
    @inline(__always)
    static func float(_ v: SIMD8<Int32>) -> SIMD8<Float> {
        unsafeBitCast(v &+ 0x4B40_0000, to: SIMD8<Float>.self) - 12_582_912
    }

    /// Two rows' Q4_1 blocks (`r0` in the low half, `r1` in the high) times an input block, scaled:
    /// four partial sums per row.  A 16-bit lane of the 16 bytes holds values 2k and 2k+1 (low
    /// nibbles) and 2k+16 and 2k+17 (high nibbles); four products of 4-bit by 8-bit values fit in
    /// 16 bits.
    @inline(__always)
    static func q4_1(_ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ x: QuantizedInput.Pairs, _ dx: Float) -> SIMD8<Float> {
        let w = SIMD16<UInt16>(lowHalf: (r0 + 4).loadUnaligned(as: SIMD8<UInt16>.self), highHalf: (r1 + 4).loadUnaligned(as: SIMD8<UInt16>.self))
        @inline(__always) func signed(_ v: SIMD16<UInt16>) -> SIMD16<Int16> { unsafeBitCast(v, to: SIMD16<Int16>.self) }
        let p = signed(w & 15) &* x.a &+ signed((w &>> 8) & 15) &* x.b &+ signed((w &>> 4) & 15) &* x.c &+ signed(w &>> 12) &* x.d
        let scale = SIMD8<Float>(lowHalf: SIMD4(repeating: GGMLType.half(r0) * dx), highHalf: SIMD4(repeating: GGMLType.half(r1) * dx))
        return float(sumPairs(p)) * scale
    }

    /// Two rows' Q8_0 blocks times an input block, scaled: the rows' sums in the low and high
    /// halves.  Two products of values within ±128 and ±127 fit in 16 bits.
    @inline(__always)
    static func q8_0(_ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>, _ dx: Float) -> SIMD8<Float> {
        @inline(__always) func row(_ r: UnsafeRawPointer) -> SIMD8<Int32> {
            let w = (r + 2).loadUnaligned(as: SIMD16<Int16>.self)
            return sumPairs(((w &<< 8) &>> 8) &* even &+ (w &>> 8) &* odd)
        }
        let a = row(r0), b = row(r1)
        let scale = SIMD8<Float>(lowHalf: SIMD4(repeating: GGMLType.half(r0) * dx), highHalf: SIMD4(repeating: GGMLType.half(r1) * dx))
        return float(SIMD8<Int32>(lowHalf: a.lowHalf &+ a.highHalf, highHalf: b.lowHalf &+ b.highHalf)) * scale
    }

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
