/// Where time comes from for decisions with timeouts: the monotonic clock in the server, a clock
/// a test moves by hand.
public protocol SecondsClock: AnyObject {
    /// Seconds since an arbitrary start, never going backwards.
    func now() -> Double
}

public final class MonotonicClock: SecondsClock {
    public init() {}
    public func now() -> Double { monotonicSeconds() }
}

public final class ManualClock: SecondsClock {
    public var time: Double
    public init(_ time: Double = 0) { self.time = time }
    public func now() -> Double { time }
    public func advance(_ seconds: Double) { time += seconds }
}
