import Testing

@testable import GGUFInference

/// The integer kernels against the products of the dequantized numbers, on random Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K rows and 8- and 16-bit inputs: the AVX2 kernels (one row, four rows by one, tiles of four
/// or eight inputs, full or partial) and, on CPUs with AVX-512 VNNI, the 512-bit ones (four rows by up to four inputs, and by one).
/// Exact up to float rounding, since the integers are summed exactly and only the scaling is in float; and the AVX2 kernels give an
/// input the same bits whichever takes it.
struct IntegerDotTests {
    /// Where each format keeps its float16 scale (and minimum): byte offsets into a block.
    static let halves: [GGMLType: [Int]] = [
        .q4_0: [0], .q4_1: [0, 2], .q5_0: [0], .q5_1: [0, 2], .q8_0: [0],
        .q4_K: [0, 2], .q5_K: [0, 2], .q6_K: [208]
    ]

    /// Random blocks of `type` for `blocks` × 32 values a row (scales and minimums as float16
    /// between -0.5 and 0.5; every other byte any value).
    static func rows(_ type: GGMLType, rows: Int, blocks: Int, seed: inout UInt64) -> [UInt8] {
        func next() -> UInt64 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return seed >> 33
        }
        func half() -> [UInt8] {
            let v = Float16(Float(Int(next() % 1000)) / 1000 - 0.5)
            return [UInt8(v.bitPattern & 0xFF), UInt8(v.bitPattern >> 8)]
        }
        var bytes: [UInt8] = []
        for _ in 0..<(rows * blocks * 32 / type.blockSize) {
            var block = (0..<type.blockBytes).map { _ in UInt8(next() % 256) }
            for offset in halves[type] ?? [] { block.replaceSubrange(offset..<(offset + 2), with: half()) }
            bytes += block
        }
        return bytes
    }

    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K], [8, 16])
    func kernelsEqualTheDequantizedProduct(_ type: GGMLType, _ bits: Int) throws {
        var seed: UInt64 = 42
        let blocks = 48, columns = blocks * 32, rowCount = 8, n = 9
        let rowBytes = type.bytes(forElements: columns)
        let weights = IntegerDotTests.rows(type, rows: rowCount, blocks: blocks, seed: &seed)
        // Inputs of mixed sizes (every seventh larger), as activations have.
        let x: [Float] = (0..<(n * columns)).map { i in
            let v = Float(Int((i &* 7919) % 201) - 100) / 100
            return i % 7 == 0 ? 3 * v : v
        }
        let q = QuantizedActivations(x, count: n, columns: columns, bits: bits)
        // What the kernels compute: the dequantized weights times the dequantized inputs.
        var want = [Double](repeating: 0, count: n * rowCount)
        var w = [Float](repeating: 0, count: columns)
        for r in 0..<rowCount {
            weights.withUnsafeBytes { b in
                w.withUnsafeMutableBufferPointer {
                    type.dequantize(UnsafeRawBufferPointer(rebasing: b[(r * rowBytes)..<((r + 1) * rowBytes)]), into: $0)
                }
            }
            for i in 0..<n {
                for c in 0..<columns {
                    let k = i * columns + c
                    let integer =
                        bits == 8
                        ? Double(Int8(bitPattern: q.values[k]))
                        : Double(Int16(bitPattern: UInt16(q.values[2 * k]) | UInt16(q.values[2 * k + 1]) << 8))
                    let v = integer * Double(q.scales[k / 32])
                    want[i * rowCount + r] += Double(w[c]) * v
                }
            }
        }
        // The integer sums are exact; only the scaling is in float: within float rounding of the
        // largest product (K-quants' scales reach 63 × d, so their sums run to thousands).
        let largest = want.map(abs).max() ?? 1
        func close(_ got: [Float], _ what: String) {
            let worst = zip(got, want).map { abs(Double($0) - $1) }.max() ?? 1
            #expect(worst < 1e-3 + 2e-6 * largest, "\(what): largest difference \(worst), largest product \(largest)")
        }
        #if arch(x86_64)
            try weights.withUnsafeBytes { wb in
                try q.values.withUnsafeBytes { vb in
                    try q.scales.withUnsafeBufferPointer { sb in
                        try q.sums.withUnsafeBufferPointer { mb in
                            let base = try #require(wb.baseAddress)
                            let input = IntegerDot.Input(
                                values: try #require(vb.baseAddress), width: bits / 8, scales: try #require(sb.baseAddress),
                                sums: try #require(mb.baseAddress))
                            var got = [Float](repeating: .nan, count: n * rowCount)
                            for i in 0..<n {
                                for r in 0..<rowCount {
                                    got[i * rowCount + r] = IntegerDot.row(type, base + r * rowBytes, input.block(i * blocks), blocks)
                                }
                            }
                            close(got, "AVX2 row")
                            /// Each four rows through `body(row, first output)`, into a fresh output.
                            @discardableResult
                            func kernels(_ what: String, _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void) throws -> [Float] {
                                var out = [Float](repeating: .nan, count: n * rowCount)
                                try out.withUnsafeMutableBufferPointer { o in
                                    let first = try #require(o.baseAddress)
                                    for r0 in stride(from: 0, to: rowCount, by: 4) { body(base + r0 * rowBytes, first + r0) }
                                }
                                close(out, what)
                                return out
                            }
                            // An input's products the same to the bit whichever kernel takes it (a
                            // sequence's logits must not depend on the batch it decodes in).
                            let alone = try kernels("AVX2 rows4") { row, o in
                                for i in 0..<n { IntegerDot.rows4(type, row, stride: rowBytes, input.block(i * blocks), blocks, o + i * rowCount) }
                            }
                            let eights = try kernels("AVX2 tile8 and rows4") { row, o in
                                IntegerDot.tile(type, row, stride: rowBytes, input, inputStride: blocks, blocks, o, outStride: rowCount, count: 8)
                                IntegerDot.rows4(type, row, stride: rowBytes, input.block(8 * blocks), blocks, o + 8 * rowCount)
                            }
                            let fours = try kernels("AVX2 tile and rows4") { row, o in
                                IntegerDot.tile(type, row, stride: rowBytes, input, inputStride: blocks, blocks, o, outStride: rowCount, count: 4)
                                IntegerDot.tile(
                                    type, row, stride: rowBytes, input.block(4 * blocks), inputStride: blocks, blocks, o + 4 * rowCount,
                                    outStride: rowCount, count: 4)
                                IntegerDot.rows4(type, row, stride: rowBytes, input.block(8 * blocks), blocks, o + 8 * rowCount)
                            }
                            // Partial tiles (the rest of a batch): 5 + 3 + 1, 7 + 2, 6 + 3 inputs.
                            var partial: [[Float]] = []
                            for (big, small) in [(5, 3), (7, 2), (6, 3)] {
                                partial.append(
                                    try kernels("AVX2 partial tiles of \(big) and \(small)") { row, o in
                                        IntegerDot.tile(
                                            type, row, stride: rowBytes, input, inputStride: blocks, blocks, o, outStride: rowCount, count: big)
                                        IntegerDot.tile(
                                            type, row, stride: rowBytes, input.block(big * blocks), inputStride: blocks, blocks,
                                            o + big * rowCount, outStride: rowCount, count: small)
                                        for i in (big + small)..<n {
                                            IntegerDot.rows4(type, row, stride: rowBytes, input.block(i * blocks), blocks, o + i * rowCount)
                                        }
                                    })
                            }
                            #expect(eights == alone && fours == alone, "tiles and rows4 disagree")
                            #expect(partial.allSatisfy { $0 == alone }, "partial tiles and rows4 disagree")
                            #if canImport(CAVX512)
                                guard WideIntegerDot.available, bits == 8 else { return }
                                try kernels("AVX-512 tile and rows4") { row, o in
                                    WideIntegerDot.tile(type, row, stride: rowBytes, input, inputStride: blocks, blocks, o, outStride: rowCount)
                                    WideIntegerDot.tile(
                                        type, row, stride: rowBytes, input.block(4 * blocks), inputStride: blocks, blocks, o + 4 * rowCount,
                                        outStride: rowCount)
                                    WideIntegerDot.rows4(type, row, stride: rowBytes, input.block(8 * blocks), blocks, o + 8 * rowCount)
                                }
                                try kernels("AVX-512 partial tiles") { row, o in
                                    WideIntegerDot.tile(type, row, stride: rowBytes, input, inputStride: blocks, blocks, o, outStride: rowCount)
                                    WideIntegerDot.tile(
                                        type, row, stride: rowBytes, input.block(4 * blocks), inputStride: blocks, blocks, o + 4 * rowCount,
                                        outStride: rowCount, count: 3)
                                    WideIntegerDot.tile(
                                        type, row, stride: rowBytes, input.block(7 * blocks), inputStride: blocks, blocks, o + 7 * rowCount,
                                        outStride: rowCount, count: 2)
                                }
                            #endif
                        }
                    }
                }
            }
        #endif
    }
}
