import MServeHTTP

/// Thrown by handlers (and by the server itself) to answer with an error status and a JSON body
/// `{"recordid": ..., "error": {"code": ..., "message": ...}}`.
public struct HTTPError: Error, CustomStringConvertible {
    public let status: Int
    public let message: String
    public var headers: [(String, String)]
    /// A machine-readable reason, for APIs that have one (OpenAI's `code`: "invalid_api_key").
    public var code: String?
    /// The request field at fault, for APIs that name it (OpenAI's `param`).
    public var param: String?

    public init(_ status: Int, _ message: String? = nil, headers: [(String, String)] = [], code: String? = nil, param: String? = nil) {
        self.status = status
        self.message = message ?? HTTPStatus.reason(status)
        self.headers = headers
        self.code = code
        self.param = param
    }

    public var description: String { "HTTP \(status): \(message)" }
}
