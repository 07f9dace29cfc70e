#if canImport(Glibc)
    import Glibc
#endif

/// Attention for a prompt's tokens, many queries at a time: the query heads that share a key-value
/// head, over a block of the prompt's tokens, read each key and value once for all of them.  Keys
/// are taken sixteen positions at a time and turned on their side, so that a query's scores for
/// the sixteen come out as one vector (no sum across lanes per position); eight queries share each
/// key vector, and four share each value row.  (The decode's `LlamaModel.attend` runs one query
/// over the cache, which a prompt of n tokens would read n times per head.)
///
/// Every query gets the same operations in the same order whatever it is grouped with: positions
/// outside its own range weigh exactly zero, so a prompt token's result does not depend on the
/// chunk or the batch it was read in.
enum PromptAttention {
    /// One query: its head's vector, where its result goes, and the positions it sees.
    struct Query {
        let q: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
        let positions: Range<Int>
    }

    static let width = 16

    @inline(__always)
    private static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

    /// softmax(q·K · scale) · V for each query, over `view`'s keys and values at `offset` (the
    /// key-value head's) in heads of `size` values, a multiple of 16.
    static func attend(_ queries: [Query], _ view: KVView, offset: Int, _ size: Int, _ scale: Float) {
        guard let lo = queries.map(\.positions.lowerBound).min(), let hi = queries.map(\.positions.upperBound).max(), lo < hi else { return }
        let blocks = (hi - lo + width - 1) / width, span = blocks * width
        let groups = (queries.count + scoreQueries - 1) / scoreQueries
        withUnsafeTemporaryAllocation(of: Float.self, capacity: groups * scoreQueries * span + size * width) { buffer in
            guard let scores = buffer.baseAddress else { return }
            let keys = scores + groups * scoreQueries * span
            // Scores, sixteen positions at a time.
            for b in 0..<blocks {
                let p0 = lo + b * width, end = min(p0 + width, hi)
                // keys[d * 16 + j] = key d of position p0 + j (zeros past the end).
                if end - p0 < width { keys.initialize(repeating: 0, count: size * width) }
                view.runs(p0..<end) { k, _, first, count in
                    for j in 0..<count {
                        let row = k + offset + j * view.stride
                        for d in 0..<size { keys[d &* width &+ first &+ j] = row[d] }
                    }
                }
                for g in 0..<groups { scoreGroup(queries, g, keys, size, scores + b * width, span, scale) }
            }
            // Each query's softmax over its own positions; the others (past it, or before its
            // window) weigh 0.
            var sums = [Float](repeating: 0, count: queries.count)
            for (i, query) in queries.enumerated() {
                let row = scores + i * span
                var top = -Float.infinity
                for p in query.positions { top = max(top, row[p - lo]) }
                var sum: Float = 0
                for p in 0..<span {
                    let e = query.positions.contains(lo + p) ? exp(row[p] - top) : 0
                    row[p] = e
                    sum += e
                }
                sums[i] = sum
            }
            // The weighted values, a few queries by a few vectors of the head at a time.
            for g in stride(from: 0, to: queries.count, by: valueQueries) {
                var lane = 0
                while lane < size { lane += valueGroup(queries, g, view, offset: offset, lane: lane, size, scores, span, lo: lo, hi: hi, sums) }
            }
        }
    }

    #if canImport(CAVX512)
        /// Queries whose scores are made together (eight 512-bit accumulators), and whose weighted
        /// values are (four, by 64 values of the head: sixteen).
        static let scoreQueries = 8
        static let valueQueries = 4

