#if arch(x86_64)
import _Builtin_intrinsics.intel

/// Integer dot products of quantized weight rows with quantized inputs (QuantizedActivations), with
/// the x86 instructions llama.cpp uses (AVX2).  8-bit inputs: 32 unsigned-by-signed byte products
/// summed in pairs (`vpmaddubsw`), the pairs summed into 32 bits (`vpmaddwd`).  16-bit inputs:
/// the weights widened to 16 bits, pairs of products summed into 32 bits (`vpmaddwd`).  One float
/// scale per block; four rows at a time share each input block.  Swift's SIMD types cannot express
/// these instructions, hence the intrinsics; the LLM target is built for the host CPU.
enum IntegerDot {
    static var available: Bool { true }

    /// Inputs as the threads of one product read them.
    struct Input: @unchecked Sendable {
        let values: UnsafeRawPointer
        /// 1 or 2.
        let width: Int
        let scales: UnsafePointer<Float>
        let sums: UnsafePointer<Float>

        /// The input from its block `b` on.
        func block(_ b: Int) -> Input { Input(values: values + b * 32 * width, width: width, scales: scales + b, sums: sums + b) }
    }

    /// A block format's product with an input block: its integers unpacked once (shared by the
    /// inputs of a tile), then multiplied by an input block's: eight partial sums, unscaled.
    protocol Kernel {
        associatedtype Weights
        static var blockBytes: Int { get }
        static var hasMinimum: Bool { get }
        static func unpack(_ block: UnsafeRawPointer) -> Weights
        static func multiply(_ w: Weights, _ x: UnsafeRawPointer) -> __m256i
    }

    // Constants made where used: a static would be read through a lazy initializer every call.
    @inline(__always) static var low: __m256i { _mm256_set1_epi8(15) }
    @inline(__always) static var ones: __m256i { _mm256_set1_epi16(1) }

