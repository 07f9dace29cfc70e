/// One block of Q5_0/Q5_1 or one K-quant super-block into floats, as ggml-quants.c's
/// `dequantize_row_*` lay them out (offsets in the comments are bytes into the block).
enum KQuants {
    /// Q5_0: d (f16) @0, qh (u32) @2, 16 bytes of nibbles @6; Q5_1: d @0, m @2, qh @4, nibbles @8.
    /// Bit j of qh is the fifth bit of value j, bit j + 16 that of value j + 16.
    static func legacy5(_ block: UnsafeRawPointer, minimum: Bool, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block)
        // Q5_0 centres the integer (q − 16) before scaling, as ggml does, so that floats agree exactly.
        let m = minimum ? GGMLType.half(block + 2) : 0
        let offset: Int = minimum ? 0 : 16
        let qh = UInt32(littleEndian: (block + (minimum ? 4 : 2)).loadUnaligned(as: UInt32.self))
        let qs = block + (minimum ? 8 : 6)
        for j in 0..<16 {
            let q = qs.load(fromByteOffset: j, as: UInt8.self)
            let high0 = UInt8(truncatingIfNeeded: (qh >> UInt32(j)) << 4) & 0x10
            let high1 = UInt8(truncatingIfNeeded: qh >> UInt32(j + 12)) & 0x10
            y[j] = Float(Int((q & 0x0F) | high0) - offset) * d + m
            y[j + 16] = Float(Int((q >> 4) | high1) - offset) * d + m
        }
    }

    /// The 6-bit scale and minimum of sub-block j (0..<8) from Q4_K's and Q5_K's 12 packed bytes:
    /// the first four in the low 6 bits of bytes 0-3 and 4-7, the last four split between the low
    /// and high nibbles of bytes 8-11 and the top two bits of bytes 0-7.
    @inline(__always)
    static func scaleMin(_ j: Int, _ q: UnsafeRawPointer) -> (Float, Float) {
        func b(_ i: Int) -> UInt8 { q.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 { return (Float(b(j) & 63), Float(b(j + 4) & 63)) }
        return (Float((b(j + 4) & 0x0F) | ((b(j - 4) >> 6) << 4)), Float((b(j + 4) >> 4) | ((b(j) >> 6) << 4)))
    }

    /// Q4_K: d @0, dmin @2, scales @4 (12 bytes), 128 bytes of nibbles @16.  Each 64 values: 32
    /// low nibbles then 32 high ones of the same bytes, each half with its own scale and minimum.
    static func q4(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block), dmin = GGMLType.half(block + 2)
        let scales = block + 4, qs = block + 16
        for chunk in 0..<4 {
            let (s1, m1) = scaleMin(2 * chunk, scales), (s2, m2) = scaleMin(2 * chunk + 1, scales)
            let q = qs + 32 * chunk, out = y + 64 * chunk
            for l in 0..<32 {
                let v = q.load(fromByteOffset: l, as: UInt8.self)
                out[l] = d * s1 * Float(v & 0x0F) - dmin * m1
                out[l + 32] = d * s2 * Float(v >> 4) - dmin * m2
            }
        }
    }

    /// Q5_K: d @0, dmin @2, scales @4, qh @16 (32 bytes: bit 2c of byte l is the fifth bit of value
    /// l of chunk c's first half, bit 2c + 1 of its second), 128 bytes of nibbles @48.
    static func q5(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block), dmin = GGMLType.half(block + 2)
        let scales = block + 4, qh = block + 16, qs = block + 48
        for chunk in 0..<4 {
            let (s1, m1) = scaleMin(2 * chunk, scales), (s2, m2) = scaleMin(2 * chunk + 1, scales)
            let q = qs + 32 * chunk, out = y + 64 * chunk
            let u1 = UInt8(1) << (2 * chunk), u2 = UInt8(2) << (2 * chunk)
            for l in 0..<32 {
                let v = q.load(fromByteOffset: l, as: UInt8.self), h = qh.load(fromByteOffset: l, as: UInt8.self)
                out[l] = d * s1 * Float((v & 0x0F) + (h & u1 != 0 ? 16 : 0)) - dmin * m1
                out[l + 32] = d * s2 * Float((v >> 4) + (h & u2 != 0 ? 16 : 0)) - dmin * m2
            }
        }
    }

    /// Q6_K: 128 bytes of low nibbles @0, 64 bytes of high bit pairs @128, 16 signed 8-bit scales
    /// @192, d @208.  Each half of 128 values: four runs of 32 from 64 bytes of nibbles and 32 of
    /// bit pairs; a value is (low | high << 4) − 32, scaled by its run of 16's scale.
    static func q6(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block + 208)
        for half in 0..<2 {
            let ql = block + 64 * half, qh = block + 128 + 32 * half, sc = block + 192 + 8 * half
            let out = y + 128 * half
            func scale(_ i: Int) -> Float { d * Float(sc.load(fromByteOffset: i, as: Int8.self)) }
            for l in 0..<32 {
                let low0 = ql.load(fromByteOffset: l, as: UInt8.self), low1 = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let h = qh.load(fromByteOffset: l, as: UInt8.self)
                let s = l / 16
                out[l] = scale(s) * Float(Int((low0 & 0x0F) | ((h & 3) << 4)) - 32)
                out[l + 32] = scale(s + 2) * Float(Int((low1 & 0x0F) | (((h >> 2) & 3) << 4)) - 32)
                out[l + 64] = scale(s + 4) * Float(Int((low0 >> 4) | (((h >> 4) & 3) << 4)) - 32)
                out[l + 96] = scale(s + 6) * Float(Int((low1 >> 4) | (((h >> 6) & 3) << 4)) - 32)
            }
        }
    }

    /// Q2_K: 16 scale bytes @0 (low nibble a scale, high nibble a minimum), 64 bytes of 2-bit
    /// values @16, d @80, dmin @82.  Each half of 128 values reads its 32 bytes four times, two bits
    /// further each time, in runs of 16 with a scale byte each.
    static func q2(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block + 80), dmin = GGMLType.half(block + 82)
        var out = y, index = 0
        for half in 0..<2 {
            let q = block + 16 + 32 * half
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let sc = block.load(fromByteOffset: index, as: UInt8.self)
                    index += 1
                    let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                    for l in 0..<16 { out[l] = dl * Float((q.load(fromByteOffset: 16 * part + l, as: UInt8.self) >> shift) & 3) - ml }
                    out += 16
                }
            }
        }
    }

    /// Q3_K: 32 bytes of high bits @0, 64 bytes of 2-bit values @32, 12 bytes of 6-bit scales @96
    /// (offset by 32), d @108.  A value is its two bits, less 4 when its high bit is clear.
    static func q3(_ block: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        let d = GGMLType.half(block + 108)
        var raw = [UInt8](repeating: 0, count: 12)
        for i in 0..<12 { raw[i] = block.load(fromByteOffset: 96 + i, as: UInt8.self) }
        // ggml's unpacking: the low nibbles of bytes 0-7, then their high nibbles, each under two
        // high bits from bytes 8-11.
        var scales = [Int](repeating: 0, count: 16)
        for i in 0..<16 {
            let low = i < 8 ? raw[i] & 0x0F : raw[i - 8] >> 4
            let high = (raw[8 + i % 4] >> (2 * (i / 4))) & 3
            scales[i] = Int(low | (high << 4)) - 32
        }
        let hm = block, qs = block + 32
        var out = y, index = 0, mask: UInt8 = 1
        for half in 0..<2 {
            let q = qs + 32 * half
            for shift in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let dl = d * Float(scales[index])
                    index += 1
                    for l in 0..<16 {
                        let v = Int((q.load(fromByteOffset: 16 * part + l, as: UInt8.self) >> shift) & 3)
                        let high = hm.load(fromByteOffset: 16 * part + l, as: UInt8.self) & mask != 0
                        out[l] = dl * Float(v - (high ? 0 : 4))
                    }
                    out += 16
                }
                mask <<= 1
            }
        }
    }
}
