extension String {
    /// Header names compare without regard to ASCII case, and without allocating.
    func equalsIgnoringASCIICase(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A) }
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
