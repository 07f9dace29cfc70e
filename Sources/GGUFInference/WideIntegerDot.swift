#if arch(x86_64) && canImport(CAVX512)
    import _Builtin_intrinsics.intel

    /// The 8-bit products on CPUs with AVX-512 VNNI: `vpdpbusd` multiplies 64 unsigned bytes by 64
    /// signed ones and adds each four products into a 32-bit lane, so one instruction takes two
    /// 32-value blocks (lanes 0-7 the first, 8-15 the second) where AVX2 needs two multiply-adds per
    /// block.  Each lane's sum is converted and scaled by its block's scales (weight times input) into
    /// a float accumulator per row and input, reduced once at the end.  Every format with an AVX2
    /// kernel (IntegerDot's byte kernels unpack its blocks); signed weights (Q8_0, Q4_0, Q5_0, Q6_K)
    /// take the inputs shifted to unsigned (x + 128), the shift's share (128 · Σw) subtracted up front.
    /// For 8-bit inputs and an even number of blocks.  (A 16-bit version, `vpdpwssd` with one block
    /// per instruction, measured no faster than the AVX2 kernels: the per-block float work dominates.)
    enum WideIntegerDot {
        static var available: Bool { true }

        /// Lanes 0-7 from a pair's first value, 8-15 from its second.
        @inline(__always) static var pairIndex: __m512i { _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0) }

        /// Two consecutive floats (a pair of blocks' scales), each over its block's eight lanes.
        @inline(__always)
        static func pair(_ p: UnsafePointer<Float>) -> __m512 {
            _mm512_permutexvar_ps(
                pairIndex, _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(UnsafeRawPointer(p).assumingMemoryBound(to: Double.self)))))
        }

        /// Four floats, each over four lanes: a pair of blocks' scales by halves (lanes 0-3 the first
        /// block's first 16 values, 4-7 its last 16, 8-15 the second block's likewise).
        @inline(__always)
        static func spread(_ a: Float, _ b: Float, _ c: Float, _ d: Float) -> __m512 {
            _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0), _mm512_castps128_ps512(_mm_setr_ps(a, b, c, d)))
        }

        /// A row's pair of blocks: its weights as 64 bytes in the inputs' order, the blocks' scales by
        /// halves, their minimums (formats with one) and, for signed weights, the correction for the
        /// inputs made unsigned.
        struct Weights {
            var w: __m512i
            var d: __m512
            var m: __m512
            /// Signed weights: −128 · Σw per lane; else zero.
            var start: __m512i
        }

        /// `low` in the lower 256 bits, `high` in the upper.
        @inline(__always)
        static func joined(_ low: __m256i, _ high: __m256i) -> __m512i { _mm512_mask_broadcast_i64x4(_mm512_castsi256_si512(low), 0xF0, high) }

        @inline(__always)
        static func weights<K: IntegerDot.ByteKernel>(_: K.Type, _ row: UnsafeRawPointer, _ b: Int) -> Weights {
            let w = joined(K.unpack(row, b), K.unpack(row, b + 1))
            let (a0, a1) = K.scales(row, b), (b0, b1) = K.scales(row, b + 1)
            var m = _mm512_setzero_ps()
            if K.hasMinimum {
                let m0 = K.minimum(row, b), m1 = K.minimum(row, b + 1)
                m = spread(m0, m0, m1, m1)
            }
            var start = _mm512_setzero_si512()
            if K.signedWeights { start = _mm512_sub_epi32(start, _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), w)) }
            return Weights(w: w, d: spread(a0, a1, b0, b1), m: m, start: start)
        }

        /// An input's pair of blocks: its 64 bytes (shifted to unsigned against signed weights),
        /// scales, and its scaled sums over eight (what a minimum multiplies, spread over a block's lanes).
        struct InputPair {
            var x: __m512i
            var d: __m512
            var s: __m512
        }

        @inline(__always)
        static func input<K: IntegerDot.ByteKernel>(_: K.Type, _ x: IntegerDot.Input, _ k: Int) -> InputPair {
            var v = (x.values + k &* 32).loadUnaligned(as: __m512i.self)
            if K.signedWeights { v = _mm512_xor_si512(v, _mm512_set1_epi8(-128)) }
            return InputPair(
                x: v, d: pair(x.scales + k),
                s: K.hasMinimum ? _mm512_mul_ps(pair(x.sums + k), _mm512_set1_ps(0.125)) : _mm512_setzero_ps())
        }

        @inline(__always)
        static func accumulate<K: IntegerDot.ByteKernel>(_: K.Type, _ w: Weights, _ x: InputPair, _ acc: inout __m512) {
            // The unsigned operand first: the weights, or against signed weights the shifted inputs.
            let dot = K.signedWeights ? _mm512_dpbusd_epi32(w.start, x.x, w.w) : _mm512_dpbusd_epi32(w.start, w.w, x.x)
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(w.d, x.d), acc)
            if K.hasMinimum { acc = _mm512_fmadd_ps(w.m, x.s, acc) }
        }

        /// Four rows `stride` bytes apart times up to four inputs `inputStride` blocks apart, into
        /// `out` (the inputs' outputs `outStride` floats apart).  With `count` under four (the rest
        /// of a batch) the missing inputs stand in for the first, computed and not stored: the
        /// weights are still read once for all, as in IntegerDot's partial tiles.
        static func tile(
            _ type: GGMLType, _ row: UnsafeRawPointer, stride s: Int, _ x: IntegerDot.Input, inputStride: Int, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>, outStride: Int, count: Int = 4
        ) {
            precondition((1...4).contains(count))
            struct Call: IntegerDot.ByteKernelCall {
                let row: UnsafeRawPointer, s: Int, x: IntegerDot.Input, inputStride: Int, blocks: Int, out: UnsafeMutablePointer<Float>,
                    outStride: Int, count: Int
                func callAsFunction<K: IntegerDot.ByteKernel>(_ k: K.Type) {
                    WideIntegerDot.tile(k, row, s, x, inputStride, blocks, out, outStride, count)
                }
            }
            IntegerDot.dispatchBytes(
                type, Call(row: row, s: s, x: x, inputStride: inputStride, blocks: blocks, out: out, outStride: outStride, count: count))
        }

        @inline(__always)
        private static func tile<K: IntegerDot.ByteKernel>(
            _ k: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: IntegerDot.Input, _ inputStride: Int,
            _ blocks: Int, _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ count: Int
        ) {
            let z = _mm512_setzero_ps()
            var a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z
            var a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z
            @inline(__always) func nth(_ i: Int) -> IntegerDot.Input { x.block(i < count ? i &* inputStride : 0) }
            let x1 = nth(1), x2 = nth(2), x3 = nth(3)
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = IntegerDot.Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks / 2)
            for b in Swift.stride(from: 0, to: blocks, by: 2) {
                ahead.fetch(b / 2)
                let w0 = weights(k, row, b), w1 = weights(k, r1, b), w2 = weights(k, r2, b), w3 = weights(k, r3, b)
                @inline(__always) func rows(_ i: InputPair, _ b0: inout __m512, _ b1: inout __m512, _ b2: inout __m512, _ b3: inout __m512) {
                    accumulate(k, w0, i, &b0)
                    accumulate(k, w1, i, &b1)
                    accumulate(k, w2, i, &b2)
                    accumulate(k, w3, i, &b3)
                }
                rows(input(k, x, b), &a00, &a10, &a20, &a30)
                rows(input(k, x1, b), &a01, &a11, &a21, &a31)
                rows(input(k, x2, b), &a02, &a12, &a22, &a32)
                rows(input(k, x3, b), &a03, &a13, &a23, &a33)
            }
            for (i, accs) in [(a00, a10, a20, a30), (a01, a11, a21, a31), (a02, a12, a22, a32), (a03, a13, a23, a33)].enumerated()
            where i < count {
                let o = out + i &* outStride
                o[0] = _mm512_reduce_add_ps(accs.0)
                o[1] = _mm512_reduce_add_ps(accs.1)
                o[2] = _mm512_reduce_add_ps(accs.2)
                o[3] = _mm512_reduce_add_ps(accs.3)
            }
        }

        /// Four rows times one input.
        static func rows4(
            _ type: GGMLType, _ row: UnsafeRawPointer, stride s: Int, _ x: IntegerDot.Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>
        ) {
            struct Call: IntegerDot.ByteKernelCall {
                let row: UnsafeRawPointer, s: Int, x: IntegerDot.Input, blocks: Int, out: UnsafeMutablePointer<Float>
                func callAsFunction<K: IntegerDot.ByteKernel>(_ k: K.Type) { WideIntegerDot.rows4(k, row, s, x, blocks, out) }
            }
            IntegerDot.dispatchBytes(type, Call(row: row, s: s, x: x, blocks: blocks, out: out))
        }

        @inline(__always)
        private static func rows4<K: IntegerDot.ByteKernel>(
            _ k: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: IntegerDot.Input, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>
        ) {
            let z = _mm512_setzero_ps()
            var a0 = z, a1 = z, a2 = z, a3 = z
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = IntegerDot.Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks / 2)
            for b in Swift.stride(from: 0, to: blocks, by: 2) {
                ahead.fetch(b / 2)
                let i = input(k, x, b)
                accumulate(k, weights(k, row, b), i, &a0)
                accumulate(k, weights(k, r1, b), i, &a1)
                accumulate(k, weights(k, r2, b), i, &a2)
                accumulate(k, weights(k, r3, b), i, &a3)
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