        /// Eight queries' scores for sixteen positions (`keys`, turned on their side), into their
        /// rows of `scores` (`span` apart); the last group padded with its first.
        @inline(__always)
        private static func scoreGroup(
            _ queries: [Query], _ g: Int, _ keys: UnsafePointer<Float>, _ size: Int, _ scores: UnsafeMutablePointer<Float>, _ span: Int,
            _ scale: Float
        ) {
            let members = (0..<8).map { min(g * 8 + $0, queries.count - 1) }
            let q0 = queries[members[0]].q, q1 = queries[members[1]].q, q2 = queries[members[2]].q
            let q3 = queries[members[3]].q, q4 = queries[members[4]].q, q5 = queries[members[5]].q
            let q6 = queries[members[6]].q, q7 = queries[members[7]].q
            var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
            for d in 0..<size {
                let k = load(keys + d &* width)
                a0 = a0.addingProduct(SIMD16(repeating: q0[d]), k)
                a1 = a1.addingProduct(SIMD16(repeating: q1[d]), k)
                a2 = a2.addingProduct(SIMD16(repeating: q2[d]), k)
                a3 = a3.addingProduct(SIMD16(repeating: q3[d]), k)
                a4 = a4.addingProduct(SIMD16(repeating: q4[d]), k)
                a5 = a5.addingProduct(SIMD16(repeating: q5[d]), k)
                a6 = a6.addingProduct(SIMD16(repeating: q6[d]), k)
                a7 = a7.addingProduct(SIMD16(repeating: q7[d]), k)
            }
            for (i, a) in [a0, a1, a2, a3, a4, a5, a6, a7].enumerated() where g * 8 + i < queries.count {
                UnsafeMutableRawPointer(scores + (g * 8 + i) * span).storeBytes(of: a * scale, as: SIMD16<Float>.self)
            }
        }

        /// Four queries' (from `g`, the last padded) weighted values over the positions `lo..<hi`,
        /// 64 values of the head from `lane` (or 16 where fewer are left); the count done.
        @inline(__always)
        private static func valueGroup(
            _ queries: [Query], _ g: Int, _ view: KVView, offset: Int, lane: Int, _ size: Int, _ scores: UnsafeMutablePointer<Float>,
            _ span: Int, lo: Int, hi: Int, _ sums: [Float]
        ) -> Int {
            let members = (0..<4).map { min(g + $0, queries.count - 1) }
            let r0 = scores + members[0] * span - lo, r1 = scores + members[1] * span - lo
            let r2 = scores + members[2] * span - lo, r3 = scores + members[3] * span - lo
            let wide = size - lane >= 64
            var x0 = SIMD16<Float>(), x1 = x0, x2 = x0, x3 = x0, y0 = x0, y1 = x0, y2 = x0, y3 = x0
            var z0 = x0, z1 = x0, z2 = x0, z3 = x0, w0 = x0, w1 = x0, w2 = x0, w3 = x0
            view.runs(lo..<hi) { _, v, first, count in
                for j in 0..<count {
                    let p = lo + first + j
                    let row = v + offset + j * view.stride + lane
                    let s0 = SIMD16<Float>(repeating: r0[p]), s1 = SIMD16<Float>(repeating: r1[p])
                    let s2 = SIMD16<Float>(repeating: r2[p]), s3 = SIMD16<Float>(repeating: r3[p])
                    var value = load(row)
                    x0 = x0.addingProduct(s0, value)
                    x1 = x1.addingProduct(s1, value)
                    x2 = x2.addingProduct(s2, value)
                    x3 = x3.addingProduct(s3, value)
                    guard wide else { continue }
                    value = load(row + 16)
                    y0 = y0.addingProduct(s0, value)
                    y1 = y1.addingProduct(s1, value)
                    y2 = y2.addingProduct(s2, value)
                    y3 = y3.addingProduct(s3, value)
                    value = load(row + 32)
                    z0 = z0.addingProduct(s0, value)
                    z1 = z1.addingProduct(s1, value)
                    z2 = z2.addingProduct(s2, value)
                    z3 = z3.addingProduct(s3, value)
                    value = load(row + 48)
                    w0 = w0.addingProduct(s0, value)
                    w1 = w1.addingProduct(s1, value)
                    w2 = w2.addingProduct(s2, value)
                    w3 = w3.addingProduct(s3, value)
                }
            }
            @inline(__always) func store(_ i: Int, _ x: SIMD16<Float>, _ y: SIMD16<Float>, _ z: SIMD16<Float>, _ w: SIMD16<Float>) {
                guard g + i < queries.count else { return }
                PromptAttention.store(1 / sums[g + i], queries[g + i].out + lane, wide ? 4 : 1, x, y, z, w)
            }
            store(0, x0, y0, z0, w0)
            store(1, x1, y1, z1, w1)
            store(2, x2, y2, z2, w2)
            store(3, x3, y3, z3, w3)
            return wide ? 64 : 16
        }
    #else
        /// AVX2's sixteen registers: six queries' scores together (twelve 256-bit accumulators),
        /// and three queries' weighted values by 32 values of the head (twelve).
        static let scoreQueries = 6
        static let valueQueries = 3

