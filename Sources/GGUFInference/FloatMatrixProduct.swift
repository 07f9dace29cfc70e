/// The products of a prompt's tokens with the weights, in float32 and many tokens at once: a
/// panel of weight rows is decoded to floats once and applied to every token of the pass, sixteen
/// tokens to a vector, as many rows by tokens at a time as the registers hold accumulators for
/// (eight rows by 32 tokens in AVX-512's 32 registers; six rows by 16 in AVX2's 16), so that reading a long prompt costs its multiply-adds rather than the
/// unpacking of every block again for every few tokens (what the integer kernels, made for
/// decodes, do).  Each output is one chain of fused multiply-adds over the columns in order,
/// whatever tile or panel it falls in: a prompt token gets the same values in any batch, alone or
/// beside others, in one chunk or several.
enum FloatMatrixProduct {
    /// With this CPU's vector instructions only (a baseline build would make every fused
    /// multiply-add a library call); elsewhere prompt tokens take the decodes' kernels.
    static var available: Bool { IntegerDot.available }

    /// Tokens to a vector.
    static let width = 16

    /// The inputs of a product transposed into tiles of 16 tokens: tile `i` holds column `k` of
    /// tokens 16i..<16i+16 at `16k` (zeros past the last token), what the kernel loads.
    struct Tiles {
        let count: Int
        let columns: Int
        var values: [Float]

        /// `count` rows of `columns` floats from `x`, picking rows `rows[i]` when given.
        init(_ x: [Float], count: Int, columns: Int, rows: [Int]? = nil) {
            self.count = count
            self.columns = columns
            let tiles = (count + FloatMatrixProduct.width - 1) / FloatMatrixProduct.width
            values = [Float](repeating: 0, count: tiles * columns * FloatMatrixProduct.width)
            x.withUnsafeBufferPointer { xp in
                values.withUnsafeMutableBufferPointer { vp in
                    guard let src = xp.baseAddress, let dst = vp.baseAddress else { return }
                    for t in 0..<count {
                        let row = src + (rows?[t] ?? t) * columns
                        let tile = dst + (t / FloatMatrixProduct.width) * columns * FloatMatrixProduct.width + t % FloatMatrixProduct.width
                        for k in 0..<columns { tile[k &* FloatMatrixProduct.width] = row[k] }
                    }
                }
            }
        }
    }

    /// Tiles as the threads of one product read them.
    struct TilesPointer: @unchecked Sendable {
        let values: UnsafePointer<Float>
        let count: Int
        let columns: Int
    }

    #if canImport(CAVX512)
        /// Rows to a kernel call, and tiles: eight rows by two tiles are sixteen 512-bit accumulators.
        static let rowBlock = 8
        static let tilesPerCall = 2
    #else
        /// AVX2's: six rows by one tile are twelve 256-bit accumulators (each SIMD16 is two), the
        /// tile's two halves and a broadcast weight the other three of sixteen registers.  Eight by
        /// two would be 32 and spill to the stack at every step.
        static let rowBlock = 6
        static let tilesPerCall = 1
    #endif
    /// Rows a thread decodes to floats at a time (QuantizedMatrix): a whole number of row blocks.
    static let panelRows = rowBlock * (rowBlock == 8 ? 4 : 8)
    /// Columns per kernel call: a tile pair's slice (16 KB) and the panel's (16 KB for 32 rows)
    /// stay in the first-level cache while the panel's row blocks go over them.
    static let depth = 128

