import MServe

/// gunicornc's framing on the control socket: a 4-byte big-endian length, then that many bytes of
/// UTF-8 JSON.  Pure: bytes go in as they arrive, whole payloads come out.
public struct ControlFrameDecoder: Sendable {
    /// gunicorn allows 16 MiB; a control command is a few dozen bytes, and the master should not
    /// hold more than this for any client.
    public static let maxPayload = 64 * 1024

    private var buffer: [UInt8] = []

    public init() {}

    /// Bytes received and not yet returned as a payload.
    public var pending: Int { buffer.count }

    public mutating func append(_ bytes: some Collection<UInt8>) { buffer.append(contentsOf: bytes) }

    /// The next whole payload, nil until one has arrived; a length over `maxPayload` is an error
    /// (the connection cannot be resynchronised after it).
    public mutating func next() throws(ControlFrameError) -> [UInt8]? {
        guard buffer.count >= 4 else { return nil }
        let length = buffer[0..<4].reduce(0) { $0 << 8 | Int($1) }
        guard length <= ControlFrameDecoder.maxPayload else { throw ControlFrameError(length: length) }
        guard buffer.count >= 4 + length else { return nil }
        let payload = Array(buffer[4..<(4 + length)])
        buffer.removeFirst(4 + length)
        return payload
    }

    public static func encode(_ payload: [UInt8]) -> [UInt8] {
        let n = UInt32(payload.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
    }
}

public struct ControlFrameError: Error, Equatable, CustomStringConvertible {
    public let length: Int
    public var description: String { "message of \(length) bytes is over the limit of \(ControlFrameDecoder.maxPayload)" }
}
