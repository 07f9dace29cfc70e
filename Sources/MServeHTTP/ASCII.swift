/// Whether a String's bytes are exactly these: for names and values the parser can take from
/// literals (iterating a String's `utf8` view costs ~20 instructions a byte; this, a few).
func sameBytes(_ text: String, _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    guard text.utf8.count == bytes.count else { return false }
    var text = text
    return text.withUTF8 { t in
        for i in 0..<t.count where t[i] != bytes[i] { return false }
        return true
    }
}

/// A hexadecimal digit's value (chunk sizes, percent-escapes, IPv6 literals), or nil.
func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x41...0x46: return b - 0x41 + 10
    case 0x61...0x66: return b - 0x61 + 10
    default: return nil
    }
}

extension String {
    /// Header names compare without regard to ASCII case, and without allocating.
    package func equalsIgnoringASCIICase(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                for i in 0..<x.count where x[i] != y[i] {
                    let l = x[i] | 0x20
                    if l != y[i] | 0x20 || l < 0x61 || l > 0x7A { return false }
                }
                return true
            }
        }
    }

    /// Whether `needle` occurs in the text, byte for byte.  (The standard library's
    /// `contains(_: some StringProtocol)` without Foundation builds a search table per call: ~2 µs.)
    package func containsBytes(_ needle: String) -> Bool {
        var hay = self, n = needle
        return hay.withUTF8 { h in
            n.withUTF8 { p in
                guard !p.isEmpty else { return true }
                guard h.count >= p.count else { return false }
                for start in 0...(h.count - p.count) where h[start] == p[0] {
                    var i = 1
                    while i < p.count && h[start + i] == p[i] { i += 1 }
                    if i == p.count { return true }
                }
                return false
            }
        }
    }

    /// Whether the text holds a CR or LF, which would split a header line.
    package var containsLineBreak: Bool {
        var s = self
        return s.withUTF8 { $0.contains { $0 == 0x0D || $0 == 0x0A } }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    package func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