    /// `rows` rows of `columns` floats at `w` (one after another, in whole row blocks: zeros past
    /// the last row) times every token of `x`: token t's result for row r goes to
    /// `out[t * outStride + r]`.  `tilesPerCall` tiles at a time, `depth` columns at a time, the
    /// accumulators kept between the column slices (the chain of multiply-adds goes on unchanged).
    static func multiply(_ w: UnsafePointer<Float>, rows: Int, _ x: TilesPointer, into out: UnsafeMutablePointer<Float>, outStride: Int) {
        let columns = x.columns, tiles = (x.count + width - 1) / width, tileFloats = columns * width
        let blocks = (rows + rowBlock - 1) / rowBlock, perBlock = tilesPerCall * rowBlock
        withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: blocks * perBlock) { buffer in
            guard let acc = buffer.baseAddress else { return }
            for t in stride(from: 0, to: tiles, by: tilesPerCall) {
                let first = x.values + t * tileFloats
                // A last tile alone: the second half of a two-tile kernel repeats it, and is not stored.
                let second = t + 1 < tiles ? first + tileFloats : first
                var k0 = 0
                while k0 < columns {
                    let slice = min(depth, columns - k0)
                    for b in 0..<blocks {
                        kernel(
                            w + b * rowBlock * columns + k0, columns, first + k0 * width, second + k0 * width, slice, acc + b * perBlock,
                            fresh: k0 == 0)
                    }
                    k0 += slice
                }
                for r in 0..<rows {
                    let a = acc + (r / rowBlock) * perBlock + r % rowBlock
                    for j in 0..<min(tilesPerCall, tiles - t) {
                        let token = (t + j) * width
                        for i in 0..<min(width, x.count - token) { out[(token + i) * outStride + r] = a[j * rowBlock][i] }
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

    #if canImport(CAVX512)
        /// A block of eight rows (`stride` floats apart) times two tiles over `depth` columns: sixteen
        /// accumulators (`acc[0..<8]` the first tile's rows, `acc[8..<16]` the second's), each weight
        /// broadcast once for both tiles.
        @inline(__always)
        private static func kernel(
            _ w: UnsafePointer<Float>, _ stride: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ depth: Int,
            _ acc: UnsafeMutablePointer<SIMD16<Float>>, fresh: Bool
        ) {
            var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            var b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0
            if !fresh {
                (a0, a1, a2, a3, a4, a5, a6, a7) = (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7])
                (b0, b1, b2, b3, b4, b5, b6, b7) = (acc[8], acc[9], acc[10], acc[11], acc[12], acc[13], acc[14], acc[15])
            }
            let w0 = w, w1 = w + stride, w2 = w + 2 &* stride, w3 = w + 3 &* stride
            let w4 = w + 4 &* stride, w5 = w + 5 &* stride, w6 = w + 6 &* stride, w7 = w + 7 &* stride
            var x = x, y = y
            for k in 0..<depth {
                let u = load(x), v = load(y)
                var s = SIMD16<Float>(repeating: w0[k])
                a0 = a0.addingProduct(s, u)
                b0 = b0.addingProduct(s, v)
                s = SIMD16(repeating: w1[k])
                a1 = a1.addingProduct(s, u)
                b1 = b1.addingProduct(s, v)
                s = SIMD16(repeating: w2[k])
                a2 = a2.addingProduct(s, u)
                b2 = b2.addingProduct(s, v)
                s = SIMD16(repeating: w3[k])
                a3 = a3.addingProduct(s, u)
                b3 = b3.addingProduct(s, v)
                s = SIMD16(repeating: w4[k])
                a4 = a4.addingProduct(s, u)
                b4 = b4.addingProduct(s, v)
                s = SIMD16(repeating: w5[k])
                a5 = a5.addingProduct(s, u)
                b5 = b5.addingProduct(s, v)
                s = SIMD16(repeating: w6[k])
                a6 = a6.addingProduct(s, u)
                b6 = b6.addingProduct(s, v)
                s = SIMD16(repeating: w7[k])
                a7 = a7.addingProduct(s, u)
                b7 = b7.addingProduct(s, v)
                x += width
                y += width
            }
            (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]) = (a0, a1, a2, a3, a4, a5, a6, a7)
            (acc[8], acc[9], acc[10], acc[11], acc[12], acc[13], acc[14], acc[15]) = (b0, b1, b2, b3, b4, b5, b6, b7)
        }
    #else
        /// A block of six rows (`stride` floats apart) times one tile over `depth` columns: six
        /// accumulators (`acc[0..<6]`), each weight broadcast once.  (`y`, a second tile, is not read.)
        @inline(__always)
        private static func kernel(
            _ w: UnsafePointer<Float>, _ stride: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ depth: Int,
            _ acc: UnsafeMutablePointer<SIMD16<Float>>, fresh: Bool
        ) {
            var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0
            if !fresh { (a0, a1, a2, a3, a4, a5) = (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5]) }
            let w0 = w, w1 = w + stride, w2 = w + 2 &* stride, w3 = w + 3 &* stride, w4 = w + 4 &* stride, w5 = w + 5 &* stride
            var x = x
            for k in 0..<depth {
                let u = load(x)
                a0 = a0.addingProduct(SIMD16(repeating: w0[k]), u)
                a1 = a1.addingProduct(SIMD16(repeating: w1[k]), u)
                a2 = a2.addingProduct(SIMD16(repeating: w2[k]), u)
                a3 = a3.addingProduct(SIMD16(repeating: w3[k]), u)
                a4 = a4.addingProduct(SIMD16(repeating: w4[k]), u)
                a5 = a5.addingProduct(SIMD16(repeating: w5[k]), u)
                x += width
            }
            (acc[0], acc[1], acc[2], acc[3], acc[4], acc[5]) = (a0, a1, a2, a3, a4, a5)
        }
    #endif
}
