/// `tojson` as transformers defines it for chat templates -- Python's
/// `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)` --
/// byte for byte: tool definitions reach the model in exactly the text it was trained on.
struct JinjaJSON {
    var indent: String?
    var itemSeparator: String
    var keySeparator: String
    var sortKeys = false
    var ensureASCII = false

    init(indent: String?, separators: (String, String)?) {
        self.indent = indent
        itemSeparator = separators?.0 ?? (indent == nil ? ", " : ",")
        keySeparator = separators?.1 ?? ": "
    }

    func encode(_ v: JinjaValue) throws(JinjaError) -> String {
        var out = ""
        try write(v, level: 0, into: &out)
        return out
    }

    private func write(_ v: JinjaValue, level: Int, into out: inout String) throws(JinjaError) {
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : JinjaValue.pythonFloat(d)
        case .string(let s): quote(s.string, into: &out)
        case .list(let items):
            guard !items.isEmpty else {
                out += "[]"
                return
            }
            out += "["
            for (k, item) in items.enumerated() {
                if k > 0 { out += itemSeparator }
                newline(level + 1, into: &out)
                try write(item, level: level + 1, into: &out)
            }
            newline(level, into: &out)
            out += "]"
        case .dict(let d):
            guard !d.isEmpty else {
                out += "{}"
                return
            }
            out += "{"
            let keys = sortKeys ? d.keys.sorted { $0.text.unicodeScalars.lexicographicallyPrecedes($1.text.unicodeScalars) } : d.keys
            for (k, key) in keys.enumerated() {
                if k > 0 { out += itemSeparator }
                newline(level + 1, into: &out)
                quote(key.text, into: &out)
                out += keySeparator
                try write(d[key] ?? .none, level: level + 1, into: &out)
            }
            newline(level, into: &out)
            out += "}"
        case .undefined, .namespace, .function, .loop:
            throw JinjaError(.render, "Object of type \(v.typeName) is not JSON serializable")
        }
    }

    private func newline(_ level: Int, into out: inout String) {
        guard let indent else { return }
        out += "\n" + String(repeating: indent, count: level)
    }

    private func quote(_ s: String, into out: inout String) {
        out += "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || (ensureASCII && c.value > 0x7f) {
                    for unit in String(c).utf16 { out += "\\u" + JinjaJSON.hex4(unit) }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ u: UInt16) -> String {
        let h = String(u, radix: 16)
        return String(repeating: "0", count: 4 - h.count) + h
    }
}
