/// How one request is answered: whole (`respond`) or as a stream (`beginStream`, `writeChunk`,
/// `endStream`).  It decides the framing (Content-Length, chunked, or ended by closing for
/// HTTP/1.0) and whether the connection stays open; it writes nothing once the client has gone.
public final class ResponseWriter {
    private weak var connection: HTTPConnection?
    private unowned let server: HTTPServer
    /// What the answer's framing depends on (kept, not the whole head, whose copy costs a retain
    /// per field): whether the client asked to keep the connection (false when the head was
    /// unreadable), HEAD, HTTP/1.0.
    private let keepAlive: Bool
    private let answersHead: Bool
    private let http10: Bool
    /// A request the parser refused: what the client still sends is drained before closing.
    private let rejected: Bool
    public private(set) var finished = false
    public private(set) var streaming = false
    private var streamCloses = false
    /// Body bytes sent so far, and pieces of a stream.
    public private(set) var bodyBytes = 0
    public private(set) var pieces = 0

    init(connection: HTTPConnection, server: HTTPServer, head: RequestHead?, rejected: Bool = false) {
        self.connection = connection
        self.server = server
        keepAlive = head?.keepAlive ?? false
        answersHead = head?.method == .HEAD
        http10 = head?.minorVersion == 0
        self.rejected = rejected
    }

    /// Whether the client is still there to receive what is written.
    public var clientConnected: Bool { connection.map { !$0.closed } ?? false }

    /// While stopping, the answer in flight closes the connection; requests the client pipelined
    /// behind it before the worker began to stop are answered first, not dropped, but none it sent
    /// after (a client that keeps pipelining cannot keep a retired worker serving).
    private func closes(_ headers: [(String, String)]) -> Bool {
        guard keepAlive, !rejected else { return true }
        if server.closing && !(connection?.hasInputPipelinedBeforeClosing ?? false) { return true }
        return headers.contains { $0.0.equalsIgnoringASCIICase("Connection") && $0.1.equalsIgnoringASCIICase("close") }
    }

    public func respond(status: Int, headers: [(String, String)], body: [UInt8]) {
        guard !finished, !streaming else { return }
        finished = true
        bodyBytes = body.count
        server.answered()
        guard let connection else { return }
        let close = closes(headers)
        let date = server.date()
        connection.write(close: close, finishesRequest: true, linger: rejected) { out in
            ResponseSerializer.serialize(
                status: status, headers: headers, body: answersHead ? [] : body, bodyLength: body.count,
                close: close, keepAliveHeader: http10 && !close, date: date, into: &out)
        }
    }

    /// Sends the head of a streamed response; pieces follow with `writeChunk`, the end with `endStream`.
    public func beginStream(status: Int, headers: [(String, String)]) {
        guard !finished, !streaming else { return }
        streaming = true
        // HTTP/1.0 has no chunked encoding: the body ends when the connection closes.
        streamCloses = closes(headers) || http10
        let (date, closes) = (server.date(), streamCloses)
        connection?.write(close: false) { out in
            ResponseSerializer.serialize(
                status: status, headers: headers, body: [], bodyLength: nil, close: closes,
                keepAliveHeader: false, date: date, into: &out)
        }
    }

    public func writeChunk(_ bytes: [UInt8]) {
        guard streaming, !finished, !bytes.isEmpty else { return }
        bodyBytes += bytes.count
        pieces += 1
        let framed = !streamCloses
        connection?.write(close: false) { out in
            if framed { ResponseSerializer.chunk(bytes, into: &out) } else { out.append(contentsOf: bytes) }
        }
    }

    /// Bytes written for this client and not yet sent (a stream's backlog).
    public var pendingBytes: Int { connection?.pendingOutput ?? 0 }

    /// Runs `body` once the unsent bytes fall to `lowWater` (or the client is gone).
    public func whenDrained(to lowWater: Int, _ body: @escaping () -> Void) {
        guard let connection, !connection.closed else { return body() }
        connection.whenDrained(to: lowWater, body)
    }

    public func endStream() {
        guard streaming, !finished else { return }
        finished = true
        server.answered()
        connection?.write(streamCloses ? [] : ResponseSerializer.lastChunk, close: streamCloses, finishesRequest: true)
    }
}
