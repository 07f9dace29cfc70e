import MServeSystem

/// `{"ms": 20}` waits that long and answers `{"slept_ms": 20}`: a stand-in for a slow model in load
/// tests of queues, timeouts and graceful shutdown.  Streamed, `{"ms": 300, "pieces": 3}` sends
/// `{"piece": 1, "slept_ms": 100}` every 100 ms: a stand-in for a token generator.  Option `max_ms`
/// bounds a request.
public final class SleepModel: Model {
    public static var example: JSON { ["ms": 2000, "pieces": 10] }
    public static var optionNames: [String]? { ["max_ms", "weights_mb", "load_ms"] }
    private let maxMs: Double
    /// Option weights_mb: that much memory, allocated and filled at load like a model's weights, so
    /// that --preload's sharing can be measured (benchmark/memory.py).
    private let weights: [UInt8]

    public init(context: ModelContext) throws {
        switch context.options["max_ms"] {
        case nil: maxMs = 60_000
        case .some(let v):
            guard let d = v.doubleValue, d >= 0 else { throw ModelLoadError("sleep: option max_ms must be a non-negative number") }
            maxMs = d
        }
        switch context.options["weights_mb"] {
        case nil: weights = []
        case .some(let v):
            guard case .int(let mb) = v, (0...65536).contains(mb) else {
                throw ModelLoadError("sleep: option weights_mb must be an integer number of megabytes")
            }
            weights = (0..<Int(mb) << 20).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
        }
        // Option load_ms: a model that takes that long to load, for tests of --boot-timeout.
        if let v = context.options["load_ms"] {
            guard let d = v.doubleValue, d >= 0 else { throw ModelLoadError("sleep: option load_ms must be a non-negative number") }
            SleepModel.sleep(ms: d)
        }
    }

    public func validate(_ input: JSON) throws {
        guard let v = input["ms"] else { throw ModelInputError("missing argument ms") }
        guard let ms = v.doubleValue, ms >= 0 else { throw ModelInputError("ms must be a non-negative number") }
        guard ms <= maxMs else { throw ModelInputError("ms must be at most \(maxMs)") }
        if let p = input["pieces"] {
            guard case .int(let n) = p, (1...10_000).contains(n) else {
                throw ModelInputError("pieces must be an integer from 1 to 10000")
            }
        }
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        try validate(request.input)
        let v = request.input["ms"]!
        SleepModel.sleep(ms: v.doubleValue!)
        return ["slept_ms": v]
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try validate(request.input)
        let ms = request.input["ms"]!.doubleValue!
        guard case .int(let pieces)? = request.input["pieces"] else { return try emit(infer(request)) }
        for i in 1...pieces {
            SleepModel.sleep(ms: ms / Double(pieces))
            try emit(["piece": .int(i), "slept_ms": .double(ms / Double(pieces))])
        }
    }

    static func sleep(ms: Double) {
        // {"ms": 0} measures the model-thread round trip alone: no sleep call at all.
        guard ms > 0 else { return }
        sleepThread(seconds: ms / 1000)
    }
}
