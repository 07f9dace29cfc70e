/// Percent-decoding and application/x-www-form-urlencoded parsing.
package enum URLCoding {
    package static func decode<C: Collection>(_ bytes: C, plusIsSpace: Bool) -> String where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "%") {
                let h1 = bytes.index(after: i)
                if h1 != bytes.endIndex {
                    let h2 = bytes.index(after: h1)
                    if h2 != bytes.endIndex, let hi = hexValue(bytes[h1]), let lo = hexValue(bytes[h2]) {
                        out.append(hi << 4 | lo)
                        i = bytes.index(after: h2)
                        continue
                    }
                }
                out.append(b)
            } else if b == UInt8(ascii: "+") && plusIsSpace {
                out.append(0x20)
            } else {
                out.append(b)
            }
            i = bytes.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// "a=1&b=x+y&a=2" -> [("a","1"),("b","x y"),("a","2")]
    package static func parseForm<C: Collection>(_ bytes: C) -> [(String, String)] where C.Element == UInt8, C.SubSequence: Collection {
        var out: [(String, String)] = []
        for part in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            if let eq = part.firstIndex(of: UInt8(ascii: "=")) {
                out.append(
                    (
                        decode(part[part.startIndex..<eq], plusIsSpace: true),
                        decode(part[part.index(after: eq)...], plusIsSpace: true)
                    ))
            } else {
                out.append((decode(part, plusIsSpace: true), ""))
            }
        }
        return out
    }
}
