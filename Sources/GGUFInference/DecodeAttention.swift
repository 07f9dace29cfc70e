#if canImport(Glibc)
    import Glibc
#endif

/// A decode's attention: one query over its sequence's cache (a prompt's tokens take
/// PromptAttention, many queries at once).
extension LlamaModel {
    /// One head of one token: softmax(q·K / sqrt(d)) · V over `positions` of the cache, block by
    /// block; `size` a multiple of 8.  The values are summed 64 lanes at a time (eight registers),
    /// so that a wide head (Gemma's 256) reads the cache size / 64 times, not size / 8.
    static func attend(
        _ q: UnsafePointer<Float>, _ view: KVView, offset: Int, positions: Range<Int>, _ size: Int, _ scale: Float,
        scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>
    ) {
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
            UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        }
        if size == 64 { return attend64(q, view, offset: offset, positions: positions, scale, scores: scores, into: out) }
        let stride = view.stride
        var top = -Float.infinity
        view.runs(positions) { keys, _, first, count in
            for p in 0..<count {
                let k = keys + offset + p * stride
                var s = SIMD8<Float>()
                for i in Swift.stride(from: 0, to: size, by: 8) { s += load(q, i) * load(k, i) }
                scores[first + p] = s.sum() * scale
                top = max(top, scores[first + p])
            }
        }
        var sum: Float = 0
        for p in 0..<positions.count {
            scores[p] = exp(scores[p] - top)
            sum += scores[p]
        }
        let r = 1 / sum
        var lane = 0
        while lane + 64 <= size {
            var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            view.runs(positions) { _, values, first, count in
                for p in 0..<count {
                    let w = SIMD8<Float>(repeating: scores[first + p])
                    let v = values + offset + p * stride + lane
                    a0.addProduct(w, load(v, 0)); a1.addProduct(w, load(v, 8)); a2.addProduct(w, load(v, 16)); a3.addProduct(w, load(v, 24))
                    a4.addProduct(w, load(v, 32)); a5.addProduct(w, load(v, 40)); a6.addProduct(w, load(v, 48)); a7.addProduct(w, load(v, 56))
                }
            }
            @inline(__always) func store(_ a: SIMD8<Float>, _ i: Int) {
                UnsafeMutableRawPointer(out + lane + i).storeBytes(of: a * r, as: SIMD8<Float>.self)
            }
            store(a0, 0); store(a1, 8); store(a2, 16); store(a3, 24); store(a4, 32); store(a5, 40); store(a6, 48); store(a7, 56)
            lane += 64
        }
        for i in Swift.stride(from: lane, to: size, by: 8) {
            var acc = SIMD8<Float>()
            view.runs(positions) { _, values, first, count in
                for p in 0..<count { acc += scores[first + p] * load(values + offset + p * stride, i) }
            }
            UnsafeMutableRawPointer(out + i).storeBytes(of: acc * r, as: SIMD8<Float>.self)
        }
    }

    /// `attend` for heads of 64 (SmolLM2's, Llama's small ones): the query and the output held in
    /// registers, and the values read once, position by position (the general loop reads the whole
    /// cache once per 8 lanes of the head, 8 times in all).
    static func attend64(
        _ q: UnsafePointer<Float>, _ view: KVView, offset: Int, positions: Range<Int>, _ scale: Float,
        scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>
    ) {
        @inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD8<Float> {
            UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        }
        let q0 = load(q, 0), q1 = load(q, 8), q2 = load(q, 16), q3 = load(q, 24)
        let q4 = load(q, 32), q5 = load(q, 40), q6 = load(q, 48), q7 = load(q, 56)
        let stride = view.stride
        var top = -Float.infinity
        view.runs(positions) { keys, _, first, count in
            for p in 0..<count {
                let k = keys + offset + p * stride
                var s = q0 * load(k, 0)
                s.addProduct(q1, load(k, 8)); s.addProduct(q2, load(k, 16)); s.addProduct(q3, load(k, 24))
                s.addProduct(q4, load(k, 32)); s.addProduct(q5, load(k, 40)); s.addProduct(q6, load(k, 48)); s.addProduct(q7, load(k, 56))
                let score = s.sum() * scale
                scores[first + p] = score
                top = max(top, score)
            }
        }
        var sum: Float = 0
        for p in 0..<positions.count {
            let e = exp(scores[p] - top)
            scores[p] = e
            sum += e
        }
        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        view.runs(positions) { _, values, first, count in
            for p in 0..<count {
                let w = SIMD8<Float>(repeating: scores[first + p])
                let v = values + offset + p * stride
                a0.addProduct(w, load(v, 0)); a1.addProduct(w, load(v, 8)); a2.addProduct(w, load(v, 16)); a3.addProduct(w, load(v, 24))
                a4.addProduct(w, load(v, 32)); a5.addProduct(w, load(v, 40)); a6.addProduct(w, load(v, 48)); a7.addProduct(w, load(v, 56))
            }
        }
        let r = 1 / sum
        @inline(__always) func store(_ a: SIMD8<Float>, _ i: Int) { UnsafeMutableRawPointer(out + i).storeBytes(of: a * r, as: SIMD8<Float>.self) }
        store(a0, 0); store(a1, 8); store(a2, 16); store(a3, 24); store(a4, 32); store(a5, 40); store(a6, 48); store(a7, 56)
    }
}
