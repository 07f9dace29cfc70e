import Testing

@testable import GGUFInference

/// The prompt kernel (QuantizedMatrix's product over FloatMatrixProduct's tiles) against the
/// dequantized product in double precision, on random rows of every type the integer kernels
/// unpack, with a row count that leaves a part panel and a part block of eight and a token count
/// that leaves a tile alone; and a token's results the same to the bit alone, in any place of a
/// batch, in any batch.
struct FloatMatrixProductTests {
    @Test(arguments: [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K, .f16])
    func promptProductEqualsTheDequantizedProduct(_ type: GGMLType) throws {
        try #require(FloatMatrixProduct.available, "the prompt kernel needs this CPU's build (MSERVE_NATIVE=1)")
        var seed: UInt64 = 7
        let columns = 512, rows = 75, n = 37
        let weights: [UInt8] =
            type == .f16
            ? (0..<(rows * columns)).flatMap { i -> [UInt8] in
                let v = Float16(Float((i &* 7919) % 2001 - 1000) / 1000)
                return [UInt8(v.bitPattern & 0xFF), UInt8(v.bitPattern >> 8)]
            } : IntegerDotTests.rows(type, rows: rows, blocks: columns / 32, seed: &seed)
        let x: [Float] = (0..<(n * columns)).map { i in Float((i &* 104_729) % 401 - 200) / 100 }
        let pool = ComputePool(threads: 2)
        defer { pool.shutdown() }
        try weights.withUnsafeBytes { wb in
            let m = QuantizedMatrix(type: type, rows: rows, columns: columns, base: try #require(wb.baseAddress))
            func product(_ picked: [Int]) -> [Float] {
                var y = [Float](repeating: .nan, count: picked.count * rows)
                m.multiply(FloatMatrixProduct.Tiles(x, count: picked.count, columns: columns, rows: picked), pool: pool, into: &y)
                return y
            }
            let all = product(Array(0..<n))
            var w = [Float](repeating: 0, count: columns)
            var worst = 0.0, largest = 0.0
            for r in 0..<rows {
                w.withUnsafeMutableBufferPointer {
                    type.dequantize(UnsafeRawBufferPointer(rebasing: wb[(r * m.rowBytes)..<((r + 1) * m.rowBytes)]), into: $0)
                }
                for t in 0..<n {
                    let want = (0..<columns).reduce(0.0) { $0 + Double(w[$1]) * Double(x[t * columns + $1]) }
                    worst = max(worst, abs(Double(all[t * rows + r]) - want))
                    largest = max(largest, abs(want))
                }
            }
            #expect(worst < 1e-5 * max(1, largest), "largest difference \(worst), largest product \(largest)")
            // Alone, in another place of the batch, or in a batch of other size: the same bits.
            for t in [0, 16, 36] { #expect(product([t]) == Array(all[(t * rows)..<((t + 1) * rows)]), "token \(t) alone") }
            let reversed = product(Array((0..<n).reversed()))
            for t in 0..<n { #expect(Array(reversed[(t * rows)..<((t + 1) * rows)]) == Array(all[((n - 1 - t) * rows)..<((n - t) * rows)])) }
        }
    }
}
