/// A response head (and chunk framing) as bytes, with no I/O and no clock: the date comes in.
public enum ResponseSerializer {
    /// The status line and headers, then `body`.  A nil `bodyLength` starts a stream: chunked,
    /// unless `close` (HTTP/1.0, or a stream ended by closing).  Header names and values with CR or
    /// LF are dropped: they would let a handler's input split the response.  Content-Length,
    /// Connection and Transfer-Encoding are the serializer's own; a body without a Content-Type is
    /// text.
    public static func serialize(status: Int, headers: [(String, String)], body: [UInt8], bodyLength: Int?,
                                 close: Bool, keepAliveHeader: Bool, date: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160 + body.count)
        out.append(contentsOf: "HTTP/1.1 ".utf8)
        out.appendDecimal(status)
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: HTTPStatus.reason(status).utf8)
        out.append(contentsOf: "\r\nDate: ".utf8)
        out.append(contentsOf: date)
        if let bodyLength {
            out.append(contentsOf: "\r\nContent-Length: ".utf8)
            out.appendDecimal(bodyLength)
        } else if !close {
            out.append(contentsOf: "\r\nTransfer-Encoding: chunked".utf8)
        }
        var hasType = false
        for (k, v) in headers {
            if k.equalsIgnoringASCIICase("Content-Length") || k.equalsIgnoringASCIICase("Connection")
                || k.equalsIgnoringASCIICase("Transfer-Encoding") || k.containsLineBreak || v.containsLineBreak { continue }
            if k.equalsIgnoringASCIICase("Content-Type") { hasType = true }
            out.append(contentsOf: "\r\n".utf8)
            out.append(contentsOf: k.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: v.utf8)
        }
        if !hasType && (bodyLength ?? 1) > 0 { out.append(contentsOf: "\r\nContent-Type: text/plain; charset=utf-8".utf8) }
        if close { out.append(contentsOf: "\r\nConnection: close".utf8) }
        if keepAliveHeader { out.append(contentsOf: "\r\nConnection: keep-alive".utf8) }
        out.append(contentsOf: "\r\n\r\n".utf8)
        out.append(contentsOf: body)
        return out
    }

    /// One chunk of a chunked body (empty bytes give nothing: an empty chunk would end the body).
    public static func chunk(_ bytes: [UInt8]) -> [UInt8] {
        guard !bytes.isEmpty else { return [] }
        var out = Array(String(bytes.count, radix: 16).utf8)
        out.reserveCapacity(out.count + bytes.count + 4)
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: bytes)
        out.append(contentsOf: "\r\n".utf8)
        return out
    }

    public static let lastChunk = Array("0\r\n\r\n".utf8)
    public static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
}
