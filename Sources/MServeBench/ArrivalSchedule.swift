import MServeSystem

/// When an open-loop client sends: a Poisson process (exponential gaps with mean 1/rate), from a
/// seeded generator so that a run can be repeated.  Pure.
public struct ArrivalSchedule: Sendable {
    public let rate: Double
    private var state: UInt64
    public private(set) var next: Double

    public init(rate: Double, start: Double, seed: UInt64) {
        self.rate = rate
        state = seed &+ 0x9E37_79B9_7F4A_7C15
        next = start
        next = start + gap()
    }

    /// The arrival due at `next`, and the one after it.
    public mutating func advance() -> Double {
        let due = next
        next += gap()
        return due
    }

    private mutating func gap() -> Double {
        // SplitMix64, then an exponential by inversion; u is never 0.
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let u = (Double(z >> 11) + 1) / Double(1 << 53)
        return -naturalLogarithm(u) / rate
    }
}
