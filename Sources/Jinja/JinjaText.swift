/// A string with where each part came from: the template's own text (`trusted`), or the data it
/// was given (a message's content, a tool's description).  Concatenation keeps the parts apart,
/// so that what the template wrote can be told from what a user wrote even inside one string:
/// a tokenizer reads control tokens (`<|im_start|>`) only in the template's parts, and a message
/// holding `<|im_end|>` cannot close its turn.  Any other operation on a string that holds data
/// (`trim`, `replace`, `upper`, ...) makes all of its result data.
public struct JinjaText: Sendable, Hashable, Comparable {
    public struct Part: Sendable, Hashable {
        public var text: String
        public var trusted: Bool
    }

    public private(set) var string: String
    public private(set) var parts: [Part]
    /// Marked safe (`|safe`, Python's `Markup`): adding a plain string to it escapes that string's
    /// HTML characters, as Jinja2 does even without autoescaping (functionary's template relies on it).
    var isMarkup = false

    public init(_ string: String, trusted: Bool) {
        self.string = string
        parts = string.isEmpty ? [] : [Part(text: string, trusted: trusted)]
    }

    public init() {
        string = ""
        parts = []
    }

    /// True when no part of it is data.
    public var isTrusted: Bool { parts.allSatisfy(\.trusted) }

    /// A string computed from these: trusted only if every one of them is.
    public static func derived(_ string: String, from sources: JinjaText...) -> JinjaText {
        JinjaText(string, trusted: sources.allSatisfy(\.isTrusted))
    }

    public mutating func append(_ other: JinjaText) {
        string += other.string
        for p in other.parts {
            if let last = parts.last, last.trusted == p.trusted {
                parts[parts.count - 1].text += p.text
            } else {
                parts.append(p)
            }
        }
    }

    public static func + (a: JinjaText, b: JinjaText) -> JinjaText {
        var out = a
        out.append(b)
        out.isMarkup = a.isMarkup && b.isMarkup
        return out
    }

    /// markupsafe's `escape`.
    static func escapeHTML(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `a + b` with Python's `Markup` rule: a plain side added to a safe one is escaped.
    static func adding(_ a: JinjaText, _ b: JinjaText) -> JinjaText {
        guard a.isMarkup != b.isMarkup else { return a + b }
        func escaped(_ x: JinjaText) -> JinjaText { x.isMarkup ? x : derived(escapeHTML(x.string), from: x) }
        var out = escaped(a) + escaped(b)
        out.isMarkup = true
        return out
    }

    /// The offsets, in Unicode scalars, of every scalar of the template's own parts.
    public var trustedScalarOffsets: Set<Int> {
        var out = Set<Int>()
        var at = 0
        for p in parts {
            let n = p.text.unicodeScalars.count
            if p.trusted { out.formUnion(at..<(at + n)) }
            at += n
        }
        return out
    }

    // Equality and order are the text's alone, as Python compares strings.
    public static func == (a: JinjaText, b: JinjaText) -> Bool { a.string == b.string }
    public func hash(into h: inout Hasher) { h.combine(string) }
    public static func < (a: JinjaText, b: JinjaText) -> Bool {
        // Python orders strings by code point, not by Swift's Unicode canonical ordering.
        a.string.unicodeScalars.lexicographicallyPrecedes(b.string.unicodeScalars)
    }
}
