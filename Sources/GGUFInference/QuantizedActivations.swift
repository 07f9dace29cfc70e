/// Input vectors quantized in blocks of 32, as llama.cpp quantizes activations for its integer dot
/// products (Q8_1): each block's values as integers of `bits` (8 or 16) with one float scale, and
/// the scale times their sum (what a Q4_1 block's minimum multiplies).  Made once per input, used
/// by every matrix that reads it (Q, K and V read the same normed vector).
struct QuantizedActivations {
    let count: Int
    let columns: Int
    let bits: Int
    /// The values: Int8 or Int16, in order.
    var values: [UInt8]
    var scales: [Float]
    var sums: [Float]

    init(_ x: [Float], count: Int, columns: Int, bits: Int) {
        precondition(columns % 32 == 0 && x.count >= count * columns && (bits == 8 || bits == 16))
        self.count = count
        self.columns = columns
        self.bits = bits
        let blocks = count * columns / 32
        let largest: Float = bits == 8 ? 127 : 32767
        values = [UInt8](repeating: 0, count: count * columns * bits / 8)
        scales = [Float](repeating: 0, count: blocks)
        sums = [Float](repeating: 0, count: blocks)
        x.withUnsafeBufferPointer { xp in
            values.withUnsafeMutableBytes { qp in
                for b in 0..<blocks {
                    let src = UnsafeRawPointer(xp.baseAddress! + b * 32)
                    // The largest magnitude: sign bits cleared, the bits compared as integers.
                    var top = SIMD8<UInt32>()
                    for j in 0..<4 {
                        let bits = src.loadUnaligned(fromByteOffset: j * 32, as: SIMD8<UInt32>.self) & 0x7FFF_FFFF
                        top.replace(with: bits, where: bits .> top)
                    }
                    var magnitude: UInt32 = 0
                    for i in 0..<8 where top[i] > magnitude { magnitude = top[i] }
                    let d = Float(bitPattern: magnitude) / largest
                    let inverse: Float = d > 0 ? 1 / d : 0
                    var sum = 0
                    for j in (b * 32)..<(b * 32 + 32) {
                        let q = Int((xp[j] * inverse).rounded(.toNearestOrEven))
                        if bits == 8 {
                            qp.storeBytes(of: Int8(q), toByteOffset: j, as: Int8.self)
                        } else {
                            qp.storeBytes(of: Int16(q), toByteOffset: 2 * j, as: Int16.self)
                        }
                        sum += q
                    }
                    scales[b] = d
                    sums[b] = d * Float(sum)
                }
            }
        }
    }
}
