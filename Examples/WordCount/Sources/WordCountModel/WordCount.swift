import Logging
import MServe

/// Counts the words of `"text"`: `{"text": "a b a"}` answers `{"words": 3, "counts": {"a": 2, "b": 1}}`.
/// Streamed, it sends a running count per word.  Option `lowercase` (default true).
public final class WordCount: Model {
    private let lowercase: Bool
    /// swift-log's Logger: its lines land in mserve's error log with the request's recordid.
    private let log = Logging.Logger(label: "wordcount")
    /// The options `[model.wordcount]` may set: a misspelt one stops the server at start.
    public static var optionNames: [String]? { ["lowercase"] }

    // Load: read options (a real model would load its weights here).
    public init(context: ModelContext) throws {
        switch context.options["lowercase"] {
        case nil: lowercase = true
        case .bool(let b)?: lowercase = b
        case let v?: throw ModelLoadError("wordcount: option lowercase must be true or false, got \(v.text)")
        }
    }

    // Check on the event loop, before queueing: bad input never occupies the model.
    public func validate(_ input: JSON) throws {
        guard case .string? = input["text"] else { throw ModelInputError("text must be a string") }
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        var counts: [(String, Int)] = []
        let words = words(request)
        for w in words {
            if let i = counts.firstIndex(where: { $0.0 == w }) { counts[i].1 += 1 } else { counts.append((w, 1)) }
        }
        log.info("counted \(words.count) words", metadata: ["distinct": "\(counts.count)"])
        return ["words": .int(Int64(words.count)), "counts": .object(counts.map { ($0.0, .int(Int64($0.1))) })]
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        for (i, w) in words(request).enumerated() {
            try emit(["word": .string(w), "count": .int(Int64(i + 1))])
        }
    }

    private func words(_ request: InferenceRequest) -> [String] {
        let text = request.input["text"]?.stringValue ?? ""
        return text.split(whereSeparator: { !$0.isLetter && !$0.isNumber }).map { lowercase ? $0.lowercased() : String($0) }
    }
}
