/// The id that ties a response to its log lines.  Generated ids are 20 hex digits: 12 random per
/// generator, then its counter, so they are unique across workers without coordination.  Each
/// worker's context owns one, made after fork, so that no two workers share a prefix.
public final class RecordID {
    private let prefix: [UInt8]
    private var counter: UInt32
    public static let maxLength = 128

    public init(seed: UInt64 = UInt64.random(in: 0...UInt64.max)) {
        prefix = Array(RecordID.hex(seed & 0xFFFF_FFFF_FFFF, digits: 12).utf8)
        counter = UInt32(truncatingIfNeeded: seed >> 48)
    }

    public func generate() -> String {
        counter &+= 1
        return String(decoding: prefix, as: UTF8.self) + RecordID.hex(UInt64(counter), digits: 8)
    }

    private static func hex(_ v: UInt64, digits: Int) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }

    /// A client's id is echoed in a header and in log lines: 1-128 printable ASCII characters, no spaces.
    public static func isValid(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= maxLength && u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// From the JSON body's "recordid" (a string or an integer), else X-Request-Id, else generated.
    /// An invalid client id is replaced by a generated one, and reported so the request gets a 400.
    func resolve(bodyValue: JSON?, header: String?) -> (id: String, value: JSON, error: HTTPError?) {
        switch bodyValue {
        case .some(.string(let s)):
            if RecordID.isValid(s) { return (s, .string(s), nil) }
            return invalid("recordid")
        case .some(.int(let i)):
            return (String(i), .int(i), nil)
        case .some(.null), nil:
            break
        case .some:
            return invalid("recordid")
        }
        if let h = header {
            if RecordID.isValid(h) { return (h, .string(h), nil) }
            return invalid("X-Request-Id")
        }
        let g = generate()
        return (g, .string(g), nil)
    }

    private func invalid(_ what: String) -> (String, JSON, HTTPError?) {
        let g = generate()
        return (
            g, .string(g),
            HTTPError(400, "\(what) must be a string of 1-\(RecordID.maxLength) printable ASCII characters without spaces, or an integer")
        )
    }
}
