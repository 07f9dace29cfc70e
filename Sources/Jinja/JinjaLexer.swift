/// A template's tokens: text between tags, and the tokens inside `{{ ... }}` and `{% ... %}`.
struct JinjaToken: Equatable {
    enum Kind: Equatable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case int(Int)
        case double(Double)
        case op(String)
        case end
    }

    let kind: Kind
    let line: Int
}

/// Splits a template into tokens with Jinja2's whitespace rules as Hugging Face configures them
/// for chat templates: `trim_blocks` (the newline after a block tag goes), `lstrip_blocks`
/// (spaces and tabs before a block tag on its own line go), `{%-`/`-%}` (all whitespace on that
/// side goes), `{%+`/`+%}` (the two options do not apply to that side); comments dropped;
/// `{% raw %}` kept as text.
struct JinjaLexer {
    private let s: [UInt8]
    private var i = 0
    private var line = 1
    private(set) var tokens: [JinjaToken] = []

    static func tokenize(_ source: String) throws(JinjaError) -> [JinjaToken] {
        var lexer = JinjaLexer(s: Array(source.utf8))
        try lexer.run()
        return lexer.tokens
    }

    private init(s: [UInt8]) { self.s = s }

    private static let operators = [
        "//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
        "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"
    ].map { Array($0.utf8) }

