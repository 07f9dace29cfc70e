/// The tensor encodings mserve reads, with ggml's numbers, and how each block turns into floats
/// (ggml-quants.c's `dequantize_row_*`, which the tests check against the `gguf` package's).
/// Legacy blocks hold 32 values: Q8_0 a float16 scale and 32 signed bytes (x = d·q); Q4_0 a scale
/// and 32 nibbles (x = d·(q − 8)); Q4_1 a scale, a minimum and 32 nibbles (x = d·q + m); Q5_0 and
/// Q5_1 as Q4_0 and Q4_1 with a fifth bit per value in 32 bits of `qh` (x = d·(q − 16), d·q + m).
/// A block's 16 bytes of nibbles hold its first 16 values in their low halves and the last 16 in
/// their high halves.  K-quant super-blocks hold 256 values in 16 or 8 sub-blocks, each with its
/// own 4- to 8-bit scale (and minimum) under the super-block's float16 ones.
public enum GGMLType: UInt32, Sendable, CustomStringConvertible, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, bf16 = 30

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        }
    }

    /// ggml's name for a type number, for errors about the ones not read here.
    static func name(_ raw: UInt32) -> String {
        let names: [UInt32: String] = [
            9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
            21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0"
        ]
        return GGMLType(rawValue: raw)?.description ?? names[raw] ?? "\(raw)"
    }

    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K: return 256
        }
    }

    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        }
    }

    public func bytes(forElements n: Int) -> Int { n / blockSize * blockBytes }

    /// `src` holds whole blocks for `dst.count` values.
    public func dequantize(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) {
        guard let base = src.baseAddress, let out = dst.baseAddress else { return }
        switch self {
        case .f32:
            for i in dst.indices { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in dst.indices { dst[i] = GGMLType.half(src, 2 * i) }
        case .bf16:
            for i in dst.indices {
                dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        case .q8_0:
            for b in 0..<(dst.count / 32) {
                let o = b * 34
                let d = GGMLType.half(src, o)
                for j in 0..<32 { dst[b * 32 + j] = d * Float(Int8(bitPattern: src[o + 2 + j])) }
            }
        case .q4_0, .q4_1:
            let stride = blockBytes
            let quants = self == .q4_0 ? 2 : 4
            for b in 0..<(dst.count / 32) {
                let o = b * stride
                let d = GGMLType.half(src, o)
                let m = self == .q4_1 ? GGMLType.half(src, o + 2) : -8 * d
                for j in 0..<16 {
                    let q = src[o + quants + j]
                    dst[b * 32 + j] = Float(q & 0x0F) * d + m
                    dst[b * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
        case .q5_0, .q5_1:
            for b in 0..<(dst.count / 32) {
                let block = base + b * blockBytes
                KQuants.legacy5(block, minimum: self == .q5_1, into: out + b * 32)
            }
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K:
            for b in 0..<(dst.count / 256) {
                let block = base + b * blockBytes
                let y = out + b * 256
                switch self {
                case .q2_K: KQuants.q2(block, into: y)
                case .q3_K: KQuants.q3(block, into: y)
                case .q4_K: KQuants.q4(block, into: y)
                case .q5_K: KQuants.q5(block, into: y)
                default: KQuants.q6(block, into: y)
                }
            }
        }
    }

    static func half(_ src: UnsafeRawBufferPointer, _ offset: Int) -> Float {
        half(src.baseAddress! + offset)
    }

    /// The little-endian float16 at `p` (a block's scale or minimum).
    @inline(__always)
    static func half(_ p: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
    }
}
