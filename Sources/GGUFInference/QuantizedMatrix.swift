#if canImport(Glibc)
    import Glibc
#endif

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
        self.init(type: t.type, rows: t.rows, columns: t.shape[0], base: file.data(t).baseAddress ?? UnsafeRawPointer(bitPattern: 1)!)
    }

    /// `rows` rows of `columns` values of `type` from `base` (a file's tensor, or a test's rows).
    init(type: GGMLType, rows: Int, columns: Int, base: UnsafeRawPointer) {
        self.type = type
        self.rows = rows
        self.columns = columns
        self.base = base
        rowBytes = type.bytes(forElements: columns)
    }

    /// One row as float32 (the embedding lookup).
    func row(_ i: Int, into out: UnsafeMutablePointer<Float>) {
        type.dequantize(
            UnsafeRawBufferPointer(start: base + i * rowBytes, count: rowBytes),
            into: UnsafeMutableBufferPointer(start: out, count: columns))
    }

    /// `n` input rows of `columns` in `x`, `n` output rows of `rows` in `y`: each weight row is read
    /// once and applied to every input, the row ranges split between threads.  With `quantized`
    /// (the same inputs as 8-bit blocks), Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 rows take integer dot
    /// products, four rows at a time (llama.cpp's way: the weights' integers times the inputs', one
    /// scale per block; with AVX-512 VNNI where the CPU has it).
    func multiply(_ x: [Float], _ n: Int, pool: ComputePool, quantized: QuantizedActivations? = nil, into y: inout [Float]) {
        if let quantized, IntegerDot.available, IntegerDot.supports(type) { return multiply(quantized, pool: pool, into: &y) }
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let input = xp.baseAddress, let output = yp.baseAddress else { return }
                let p = SharedPointers(input: input, output: output)
                if n == 1 {
                    // A decode: each row's own kernel, no row decoded to floats first.
                    split(rows, n, pool) { r in p.output[r] = dot(base + r * rowBytes, p.input) }
                    return
                }
                // Several inputs (a prompt, a batch): four rows decoded once, then each input read
                // once for the four (a row at a time read the whole input matrix per row).
                let columns = columns, rows = rows
                split((rows + 3) / 4, n, pool) { g in
                    let r0 = g * 4, count = min(4, rows - r0)
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * columns) { values in
                        guard let v = values.baseAddress else { return }
                        for k in 0..<count {
                            type.dequantize(
                                UnsafeRawBufferPointer(start: base + (r0 + k) * rowBytes, count: rowBytes),
                                into: UnsafeMutableBufferPointer(start: v + k * columns, count: columns))
                        }
                        for i in 0..<n {
                            let xi = p.input + i * columns, out = p.output + i * rows + r0
                            if count == 4 {
                                let d = QuantizedMatrix.dot4(v, columns, xi)
                                out[0] = d[0]
                                out[1] = d[1]
                                out[2] = d[2]
                                out[3] = d[3]
                            } else {
                                for k in 0..<count {
                                    out[k] = QuantizedMatrix.dot(UnsafeMutableBufferPointer(start: v + k * columns, count: columns), xi)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Prompt tokens' product (FloatMatrixProduct): panels of rows decoded to float32 once,
    /// each applied to every token of `x`; the panels split between the threads.
    func multiply(_ x: FloatMatrixProduct.Tiles, pool: ComputePool, into y: inout [Float]) {
        precondition(x.columns == columns)
        let panel = FloatMatrixProduct.panelRows, rows = rows, columns = columns
        x.values.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                guard let values = xp.baseAddress, let output = yp.baseAddress else { return }
                let tiles = FloatMatrixProduct.TilesPointer(values: values, count: x.count, columns: columns)
                let out = OutputPointer(output)
                split((rows + panel - 1) / panel, x.count, pool) { p in
                    let r0 = p * panel, count = min(panel, rows - r0)
                    let padded = (count + FloatMatrixProduct.rowBlock - 1) / FloatMatrixProduct.rowBlock * FloatMatrixProduct.rowBlock
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: padded * columns) { buffer in
                        guard let w = buffer.baseAddress else { return }
                        for r in 0..<count { decode(r0 + r, into: w + r * columns) }
                        (w + count * columns).initialize(repeating: 0, count: (padded - count) * columns)
                        FloatMatrixProduct.multiply(w, rows: count, tiles, into: out.pointer + r0, outStride: rows)
                    }
                }
            }
        }
    }

    /// Row `r` as float32: through the integer kernels' unpacking where they take the type.
    private func decode(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        #if arch(x86_64) && canImport(CAVX2)
            if IntegerDot.supports(type) { return IntegerDot.decode(type, base + r * rowBytes, columns / 32, into: out) }
        #endif
        row(r, into: out)
    }

    /// Four consecutive rows of `columns` floats at `v`, each dotted with `x`: `x` read once.
    @inline(__always)
    static func dot4(_ v: UnsafePointer<Float>, _ columns: Int, _ x: UnsafePointer<Float>) -> SIMD4<Float> {
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var j = 0
        while j + 8 <= columns {
            let xs = load(x + j)
            a0 += load(v + j) * xs
            a1 += load(v + columns + j) * xs
            a2 += load(v + 2 * columns + j) * xs
            a3 += load(v + 3 * columns + j) * xs
            j += 8
        }
        var out = SIMD4<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum())
        while j < columns {
            for k in 0..<4 { out[k] += v[k * columns + j] * x[j] }
            j += 1
        }
        return out
    }

    /// Σ a·x over two float vectors of `a.count`.
    static func dot(_ a: UnsafeMutableBufferPointer<Float>, _ x: UnsafePointer<Float>) -> Float {
        guard let base = a.baseAddress else { return 0 }
        var total = SIMD8<Float>()
        var j = 0
        while j + 8 <= a.count {
            total += UnsafeRawPointer(base + j).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var rest: Float = 0
        while j < a.count { rest += base[j] * x[j]; j += 1 }
        return total.sum() + rest
    }

    private func multiply(_ x: QuantizedActivations, pool: ComputePool, into y: inout [Float]) {
        #if arch(x86_64) && canImport(CAVX2)
            precondition(x.columns == columns)
            let n = x.count, blocks = columns / 32
            x.values.withUnsafeBytes { values in
                x.scales.withUnsafeBufferPointer { scales in
                    x.sums.withUnsafeBufferPointer { sums in
                        y.withUnsafeMutableBufferPointer { yp in
                            let input = IntegerDot.Input(
                                values: values.baseAddress!, width: x.bits / 8, scales: scales.baseAddress!,
                                sums: sums.baseAddress!)
                            let output = OutputPointer(yp.baseAddress!)
                            let full = rows / 4
                            splitRanges((rows + 3) / 4, n, pool) { groups in
                                // Inputs in fours and eights share each unpacked weight block, group by group.
                                var tiled = 0
                                for g in groups where g < full {
                                    let r0 = g * 4
                                    var i = 0
                                    #if canImport(CAVX512)
                                        // AVX-512 VNNI: four inputs at a time (three left in a partial
                                        // tile, as below), then one by one.
                                        let wide = WideIntegerDot.available && x.bits == 8 && blocks % 2 == 0
                                        while wide && n - i >= 3 {
                                            let count = min(4, n - i)
                                            WideIntegerDot.tile(
                                                type, base + r0 * rowBytes, stride: rowBytes, input.block(i * blocks), inputStride: blocks,
                                                blocks, output.pointer + i * rows + r0, outStride: rows, count: count)
                                            i += count
                                        }
                                        while wide && i < n {
                                            WideIntegerDot.rows4(
                                                type, base + r0 * rowBytes, stride: rowBytes, input.block(i * blocks), blocks,
                                                output.pointer + i * rows + r0)
                                            i += 1
                                        }
                                    #endif
                                    // Eights, the rest in a partial tile where that was faster than
                                    // rows4 reading the weights once more for each input left
                                    // (measured with Gemma 3's Q8_0 head): 6 or 7 in a tile of eight,
                                    // 3 in one of four; 5 as 4 and one alone; 2 alone.
                                    while n - i >= 3 {
                                        let left = n - i
                                        let count = left >= 6 ? min(8, left) : min(4, left)
                                        IntegerDot.tile(
                                            type, base + r0 * rowBytes, stride: rowBytes, input.block(i * blocks), inputStride: blocks, blocks,
                                            output.pointer + i * rows + r0, outStride: rows, count: count)
                                        i += count
                                    }
                                    tiled = i
                                }
                                // The inputs left, one by one over the whole run of groups (the kernel chosen once).
                                let whole = groups.clamped(to: 0..<full)
                                for i in tiled..<n where !whole.isEmpty {
                                    let r0 = whole.lowerBound * 4
                                    IntegerDot.rows4(
                                        type, base + r0 * rowBytes, stride: rowBytes, input.block(i * blocks), blocks, output.pointer + i * rows + r0,
                                        groups: whole.count)
                                }
                                // The rows after the last four.
                                if groups.contains(full) {
                                    for i in 0..<n {
                                        let at = input.block(i * blocks)
                                        for r in (full * 4)..<rows {
                                            output.pointer[i * rows + r] = IntegerDot.row(type, base + r * rowBytes, at, blocks)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        #endif
    }

    /// `body(u)` for each of `units` (rows, or groups of rows) of a product with `n` inputs, the
    /// units cut into pieces for the pool's threads: one piece for small products, where handing
    /// out the work would cost more than it saves; else a few per thread, so that a thread the
    /// system delays holds up little.
    private func split(_ units: Int, _ n: Int, _ pool: ComputePool, _ body: @escaping (Int) -> Void) {
        splitRanges(units, n, pool) { range in
            for u in range { body(u) }
        }
    }

    /// `split`'s pieces as ranges of units, for a body that does a run of units at once.
    private func splitRanges(_ units: Int, _ n: Int, _ pool: ComputePool, _ body: @escaping (Range<Int>) -> Void) {
        let chunks = rows * n * columns < 1 << 16 ? 1 : max(1, min(units, pool.threads * 4))
        let per = (units + chunks - 1) / chunks
        pool.run(chunks) { c in body(min(units, c * per)..<min(units, (c + 1) * per)) }
    }

    @inline(__always)
    func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>) -> Float {
        switch type {
        case .q8_0: return QuantizedMatrix.dotQ8_0(row, x, columns)
        case .q4_1: return QuantizedMatrix.dotQ4_1(row, x, columns)
        default:
            return QuantizedMatrix.dotThroughFloats(type, row, x, columns)
        }
    }

    /// Types without a kernel of their own yet (the K-quants among them): a super-block at a time
    /// decoded into floats on the stack (no allocation per row), then a vector dot product.
    static func dotThroughFloats(_ type: GGMLType, _ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let span = max(type.blockSize, 256) / type.blockSize * type.blockSize  // 256 values, or one block of a wider type
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: span) { buffer in
            var total: Float = 0
            var done = 0
            while done < n {
                let count = min(span, n - done)
                let bytes = UnsafeRawBufferPointer(start: row + type.bytes(forElements: done), count: type.bytes(forElements: count))
                let values = UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
                type.dequantize(bytes, into: values)
                total += dot(values, x + done)
                done += count
            }
            return total
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
                let qs = SIMD8<Float>(
                    Float(q[j]), Float(q[j + 1]), Float(q[j + 2]), Float(q[j + 3]),
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
                let lo = SIMD8<Float>(
                    Float(q[j] & 15), Float(q[j + 1] & 15), Float(q[j + 2] & 15), Float(q[j + 3] & 15),
                    Float(q[j + 4] & 15), Float(q[j + 5] & 15), Float(q[j + 6] & 15), Float(q[j + 7] & 15))
                let hi = SIMD8<Float>(
                    Float(q[j] >> 4), Float(q[j + 1] >> 4), Float(q[j + 2] >> 4), Float(q[j + 3] >> 4),
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
