/// The tensor encodings mserve reads, with ggml's numbers, and how each block turns into floats.
/// A block holds `blockSize` values: Q8_0 is a float16 scale and 32 signed bytes (x = d·q); Q4_0 a
/// scale and 32 nibbles (x = d·(q − 8)); Q4_1 a scale, a minimum and 32 nibbles (x = d·q + m).  A
/// block's 16 bytes of nibbles hold its first 16 values in their low halves and the last 16 in their
/// high halves.
public enum GGMLType: UInt32, Sendable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        }
    }

    /// ggml's name for a type number, for errors about the ones not read here.
    static func name(_ raw: UInt32) -> String {
        let names: [UInt32: String] = [6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K",
                                       15: "Q8_K", 30: "BF16"]
        return GGMLType(rawValue: raw)?.description ?? names[raw] ?? "\(raw)"
    }

    public var blockSize: Int { self == .f32 || self == .f16 ? 1 : 32 }
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q8_0: return 34
        }
    }

    public func bytes(forElements n: Int) -> Int { n / blockSize * blockBytes }

    /// `src` holds whole blocks for `dst.count` values.
    public func dequantize(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .f32:
            for i in dst.indices { dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f16:
            for i in dst.indices { dst[i] = GGMLType.half(src, 2 * i) }
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
