public enum HTTPMethod: String, Sendable, CaseIterable {
    case GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, TRACE, CONNECT
    /// A method mserve does not know ("BREW"); routes answer it with 405.
    case UNKNOWN

    /// Methods are case-sensitive (RFC 9110): "get" is not GET.
    package init(name: String) {
        self = HTTPMethod(rawValue: name).flatMap { $0 == .UNKNOWN ? nil : $0 } ?? .UNKNOWN
    }

    /// The same from the request line's bytes, without making a String of them first.
    init(bytes: UnsafeBufferPointer<UInt8>) {
        self = HTTPMethod.known.first { sameBytes($0.rawValue, bytes) } ?? .UNKNOWN
    }

    private static let known = allCases.filter { $0 != .UNKNOWN }
}

public enum HTTPStatus {
    public static func reason(_ code: Int) -> String {
        switch code {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Entity"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 499: return "Client Closed Request"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return code < 400 ? "OK" : "Error"
        }
    }
}
