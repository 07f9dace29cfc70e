#if canImport(Glibc)
    import Glibc
#endif

/// Why a body is not valid JSON, with the byte offset a client can act on.
public struct JSONParseError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let offset: Int
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 parser over raw bytes: no trailing commas, no comments, no NaN, nesting bounded
/// so that hostile input cannot exhaust the stack.
public struct JSONParser {
    public static let maxDepth = 256

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONParseError) -> JSON in
            var parser = JSONParser(buf)
            parser.skipSpace()
            let value = try parser.parseValue(depth: 0)
            parser.skipSpace()
            if parser.pos != buf.count { throw parser.error("unexpected data after the JSON value") }
            return value
        }
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        try parse(Array(text.utf8))
    }

    private let buf: UnsafeBufferPointer<UInt8>
    private var pos = 0

    private init(_ buf: UnsafeBufferPointer<UInt8>) { self.buf = buf }

    private func error(_ message: String) -> JSONParseError { JSONParseError(message: message, offset: pos) }

    private mutating func skipSpace() {
        while pos < buf.count {
            switch buf[pos] {
            case 0x20, 0x0A, 0x0D, 0x09: pos += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(JSONParseError) -> JSON {
        guard pos < buf.count else { throw error(pos == 0 ? "empty body" : "unexpected end of input") }
        switch buf[pos] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected character '\(printable(buf[pos]))'")
        }
    }

    private func printable(_ b: UInt8) -> String {
        (0x20..<0x7F).contains(b) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= buf.count else { throw error("invalid literal") }
        let p = word.utf8Start
        for i in 0..<n where buf[pos + i] != p[i] { throw error("invalid literal") }
        pos += n
    }

    private mutating func parseObject(depth: Int) throws(JSONParseError) -> JSON {
        if depth > JSONParser.maxDepth { throw error("nesting deeper than \(JSONParser.maxDepth)") }
        pos += 1
        var pairs: [(String, JSON)] = []
        skipSpace()
        if pos < buf.count && buf[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
        // Most objects are small: one allocation for up to four pairs, not one at the first and second.
        pairs.reserveCapacity(4)
        while true {
            skipSpace()
            guard pos < buf.count, buf[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
            let key = try parseString()
            skipSpace()
            guard pos < buf.count, buf[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
            pos += 1
            skipSpace()
            pairs.append((key, try parseValue(depth: depth)))
            skipSpace()
            guard pos < buf.count else { throw error("unexpected end of input") }
            if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if buf[pos] == UInt8(ascii: "}") { pos += 1; return .object(pairs) }
            throw error("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws(JSONParseError) -> JSON {
        if depth > JSONParser.maxDepth { throw error("nesting deeper than \(JSONParser.maxDepth)") }
        pos += 1
        var items: [JSON] = []
        skipSpace()
        if pos < buf.count && buf[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try parseValue(depth: depth))
            skipSpace()
            guard pos < buf.count else { throw error("unexpected end of input") }
            if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if buf[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
            throw error("expected ',' or ']'")
        }
    }

    private mutating func parseString() throws(JSONParseError) -> String {
        pos += 1
        let start = pos
        // Fast path: no escapes, valid UTF-8; ASCII (most keys and values) needs no validating.
        var high: UInt8 = 0
        while pos < buf.count {
            let b = buf[pos]
            high |= b
            if b == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: buf[start..<pos])
                pos += 1
                if high < 0x80 { return String(decoding: slice, as: UTF8.self) }
                guard let s = String(validating: slice, as: UTF8.self) else {
                    pos = start
                    throw error("string is not valid UTF-8")
                }
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw error("control character in string") }
            pos += 1
        }
        var out = Array(buf[start..<pos])
        while pos < buf.count {
            let b = buf[pos]
            switch b {
            case UInt8(ascii: "\""):
                pos += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                pos += 1
                guard pos < buf.count else { throw error("unexpected end of input") }
                let e = buf[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard pos + 1 < buf.count, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u")
                        else { throw error("unpaired surrogate in \\u escape") }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: String(Character(UnicodeScalar(scalar)!)).utf8)
                default: throw error("invalid escape")
                }
            default:
                if b < 0x20 { throw error("control character in string") }
                out.append(b)
                pos += 1
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard pos + 4 <= buf.count else { throw error("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            pos += 1
        }
        return v
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSON {
        let start = pos
        var isInteger = true
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < buf.count, isDigit(buf[pos]) else { throw error("invalid number") }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < buf.count && isDigit(buf[pos]) { throw error("leading zero in number") }
        } else {
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        }
        if pos < buf.count && buf[pos] == UInt8(ascii: ".") {
            isInteger = false
            pos += 1
            guard pos < buf.count, isDigit(buf[pos]) else { throw error("invalid number") }
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        }
        if pos < buf.count && (buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E")) {
            isInteger = false
            pos += 1
            if pos < buf.count && (buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < buf.count, isDigit(buf[pos]) else { throw error("invalid number") }
            while pos < buf.count && isDigit(buf[pos]) { pos += 1 }
        }
        let slice = UnsafeBufferPointer(rebasing: buf[start..<pos])
        if isInteger, let i = parseInt64(slice) { return .int(i) }
        // strtod needs a terminated string; numbers are short, so copy to a small buffer.
        var tmp = [CChar](repeating: 0, count: slice.count + 1)
        for (i, b) in slice.enumerated() { tmp[i] = CChar(bitPattern: b) }
        let d = strtod(tmp, nil)
        guard d.isFinite else { pos = start; throw error("number out of range") }
        return .double(d)
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    private func parseInt64(_ s: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0
        let negative = s[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        var v: Int64 = 0
        while i < s.count {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let d = Int64(s[i] - 0x30)
            let (a, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = a
            i += 1
        }
        return v
    }
}
