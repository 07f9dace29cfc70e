/// `POST /v1/embeddings` in OpenAI's shape, so that OpenAI's clients work unchanged: `model` names
/// a served embedding model, `input` is a string or a list of strings, `encoding_format` is
/// "float" (the default) or "base64" (little-endian float32, what the official Python client asks
/// for), `dimensions` may repeat the model's own.  Errors come in OpenAI's shape too.  The request
/// goes through the model's queue like any other (503 when full, 504 past the deadline).
final class OpenAIEmbeddingsHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.POST] }

    override func post(_ args: [String]) throws {
        let body = try jsonObjectBody()
        let embedding = context.models.filter { $0.instance is any EmbeddingModel }
        // Messages name only the models this key may use.
        let visible = visibleModels.filter { $0.instance is any EmbeddingModel }.map(\.name).joined(separator: ", ")
        guard case .string(let name)? = body["model"] else {
            throw HTTPError(400, "missing model: one of \(visible)")
        }
        guard let m = embedding.first(where: { $0.name == name }), let dimensions = (m.instance as? any EmbeddingModel)?.dimensions else {
            throw HTTPError(404, "The model '\(name)' does not exist or is not an embedding model; served: \(visible)")
        }
        let base64: Bool
        switch body["encoding_format"] {
        case nil, .some(.null), .some(.string("float")): base64 = false
        case .some(.string("base64")): base64 = true
        case let v?: throw HTTPError(400, "encoding_format must be \"float\" or \"base64\", got \(v.text)")
        }
        if let d = body["dimensions"], d != .null, d != .int(Int64(dimensions)) {
            throw HTTPError(400, "dimensions: model \(name) gives \(dimensions), got \(d.text)")
        }
        try ModelCall(self, model: m, presenter: OpenAIEmbeddingsPresenter(model: m.name, base64: base64)).run(
            InferenceRequest(
                recordID: recordID, input: ["input": body["input"] ?? .null], contentType: "application/json",
                body: request.body))
    }
}

/// An embedding model's answer as OpenAI's list of embeddings (base64 when asked); otherwise
/// mserve's own shape (a stream only if the client's `Accept` asks).
struct OpenAIEmbeddingsPresenter: ModelPresenter {
    let model: String
    let base64: Bool
    private let own = MServePresenter()

    func streamFormat(for input: JSON, accept: String?) -> StreamFormat? { own.streamFormat(for: input, accept: accept) }
    var tagsPieces: Bool { own.tagsPieces }
    func pieces(forPiece piece: JSON) -> [JSON] { own.pieces(forPiece: piece) }
    func pieces(for event: GenerationEvent, indexed: Bool) -> [JSON] { own.pieces(for: event, indexed: indexed) }
    func tail(_ generation: Generation) -> [JSON] { [] }

    func answer(output: JSON, generation: Generation?) -> JSON {
        guard case .array(let vectors)? = output["embeddings"] else { return own.answer(output: output, generation: generation) }
        let data: [JSON] = vectors.enumerated().map { i, v in
            var embedding = v
            if base64, case .floats(let f) = v { embedding = .string(Base64.encode(floats: f)) }
            return ["object": "embedding", "index": .int(Int64(i)), "embedding": embedding]
        }
        let tokens = output["usage"]?["prompt_tokens"] ?? .int(0)
        return [
            "object": "list", "data": .array(data), "model": .string(model),
            "usage": ["prompt_tokens": tokens, "total_tokens": tokens]
        ]
    }
}

/// Standard base64 (RFC 4648, padded).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let n = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out += [
                alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)],
                rest == 2 ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="), UInt8(ascii: "=")
            ]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The floats' little-endian IEEE bytes, as OpenAI's base64 embeddings.
    static func encode(floats: [Float]) -> String {
        floats.map { $0.bitPattern.littleEndian }.withUnsafeBytes { encode($0) }
    }
}