        @inline(__always)
        private static func scoreGroup(
            _ queries: [Query], _ g: Int, _ keys: UnsafePointer<Float>, _ size: Int, _ scores: UnsafeMutablePointer<Float>, _ span: Int,
            _ scale: Float
        ) {
            let members = (0..<6).map { min(g * 6 + $0, queries.count - 1) }
            let q0 = queries[members[0]].q, q1 = queries[members[1]].q, q2 = queries[members[2]].q
            let q3 = queries[members[3]].q, q4 = queries[members[4]].q, q5 = queries[members[5]].q
            var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0
            for d in 0..<size {
                let k = load(keys + d &* width)
                a0 = a0.addingProduct(SIMD16(repeating: q0[d]), k)
                a1 = a1.addingProduct(SIMD16(repeating: q1[d]), k)
                a2 = a2.addingProduct(SIMD16(repeating: q2[d]), k)
                a3 = a3.addingProduct(SIMD16(repeating: q3[d]), k)
                a4 = a4.addingProduct(SIMD16(repeating: q4[d]), k)
                a5 = a5.addingProduct(SIMD16(repeating: q5[d]), k)
            }
            for (i, a) in [a0, a1, a2, a3, a4, a5].enumerated() where g * 6 + i < queries.count {
                UnsafeMutableRawPointer(scores + (g * 6 + i) * span).storeBytes(of: a * scale, as: SIMD16<Float>.self)
            }
        }

        @inline(__always)
        private static func valueGroup(
            _ queries: [Query], _ g: Int, _ view: KVView, offset: Int, lane: Int, _ size: Int, _ scores: UnsafeMutablePointer<Float>,
            _ span: Int, lo: Int, hi: Int, _ sums: [Float]
        ) -> Int {
            let members = (0..<3).map { min(g + $0, queries.count - 1) }
            let r0 = scores + members[0] * span - lo, r1 = scores + members[1] * span - lo, r2 = scores + members[2] * span - lo
            let wide = size - lane >= 32
            var x0 = SIMD16<Float>(), x1 = x0, x2 = x0, y0 = x0, y1 = x0, y2 = x0
            view.runs(lo..<hi) { _, v, first, count in
                for j in 0..<count {
                    let p = lo + first + j
                    let row = v + offset + j * view.stride + lane
                    let s0 = SIMD16<Float>(repeating: r0[p]), s1 = SIMD16<Float>(repeating: r1[p]), s2 = SIMD16<Float>(repeating: r2[p])
                    var value = load(row)
                    x0 = x0.addingProduct(s0, value)
                    x1 = x1.addingProduct(s1, value)
                    x2 = x2.addingProduct(s2, value)
                    guard wide else { continue }
                    value = load(row + 16)
                    y0 = y0.addingProduct(s0, value)
                    y1 = y1.addingProduct(s1, value)
                    y2 = y2.addingProduct(s2, value)
                }
            }
            @inline(__always) func store(_ i: Int, _ x: SIMD16<Float>, _ y: SIMD16<Float>) {
                guard g + i < queries.count else { return }
                PromptAttention.store(1 / sums[g + i], queries[g + i].out + lane, wide ? 2 : 1, x, y)
            }
            store(0, x0, y0)
            store(1, x1, y1)
            store(2, x2, y2)
            return wide ? 32 : 16
        }
    #endif

    /// The first `count` of a query's accumulated vectors times `r` (one over its weights' sum), at `out`.
    @inline(__always)
    private static func store(
        _ r: Float, _ out: UnsafeMutablePointer<Float>, _ count: Int, _ x: SIMD16<Float>, _ y: SIMD16<Float>, _ z: SIMD16<Float> = .zero,
        _ w: SIMD16<Float> = .zero
    ) {
        let to = UnsafeMutableRawPointer(out)
        to.storeBytes(of: x * r, as: SIMD16<Float>.self)
        if count > 1 { to.storeBytes(of: y * r, toByteOffset: 64, as: SIMD16<Float>.self) }
        if count > 2 {
            to.storeBytes(of: z * r, toByteOffset: 128, as: SIMD16<Float>.self)
            to.storeBytes(of: w * r, toByteOffset: 192, as: SIMD16<Float>.self)
        }
    }
}
