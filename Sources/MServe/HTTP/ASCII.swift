extension String {
    /// Header names compare without regard to ASCII case, and without allocating.
    func equalsIgnoringASCIICase(_ other: String) -> Bool {
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for i in 0..<x.count where x[i] != y[i] {
                    let l = x[i] | 0x20
                    if l != y[i] | 0x20 || l < 0x61 || l > 0x7A { return false }
                }
                return true
            }
        }
    }

    /// Whether the text holds a CR or LF, which would split a header line.
    var containsLineBreak: Bool {
        var s = self
        return s.withUTF8 { $0.contains { $0 == 0x0D || $0 == 0x0A } }
    }
}

extension Array where Element == UInt8 {
    /// Decimal digits of n, without the String that `String(n)` would allocate.
    mutating func appendDecimal(_ n: Int) {
        if n < 0 {
            append(UInt8(ascii: "-"))
            appendDecimal(0 - n)
            return
        }
        if n >= 10 { appendDecimal(n / 10) }
        append(UInt8(48 + n % 10))
    }
}
