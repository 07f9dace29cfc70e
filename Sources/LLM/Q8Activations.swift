/// Input vectors quantized to 8 bits in blocks of 32, as llama.cpp quantizes activations for its
/// integer dot products (Q8_1): each block's values with one float scale, and the scale times
/// their sum (what a Q4_1 block's minimum multiplies).  Made once per input, used by every matrix
/// that reads it (Q, K and V read the same normed vector).
///
/// The values are held as 16-bit integers in the order the kernels pair them with the weights'
/// (QuantizedMatrix): a block's even-indexed values, then its odd ones.  A 16-bit lane of the
/// weights then holds two neighbouring values, separated with shifts and masks only.
struct Q8Activations {
    let count: Int
    let columns: Int
    var values: [Int16]
    var scales: [Float]
    var sums: [Float]

    init(_ x: [Float], count: Int, columns: Int) {
        precondition(columns % 32 == 0 && x.count >= count * columns)
        self.count = count
        self.columns = columns
        let blocks = count * columns / 32
        values = [Int16](repeating: 0, count: count * columns)
        scales = [Float](repeating: 0, count: blocks)
        sums = [Float](repeating: 0, count: blocks)
        x.withUnsafeBufferPointer { xp in
            values.withUnsafeMutableBufferPointer { qp in
                for b in 0..<blocks {
                    let src = UnsafeRawPointer(xp.baseAddress! + b * 32)
                    // The largest magnitude: sign bits cleared, the bits compared as integers.
                    var top = SIMD8<UInt32>()
                    for j in 0..<4 {
                        let bits = src.loadUnaligned(fromByteOffset: j * 32, as: SIMD8<UInt32>.self) & 0x7FFF_FFFF
                        top.replace(with: bits, where: bits .> top)
                    }
                    var largest: UInt32 = 0
                    for i in 0..<8 where top[i] > largest { largest = top[i] }
                    let d = Float(bitPattern: largest) / 127
                    let inverse: Float = d > 0 ? 1 / d : 0
                    var sum = 0
                    for j in 0..<32 {
                        let q = Int16((xp[b * 32 + j] * inverse).rounded(.toNearestOrEven))
                        qp[b * 32 + (j & 1) * 16 + j / 2] = q
                        sum += Int(q)
                    }
                    scales[b] = d
                    sums[b] = d * Float(sum)
                }
            }
        }
    }
}
