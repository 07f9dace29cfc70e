/// An HTTP/1.1 response read incrementally, for a client (`mserve bench`): the status line and the
/// framing headers, then the body by Content-Length, chunked coding or the connection's end.
/// Pure: bytes go in, body bytes and the end come out.
public struct ResponseParser: Sendable {
    public static let maxHead = 64 * 1024

    public private(set) var status = 0
    /// Whether the connection may carry another request after this response.
    public private(set) var keepAlive = true
    private var head: [UInt8] = []
    private enum Body: Sendable { case head, length(Int), chunkSize, chunkData(Int), chunkEnd, trailers, untilClose, done }
    private var state = Body.head
    private var line: [UInt8] = []

    public init() {}

    /// For a new response on the same connection.
    public mutating func reset() { self = ResponseParser() }

    /// Takes bytes; body bytes go to `body`, with the response's status (the parser is busy while
    /// it calls, so `status` cannot be read from there).  Returns how many bytes were used (the rest belongs to
    /// the next response) and whether this response is complete.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, body: (_ bytes: UnsafeRawBufferPointer, _ status: Int) -> Void)
        throws(ResponseParseError) -> (used: Int, complete: Bool)
    {
        var i = 0
        while i < bytes.count {
            switch state {
            case .done:
                return (i, true)
            case .head:
                // Up to the end of the head (CRLF CRLF, which may straddle reads) in one copy.
                var j = i
                var end: Int?
                while j < bytes.count {
                    if bytes[j] == 10 {
                        let before = head.count + (j - i)  // index of this LF in head + this read
                        func at(_ k: Int) -> UInt8 { k >= head.count ? bytes[i + k - head.count] : head[k] }
                        if before >= 3 && at(before - 1) == 13 && at(before - 2) == 10 && at(before - 3) == 13 { end = j + 1; break }
                    }
                    j += 1
                }
                let upTo = end ?? bytes.count
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<upTo]))
                i = upTo
                if head.count > ResponseParser.maxHead { throw ResponseParseError("response head over \(ResponseParser.maxHead) bytes") }
                if end != nil {
                    try parseHead()
                    if status >= 100 && status < 200 {  // an interim response: the real one follows
                        head.removeAll(keepingCapacity: true)
                        state = .head
                        keepAlive = true
                    }
                }
            case .length(let remaining):
                let n = min(remaining, bytes.count - i)
                body(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]), status)
                i += n
                state = remaining - n == 0 ? .done : .length(remaining - n)
            case .untilClose:
                body(UnsafeRawBufferPointer(rebasing: bytes[i...]), status)
                i = bytes.count
            case .chunkSize, .chunkEnd, .trailers:
                let b = bytes[i]
                i += 1
                if b != 10 {
                    line.append(b)
                    if line.count > 4096 { throw ResponseParseError("chunk line over 4096 bytes") }
                    continue
                }
                if line.last == 13 { line.removeLast() }
                defer { line.removeAll(keepingCapacity: true) }
                switch state {
                case .chunkSize:
                    let digits = line.prefix { $0 != UInt8(ascii: ";") && $0 != UInt8(ascii: " ") }
                    guard !digits.isEmpty, digits.count <= 15, let size = Int(String(decoding: digits, as: UTF8.self), radix: 16) else {
                        throw ResponseParseError("bad chunk size line")
                    }
                    state = size == 0 ? .trailers : .chunkData(size)
                case .chunkEnd:
                    guard line.isEmpty else { throw ResponseParseError("chunk not followed by CRLF") }
                    state = .chunkSize
                default:
                    if line.isEmpty { state = .done }
                }
            case .chunkData(let remaining):
                let n = min(remaining, bytes.count - i)
                body(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]), status)
                i += n
                state = remaining - n == 0 ? .chunkEnd : .chunkData(remaining - n)
            }
        }
        if case .done = state { return (i, true) }
        return (i, false)
    }

    /// The connection ended: complete if the body was delimited by it.
    public mutating func finishAtClose() -> Bool {
        if case .untilClose = state {
            state = .done
            keepAlive = false
            return true
        }
        if case .done = state { return true }
        return false
    }

    private mutating func parseHead() throws(ResponseParseError) {
        var lines = head.split(separator: 10, omittingEmptySubsequences: false).map { $0.last == 13 ? $0.dropLast() : $0 }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let statusLine = lines.first, statusLine.starts(with: Array("HTTP/1.".utf8)), statusLine.count >= 12,
            let code = Int(String(decoding: statusLine[(statusLine.startIndex + 9)..<(statusLine.startIndex + 12)], as: UTF8.self))
        else {
            throw ResponseParseError("bad status line")
        }
        status = code
        let minor = statusLine[statusLine.startIndex + 7]
        keepAlive = minor != UInt8(ascii: "0")
        var length: Int?
        var chunked = false
        for field in lines.dropFirst() {
            guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { throw ResponseParseError("bad header line") }
            let name = field[..<colon]
            // Only the framing fields are read, compared as bytes: most fields cost no String.
            func named(_ n: StaticString) -> Bool {
                name.count == n.utf8CodeUnitCount
                    && zip(name, UnsafeBufferPointer(start: n.utf8Start, count: n.utf8CodeUnitCount)).allSatisfy { $0 | 0x20 == $1 }
            }
            guard named("content-length") || named("transfer-encoding") || named("connection") else { continue }
            let value = String(decoding: field[(colon + 1)...], as: UTF8.self).trimmingSpaces().lowercased()
            if named("content-length") {
                guard let n = Int(value), n >= 0 else { throw ResponseParseError("bad Content-Length") }
                length = n
            } else if named("transfer-encoding") {
                chunked = value.hasSuffix("chunked")
            } else if value == "close" {
                keepAlive = false
            } else if value == "keep-alive" {
                keepAlive = true
            }
        }
        if status == 204 || status == 304 || (100..<200).contains(status) {
            state = .done
        } else if chunked {
            state = .chunkSize
        } else if let length {
            state = length == 0 ? .done : .length(length)
        } else {
            state = .untilClose
            keepAlive = false
        }
    }
}

public struct ResponseParseError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Server-Sent Events from body bytes: each event's name and data (its `data:` lines joined).
public struct SSEScanner: Sendable {
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var event = ""

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ onEvent: (_ event: String, _ data: [UInt8]) -> Void) {
        for b in bytes {
            if b != 10 {
                line.append(b)
                continue
            }
            if line.last == 13 { line.removeLast() }
            if line.isEmpty {
                if hasData { onEvent(event.isEmpty ? "message" : event, data) }
                data.removeAll(keepingCapacity: true)
                hasData = false
                event = ""
            } else if line.starts(with: Array("data:".utf8)) {
                if hasData { data.append(10) }
                var value = line.dropFirst(5)
                if value.first == 0x20 { value = value.dropFirst() }
                data.append(contentsOf: value)
                hasData = true
            } else if line.starts(with: Array("event:".utf8)) {
                event = String(decoding: line.dropFirst(6), as: UTF8.self).trimmingSpaces()
            }
            line.removeAll(keepingCapacity: true)
        }
    }
}
