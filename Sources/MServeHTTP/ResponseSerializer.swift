import MServeSystem

/// A response head (and chunk framing) as bytes, with no I/O and no clock: the date comes in.
public enum ResponseSerializer {
    /// The status line and headers, then `body`.  A nil `bodyLength` starts a stream: chunked,
    /// unless `close` (HTTP/1.0, or a stream ended by closing).  Header names and values with CR or
    /// LF are dropped: they would let a handler's input split the response.  Content-Length,
    /// Connection and Transfer-Encoding are the serializer's own; a body without a Content-Type is
    /// text.
    public static func serialize(
        status: Int, headers: [(String, String)], body: [UInt8], bodyLength: Int?,
        close: Bool, keepAliveHeader: Bool, date: [UInt8]
    ) -> [UInt8] {
        var out = ByteWriter(capacity: 160 + body.count)
        serialize(
            status: status, headers: headers, body: body, bodyLength: bodyLength, close: close,
            keepAliveHeader: keepAliveHeader, date: date, into: &out)
        return out.bytes()
    }

    /// The same, written into a connection's output.
    static func serialize(
        status: Int, headers: [(String, String)], body: [UInt8], bodyLength: Int?,
        close: Bool, keepAliveHeader: Bool, date: [UInt8], into out: inout ByteWriter
    ) {
        out.append("HTTP/1.1 ")
        out.appendDecimal(status)
        out.append(UInt8(ascii: " "))
        out.append(string: HTTPStatus.reason(status))
        out.append("\r\nDate: ")
        out.append(contentsOf: date)
        if let bodyLength {
            out.append("\r\nContent-Length: ")
            out.appendDecimal(bodyLength)
        } else if !close {
            out.append("\r\nTransfer-Encoding: chunked")
        }
        var hasType = false
        for (k, v) in headers {
            var name = k
            let known = name.withUTF8 { KnownField($0) }
            if known == .contentLength || known == .connection || known == .transferEncoding
                || k.containsLineBreak || v.containsLineBreak
            {
                continue
            }
            if known == .contentType { hasType = true }
            out.append("\r\n")
            out.append(string: k)
            out.append(": ")
            out.append(string: v)
        }
        if !hasType && (bodyLength ?? 1) > 0 { out.append("\r\nContent-Type: text/plain; charset=utf-8") }
        if close { out.append("\r\nConnection: close") }
        if keepAliveHeader { out.append("\r\nConnection: keep-alive") }
        out.append("\r\n\r\n")
        out.append(contentsOf: body)
    }

    /// One chunk of a chunked body (empty bytes give nothing: an empty chunk would end the body).
    public static func chunk(_ bytes: [UInt8]) -> [UInt8] {
        var out = ByteWriter(capacity: bytes.count + 20)
        chunk(bytes, into: &out)
        return out.bytes()
    }

    static func chunk(_ bytes: [UInt8], into out: inout ByteWriter) {
        guard !bytes.isEmpty else { return }
        out.append(string: String(bytes.count, radix: 16))
        out.append("\r\n")
        out.append(contentsOf: bytes)
        out.append("\r\n")
    }

    public static let lastChunk = Array("0\r\n\r\n".utf8)
    public static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
}
