extension Grammar {
    /// A grammar in llama.cpp's GBNF: `name ::= alternatives` rules (`root` the start), sequences of
    /// `"literals"` (escapes `\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH`), `[classes]` (`[^...]`, ranges),
    /// `.` (any character), rule names, `( groups )` and `| alternatives`, repeated by `*`, `+`,
    /// `?`, `{m}`, `{m,}`, `{m,n}`; `#` comments.  A rule runs until the next `name ::=`, so
    /// alternatives may continue on the lines after it.
    public init(gbnf text: String, root: String = "root") throws(GrammarError) {
        var p = GBNFParser(Array(text.unicodeScalars))
        try p.parseRules()
        guard let r = p.ids[root], p.defined.contains(r) else { throw GrammarError("the grammar has no \(root) rule") }
        try self.init(rules: p.rules, names: p.names, root: r)
    }
}

/// Repetitions above this many copies are refused (each copy is an element of the grammar).
let maxRepetitions = 1000

struct GBNFParser {
    let s: [Unicode.Scalar]
    var i = 0
    var rules: [[[Grammar.Element]]] = []
    var names: [String] = []
    var ids: [String: Int32] = [:]
    var defined: Set<Int32> = []

    init(_ s: [Unicode.Scalar]) { self.s = s }

    mutating func id(_ name: String) -> Int32 {
        if let r = ids[name] { return r }
        let r = Int32(names.count)
        names.append(name)
        ids[name] = r
        rules.append([])
        return r
    }

    /// A rule made for a group or a repetition.
    mutating func helper(_ base: String, _ alternatives: [[Grammar.Element]]) -> Int32 {
        let r = id("\(base)-\(names.count)")
        rules[Int(r)] = alternatives
        defined.insert(r)
        return r
    }

    func error(_ what: String) -> GrammarError {
        var line = 1, column = 1
        for c in s[..<min(i, s.count)] { if c == "\n" { line += 1; column = 1 } else { column += 1 } }
        return GrammarError("grammar, line \(line) column \(column): \(what)")
    }

    static func isName(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-" || c == "_"
    }

    mutating func skipSpace() {
        while i < s.count {
            if s[i] == "#" {
                while i < s.count && s[i] != "\n" { i += 1 }
            } else if s[i] == " " || s[i] == "\t" || s[i] == "\n" || s[i] == "\r" {
                i += 1
            } else {
                return
            }
        }
    }

    mutating func name() -> String? {
        let start = i
        while i < s.count && GBNFParser.isName(s[i]) { i += 1 }
        return i > start ? String(String.UnicodeScalarView(s[start..<i])) : nil
    }

    /// Whether a rule's head (`name ::=`) starts here.
    func atRuleHead() -> Bool {
        var j = i
        while j < s.count && GBNFParser.isName(s[j]) { j += 1 }
        guard j > i else { return false }
        while j < s.count && (s[j] == " " || s[j] == "\t") { j += 1 }
        return j + 2 < s.count && s[j] == ":" && s[j + 1] == ":" && s[j + 2] == "="
    }

    mutating func parseRules() throws(GrammarError) {
        skipSpace()
        guard i < s.count else { throw error("the grammar is empty") }
        while i < s.count {
            guard let n = name() else { throw error("expected a rule name") }
            skipSpace()
            guard i + 2 < s.count, s[i] == ":", s[i + 1] == ":", s[i + 2] == "=" else { throw error("expected ::= after \(n)") }
            i += 3
            let r = id(n)
            guard !defined.contains(r) else { throw error("rule \(n) is defined twice") }
            rules[Int(r)] = try alternatives(n, topLevel: true)
            defined.insert(r)
            skipSpace()
        }
    }

    mutating func alternatives(_ rule: String, topLevel: Bool) throws(GrammarError) -> [[Grammar.Element]] {
        var alts = [try sequence(rule, topLevel: topLevel)]
        while i < s.count && s[i] == "|" {
            i += 1
            alts.append(try sequence(rule, topLevel: topLevel))
        }
        return alts
    }

