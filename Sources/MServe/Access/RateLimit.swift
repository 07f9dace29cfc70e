/// Requests per second for one key, as the generic cell rate algorithm decides them: one word, the
/// theoretical arrival time (TAT) of the next request, says everything, so several processes can
/// share it with a compare-and-swap.  A key may send `rps` requests at once (one second's worth,
/// at least one), then one every 1/rps seconds.  Pure.
public enum RateLimit {
    public enum Decision: Equatable, Sendable {
        case allowed(nextTAT: UInt64)
        /// Refused; the client may retry after this many whole seconds (at least 1).
        case refused(retryAfter: Int)
    }

    /// "10", "2.5", or "-" without a limit.
    package static func text(_ rps: Double?) -> String {
        guard let rps else { return "-" }
        return rps == rps.rounded() ? String(Int(rps)) : String(rps)
    }

    /// `tat` and `now` in microseconds of the monotonic clock (0: never used).
    public static func decide(tat: UInt64, now: UInt64, rps: Double) -> Decision {
        let interval = UInt64(max(1, 1_000_000 / rps))
        let burst = UInt64(max(1, rps.rounded(.down)))
        let tolerance = interval * (burst - 1)
        let start = max(tat, now)
        if start - now > tolerance {
            let wait = start - now - tolerance
            return .refused(retryAfter: max(1, Int((wait + 999_999) / 1_000_000)))
        }
        return .allowed(nextTAT: start + interval)
    }
}
