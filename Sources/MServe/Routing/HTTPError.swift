import MServeHTTP

/// Thrown by handlers (and by the server itself) to answer with an error status and a JSON body
/// `{"recordid": ..., "error": {"code": ..., "message": ...}}`.
public struct HTTPError: Error, CustomStringConvertible {
    public let status: Int
    public let message: String
    public var headers: [(String, String)]

    public init(_ status: Int, _ message: String? = nil, headers: [(String, String)] = []) {
        self.status = status
        self.message = message ?? HTTPStatus.reason(status)
        self.headers = headers
    }

    public var description: String { "HTTP \(status): \(message)" }
}