    mutating func sequence(_ rule: String, topLevel: Bool) throws(GrammarError) -> [Grammar.Element] {
        var out: [Grammar.Element] = []
        var last = 0  // where the last symbol begins in `out`: what a repetition repeats
        while true {
            skipSpace()
            guard i < s.count else { break }
            let c = s[i]
            if c == "|" || c == ")" { break }
            if topLevel && atRuleHead() { break }
            switch c {
            case "\"":
                i += 1
                last = out.count
                while true {
                    guard i < s.count, s[i] != "\n" else { throw error("unterminated string") }
                    if s[i] == "\"" { i += 1; break }
                    let v = try scalar()
                    out.append(.chars([v...v], negated: false))
                }
            case "[":
                i += 1
                last = out.count
                var negated = false
                if i < s.count && s[i] == "^" { negated = true; i += 1 }
                var ranges: [ClosedRange<UInt32>] = []
                while true {
                    guard i < s.count else { throw error("unterminated character class") }
                    if s[i] == "]" { i += 1; break }
                    let lo = try scalar()
                    if i + 1 < s.count && s[i] == "-" && s[i + 1] != "]" {
                        i += 1
                        let hi = try scalar()
                        guard lo <= hi else { throw error("range out of order") }
                        ranges.append(lo...hi)
                    } else {
                        ranges.append(lo...lo)
                    }
                }
                out.append(.chars(ranges, negated: negated))
            case ".":
                i += 1
                last = out.count
                out.append(.chars([0...0x10FFFF], negated: false))
            case "(":
                i += 1
                last = out.count
                let inner = try alternatives(rule, topLevel: false)
                skipSpace()
                guard i < s.count, s[i] == ")" else { throw error("expected )") }
                i += 1
                out.append(.rule(helper(rule, inner)))
            case "*", "+", "?", "{":
                guard last < out.count else { throw error("\(c) repeats nothing") }
                let (least, most) = try repetition()
                let item = Array(out[last...])
                out.removeSubrange(last...)
                out += repeated(item, least: least, most: most, rule: rule)
                last = out.count
            default:
                guard GBNFParser.isName(c), let n = name() else { throw error("unexpected \(c)") }
                last = out.count
                out.append(.rule(id(n)))
            }
        }
        return out
    }

    /// `*`, `+`, `?` or `{m}`, `{m,}`, `{m,n}`: the least and most copies (nil: no limit).
    mutating func repetition() throws(GrammarError) -> (Int, Int?) {
        let c = s[i]
        i += 1
        switch c {
        case "*": return (0, nil)
        case "+": return (1, nil)
        case "?": return (0, 1)
        default:
            func number() -> Int? {
                var v = 0, any = false
                while i < s.count, let d = Int(String(s[i])), s[i].isASCII { v = v * 10 + d; any = true; i += 1; if v > 1_000_000 { return v } }
                return any ? v : nil
            }
            skipSpace()
            guard let least = number() else { throw error("expected a number in {}") }
            skipSpace()
            var most: Int? = least
            if i < s.count && s[i] == "," {
                i += 1
                skipSpace()
                most = number()
                skipSpace()
            }
            guard i < s.count, s[i] == "}" else { throw error("expected }") }
            i += 1
            if let most, most < least { throw error("{\(least),\(most)}: the most is below the least") }
            guard max(least, most ?? 0) <= maxRepetitions else { throw error("repetitions above \(maxRepetitions) are not supported") }
            return (least, most)
        }
    }

    /// `item` repeated: `least` copies, then up to `most - least` optional ones (nested, so that
    /// each must follow the one before), or any number more.
    mutating func repeated(_ item: [Grammar.Element], least: Int, most: Int?, rule: String) -> [Grammar.Element] {
        var out: [Grammar.Element] = []
        for _ in 0..<least { out += item }
        guard let most else {
            // r ::= item r | ""
            let r = id("\(rule)-\(names.count)")
            rules[Int(r)] = [item + [.rule(r)], []]
            defined.insert(r)
            return out + [.rule(r)]
        }
        var tail: Int32?
        for _ in 0..<(most - least) {
            let r = helper(rule, [item + (tail.map { [.rule($0)] } ?? []), []])
            tail = r
        }
        return out + (tail.map { [.rule($0)] } ?? [])
    }

    /// One character of a literal or class, escapes read.
    mutating func scalar() throws(GrammarError) -> UInt32 {
        let c = s[i]
        i += 1
        guard c == "\\" else { return c.value }
        guard i < s.count else { throw error("unfinished escape") }
        let e = s[i]
        i += 1
        switch e {
        case "n": return 0x0A
        case "r": return 0x0D
        case "t": return 0x09
        case "\\", "\"", "[", "]", "-", "^", "/", "'": return e.value
        case "x", "u", "U":
            let digits = e == "x" ? 2 : e == "u" ? 4 : 8
            guard i + digits <= s.count, let v = UInt32(String(String.UnicodeScalarView(s[i..<(i + digits)])), radix: 16), v <= 0x10FFFF else {
                throw error("bad \\\(e) escape")
            }
            i += digits
            return v
        default: throw error("unknown escape \\\(e)")
        }
    }
}
