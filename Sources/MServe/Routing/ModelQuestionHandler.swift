import MServeHTTP

/// llama.cpp's server's routes about its model, for the clients and tools written for it:
/// `POST /tokenize` (`content`, `add_special`, `parse_special`, `with_pieces`), `POST /detokenize`
/// (`tokens`), `POST /apply-template` (`messages`) and `GET /props`.  llama.cpp serves one model;
/// here `model` (in the body, or `?model=` for `/props`) names a generative model, and may be left
/// out when the key sees only one.  The model answers from its own thread (tokenizing and rendering
/// grow with the text); the loop writes the answer.
class ModelQuestionHandler: RequestHandler {
    override class var allowedMethods: [HTTPMethod] { [.POST] }

    /// The question the body asks, or a 400.
    func question(_ body: JSON) throws -> ModelQuestion { throw HTTPError(404, "no such question") }

    override func post(_ args: [String]) throws {
        let body = try jsonObjectBody()
        let m = try model(named: body["model"])
        let q = try question(body)
        guard let generative = m.generative, let answers = m.answers else { throw HTTPError(404, "model \(m.name) does not generate text") }
        var opened: Int?
        let (id, post) = answers.open { [self] result in
            if let opened { answers.close(opened) }
            switch result {
            case .success(let answer):
                write(answer)
                finish()
            case .failure(let e): finish(with: HTTPError(400, e.message))
            }
        }
        opened = id
        do {
            try generative.answer(q, reply: post)
        } catch let e as ModelInputError {
            answers.close(id)
            throw HTTPError(400, e.message)
        }
        beginAsynchronous()
        request.onClientGone = { [self] in
            answers.close(id)
            finish(with: HTTPError(499, "client closed the connection before the answer"))
        }
    }

    /// The generative model `name` names, or the only one this key sees.
    func model(named name: JSON?) throws -> ServedModel {
        let generative = visibleModels.filter { $0.generative != nil }
        let served = generative.map(\.name).joined(separator: ", ")
        switch name {
        case nil, .some(.null):
            guard generative.count == 1, let only = generative.first else {
                throw HTTPError(400, "model is required: one of \(served)", param: "model")
            }
            return only
        case .string(let n)?:
            guard let m = generative.first(where: { $0.name == n }) else {
                throw HTTPError(404, "The model '\(n)' does not exist or does not generate text; served: \(served)", param: "model")
            }
            return m
        case let v?:
            throw HTTPError(400, "model must be a string, got \(v.text)", param: "model")
        }
    }

    /// A boolean field, `fallback` when absent.
    func flag(_ body: JSON, _ key: String, _ fallback: Bool) throws -> Bool {
        switch body[key] {
        case nil, .some(.null): return fallback
        case .bool(let b)?: return b
        case let v?: throw HTTPError(400, "\(key) must be true or false, got \(v.text)", param: key)
        }
    }
}

/// `POST /tokenize {"content": "..."}`: `{"tokens": [ids]}`, or with `with_pieces`
/// `{"tokens": [{"id", "piece"}]}` (a piece that is not whole UTF-8 is its list of bytes).
final class TokenizeHandler: ModelQuestionHandler {
    override func question(_ body: JSON) throws -> ModelQuestion {
        guard let content = body["content"]?.stringValue else { throw HTTPError(400, "content must be a string", param: "content") }
        return .tokenize(
            content, addSpecial: try flag(body, "add_special", false), parseSpecial: try flag(body, "parse_special", true),
            withPieces: try flag(body, "with_pieces", false))
    }
}

/// `POST /detokenize {"tokens": [ids]}`: `{"content": "..."}`.
final class DetokenizeHandler: ModelQuestionHandler {
    override func question(_ body: JSON) throws -> ModelQuestion {
        guard case .array(let items)? = body["tokens"] else { throw HTTPError(400, "tokens must be a list of token ids", param: "tokens") }
        var ids: [Int] = []
        for item in items {
            guard case .int(let id) = item, id >= 0, id <= Int64(Int32.max) else {
                throw HTTPError(400, "tokens must be a list of token ids, got \(item.text)", param: "tokens")
            }
            ids.append(Int(id))
        }
        return .detokenize(ids)
    }
}

/// `POST /apply-template {"messages": [...]}`: `{"prompt": "..."}`, the text the chat template makes
/// of the conversation (with the generation prompt), as the model would read it.
final class ApplyTemplateHandler: ModelQuestionHandler {
    override func question(_ body: JSON) throws -> ModelQuestion {
        guard let messages = body["messages"], messages != .null else { throw HTTPError(400, "messages is required", param: "messages") }
        return .applyTemplate(["messages": messages])
    }
}

/// `GET /props[?model=NAME]`: the model's properties in llama.cpp's keys.
final class PropsHandler: ModelQuestionHandler {
    override class var allowedMethods: [HTTPMethod] { [.GET] }

    override func get(_ args: [String]) throws {
        let name = try arguments("model").first.map { JSON.string($0) }
        let m = try model(named: name)
        guard let generative = m.generative else { throw HTTPError(404, "model \(m.name) does not generate text") }
        write(generative.properties.setting("model", JSON.string(m.name), first: true))
    }
}
