#if canImport(Glibc)
import Glibc
#endif

/// `{"ms": 20}` waits that long and answers `{"slept_ms": 20}`: a stand-in for a slow model in load
/// tests of timeouts, graceful shutdown and, later, queues.  Option `max_ms` bounds a request.
public final class SleepModel: Model {
    private let maxMs: Double

    public init(context: ModelContext) throws {
        switch context.options["max_ms"] {
        case nil: maxMs = 60_000
        case .some(let v):
            guard let d = v.doubleValue, d >= 0 else { throw ModelLoadError("sleep: option max_ms must be a non-negative number") }
            maxMs = d
        }
    }

    public func validate(_ input: JSON) throws {
        guard let v = input["ms"] else { throw ModelInputError("missing argument ms") }
        guard let ms = v.doubleValue, ms >= 0 else { throw ModelInputError("ms must be a non-negative number") }
        guard ms <= maxMs else { throw ModelInputError("ms must be at most \(maxMs)") }
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        try validate(request.input)
        let v = request.input["ms"]!
        let ms = v.doubleValue!
        var ts = timespec(tv_sec: Int(ms / 1000), tv_nsec: Int((ms.truncatingRemainder(dividingBy: 1000)) * 1_000_000))
        var rest = timespec()
        // {"ms": 0} measures the model-thread round trip alone: no sleep call at all.
        while ms > 0 && nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
        return ["slept_ms": v]
    }
}
