/// A forward pass's products with the weights: its prompt rows through the prompt kernel
/// (FloatMatrixProduct, float32), the others (decodes) through the activations' kernels; an input
/// made ready once for every product that reads it.
extension LlamaModel {
    /// Which rows of a pass are prompt tokens (the prompt kernel's) and which are not.
    struct PassRows {
        let count: Int
        let prompt: [Int]
        let others: [Int]
    }

    /// A product's input in one pass: the prompt rows as the prompt kernel's tiles, the others
    /// (all rows, without the prompt kernel) as floats and as the activations quantize them.
    struct ProductInput {
        let tiles: FloatMatrixProduct.Tiles?
        let others: [Float]
        let quantized: QuantizedActivations?
    }

    /// `x`'s rows of `columns` made ready for the products that read them (several share one).
    func input(_ x: [Float], _ columns: Int, _ rows: PassRows, sensitive: Bool = false) -> ProductInput {
        let tiles = rows.prompt.isEmpty ? nil : FloatMatrixProduct.Tiles(x, count: rows.prompt.count, columns: columns, rows: rows.prompt)
        var others = x
        if !rows.prompt.isEmpty {
            others = []
            others.reserveCapacity(rows.others.count * columns)
            for r in rows.others { others += x[(r * columns)..<((r + 1) * columns)] }
        }
        let quantized = rows.others.isEmpty ? nil : quantized(others, rows.others.count, columns, sensitive: sensitive)
        return ProductInput(tiles: tiles, others: others, quantized: quantized)
    }

    /// `m` times every row of `input`, into `y` (a row of `m.rows` per row of the pass).
    func multiply(_ m: QuantizedMatrix, _ input: ProductInput, _ rows: PassRows, into y: inout [Float]) {
        guard let tiles = input.tiles else {
            return m.multiply(input.others, rows.count, pool: pool, quantized: input.quantized, into: &y)
        }
        if rows.others.isEmpty { return m.multiply(tiles, pool: pool, into: &y) }
        var part = [Float](repeating: 0, count: max(rows.prompt.count, rows.others.count) * m.rows)
        func place(_ indices: [Int]) {
            for (i, r) in indices.enumerated() {
                y.withUnsafeMutableBufferPointer { yp in
                    part.withUnsafeBufferPointer { pp in
                        (yp.baseAddress! + r * m.rows).update(from: pp.baseAddress! + i * m.rows, count: m.rows)
                    }
                }
            }
        }
        m.multiply(tiles, pool: pool, into: &part)
        place(rows.prompt)
        m.multiply(input.others, rows.others.count, pool: pool, quantized: input.quantized, into: &part)
        place(rows.others)
    }

    /// The inputs of a product as 8-bit blocks, or nil with float32 activations.
    /// `sensitive`: the inputs whose rounding to 8 bits moves the logits most (measured: the
    /// normed input of Q, K and V), kept at 16 bits in int8 mode.  (The FFN's product before `down`
    /// was too until its 8 bits measured 13% faster a decode step on AVX2, the logits still
    /// closer to the exact pass than llama.cpp's: LlamaCppComparisonTests.)
    func quantized(_ x: [Float], _ n: Int, _ columns: Int, sensitive: Bool = false) -> QuantizedActivations? {
        switch activations {
        case .float32: nil
        case .int16: QuantizedActivations(x, count: n, columns: columns, bits: 16)
        case .int8: QuantizedActivations(x, count: n, columns: columns, bits: sensitive ? 16 : 8)
        }
    }
}
