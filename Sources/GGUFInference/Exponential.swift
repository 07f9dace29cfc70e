/// e^x of eight floats (the feed-forward's gates, the sampler's probabilities): Cephes' expf
/// (x = n·ln 2 + r, |r| ≤ ½ln 2; e^r by a polynomial of degree 7; 2^n into the exponent bits),
/// within a few units in the last place of libm's.  Below −87.3 it is 0 (as float underflows;
/// −∞, a token a grammar forbids, included), above 88.3 it saturates at 2^127; no input traps.
@inline(__always)
func exp8(_ v: SIMD8<Float>) -> SIMD8<Float> {
    // (`clamped` and `pointwiseMin` were calls, not inlined: 14% of a sampler's time.)
    let low = SIMD8<Float>(repeating: -87.3), high = SIMD8<Float>(repeating: 88.3)
    let x = v.replacing(with: low, where: v .< low).replacing(with: high, where: v .> high)
    // Adding 1.5·2^23 rounds to an integer, which the sum's low bits then hold.
    let shifter: Float = 12_582_912
    let t = x * 1.44269504088896341 + shifter
    let n = t - shifter
    let r = (x - n * 0.693359375) + n * 2.12194440e-4
    var p = SIMD8<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let er = p * (r * r) + r + 1
    let bits = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return (er * unsafeBitCast(bits, to: SIMD8<Float>.self)).replacing(with: 0, where: v .< -87.3)
}

/// `out[i] = body(a[i...], b[i...])` for i below `count`, eight at a time; the last few in
/// vectors padded with zeros.  `out` may be `a`.
@inline(__always)
func eightAtATime(
    _ count: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
    _ body: (SIMD8<Float>, SIMD8<Float>) -> SIMD8<Float>
) {
    var i = 0
    while i + 8 <= count {
        let y = body(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self), UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
        UnsafeMutableRawPointer(out + i).storeBytes(of: y, as: SIMD8<Float>.self)
        i += 8
    }
    guard i < count else { return }
    var x = SIMD8<Float>(), v = SIMD8<Float>()
    for j in 0..<(count - i) {
        x[j] = a[i + j]
        v[j] = b[i + j]
    }
    let y = body(x, v)
    for j in 0..<(count - i) { out[i + j] = y[j] }
}
