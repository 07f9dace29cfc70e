#if arch(x86_64) && canImport(CAVX2)
    import CSystemShim
    import _Builtin_intrinsics.intel

    /// Integer dot products of quantized weight rows with quantized inputs (QuantizedActivations), with
    /// the x86 instructions llama.cpp uses (AVX2).  8-bit inputs: 32 unsigned-by-signed byte products
    /// summed in pairs (`vpmaddubsw`), the pairs summed into 32 bits (`vpmaddwd`).  16-bit inputs:
    /// the weights widened to 16 bits, pairs of products summed into 32 bits (`vpmaddwd`).  One float
    /// scale per block; four rows at a time share each input block.  Swift's SIMD types cannot express
    /// these instructions, hence the intrinsics; the GGUFInference target is built for the host CPU.
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

        /// A block format's product with an input block, 32 values at a time: a row's `b`th 32 values
        /// unpacked once (shared by the inputs of a tile), then multiplied by an input block's: eight
        /// partial sums, unscaled, lanes 0-3 over the first 16 values and 4-7 over the last 16 -- which
        /// is why a format gives a scale for each half (Q6_K has one per 16 values; the others one).
        protocol Kernel {
            associatedtype Weights
            static var hasMinimum: Bool { get }
            /// The two halves of a block scaled apart (Q6_K's scale per 16 values).
            static var halvesDiffer: Bool { get }
            static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> Weights
            /// The scales of the `b`th 32 values' halves.
            static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float)
            /// What each input value adds besides (times the input block's sum): Q4_1's m, Q4_K's −dmin·m.
            static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float
            static func multiply(_ w: Weights, _ x: UnsafeRawPointer) -> __m256i
            /// The 32-value blocks that share a super-block's scales: 8 for the K-quants, whose
            /// packed scales are then unpacked once a super-block (`superScales`), not per block
            /// and row in scalar code (which took most of their kernels' time); 1 for the others.
            static var perSuper: Int { get }
            /// Super-block `s`'s scales, lane j for its jth 32 values: the first and second halves',
            /// and the minimum (zeros without one).  The same products `scales` and `minimum` give.
            static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256)
            /// Four rows' `scales` (first and second halves) and `minimum` of their `b`th 32 values.
            static func scales4(
                _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer, _ b: Int
            ) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>)
        }

        /// A kernel of 8-bit inputs, whose weights are bytes: signed (Q8_0's) or not (Q4_1's).
        protocol ByteKernel: Kernel where Weights == __m256i {
            static var signedWeights: Bool { get }
        }

        /// A byte kernel by 16-bit inputs: its bytes widened to 16 bits, pairs of products summed into
        /// 32 bits; with different scales for a block's halves, their sums kept apart (lanes 0-3 the
        /// first 16 values, 4-7 the last), else added lane by lane.
        enum Widened<K: ByteKernel>: Kernel {
            static var hasMinimum: Bool { K.hasMinimum }
            static var halvesDiffer: Bool { K.halvesDiffer }
            @inline(__always) static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> (__m256i, __m256i) { widen(K.unpack(row, b)) }
            @inline(__always) static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float) { K.scales(row, b) }
            @inline(__always) static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { K.minimum(row, b) }
            @inline(__always) static var perSuper: Int { K.perSuper }
            @inline(__always) static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256) { K.superScales(row, s) }
            @inline(__always)
            static func scales4(
                _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer, _ b: Int
            ) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) { K.scales4(r0, r1, r2, r3, b) }
            @inline(__always)
            static func multiply(_ w: (__m256i, __m256i), _ x: UnsafeRawPointer) -> __m256i {
                let first = _mm256_madd_epi16(w.0, x.loadUnaligned(as: __m256i.self))
                let second = _mm256_madd_epi16(w.1, x.loadUnaligned(fromByteOffset: 32, as: __m256i.self))
                guard K.halvesDiffer else { return _mm256_add_epi32(first, second) }
                return _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(first, second), _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7))
            }
        }

        /// The formats of 32-value blocks, each with its float16 scale first (and minimum after it).
        protocol BlockKernel: Kernel {
            static var blockBytes: Int { get }
            static func unpack(_ block: UnsafeRawPointer) -> Weights
            /// Four rows' minimums at `offset` in each, given their scales `d` there (Q4_1's and
            /// Q5_1's are stored after the scale; Q4_0's and Q5_0's are −8d and −16d).
            static func minimum4(
                _ d: SIMD4<Float>, _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer,
                _ offset: Int
            ) -> SIMD4<Float>
        }

        /// The signed 32-value formats multiplied unsigned (Q4_0, Q5_0): a block's value is d · (q −
        /// `offset`), its `offset` taken off through a minimum of −offset·d, which times the input
        /// block's sum gives the same total.
        protocol OffsetBlockKernel: BlockKernel {
            static var offset: Float { get }
        }

        /// Four rows' float16 at `offset` in each, as floats: one conversion for the four.
        @inline(__always)
        static func halves4(
            _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer, _ offset: Int
        ) -> SIMD4<Float> {
            @inline(__always) func bits(_ p: UnsafeRawPointer) -> Int16 { p.loadUnaligned(fromByteOffset: offset, as: Int16.self) }
            return _mm_cvtph_ps(_mm_setr_epi16(bits(r0), bits(r1), bits(r2), bits(r3), 0, 0, 0, 0))
        }

        // Constants made where used: a static would be read through a lazy initializer every call.
        @inline(__always) static var low: __m256i { _mm256_set1_epi8(15) }
        @inline(__always) static var ones: __m256i { _mm256_set1_epi16(1) }

        /// Q4_1 by 8-bit inputs: the block's 32 values (low nibbles first, then high) as bytes.
        enum Q4_1x8: BlockKernel, ByteKernel {
            static var signedWeights: Bool { false }
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

        /// Q8_0 by 8-bit inputs: the weights' magnitudes (unsigned) times the inputs with the weights' signs.
        enum Q8_0x8: BlockKernel, ByteKernel {
            static var signedWeights: Bool { true }
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

        /// The formats with kernels: the 32-value blocks and the K-quants Q4_K, Q5_K and Q6_K.
        static func supports(_ type: GGMLType) -> Bool { [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q4_K, .q5_K, .q6_K].contains(type) }

        /// A block's 16 bytes of nibbles as 32 bytes: low nibbles (values 0-15) then high (16-31).
        @inline(__always)
        static func nibbles(_ p: UnsafeRawPointer) -> __m256i {
            let q = p.loadUnaligned(as: __m128i.self)
            return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low)
        }

        /// 32 bits as 32 bytes: 0xFF where the bit is set, else 0 (llama.cpp's bytes_from_bits_32).
        @inline(__always)
        static func bits(_ p: UnsafeRawPointer) -> __m256i {
            let x = p.loadUnaligned(as: Int32.self)
            let spread = _mm256_shuffle_epi8(
                _mm256_set1_epi32(x),
                _mm256_set_epi64x(
                    0x0303_0303_0303_0303, 0x0202_0202_0202_0202,
                    0x0101_0101_0101_0101, 0))
            let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe))
            return _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1))
        }

        /// 32 signed bytes as two vectors of 16-bit integers.
        @inline(__always)
        static func widen(_ v: __m256i) -> (__m256i, __m256i) {
            (_mm256_cvtepi8_epi16(v.lowHalf), _mm256_cvtepi8_epi16(v.highHalf))
        }

        /// Q4_0 by 8-bit inputs: the nibbles as they are (unsigned), the 8 taken off each through a
        /// minimum of −8d (times the input block's sum): two sign instructions fewer per block
        /// than signed weights take, and the same sum.
        enum Q4_0x8: OffsetBlockKernel, ByteKernel {
            static var signedWeights: Bool { false }
            static var blockBytes: Int { 18 }
            @inline(__always)
            static func unpack(_ block: UnsafeRawPointer) -> __m256i { nibbles(block + 2) }
            static var offset: Float { 8 }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q4_1x8.multiply(w, x) }
        }

        /// Q5_0 by 8-bit inputs: a nibble and its fifth bit (from the block's 32-bit mask), 0-31,
        /// the 16 taken off through a minimum of −16d, as Q4_0's 8.
        enum Q5_0x8: OffsetBlockKernel, ByteKernel {
            static var signedWeights: Bool { false }
            static var blockBytes: Int { 22 }
            @inline(__always)
            static func unpack(_ block: UnsafeRawPointer) -> __m256i {
                _mm256_or_si256(nibbles(block + 6), _mm256_and_si256(bits(block + 2), _mm256_set1_epi8(16)))
            }
            static var offset: Float { 16 }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q4_1x8.multiply(w, x) }
        }

        /// Q5_1 by 8-bit inputs: a nibble and its fifth bit, unsigned (a minimum is added).
        enum Q5_1x8: BlockKernel, ByteKernel {
            static var signedWeights: Bool { false }
            static var blockBytes: Int { 24 }
            static var hasMinimum: Bool { true }
            @inline(__always)
            static func unpack(_ block: UnsafeRawPointer) -> __m256i {
                _mm256_or_si256(nibbles(block + 8), _mm256_and_si256(bits(block + 4), _mm256_set1_epi8(16)))
            }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q4_1x8.multiply(w, x) }
        }

        /// What runs with a format's kernel, chosen once by `dispatch`.
        protocol KernelCall {
            func callAsFunction<K: Kernel>(_ k: K.Type)
        }

        /// What runs with a format's byte kernel, chosen once by `dispatchBytes`.
        protocol ByteKernelCall {
            func callAsFunction<K: ByteKernel>(_ k: K.Type)
        }

        /// `call` with the byte kernel of `type`; Q8_0's for a type without one (callers check
        /// `supports` first).
        @inline(__always)
        static func dispatchBytes(_ type: GGMLType, _ call: some ByteKernelCall) {
            switch type {
            case .q4_0: call(Q4_0x8.self)
            case .q4_1: call(Q4_1x8.self)
            case .q5_0: call(Q5_0x8.self)
            case .q5_1: call(Q5_1x8.self)
            case .q4_K: call(Q4_Kx8.self)
            case .q5_K: call(Q5_Kx8.self)
            case .q6_K: call(Q6_Kx8.self)
            default: call(Q8_0x8.self)
            }
        }

        /// `call` with the kernel of `type` for inputs of `width` bytes (1: 8-bit, 2: 16-bit).
        @inline(__always)
        static func dispatch(_ type: GGMLType, _ width: Int, _ call: some KernelCall) {
            dispatchBytes(type, ByWidth(width: width, call: call))
        }

        /// A call made with a byte kernel as it is (8-bit inputs) or widened (16-bit).
        struct ByWidth<C: KernelCall>: ByteKernelCall {
            let width: Int, call: C
            @inline(__always)
            func callAsFunction<K: ByteKernel>(_ k: K.Type) { width == 1 ? call(k) : call(Widened<K>.self) }
        }

        /// A block's float16 scale or minimum (GGMLType's reader).
        @inline(__always)
        static func half(_ p: UnsafeRawPointer) -> Float { GGMLType.half(p) }

        /// A 32-bit lane count as a shift for `_mm256_srl_epi16` (whose count is not an immediate).
        @inline(__always)
        static func count(_ n: Int) -> __m128i { _mm_cvtsi32_si128(Int32(n)) }

        /// The low nibbles of 32 bytes, or their high ones.
        @inline(__always)
        static func nibbles(_ q: __m256i, high: Bool) -> __m256i { high ? _mm256_and_si256(_mm256_srli_epi16(q, 4), low) : _mm256_and_si256(q, low) }

        /// Q4_K's and Q5_K's scale of their `b`th 32 values (d · its 6-bit scale), super-blocks of `bytes`.
        @inline(__always)
        static func kScale(_ row: UnsafeRawPointer, _ b: Int, _ bytes: Int) -> (Float, Float) {
            let block = row + (b >> 3) &* bytes
            let s = half(block) * KQuants.scaleMin(b & 7, block + 4).0
            return (s, s)
        }

        /// Their minimum: −dmin · its 6-bit minimum.
        @inline(__always)
        static func kMinimum(_ row: UnsafeRawPointer, _ b: Int, _ bytes: Int) -> Float {
            let block = row + (b >> 3) &* bytes
            return -half(block + 2) * KQuants.scaleMin(b & 7, block + 4).1
        }

        /// Q4_K's and Q5_K's eight scales and minimums of a super-block at once: their 12 bytes
        /// rearranged into eight bytes of each with 32-bit operations (llama.cpp's kmask steps),
        /// then widened to floats and scaled by d and −dmin.
        @inline(__always)
        static func kSuperScales(_ row: UnsafeRawPointer, _ s: Int, _ bytes: Int) -> (__m256, __m256, __m256) {
            let block = row + s &* bytes
            let u0 = block.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
            let u1 = block.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
            let u2 = block.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
            let scales = UInt64(u0 & 0x3f3f_3f3f) | UInt64((u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4)) << 32
            let minimums = UInt64(u1 & 0x3f3f_3f3f) | UInt64(((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4)) << 32
            @inline(__always) func floats(_ v: UInt64) -> __m256 {
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(Int64(bitPattern: v))))
            }
            let first = floats(scales) * half(block)
            return (first, first, floats(minimums) * -half(block + 2))
        }

        /// Q4_K by 8-bit inputs: super-blocks of 256 (d @0, dmin @2, 12 bytes of 6-bit scales and
        /// minimums @4, nibbles @16); the `b`th 32 values are the low or high nibbles of 32 bytes.
        enum Q4_Kx8: ByteKernel {
            static var signedWeights: Bool { false }
            static var hasMinimum: Bool { true }
            @inline(__always)
            static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> __m256i {
                nibbles((row + (b >> 3) &* 144 + 16 + ((b & 7) >> 1) &* 32).loadUnaligned(as: __m256i.self), high: b & 1 == 1)
            }
            @inline(__always) static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float) { kScale(row, b, 144) }
            @inline(__always) static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { kMinimum(row, b, 144) }
            static var perSuper: Int { 8 }
            @inline(__always)
            static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256) { kSuperScales(row, s, 144) }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q4_1x8.multiply(w, x) }
        }

        /// Q5_K by 8-bit inputs: Q4_K's layout with 32 bytes of fifth bits @16 (bit s of byte l: value
        /// l of the sth 32) and the nibbles @48.
        enum Q5_Kx8: ByteKernel {
            static var signedWeights: Bool { false }
            static var hasMinimum: Bool { true }
            @inline(__always)
            static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> __m256i {
                let block = row + (b >> 3) &* 176, s = b & 7
                let low4 = nibbles((block + 48 + (s >> 1) &* 32).loadUnaligned(as: __m256i.self), high: s & 1 == 1)
                let h = _mm256_and_si256(_mm256_srl_epi16((block + 16).loadUnaligned(as: __m256i.self), count(s)), _mm256_set1_epi8(1))
                return _mm256_or_si256(low4, _mm256_slli_epi16(h, 4))
            }
            @inline(__always) static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float) { kScale(row, b, 176) }
            @inline(__always) static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { kMinimum(row, b, 176) }
            static var perSuper: Int { 8 }
            @inline(__always)
            static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256) { kSuperScales(row, s, 176) }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q4_1x8.multiply(w, x) }
        }

        /// Q6_K by 8-bit inputs: super-blocks of 256 (low nibbles @0, bit pairs @128, 16 signed scales
        /// @192, d @208); the `b`th 32 values: half h = b / 4, run r = b % 4 takes the low (r < 2) or
        /// high nibbles of 32 bytes at 64h + 32(r % 2) and bits 2r of the bytes at 128 + 32h, less 32;
        /// a scale for each 16.
        enum Q6_Kx8: ByteKernel {
            static var signedWeights: Bool { true }
            static var halvesDiffer: Bool { true }
            static var hasMinimum: Bool { false }
            @inline(__always)
            static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> __m256i {
                let block = row + (b >> 3) &* 210, s = b & 7, h = s >> 2, r = s & 3
                let low4 = nibbles((block + 64 &* h + 32 &* (r & 1)).loadUnaligned(as: __m256i.self), high: r >= 2)
                let pairs = _mm256_and_si256(
                    _mm256_srl_epi16((block + 128 + 32 &* h).loadUnaligned(as: __m256i.self), count(2 &* r)),
                    _mm256_set1_epi8(3))
                return _mm256_sub_epi8(_mm256_or_si256(low4, _mm256_slli_epi16(pairs, 4)), _mm256_set1_epi8(32))
            }
            @inline(__always)
            static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float) {
                let block = row + (b >> 3) &* 210, s = b & 7
                let d = half(block + 208)
                return (
                    d * Float(block.load(fromByteOffset: 192 + 2 &* s, as: Int8.self)),
                    d * Float(block.load(fromByteOffset: 193 + 2 &* s, as: Int8.self))
                )
            }
            @inline(__always)
            static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { 0 }
            static var perSuper: Int { 8 }
            /// The sixteen signed scales as 16-bit pairs: lane j's low half the jth block's first
            /// scale, its high half the second.
            @inline(__always)
            static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256) {
                let block = row + s &* 210
                let pairs = _mm256_cvtepi8_epi16(block.loadUnaligned(fromByteOffset: 192, as: __m128i.self))
                let d = half(block + 208)
                let first = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(pairs, 16), 16)) * d
                return (first, _mm256_cvtepi32_ps(_mm256_srai_epi32(pairs, 16)) * d, .zero)
            }
            @inline(__always)
            static func multiply(_ w: __m256i, _ x: UnsafeRawPointer) -> __m256i { Q8_0x8.multiply(w, x) }
        }

        /// Four rows `stride` bytes apart, from `row`, times one input of `blocks` blocks; `groups`
        /// such fours one after another (the kernel chosen once for all of them).
        static func rows4(
            _ type: GGMLType, _ row: UnsafeRawPointer, stride: Int, _ x: Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>, groups: Int = 1
        ) {
            struct Call: KernelCall {
                let row: UnsafeRawPointer, stride: Int, x: Input, blocks: Int, out: UnsafeMutablePointer<Float>, groups: Int
                func callAsFunction<K: Kernel>(_ k: K.Type) {
                    for g in 0..<groups { IntegerDot.rows4(k, row + 4 &* g &* stride, stride, x, blocks, out + 4 &* g) }
                }
            }
            dispatch(type, x.width, Call(row: row, stride: stride, x: x, blocks: blocks, out: out, groups: groups))
        }

        /// Four products' eight lanes summed to two each: lane k and k+4 hold product k's halves.
        /// One conversion and one scaling then serve four products.
        @inline(__always)
        static func fold(_ p0: __m256i, _ p1: __m256i, _ p2: __m256i, _ p3: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3)))
        }

        /// Four products' totals, each product's eight lanes summed in integers.
        @inline(__always)
        static func totals(_ p0: __m256i, _ p1: __m256i, _ p2: __m256i, _ p3: __m256i) -> SIMD4<Float> {
            let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3))
            return _mm_cvtepi32_ps(_mm_add_epi32(h.lowHalf, h.highHalf))
        }

        /// Eight products' totals: lane k product k's (the same sums as `totals` of four).
        @inline(__always)
        static func totals(
            _ p0: __m256i, _ p1: __m256i, _ p2: __m256i, _ p3: __m256i, _ p4: __m256i, _ p5: __m256i, _ p6: __m256i, _ p7: __m256i
        ) -> __m256 {
            let a = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3))
            let b = _mm256_hadd_epi32(_mm256_hadd_epi32(p4, p5), _mm256_hadd_epi32(p6, p7))
            return _mm256_cvtepi32_ps(
                _mm256_add_epi32(__m256i(lowHalf: a.lowHalf, highHalf: b.lowHalf), __m256i(lowHalf: a.highHalf, highHalf: b.highHalf)))
        }

        /// A folded accumulator's four sums.
        @inline(__always)
        static func unfold(_ a: __m256) -> SIMD4<Float> { a.lowHalf + a.highHalf }

        @inline(__always)
        private static func rows4<K: Kernel>(
            _: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>
        ) {
            if K.perSuper > 1 { return rows4Super(K.self, row, s, x, blocks, out) }
            var sums4 = Sums4<K>()
            var xb = x.values
            let xStep = 32 &* x.width, scales = x.scales, sums = x.sums
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks)
            for b in 0..<blocks {
                ahead.fetch(b)
                let (first, second, minimum) = K.scales4(row, r1, r2, r3, b)
                sums4.add(
                    K.multiply(K.unpack(row, b), xb), K.multiply(K.unpack(r1, b), xb), K.multiply(K.unpack(r2, b), xb),
                    K.multiply(K.unpack(r3, b), xb), first * scales[b], second * scales[b])
                if K.hasMinimum { sums4.addMinimum(minimum, SIMD4(repeating: sums[b])) }
                xb += xStep
            }
            sums4.store(out, 1)
        }

        /// Four products' running sums (four rows by an input, or a row by four inputs), block by
        /// block.  Where a format scales a block's halves apart (Q6_K), each product's halves are
        /// summed apart, in lanes k and k+4 of one vector, and added at the end; else a product's
        /// lanes are summed in integers (exact) before the one scaling, which takes half the
        /// conversions and multiplies.  Every kernel (one input or a tile of four or eight) adds a
        /// product's terms in the same order, so that a sequence's logits do not depend on the
        /// batch it decodes in.
        struct Sums4<K: Kernel> {
            var halves = _mm256_setzero_ps()
            var whole = SIMD4<Float>()

            @inline(__always)
            mutating func add(
                _ p0: __m256i, _ p1: __m256i, _ p2: __m256i, _ p3: __m256i, _ first: SIMD4<Float>, _ second: SIMD4<Float>
            ) {
                if K.halvesDiffer {
                    halves = _mm256_fmadd_ps(fold(p0, p1, p2, p3), SIMD8(lowHalf: first, highHalf: second), halves)
                } else {
                    whole = _mm_fmadd_ps(totals(p0, p1, p2, p3), first, whole)
                }
            }
            /// A block's minimums' terms: each product's minimum times its input block's sum.
            @inline(__always)
            mutating func addMinimum(_ minimum: SIMD4<Float>, _ inputSums: SIMD4<Float>) {
                whole = _mm_fmadd_ps(minimum, inputSums, whole)
            }
            var result: SIMD4<Float> {
                @inline(__always) get {
                    guard K.halvesDiffer else { return whole }
                    return K.hasMinimum ? unfold(halves) + whole : unfold(halves)
                }
            }
            /// The four sums to `out`, `stride` floats apart: those of a tile's inputs `from`..`from+3`
            /// that are there.
            @inline(__always)
            func store(_ out: UnsafeMutablePointer<Float>, _ stride: Int, _ inputs: some TileInputs = Full(), from: Int = 0) {
                let r = result
                for i in 0..<4 where inputs.has(from &+ i) { out[i &* stride] = r[i] }
            }
        }

        /// The next four rows (contiguous) asked for a part at a time while these are multiplied:
        /// the hardware's prefetcher, given four short rows read side by side, kept a cold
        /// product (weights from memory, as every decode's are) at 7 of the 18 GB/s a thread reads.
        struct Ahead {
            let start: UnsafeRawPointer, end: UnsafeRawPointer, share: Int
            /// `share` is a whole number of cache lines, worked out once: a division a step was
            /// measurable on the hot path.
            init(_ start: UnsafeRawPointer, bytes: Int, steps: Int) {
                self.start = start
                end = start + bytes
                share = ((bytes + max(1, steps) - 1) / max(1, steps) + 63) & ~63
            }
            /// The lines of step `i`'s share of the bytes.
            @inline(__always)
            func fetch(_ i: Int) {
                var at = start + i &* share
                let stop = min(at + share, end)
                while at < stop {
                    mserve_prefetch(at)
                    at += 64
                }
            }
        }

        /// Four rows' lanes j turned into lanes of rows: the first result's low half holds lane 0
        /// of `a`, `b`, `c` and `d`, its high half lane 4; the second lanes 1 and 5; and so on.
        @inline(__always)
        static func transpose(_ a: __m256, _ b: __m256, _ c: __m256, _ d: __m256) -> (__m256, __m256, __m256, __m256) {
            let t0 = _mm256_castps_pd(_mm256_unpacklo_ps(a, b)), t1 = _mm256_castps_pd(_mm256_unpackhi_ps(a, b))
            let t2 = _mm256_castps_pd(_mm256_unpacklo_ps(c, d)), t3 = _mm256_castps_pd(_mm256_unpackhi_ps(c, d))
            return (
                _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)), _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
                _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)), _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3))
            )
        }

        /// `rows4` for the K-quants: each super-block's scales unpacked once for its eight blocks,
        /// four rows' turned so that a block's come out as one vector (the same products, added
        /// in the same order).
        @inline(__always)
        private static func rows4Super<K: Kernel>(
            _: K.Type, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ blocks: Int, _ out: UnsafeMutablePointer<Float>
        ) {
            var sums4 = Sums4<K>()
            let xStep = 32 &* x.width, scales = x.scales, sums = x.sums
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks / 8)
            for sb in 0..<(blocks / 8) {
                ahead.fetch(sb)
                let s0 = K.superScales(row, sb), s1 = K.superScales(r1, sb), s2 = K.superScales(r2, sb), s3 = K.superScales(r3, sb)
                let first = transpose(s0.0, s1.0, s2.0, s3.0)
                let second = transpose(s0.1, s1.1, s2.1, s3.1)
                let minimum = K.hasMinimum ? transpose(s0.2, s1.2, s2.2, s3.2) : (.zero, .zero, .zero, .zero)
                @inline(__always) func block(_ j: Int, _ f: __m256, _ g: __m256, _ m: __m256) {
                    let b = sb &* 8 &+ j, high = j >= 4
                    let xb = x.values + b &* xStep
                    sums4.add(
                        K.multiply(K.unpack(row, b), xb), K.multiply(K.unpack(r1, b), xb), K.multiply(K.unpack(r2, b), xb),
                        K.multiply(K.unpack(r3, b), xb), (high ? f.highHalf : f.lowHalf) * scales[b],
                        (high ? g.highHalf : g.lowHalf) * scales[b])
                    if K.hasMinimum { sums4.addMinimum(high ? m.highHalf : m.lowHalf, SIMD4(repeating: sums[b])) }
                }
                block(0, first.0, second.0, minimum.0)
                block(1, first.1, second.1, minimum.1)
                block(2, first.2, second.2, minimum.2)
                block(3, first.3, second.3, minimum.3)
                block(4, first.0, second.0, minimum.0)
                block(5, first.1, second.1, minimum.1)
                block(6, first.2, second.2, minimum.2)
                block(7, first.3, second.3, minimum.3)
            }
            sums4.store(out, 1)
        }

        /// Four rows times `count` inputs (1-8: `x` and those after it, `inputStride` blocks apart),
        /// into `out` (rows of the inputs `outStride` floats apart): each row's block unpacked once
        /// for them all, what makes a batch of sequences cheaper than each alone.  Up to four take
        /// the tile of four, more the tile of eight (each unpacked block serving twice as many).
        static func tile(
            _ type: GGMLType, _ row: UnsafeRawPointer, stride: Int, _ x: Input, inputStride: Int, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>, outStride: Int, count: Int
        ) {
            precondition((1...8).contains(count))
            struct Call: KernelCall {
                let row: UnsafeRawPointer, stride: Int, x: Input, inputStride: Int, blocks: Int, out: UnsafeMutablePointer<Float>, outStride: Int
                let count: Int
                func callAsFunction<K: Kernel>(_ k: K.Type) {
                    switch count {
                    case 8: IntegerDot.tile8(k, Full(), row, stride, x, inputStride, blocks, out, outStride)
                    case 5...: IntegerDot.tile8(k, Partial(count: count), row, stride, x, inputStride, blocks, out, outStride)
                    case 4: IntegerDot.tile(k, Full(), row, stride, x, inputStride, blocks, out, outStride)
                    default: IntegerDot.tile(k, Partial(count: count), row, stride, x, inputStride, blocks, out, outStride)
                    }
                }
            }
            dispatch(
                type, x.width,
                Call(row: row, stride: stride, x: x, inputStride: inputStride, blocks: blocks, out: out, outStride: outStride, count: count))
        }

        /// Which of a tile's inputs are real: all (`Full`: a constant, so that a full tile's code
        /// has no checks), or the first `count` (`Partial`: the rest of a batch, whose size is
        /// seldom a multiple of a tile's).  The others stand in for input 0, computed and not
        /// stored (cheaper than reading the weights again for each input left over; skipping
        /// their products instead took branches that cost more than the products).
        protocol TileInputs {
            func has(_ i: Int) -> Bool
        }
        struct Full: TileInputs {
            @inline(__always) func has(_ i: Int) -> Bool { true }
        }
        struct Partial: TileInputs {
            let count: Int
            @inline(__always) func has(_ i: Int) -> Bool { i < count }
        }

        /// Inputs `first`..`first+3`'s scales (or sums) at block `k`.
        @inline(__always)
        static func lanes(_ v: UnsafePointer<Float>, _ k: Int, _ first: Int, _ stride: Int, _ inputs: some TileInputs) -> SIMD4<Float> {
            let p = v + k
            @inline(__always) func at(_ i: Int) -> Float { p[(inputs.has(first &+ i) ? first &+ i : 0) &* stride] }
            return SIMD4(at(0), at(1), at(2), at(3))
        }

        /// Inputs 0-7's scales (or sums) at block `k`.
        @inline(__always)
        static func eight(_ v: UnsafePointer<Float>, _ k: Int, _ stride: Int, _ inputs: some TileInputs) -> SIMD8<Float> {
            SIMD8(lowHalf: lanes(v, k, 0, stride, inputs), highHalf: lanes(v, k, 4, stride, inputs))
        }

        /// Input `i`'s product with `w`.
        @inline(__always)
        static func product<K: Kernel>(
            _: K.Type, _ w: K.Weights, _ xb: UnsafeRawPointer, _ i: Int, _ step: Int, _ inputs: some TileInputs
        ) -> __m256i {
            K.multiply(w, xb + (inputs.has(i) ? i : 0) &* step)
        }

        @inline(__always)
        private static func tile8<K: Kernel>(
            _: K.Type, _ inputs: some TileInputs, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ inputStride: Int, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>, _ outStride: Int
        ) {
            if !K.halvesDiffer { return tile8Whole(K.self, inputs, row, s, x, inputStride, blocks, out, outStride) }
            // Per row, the sums of inputs 0-3 and of 4-7.
            var a0 = Sums4<K>(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0
            let xs = 32 &* x.width, step = inputStride &* xs
            var xb = x.values
            let ahead = Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks)
            for k in 0..<blocks {
                ahead.fetch(k)
                let scaleA = lanes(x.scales, k, 0, inputStride, inputs), scaleB = lanes(x.scales, k, 4, inputStride, inputs)
                let sumsA = K.hasMinimum ? lanes(x.sums, k, 0, inputStride, inputs) : .zero
                let sumsB = K.hasMinimum ? lanes(x.sums, k, 4, inputStride, inputs) : .zero
                @inline(__always) func accumulate(_ r: UnsafeRawPointer, _ a: inout Sums4<K>, _ b: inout Sums4<K>) {
                    let w = K.unpack(r, k)
                    let (first, second) = K.scales(r, k)
                    @inline(__always) func p(_ i: Int) -> __m256i { product(K.self, w, xb, i, step, inputs) }
                    a.add(p(0), p(1), p(2), p(3), scaleA * first, scaleA * second)
                    b.add(p(4), p(5), p(6), p(7), scaleB * first, scaleB * second)
                    if K.hasMinimum {
                        let m = SIMD4(repeating: K.minimum(r, k))
                        a.addMinimum(m, sumsA)
                        b.addMinimum(m, sumsB)
                    }
                }
                accumulate(row, &a0, &b0)
                accumulate(row + s, &a1, &b1)
                accumulate(row + 2 &* s, &a2, &b2)
                accumulate(row + 3 &* s, &a3, &b3)
                xb += xs
            }
            for (r, (a, b)) in [(a0, b0), (a1, b1), (a2, b2), (a3, b3)].enumerated() {
                a.store(out + r, outStride, inputs)
                b.store(out + 4 &* outStride + r, outStride, inputs, from: 4)
            }
        }

        /// `tile8` for the formats whose blocks' halves share a scale: each row's eight products
        /// of a block summed to one lane each, so that a row keeps one accumulator (four rows'
        /// and eight inputs' fit the registers: with two a row they spilled) and scales once.
        /// The same terms in the same order as `Sums4`'s whole sums.
        @inline(__always)
        private static func tile8Whole<K: Kernel>(
            _: K.Type, _ inputs: some TileInputs, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ inputStride: Int, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>, _ outStride: Int
        ) {
            var a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0
            let xs = 32 &* x.width, step = inputStride &* xs
            var xb = x.values
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks)
            for k in 0..<blocks {
                ahead.fetch(k)
                let scales = eight(x.scales, k, inputStride, inputs)
                let sums = K.hasMinimum ? eight(x.sums, k, inputStride, inputs) : .zero
                let (d, _, minimum) = K.scales4(row, r1, r2, r3, k)
                @inline(__always) func accumulate(_ r: UnsafeRawPointer, _ d: Float, _ m: Float, _ a: inout __m256) {
                    let w = K.unpack(r, k)
                    @inline(__always) func p(_ i: Int) -> __m256i { product(K.self, w, xb, i, step, inputs) }
                    a = _mm256_fmadd_ps(totals(p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7)), scales * d, a)
                    if K.hasMinimum { a = _mm256_fmadd_ps(SIMD8(repeating: m), sums, a) }
                }
                accumulate(row, d[0], minimum[0], &a0)
                accumulate(r1, d[1], minimum[1], &a1)
                accumulate(r2, d[2], minimum[2], &a2)
                accumulate(r3, d[3], minimum[3], &a3)
                xb += xs
            }
            for (r, a) in [a0, a1, a2, a3].enumerated() {
                for i in 0..<8 where inputs.has(i) { out[i &* outStride &+ r] = a[i] }
            }
        }

        @inline(__always)
        private static func tile<K: Kernel>(
            _: K.Type, _ inputs: some TileInputs, _ row: UnsafeRawPointer, _ s: Int, _ x: Input, _ inputStride: Int, _ blocks: Int,
            _ out: UnsafeMutablePointer<Float>, _ outStride: Int
        ) {
            // Per row, the sums of the four inputs.
            var a0 = Sums4<K>(), a1 = a0, a2 = a0, a3 = a0
            let xs = 32 &* x.width, step = inputStride &* xs
            var xb = x.values
            let r1 = row + s, r2 = row + 2 &* s, r3 = row + 3 &* s
            let ahead = Ahead(row + 4 &* s, bytes: 4 &* s, steps: blocks)
            for k in 0..<blocks {
                ahead.fetch(k)
                let dx = lanes(x.scales, k, 0, inputStride, inputs)
                let sx = K.hasMinimum ? lanes(x.sums, k, 0, inputStride, inputs) : .zero
                @inline(__always) func accumulate(_ r: UnsafeRawPointer, _ a: inout Sums4<K>) {
                    let w = K.unpack(r, k)
                    let (first, second) = K.scales(r, k)
                    @inline(__always) func p(_ i: Int) -> __m256i { product(K.self, w, xb, i, step, inputs) }
                    a.add(p(0), p(1), p(2), p(3), dx * first, dx * second)
                    if K.hasMinimum { a.addMinimum(SIMD4(repeating: K.minimum(r, k)), sx) }
                }
                accumulate(row, &a0)
                accumulate(r1, &a1)
                accumulate(r2, &a2)
                accumulate(r3, &a3)
                xb += xs
            }
            for (r, a) in [a0, a1, a2, a3].enumerated() { a.store(out + r, outStride, inputs) }
        }

        /// A row of `blocks` 32-value blocks as float32, as the products see it: each value its
        /// half block's scale times its integer, plus the block's minimum (the prompt kernel's
        /// panels, FloatMatrixProduct).
        static func decode(_ type: GGMLType, _ row: UnsafeRawPointer, _ blocks: Int, into out: UnsafeMutablePointer<Float>) {
            struct Call: ByteKernelCall {
                let row: UnsafeRawPointer, blocks: Int, out: UnsafeMutablePointer<Float>
                func callAsFunction<K: ByteKernel>(_ k: K.Type) { IntegerDot.decode(k, row, blocks, out) }
            }
            dispatchBytes(type, Call(row: row, blocks: blocks, out: out))
        }

        private static func decode<K: ByteKernel>(_: K.Type, _ row: UnsafeRawPointer, _ blocks: Int, _ out: UnsafeMutablePointer<Float>) {
            @inline(__always) func eight(_ q: __m128i, _ scale: __m256, _ minimum: __m256, _ to: UnsafeMutablePointer<Float>) {
                let wide = K.signedWeights ? _mm256_cvtepi8_epi32(q) : _mm256_cvtepu8_epi32(q)
                UnsafeMutableRawPointer(to).storeBytes(of: _mm256_fmadd_ps(_mm256_cvtepi32_ps(wide), scale, minimum), as: __m256.self)
            }
            for b in 0..<blocks {
                let w = K.unpack(row, b)
                let (first, second) = K.scales(row, b)
                let m = _mm256_set1_ps(K.hasMinimum ? K.minimum(row, b) : 0)
                let low = w.lowHalf, high = w.highHalf, to = out + b &* 32
                eight(low, _mm256_set1_ps(first), m, to)
                eight(_mm_unpackhi_epi64(low, low), _mm256_set1_ps(first), m, to + 8)
                eight(high, _mm256_set1_ps(second), m, to + 16)
                eight(_mm_unpackhi_epi64(high, high), _mm256_set1_ps(second), m, to + 24)
            }
        }

        /// One row times one input (the rows after the last four).
        static func row(_ type: GGMLType, _ row: UnsafeRawPointer, _ x: Input, _ blocks: Int) -> Float {
            struct Call: KernelCall {
                let row: UnsafeRawPointer, x: Input, blocks: Int, result: UnsafeMutablePointer<Float>
                func callAsFunction<K: Kernel>(_ k: K.Type) { result.pointee = IntegerDot.row(k, row, x, blocks) }
            }
            var result: Float = 0
            withUnsafeMutablePointer(to: &result) { dispatch(type, x.width, Call(row: row, x: x, blocks: blocks, result: $0)) }
            return result
        }

        private static func row<K: Kernel>(_: K.Type, _ row: UnsafeRawPointer, _ x: Input, _ blocks: Int) -> Float {
            var a = _mm256_setzero_ps()
            var mins: Float = 0
            for b in 0..<blocks {
                let (first, second) = K.scales(row, b)
                let xs = x.scales[b]
                a = _mm256_fmadd_ps(
                    SIMD8(lowHalf: SIMD4(repeating: first * xs), highHalf: SIMD4(repeating: second * xs)),
                    _mm256_cvtepi32_ps(K.multiply(K.unpack(row, b), x.values + b * 32 * x.width)), a)
                if K.hasMinimum { mins += K.minimum(row, b) * x.sums[b] }
            }
            return a.sum() + mins
        }
    }

    extension IntegerDot.Kernel {
        static var halvesDiffer: Bool { false }
    }

    extension IntegerDot.OffsetBlockKernel {
        static var hasMinimum: Bool { true }
        @inline(__always)
        static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { -offset * IntegerDot.half(row + b &* blockBytes) }
        @inline(__always)
        static func minimum4(
            _ d: SIMD4<Float>, _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer,
            _ offset: Int
        ) -> SIMD4<Float> { d * -Self.offset }
    }

    extension IntegerDot.Kernel {
        /// Row by row (the K-quants, whose `rows4` takes `superScales` instead).
        @inline(__always)
        static func scales4(
            _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer, _ b: Int
        ) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
            let (a0, b0) = scales(r0, b), (a1, b1) = scales(r1, b), (a2, b2) = scales(r2, b), (a3, b3) = scales(r3, b)
            let m = hasMinimum ? SIMD4(minimum(r0, b), minimum(r1, b), minimum(r2, b), minimum(r3, b)) : .zero
            return (SIMD4(a0, a1, a2, a3), SIMD4(b0, b1, b2, b3), m)
        }
    }

    extension IntegerDot.BlockKernel {
        static var perSuper: Int { 1 }
        static func superScales(_ row: UnsafeRawPointer, _ s: Int) -> (__m256, __m256, __m256) { (.zero, .zero, .zero) }
        @inline(__always)
        static func scales4(
            _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer, _ b: Int
        ) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
            let offset = b &* blockBytes
            let d = IntegerDot.halves4(r0, r1, r2, r3, offset)
            return (d, d, hasMinimum ? minimum4(d, r0, r1, r2, r3, offset) : .zero)
        }
        @inline(__always)
        static func minimum4(
            _ d: SIMD4<Float>, _ r0: UnsafeRawPointer, _ r1: UnsafeRawPointer, _ r2: UnsafeRawPointer, _ r3: UnsafeRawPointer,
            _ offset: Int
        ) -> SIMD4<Float> { IntegerDot.halves4(r0, r1, r2, r3, offset + 2) }
    }

    extension IntegerDot.BlockKernel {
        @inline(__always)
        static func unpack(_ row: UnsafeRawPointer, _ b: Int) -> Weights { unpack(row + b &* blockBytes) }
        @inline(__always)
        static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (Float, Float) {
            let d = IntegerDot.half(row + b &* blockBytes)
            return (d, d)
        }
        @inline(__always)
        static func minimum(_ row: UnsafeRawPointer, _ b: Int) -> Float { IntegerDot.half(row + b &* blockBytes + 2) }
    }
#else
    /// Integer dot products need x86's byte multiply-adds (AVX2); elsewhere, and in a build for
    /// baseline x86-64, quantized activations fall back to float32 (QuantizedMatrix's float kernels).
    enum IntegerDot {
        static var available: Bool { false }
        static func supports(_ type: GGMLType) -> Bool { false }
    }
#endif
