extension JSON {
    /// Compact serialisation (no spaces), the form responses and log lines use.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        JSONWriter.write(self, into: &out)
        return out
    }

    /// An object serialised with one more pair written first, as `setting(key, value, first: true)`
    /// would give for a key the object lacks, without copying its pairs.
    public func serialized(leading key: String, _ value: JSON) -> [UInt8] {
        guard case .object(let pairs) = self else { return serialized() }
        var out: [UInt8] = []
        out.reserveCapacity(64)
        JSONWriter.writeObject(pairs, leading: (key, value), into: &out)
        return out
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }
}

enum JSONWriter {
    static func write(_ value: JSON, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): writeInteger(i, into: &out)
        case .double(let d): writeDouble(d, into: &out)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .floats(let items):
            out.append(UInt8(ascii: "["))
            for (i, f) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                if f.isFinite { out.append(contentsOf: f.description.utf8) } else { out.append(contentsOf: "null".utf8) }
            }
            out.append(UInt8(ascii: "]"))
        case .object(let pairs): writeObject(pairs, into: &out)
        }
    }

    /// `{"k":v,...}`, with `leading` written as the first pair if given.
    static func writeObject(_ pairs: [(String, JSON)], leading: (String, JSON)? = nil, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        var first = true
        func pair(_ k: String, _ v: JSON) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            writeString(k, into: &out)
            out.append(UInt8(ascii: ":"))
            write(v, into: &out)
        }
        if let (k, v) = leading { pair(k, v) }
        for (k, v) in pairs { pair(k, v) }
        out.append(UInt8(ascii: "}"))
    }

    /// Digits straight into the output, without the String that `String(i)` makes.
    static func writeInteger(_ i: Int64, into out: inout [UInt8]) {
        if i < 0 { out.append(UInt8(ascii: "-")) }
        var m = i.magnitude
        if m < 10 { out.append(UInt8(48 + m)); return }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var start = 20
            repeat {
                start -= 1
                buffer[start] = UInt8(48 + m % 10)
                m /= 10
            } while m > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start...]))
        }
    }

    /// JSON has no NaN or infinity: they are written as null rather than as invalid JSON.
    static func writeDouble(_ d: Double, into out: inout [UInt8]) {
        guard d.isFinite else { out.append(contentsOf: "null".utf8); return }
        if d == d.rounded(), abs(d) < 1e15 {
            // Integral values print without an exponent but keep a fraction so they stay floats.
            writeInteger(Int64(d), into: &out)
            out.append(contentsOf: ".0".utf8)
            return
        }
        out.append(contentsOf: d.description.utf8)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        // Most keys and values need no escaping: checked, then copied in one go.
        var s = s
        if s.withUTF8({ bytes in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || $0 == 0x7F }) else { return false }
            out.append(contentsOf: bytes)
            return true
        }) {
            out.append(UInt8(ascii: "\""))
            return
        }
        for b in s.utf8 {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
