/// The model of the original tornado example: each instance keeps a running sum of `cal_number`.
/// `{"recordid": "r1", "cal_number": 5}` answers `{"recordid": "r1", "result": N}`.
///
/// Option `start` (a number, default 0) is the initial sum; a non-numeric `start` fails the load.
public final class DemoModel: Model {
    /// An addition: far cheaper than a hand-off to a model thread.
    public static var runsOnEventLoop: Bool { true }
    public static var example: JSON { ["cal_number": 1] }
    public static var optionNames: [String]? { ["start"] }
    private var sum: JSON

    public init(context: ModelContext) throws {
        switch context.options["start"] {
        case nil: sum = .int(0)
        case .some(let v) where v.doubleValue != nil: sum = v
        case .some(let v): throw ModelLoadError("demo: option start must be a number, got \(v.text)")
        }
    }

    public func validate(_ input: JSON) throws {
        guard let n = input["cal_number"] else { throw ModelInputError("missing argument cal_number") }
        guard n.doubleValue != nil else { throw ModelInputError("cal_number must be a number, got a \(n.typeName)") }
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        try validate(request.input)
        let n = request.input["cal_number"]!
        let next: JSON
        switch (sum, n) {
        case let (.int(a), .int(b)):
            let (s, overflow) = a.addingReportingOverflow(b)
            next = overflow ? .double(Double(a) + Double(b)) : .int(s)
        default:
            next = .double(sum.doubleValue! + n.doubleValue!)
        }
        // The sum is left as it was when it cannot be represented, so one bad call costs nothing.
        if let d = next.doubleValue, !d.isFinite { throw DemoOverflow() }
        sum = next
        return ["result": sum]
    }

    struct DemoOverflow: Error, CustomStringConvertible {
        var description: String { "running sum overflowed to infinity; the sum is unchanged" }
    }
}

/// Returns its JSON input (less the recordid, which the server adds back).  Streamed, it sends the
/// words of its "text" field, one piece each: `{"text": "word"}`.  Any other body is described: a
/// multipart upload by its fields and files, raw bytes by their type and size.  It runs on a model
/// thread: echoing megabytes, or streaming a long text word by word, is not microseconds of work,
/// and on the loop it held every other client up (a 9 MB text streamed in 1.8 million pieces kept
/// /healthz waiting a second).
public final class EchoModel: Model {
    public static var acceptedMediaTypes: [String] { ["*/*"] }
    public static var example: JSON { ["text": "stream these words one by one"] }
    public static var optionNames: [String]? { [] }
    public init(context: ModelContext) throws {}

    public func infer(_ request: InferenceRequest) throws -> JSON {
        if request.contentType == "multipart/form-data" {
            return [
                "fields": request.input,
                "files": .array(
                    request.files.map { f in
                        [
                            "field": .string(f.field), "filename": .string(f.filename), "content_type": .string(f.contentType),
                            "bytes": .int(Int64(f.data.count))
                        ]
                    })
            ]
        }
        if !MediaType.isJSON(request.contentType) {
            return ["content_type": .string(request.contentType), "bytes": .int(Int64(request.body.count))]
        }
        guard case .object(let pairs) = request.input else { return request.input }
        return .object(pairs.filter { $0.0 != "recordid" && $0.0 != "stream" })
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        guard case .string(let text)? = request.input["text"] else { return try emit(infer(request)) }
        // Word by word as it goes: split() would hold every word at once (38 MB for 6 MB of text).
        let bytes = text.utf8
        var start = bytes.startIndex
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x09 }
        while start < bytes.endIndex {
            guard !isSpace(bytes[start]) else { start = bytes.index(after: start); continue }
            var end = start
            while end < bytes.endIndex && !isSpace(bytes[end]) { end = bytes.index(after: end) }
            try emit(["text": .string(String(text[start..<end]))])
            start = end
        }
    }
}
