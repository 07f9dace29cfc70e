import Foundation
import Testing

@testable import GGUFInference

/// The vectorized exponential (exp8) and the feed-forward gates against double-precision references.
struct LayerMathTests {
    @Test func exp8IsWithinAFewUnitsInTheLastPlace() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let got = exp8(SIMD8((0..<8).map { x + Float($0) * 0.0013 }))
            for j in 0..<8 {
                let v = Double(x + Float(j) * 0.0013)
                worst = max(worst, abs(Double(got[j]) - Foundation.exp(v)) / Foundation.exp(v))
            }
            x += 0.0937
        }
        #expect(worst < 3e-7, "largest relative error \(worst)")
        // Zero below the range (−∞ too: a forbidden token's probability), saturated above, never
        // a trap (NaN included).
        let edges = exp8(SIMD8(-1e9, -200, 200, 1e9, .infinity, -.infinity, .nan, 0))
        #expect(edges[0] == 0 && edges[1] == 0 && edges[5] == 0 && edges[2] > 1e38 && edges[3] > 1e38 && edges[4] > 1e38 && edges[7] == 1)
    }

    @Test(arguments: [LlamaModel.FeedForwardActivation.silu, .geluTanh])
    func gatesEqualTheirFormulas(_ activation: LlamaModel.FeedForwardActivation) {
        // 101 values (not a multiple of 8: the last few take the padded vector).
        let g: [Float] = (0..<101).map { Float($0 - 50) * 0.37 }
        let u: [Float] = (0..<101).map { 1 + Float($0 % 7) * 0.25 }
        var got = g + [123]  // a value past `count` stays as it was
        LlamaModel.gate(activation, &got, u, count: 101)
        #expect(got[101] == 123)
        for i in 0..<101 {
            let x = Double(g[i])
            let a =
                switch activation {
                case .silu: x / (1 + Foundation.exp(-x))
                case .geluTanh: 0.5 * x * (1 + Foundation.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
                }
            let want = a * Double(u[i])
            #expect(abs(Double(got[i]) - want) <= 1e-6 * max(1, abs(want)), "\(activation) at \(g[i]): \(got[i]) vs \(want)")
        }
    }
}
