#if arch(x86_64) && canImport(CAVX512)
import _Builtin_intrinsics.intel

/// The 8-bit products on CPUs with AVX-512 VNNI: `vpdpbusd` multiplies 64 unsigned bytes by 64
/// signed ones and adds each four products into a 32-bit lane, so one instruction takes two
/// 32-value blocks (lanes 0-7 the first, 8-15 the second) where AVX2 needs two multiply-adds per
/// block.  Each lane's sum is converted and scaled by its block's scales (weight times input) into
/// a float accumulator per row and input, reduced once at the end.  Q8_0's signed weights take
/// the inputs shifted to unsigned (x + 128), the shift's share (128 · Σw) subtracted up front.
/// For 8-bit inputs and an even number of blocks.  (A 16-bit version, `vpdpwssd` with one block
/// per instruction, measured no faster than the AVX2 kernels: the per-block float work dominates.)
enum WideIntegerDot {
    static var available: Bool { true }

    /// Lanes 0-7 from a pair's first value, 8-15 from its second.
    @inline(__always) static var pairIndex: __m512i { _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0) }

    /// Two consecutive floats (a pair of blocks' scales), each over its block's eight lanes.
    @inline(__always)
    static func pair(_ p: UnsafePointer<Float>) -> __m512 {
        _mm512_permutexvar_ps(pairIndex, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(UnsafeRawPointer(p).assumingMemoryBound(to: Double.self)))))
    }

    /// Two float16 values `gap` bytes apart, each over its block's eight lanes.
    @inline(__always)
    static func halves(_ p: UnsafeRawPointer, gap: Int) -> __m512 {
        let bits = UInt32(p.loadUnaligned(as: UInt16.self)) | UInt32(p.loadUnaligned(fromByteOffset: gap, as: UInt16.self)) << 16
        let h = _mm_cvtsi32_si128(Int32(bitPattern: bits))
        return _mm512_permutexvar_ps(pairIndex, _mm512_castps128_ps512(_mm_cvtph_ps(h)))
    }

    /// A row's pair of blocks: its weights as 64 bytes in the inputs' order, the two blocks'
    /// scales and minimums (Q4_1) or the correction for unsigned inputs (Q8_0).
    struct Weights {
        var w: __m512i
        var d: __m512
        /// Q4_1: the minimums; Q8_0: unused.
        var m: __m512
        /// Q8_0: −128 · Σw per lane; Q4_1: zero.
        var start: __m512i
    }

    /// `low` in the lower 256 bits, `high` in the upper.
    @inline(__always)
    static func joined(_ low: __m256i, _ high: __m256i) -> __m512i { _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(low), 0xF0, high) }

    @inline(__always)
    static func weights(_ type: GGMLType, _ p: UnsafeRawPointer) -> Weights {
        if type == .q4_1 {
            let low = _mm256_set1_epi8(15)
            let q0 = (p + 4).loadUnaligned(as: __m128i.self), q1 = (p + 24).loadUnaligned(as: __m128i.self)
            let w0 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q0, 4), q0), low)
            let w1 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q1, 4), q1), low)
            return Weights(w: joined(w0, w1), d: halves(p, gap: 20), m: halves(p + 2, gap: 20),
                           start: _mm512_setzero_si512())
        }
        let w = joined((p + 2).loadUnaligned(as: __m256i.self), (p + 36).loadUnaligned(as: __m256i.self))
        let shift = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), w)
        return Weights(w: w, d: halves(p, gap: 34), m: _mm512_setzero_ps(), start: _mm512_sub_epi32(_mm512_setzero_si512(), shift))
    }

    /// An input's pair of blocks: its 64 bytes (shifted to unsigned for Q8_0), scales, and its
    /// scaled sums over eight (what a Q4_1 minimum multiplies, spread over a block's lanes).
    struct InputPair {
        var x: __m512i
        var d: __m512
        var s: __m512
    }

    @inline(__always)
    static func input(_ type: GGMLType, _ x: IntegerDot.Input, _ k: Int) -> InputPair {
        var v = (x.values + k &* 32).loadUnaligned(as: __m512i.self)
        if type == .q8_0 { v = _mm512_xor_si512(v, _mm512_set1_epi8(-128)) }
        return InputPair(x: v, d: pair(x.scales + k),
                         s: type == .q4_1 ? _mm512_mul_ps(pair(x.sums + k), _mm512_set1_ps(0.125)) : _mm512_setzero_ps())
    }

    @inline(__always)
    static func accumulate(_ type: GGMLType, _ w: Weights, _ x: InputPair, _ acc: inout __m512) {
        // The unsigned operand first: Q4_1's weights, or Q8_0's shifted inputs.
        let dot = type == .q4_1 ? _mm512_dpbusd_epi32(w.start, w.w, x.x) : _mm512_dpbusd_epi32(w.start, x.x, w.w)
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(w.d, x.d), acc)
        if type == .q4_1 { acc = _mm512_fmadd_ps(w.m, x.s, acc) }
    }

    /// Four rows `stride` bytes apart times four inputs `inputStride` blocks apart, into `out`
    /// (the inputs' outputs `outStride` floats apart).
    static func tile(_ type: GGMLType, _ row: UnsafeRawPointer, stride s: Int, _ x: IntegerDot.Input, inputStride: Int, _ blocks: Int,
                     _ out: UnsafeMutablePointer<Float>, outStride: Int) {
        type == .q4_1 ? tile(.q4_1, row, s, x, inputStride, blocks, out, outStride) : tile(.q8_0, row, s, x, inputStride, blocks, out, outStride)
    }

    @inline(__always)
    private static func tile(_ type: GGMLType, _ row: UnsafeRawPointer, _ s: Int, _ x: IntegerDot.Input, _ inputStride: Int,
                             _ blocks: Int, _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
        let z = _mm512_setzero_ps()
        var a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z
        var a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z
        let x1 = x.block(inputStride), x2 = x.block(2 &* inputStride), x3 = x.block(3 &* inputStride)
        var p = row
        let advance = type == .q4_1 ? 40 : 68
        for k in Swift.stride(from: 0, to: blocks, by: 2) {
            let w0 = weights(type, p), w1 = weights(type, p + s)
            let w2 = weights(type, p + 2 &* s), w3 = weights(type, p + 3 &* s)
            @inline(__always) func rows(_ i: InputPair, _ b0: inout __m512, _ b1: inout __m512, _ b2: inout __m512, _ b3: inout __m512) {
                accumulate(type, w0, i, &b0)
                accumulate(type, w1, i, &b1)
                accumulate(type, w2, i, &b2)
                accumulate(type, w3, i, &b3)
            }
            rows(input(type, x, k), &a00, &a10, &a20, &a30)
            rows(input(type, x1, k), &a01, &a11, &a21, &a31)
            rows(input(type, x2, k), &a02, &a12, &a22, &a32)
            rows(input(type, x3, k), &a03, &a13, &a23, &a33)
            p += advance
        }
        for (i, accs) in [(a00, a10, a20, a30), (a01, a11, a21, a31), (a02, a12, a22, a32), (a03, a13, a23, a33)].enumerated() {
            let o = out + i &* outStride
            o[0] = _mm512_reduce_add_ps(accs.0)
            o[1] = _mm512_reduce_add_ps(accs.1)
            o[2] = _mm512_reduce_add_ps(accs.2)
            o[3] = _mm512_reduce_add_ps(accs.3)
        }
    }

    /// Four rows times one input.
    static func rows4(_ type: GGMLType, _ row: UnsafeRawPointer, stride s: Int, _ x: IntegerDot.Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>) {
        type == .q4_1 ? rows4(.q4_1, row, s, x, blocks, out) : rows4(.q8_0, row, s, x, blocks, out)
    }

    @inline(__always)
    private static func rows4(_ type: GGMLType, _ row: UnsafeRawPointer, _ s: Int, _ x: IntegerDot.Input, _ blocks: Int,
                              _ out: UnsafeMutablePointer<Float>) {
        let z = _mm512_setzero_ps()
        var a0 = z, a1 = z, a2 = z, a3 = z
        var p = row
        let advance = type == .q4_1 ? 40 : 68
        for k in Swift.stride(from: 0, to: blocks, by: 2) {
            let i = input(type, x, k)
            accumulate(type, weights(type, p), i, &a0)
            accumulate(type, weights(type, p + s), i, &a1)
            accumulate(type, weights(type, p + 2 &* s), i, &a2)
            accumulate(type, weights(type, p + 3 &* s), i, &a3)
            p += advance
        }
        out[0] = _mm512_reduce_add_ps(a0)
        out[1] = _mm512_reduce_add_ps(a1)
        out[2] = _mm512_reduce_add_ps(a2)
        out[3] = _mm512_reduce_add_ps(a3)
    }
}
#else
/// Without AVX-512 VNNI (or off x86), the AVX2 kernels of IntegerDot do the products.
enum WideIntegerDot {
    static var available: Bool { false }
}
#endif