    private func at(_ k: Int) -> UInt8? { k < s.count ? s[k] : nil }
    private func starts(_ text: String, at k: Int) -> Bool {
        let t = Array(text.utf8)
        return k + t.count <= s.count && Array(s[k..<(k + t.count)]) == t
    }
    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x0b || c == 0x0c }

    private mutating func emitText(_ bytes: ArraySlice<UInt8>, line start: Int) {
        guard !bytes.isEmpty else { return }
        tokens.append(JinjaToken(kind: .text(String(decoding: bytes, as: UTF8.self)), line: start))
    }

    private mutating func run() throws(JinjaError) {
        var text: [UInt8] = []
        var textLine = line
        var textStart = 0
        while i < s.count {
            guard s[i] == UInt8(ascii: "{"), let next = at(i + 1),
                next == UInt8(ascii: "{") || next == UInt8(ascii: "%") || next == UInt8(ascii: "#")
            else {
                if s[i] == 0x0a { line += 1 }
                text.append(s[i])
                i += 1
                continue
            }
            let modifier = at(i + 2)
            let isBlock = next != UInt8(ascii: "{")
            if modifier == UInt8(ascii: "-") {
                while let last = text.last, JinjaLexer.isSpace(last) { text.removeLast() }
            } else if isBlock, modifier != UInt8(ascii: "+") {
                // lstrip_blocks: the tag's line holds only spaces and tabs before it.
                var k = text.count
                while k > 0, text[k - 1] == 0x20 || text[k - 1] == 0x09 { k -= 1 }
                if k > 0 ? text[k - 1] == 0x0a : textStart == 0 || s[textStart - 1] == 0x0a {
                    text.removeSubrange(k...)
                }
            }
            emitText(text[...], line: textLine)
            text = []
            let tagLine = line
            i += 2
            if modifier == UInt8(ascii: "-") || modifier == UInt8(ascii: "+") { i += 1 }
            switch next {
            case UInt8(ascii: "#"):
                try skipComment(tagLine)
            case UInt8(ascii: "{"):
                tokens.append(JinjaToken(kind: .variableBegin, line: tagLine))
                try inside(end: "}}", line: tagLine)
                tokens.append(JinjaToken(kind: .variableEnd, line: line))
            default:
                let first = tokens.count
                tokens.append(JinjaToken(kind: .blockBegin, line: tagLine))
                let trimNewline = try inside(end: "%}", line: tagLine)
                tokens.append(JinjaToken(kind: .blockEnd, line: line))
                if trimNewline { skipNewline() }
                if tokens.count == first + 3, tokens[first + 1].kind == .name("raw") {
                    tokens.removeSubrange(first...)
                    try raw(tagLine)
                }
            }
            textLine = line
            textStart = i
        }
        emitText(text[...], line: textLine)
        tokens.append(JinjaToken(kind: .end, line: line))
    }

    private mutating func skipNewline() {
        if at(i) == 0x0a {
            i += 1
            line += 1
        } else if at(i) == 0x0d, at(i + 1) == 0x0a {
            i += 2
            line += 1
        }
    }

    private mutating func skipWhitespace() {
        while let c = at(i), JinjaLexer.isSpace(c) {
            if c == 0x0a { line += 1 }
            i += 1
        }
    }

    private mutating func skipComment(_ tagLine: Int) throws(JinjaError) {
        while i < s.count, !starts("#}", at: i) {
            if s[i] == 0x0a { line += 1 }
            i += 1
        }
        guard i < s.count else { throw JinjaError(.syntax, "a comment {# is never closed", line: tagLine) }
        let minus = i > 0 && s[i - 1] == UInt8(ascii: "-")
        let plus = i > 0 && s[i - 1] == UInt8(ascii: "+")
        i += 2
        if minus { skipWhitespace() } else if !plus { skipNewline() }
    }

    /// `{% raw %}...{% endraw %}`: the text between, as it stands.
    private mutating func raw(_ tagLine: Int) throws(JinjaError) {
        let start = i, startLine = line
        while i < s.count {
            if starts("{%", at: i) {
                var k = i + 2
                if at(k) == UInt8(ascii: "-") || at(k) == UInt8(ascii: "+") { k += 1 }
                while let c = at(k), JinjaLexer.isSpace(c) { k += 1 }
                if starts("endraw", at: k) {
                    var body = Array(s[start..<i])
                    if at(i + 2) == UInt8(ascii: "-") { while let last = body.last, JinjaLexer.isSpace(last) { body.removeLast() } }
                    emitText(body[...], line: startLine)
                    k += 6
                    while let c = at(k), JinjaLexer.isSpace(c) { k += 1 }
                    let minus = at(k) == UInt8(ascii: "-")
                    if minus || at(k) == UInt8(ascii: "+") { k += 1 }
                    guard starts("%}", at: k) else { throw JinjaError(.syntax, "endraw is not closed by %}", line: line) }
                    i = k + 2
                    if minus { skipWhitespace() } else { skipNewline() }
                    return
                }
            }
            if s[i] == 0x0a { line += 1 }
            i += 1
        }
        throw JinjaError(.syntax, "raw is never closed by endraw", line: tagLine)
    }

    /// The tokens up to `end` (`}}` or `%}`, with `-` or `+` before it); true if a newline after a
    /// block tag is to go (trim_blocks).
    @discardableResult
    private mutating func inside(end: String, line tagLine: Int) throws(JinjaError) -> Bool {
        var depth = 0
        while true {
            skipWhitespace()
            guard let c = at(i) else {
                throw JinjaError(.syntax, "a tag opened at line \(tagLine) is never closed (\(end) expected)", line: line)
            }
            if depth == 0 {
                for modifier in ["-", "+", ""] where starts(modifier + end, at: i) {
                    i += modifier.utf8.count + 2
                    if modifier == "-" { skipWhitespace() }
                    return modifier == "" && end == "%}"
                }
            }
            if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                tokens.append(JinjaToken(kind: .string(try string(quote: c)), line: line))
            } else if JinjaLexer.isNameStart(c) {
                let start = i
                while let d = at(i), JinjaLexer.isNameStart(d) || (d >= 0x30 && d <= 0x39) { i += 1 }
                tokens.append(JinjaToken(kind: .name(String(decoding: s[start..<i], as: UTF8.self)), line: line))
            } else if c >= 0x30 && c <= 0x39 {
                tokens.append(JinjaToken(kind: number(), line: line))
            } else if let op = JinjaLexer.operators.first(where: { starts(String(decoding: $0, as: UTF8.self), at: i) }) {
                let o = String(decoding: op, as: UTF8.self)
                if o == "(" || o == "[" || o == "{" { depth += 1 }
                if o == ")" || o == "]" || o == "}" { depth -= 1 }
                i += op.count
                tokens.append(JinjaToken(kind: .op(o), line: line))
            } else {
                throw JinjaError(.syntax, "unexpected character '\(String(decoding: [c], as: UTF8.self))'", line: line)
            }
        }
    }

    private static func isNameStart(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f
    }

    private mutating func number() -> JinjaToken.Kind {
        let start = i
        func digits() { while let d = at(i), (d >= 0x30 && d <= 0x39) || d == 0x5f { i += 1 } }
        digits()
        var isFloat = false
        if at(i) == UInt8(ascii: "."), let d = at(i + 1), d >= 0x30 && d <= 0x39 {
            isFloat = true
            i += 1
            digits()
        }
        if at(i) == UInt8(ascii: "e") || at(i) == UInt8(ascii: "E") {
            var k = i + 1
            if at(k) == UInt8(ascii: "+") || at(k) == UInt8(ascii: "-") { k += 1 }
            if let d = at(k), d >= 0x30 && d <= 0x39 {
                isFloat = true
                i = k
                digits()
            }
        }
        let text = String(String(decoding: s[start..<i], as: UTF8.self).filter { $0 != "_" })
        if !isFloat, let n = Int(text) { return .int(n) }
        return .double(Double(text) ?? 0)
    }

    /// A quoted string, with Python's escapes.
    private mutating func string(quote: UInt8) throws(JinjaError) -> String {
        let startLine = line
        i += 1
        var out: [UInt8] = []
        while let c = at(i), c != quote {
            if c == 0x0a { line += 1 }
            if c == UInt8(ascii: "\\"), let e = at(i + 1) {
                i += 2
                switch e {
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "0"): out.append(0)
                case UInt8(ascii: "u"), UInt8(ascii: "x"):
                    let n = e == UInt8(ascii: "u") ? 4 : 2
                    let hex = i + n <= s.count ? String(decoding: s[i..<(i + n)], as: UTF8.self) : ""
                    if let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) {
                        out += Array(String(Character(scalar)).utf8)
                        i += n
                    } else {
                        out += [UInt8(ascii: "\\"), e]
                    }
                case 0x0a: line += 1
                case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
                default: out += [UInt8(ascii: "\\"), e]
                }
                continue
            }
            out.append(c)
            i += 1
        }
        guard at(i) == quote else { throw JinjaError(.syntax, "a string opened at line \(startLine) is never closed", line: startLine) }
        i += 1
        return String(decoding: out, as: UTF8.self)
    }
}