    /// Q4_1 by 8-bit inputs: the block's 32 values (low nibbles first, then high) as bytes.
    enum Q4_1x8: Kernel {
        static var blockBytes: Int { 20 }
        static var hasMinimum: Bool { true }
        @inline(__always)
        static func unpack(_ block: UnsafeRawPointer) -> __m256i {
            let q = (block + 4).loadUnaligned(as: __m128i.self)
            return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low)
        }
        @inline(__always)
        static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i {
            _mm256_madd_epi16(_mm256_maddubs_epi16(w, x.loadUnaligned(as: __m256i.self)), ones)
        }
    }

    /// Q4_1 by 16-bit inputs.
    enum Q4_1x16: Kernel {
        static var blockBytes: Int { 20 }
        static var hasMinimum: Bool { true }
        @inline(__always)
        static func unpack(_ block: UnsafeRawPointer) -> (__m256i, __m256i) {
            let q = (block + 4).loadUnaligned(as: __m128i.self)
            let m = _mm256_castsi256_si128(low)
            return (_mm256_cvtepu8_epi16(_mm_and_si128(q, m)), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(q, 4), m)))
        }
        @inline(__always)
        static func multiply(_ w: (__m256i, __m256i), _ x: UnsafeRawPointer) -> __m256i {
            _mm256_add_epi32(_mm256_madd_epi16(w.0, x.loadUnaligned(as: __m256i.self)),
                             _mm256_madd_epi16(w.1, x.loadUnaligned(fromByteOffset: 32, as: __m256i.self)))
        }
    }

    /// Q8_0 by 8-bit inputs: the weights' magnitudes (unsigned) times the inputs with the weights' signs.
    enum Q8_0x8: Kernel {
        static var blockBytes: Int { 34 }
        static var hasMinimum: Bool { false }
        @inline(__always)
        static func unpack(_ block: UnsafeRawPointer) -> __m256i { (block + 2).loadUnaligned(as: __m256i.self) }
        @inline(__always)
        static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i {
            let xi = x.loadUnaligned(as: __m256i.self)
            return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xi, w)), ones)
        }
    }

    /// Q8_0 by 16-bit inputs.
    enum Q8_0x16: Kernel {
        static var blockBytes: Int { 34 }
        static var hasMinimum: Bool { false }
        @inline(__always)
        static func unpack(_ block: UnsafeRawPointer) -> (__m256i, __m256i) {
            (_mm256_cvtepi8_epi16((block + 2).loadUnaligned(as: __m128i.self)), _mm256_cvtepi8_epi16((block + 18).loadUnaligned(as: __m128i.self)))
        }
        @inline(__always)
        static func multiply(_ w: (__m256i, __m256i), _ x: UnsafeRawPointer) -> __m256i {
            _mm256_add_epi32(_mm256_madd_epi16(w.0, x.loadUnaligned(as: __m256i.self)),
                             _mm256_madd_epi16(w.1, x.loadUnaligned(fromByteOffset: 32, as: __m256i.self)))
        }
    }

    /// A block's float16 scale or minimum (GGMLType's reader).
    @inline(__always)
    static func half(_ p: UnsafeRawPointer) -> Float { GGMLType.half(p) }

    /// Four rows `stride` bytes apart, from `row`, times one input of `blocks` blocks.
    static func rows4(_ type: GGMLType, _ row: UnsafeRawPointer, stride: Int, _ x: Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>) {
        switch (type, x.width) {
        case (.q4_1, 1): rows4(Q4_1x8.self, row, stride, x, blocks, out)
        case (.q4_1, _): rows4(Q4_1x16.self, row, stride, x, blocks, out)
        case (_, 1): rows4(Q8_0x8.self, row, stride, x, blocks, out)
        default: rows4(Q8_0x16.self, row, stride, x, blocks, out)
        }
    }

    /// Four products' eight lanes summed to two each: lane k and k+4 hold product k's halves.
    /// One conversion and one scaling then serve four products.
    @inline(__always)
    static func fold(_ p0: __m256i, _ p1: __m256i, _ p2: __m256i, _ p3: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3)))
    }

    /// A folded accumulator's four sums.
    @inline(__always)
    static func unfold(_ a: __m256) -> SIMD4<Float> { a.lowHalf + a.highHalf }

    @inline(__always)
    private static func rows4<K: Kernel>(_: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>) {
        var acc = _mm256_setzero_ps()
        var p = row, xb = x.values
        let xStep = 32 &* x.width, scales = x.scales, sums = x.sums
        for b in 0..<blocks {
            let d = SIMD4(half(p), half(p + s), half(p + 2 &* s), half(p + 3 &* s)) * scales[b]
            let v = fold(K.multiply(K.unpack(p), xb), K.multiply(K.unpack(p + s), xb), K.multiply(K.unpack(p + 2 &* s), xb),
                         K.multiply(K.unpack(p + 3 &* s), xb))
            acc = _mm256_fmadd_ps(v, SIMD8(lowHalf: d, highHalf: d), acc)
            if K.hasMinimum {
                let m = SIMD8(lowHalf: SIMD4(half(p + 2), half(p + s + 2), half(p + 2 &* s + 2), half(p + 3 &* s + 2)), highHalf: .zero)
                acc = _mm256_fmadd_ps(m, _mm256_set1_ps(sums[b]), acc)
            }
            p += K.blockBytes
            xb += xStep
        }
        let sums4 = unfold(acc)
        out[0] = sums4[0]
        out[1] = sums4[1]
        out[2] = sums4[2]
        out[3] = sums4[3]
    }

    /// Four rows times four inputs (`x` and the three after it, `inputStride` blocks apart), into
    /// `out` (rows of the four inputs `outStride` floats apart): each row's block unpacked once for
    /// the four.  What makes a batch of sequences cheaper than each alone.
    static func tile(_ type: GGMLType, _ row: UnsafeRawPointer, stride: Int, _ x: Input, inputStride: Int, _ blocks: Int,
                     _ out: UnsafeMutablePointer<Float>, outStride: Int) {
        switch (type, x.width) {
        case (.q4_1, 1): tile(Q4_1x8.self, row, stride, x, inputStride, blocks, out, outStride)
        case (.q4_1, _): tile(Q4_1x16.self, row, stride, x, inputStride, blocks, out, outStride)
        case (_, 1): tile(Q8_0x8.self, row, stride, x, inputStride, blocks, out, outStride)
        default: tile(Q8_0x16.self, row, stride, x, inputStride, blocks, out, outStride)
        }
    }

    /// Four rows times eight inputs: each unpacked block serves twice as many.
    static func tile8(_ type: GGMLType, _ row: UnsafeRawPointer, stride: Int, _ x: Input, inputStride: Int, _ blocks: Int,
                      _ out: UnsafeMutablePointer<Float>, outStride: Int) {
        switch (type, x.width) {
        case (.q4_1, 1): tile8(Q4_1x8.self, row, stride, x, inputStride, blocks, out, outStride)
        case (.q4_1, _): tile8(Q4_1x16.self, row, stride, x, inputStride, blocks, out, outStride)
        case (_, 1): tile8(Q8_0x8.self, row, stride, x, inputStride, blocks, out, outStride)
        default: tile8(Q8_0x16.self, row, stride, x, inputStride, blocks, out, outStride)
        }
    }

    /// Inputs `first`..`first+3`'s scales (or sums) at block `k`, twice: the lanes of a folded vector.
    @inline(__always)
    static func lanes(_ v: UnsafePointer<Float>, _ k: Int, _ first: Int, _ stride: Int) -> SIMD8<Float> {
        let q = SIMD4(v[k + first &* stride], v[k + (first + 1) &* stride], v[k + (first + 2) &* stride], v[k + (first + 3) &* stride])
        return SIMD8(lowHalf: q, highHalf: q)
    }

    @inline(__always)
    private static func tile8<K: Kernel>(_: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ inputStride: Int, _ blocks: Int,
                                         _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
        // Per row, two folded accumulators: inputs 0-3 and 4-7.
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0
        let xs = 32 &* x.width, step = inputStride &* xs
        let lowLanes = SIMD8<Float>(1, 1, 1, 1, 0, 0, 0, 0)
        var p = row, xb = x.values
        for k in 0..<blocks {
            let scaleA = lanes(x.scales, k, 0, inputStride), scaleB = lanes(x.scales, k, 4, inputStride)
            let sumsA = K.hasMinimum ? lanes(x.sums, k, 0, inputStride) * lowLanes : .zero
            let sumsB = K.hasMinimum ? lanes(x.sums, k, 4, inputStride) * lowLanes : .zero
            @inline(__always) func row(_ r: UnsafeRawPointer, _ a: inout __m256, _ b: inout __m256) {
                let w = K.unpack(r)
                let d = half(r)
                a = _mm256_fmadd_ps(fold(K.multiply(w, xb), K.multiply(w, xb + step), K.multiply(w, xb + 2 &* step), K.multiply(w, xb + 3 &* step)),
                                    scaleA * d, a)
                b = _mm256_fmadd_ps(fold(K.multiply(w, xb + 4 &* step), K.multiply(w, xb + 5 &* step), K.multiply(w, xb + 6 &* step),
                                         K.multiply(w, xb + 7 &* step)), scaleB * d, b)
                if K.hasMinimum {
                    let m = _mm256_set1_ps(half(r + 2))
                    a = _mm256_fmadd_ps(sumsA, m, a)
                    b = _mm256_fmadd_ps(sumsB, m, b)
                }
            }
            row(p, &a0, &b0)
            row(p + s, &a1, &b1)
            row(p + 2 &* s, &a2, &b2)
            row(p + 3 &* s, &a3, &b3)
            p += K.blockBytes
            xb += xs
        }
        for (r, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].enumerated() {
            let first = unfold(a), second = unfold(b)
            for i in 0..<4 {
                out[i &* outStride + r] = first[i]
                out[(i + 4) &* outStride + r] = second[i]
            }
        }
    }

    @inline(__always)
    private static func tile<K: Kernel>(_: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ inputStride: Int, _ blocks: Int,
                                        _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
        // One folded accumulator per row, its lanes the four inputs.
        var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
        let xs = 32 &* x.width, step = inputStride &* xs
        var p = row, xb = x.values
        for k in 0..<blocks {
            let dx = SIMD4(x.scales[k], x.scales[k + inputStride], x.scales[k + 2 &* inputStride], x.scales[k + 3 &* inputStride])
            let scale = SIMD8(lowHalf: dx, highHalf: dx)
            let x0 = xb, x1 = xb + step, x2 = xb + 2 &* step, x3 = xb + 3 &* step
            @inline(__always) func row(_ r: UnsafeRawPointer, _ acc: inout __m256) {
                let w = K.unpack(r)
                acc = _mm256_fmadd_ps(fold(K.multiply(w, x0), K.multiply(w, x1), K.multiply(w, x2), K.multiply(w, x3)), scale * half(r), acc)
            }
            row(p, &a0)
            row(p + s, &a1)
            row(p + 2 &* s, &a2)
            row(p + 3 &* s, &a3)
            if K.hasMinimum {
                // The minimums' terms join the low lanes of the same accumulators.
                let sx = SIMD8(lowHalf: SIMD4(x.sums[k], x.sums[k + inputStride], x.sums[k + 2 &* inputStride], x.sums[k + 3 &* inputStride]),
                               highHalf: .zero)
                a0 = _mm256_fmadd_ps(sx, _mm256_set1_ps(half(p + 2)), a0)
                a1 = _mm256_fmadd_ps(sx, _mm256_set1_ps(half(p + s + 2)), a1)
                a2 = _mm256_fmadd_ps(sx, _mm256_set1_ps(half(p + 2 &* s + 2)), a2)
                a3 = _mm256_fmadd_ps(sx, _mm256_set1_ps(half(p + 3 &* s + 2)), a3)
            }
            p += K.blockBytes
            xb += xs
        }
        for (r, a) in [a0, a1, a2, a3].enumerated() {
            let sums = unfold(a)
            for i in 0..<4 { out[i &* outStride + r] = sums[i] }
        }
    }

    /// One row times one input (the rows after the last four).
    static func row(_ type: GGMLType, _ row: UnsafeRawPointer, _ x: Input, _ blocks: Int) -> Float {
        switch (type, x.width) {
        case (.q4_1, 1): return self.row(Q4_1x8.self, row, x, blocks)
        case (.q4_1, _): return self.row(Q4_1x16.self, row, x, blocks)
        case (_, 1): return self.row(Q8_0x8.self, row, x, blocks)
        default: return self.row(Q8_0x16.self, row, x, blocks)
        }
    }

    private static func row<K: Kernel>(_: K.Type, _ row: UnsafeRawPointer, _ x: Input, _ blocks: Int) -> Float {
        var a = _mm256_setzero_ps()
        var mins: Float = 0
        for b in 0..<blocks {
            let p = row + b * K.blockBytes
            a = _mm256_fmadd_ps(_mm256_set1_ps(half(p) * x.scales[b]), _mm256_cvtepi32_ps(K.multiply(K.unpack(p), x.values + b * 32 * x.width)), a)
            if K.hasMinimum { mins += half(p + 2) * x.sums[b] }
        }
        return a.sum() + mins
    }
}
#else
/// Integer dot products need x86's byte multiply-adds; elsewhere quantized activations fall back
/// to float32 (QuantizedMatrix's float kernels).
enum IntegerDot {
    static var available: Bool { false }
}
#endif
