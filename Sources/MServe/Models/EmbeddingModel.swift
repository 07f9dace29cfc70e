/// A model that `POST /v1/embeddings` serves in OpenAI's shape.  It takes `{"input": text or
/// [texts]}` and answers `{"embeddings": [vector, ...], "tokens": [count, ...], "usage":
/// {"prompt_tokens": n}}`.
public protocol EmbeddingModel: Model {
    var dimensions: Int { get }
}
