/// A growable byte buffer for what the request path writes by the piece: log lines, response
/// heads, a connection's output.  Array's `append(contentsOf:)` costs ~90 instructions a call
/// (uniqueness check, capacity, generic copy), and a line or a head is made of tens of small
/// pieces; here an append is a capacity test and a copy.  It owns its storage, so it cannot be
/// copied: it is passed `inout` to whatever builds into it.  Sendable because it is the sole owner
/// of its storage (which the compiler cannot see through the pointer): a log line is built under
/// one lock and stamped under another.
package struct ByteWriter: ~Copyable, @unchecked Sendable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var _count = 0
    @usableFromInline var _capacity: Int
    package var count: Int { _count }
    package var capacity: Int { _capacity }

    package init(capacity: Int = 256) {
        _capacity = Swift.max(16, capacity)
        base = .allocate(capacity: _capacity)
    }

    deinit { base.deallocate() }

    package var isEmpty: Bool { count == 0 }

    // The appends are inlinable: across modules a call would cost what they save.
    @inlinable @inline(__always)
    mutating func reserve(_ n: Int) {
        if _count + n > _capacity { grow(to: _count + n) }
    }

    @usableFromInline
    mutating func grow(to minimum: Int) {
        let newCapacity = Swift.max(minimum, _capacity * 2)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: _count)
        base.deallocate()
        base = newBase
        _capacity = newCapacity
    }

    @inlinable @inline(__always)
    package mutating func append(_ byte: UInt8) {
        reserve(1)
        base[_count] = byte
        _count += 1
    }

    @inlinable @inline(__always)
    package mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        UnsafeMutableRawPointer(base + _count).copyMemory(from: source, byteCount: bytes.count)
        _count += bytes.count
    }

    @inlinable @inline(__always)
    package mutating func append(contentsOf bytes: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: UnsafeRawBufferPointer(bytes))
    }

    @inlinable @inline(__always)
    package mutating func append(_ text: StaticString) {
        append(contentsOf: UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    package mutating func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBytes { append(contentsOf: $0) }
    }

    package mutating func append(contentsOf bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { append(contentsOf: $0) }
    }

    /// A String's UTF-8 bytes.  (Not `append(_:)`: a literal would pick this over StaticString's.)
    package mutating func append(string text: String) {
        var text = text
        text.withUTF8 { append(contentsOf: $0) }
    }

    /// Decimal digits of n, as `String(n)` writes them.
    package mutating func appendDecimal(_ n: Int) {
        reserve(20)
        var m = n.magnitude
        if n < 0 {
            base[_count] = UInt8(ascii: "-")
            _count += 1
        }
        var digits = 1
        var power: UInt = 10
        while digits < 20 && m >= power {
            digits += 1
            if power > UInt.max / 10 { break }
            power *= 10
        }
        var i = _count + digits - 1
        repeat {
            base[i] = UInt8(48 + m % 10)
            m /= 10
            i -= 1
        } while m > 0
        _count += digits
    }

    /// Drops the bytes past `newCount`.
    package mutating func truncate(to newCount: Int) {
        _count = Swift.min(_count, Swift.max(0, newCount))
    }

    /// Empties the buffer; storage above `limit` bytes is given back (one large answer must not
    /// pin its size for the connection's life).
    package mutating func removeAll(keepingCapacityUpTo limit: Int = Int.max) {
        _count = 0
        if _capacity > limit {
            base.deallocate()
            _capacity = Swift.max(16, limit)
            base = .allocate(capacity: _capacity)
        }
    }

    /// Drops the first `n` bytes (already sent), moving the rest to the front.
    package mutating func removeFirst(_ n: Int) {
        let n = Swift.min(n, _count)
        guard n > 0 else { return }
        (base).update(from: base + n, count: _count - n)
        _count -= n
    }

    /// The bytes written so far (valid until the next change).
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The bytes from `offset` on, as an array.
    package func bytes(from offset: Int = 0) -> [UInt8] {
        Array(UnsafeBufferPointer(start: base + offset, count: count - offset))
    }
}
