/// Tokens to statements and expressions, with Jinja2's grammar and precedence (lowest first):
/// `x if c else y`, `or`, `and`, `not`, comparisons and `in`, `+ -`, `~`, `* / // %`, `**`,
/// unary `- +`, then a primary with its `.attr`, `[item]`, `(call)`, `|filter` and `is test`.
struct JinjaParser {
    private let tokens: [JinjaToken]
    private var i = 0

    static func parse(_ source: String) throws(JinjaError) -> [JinjaNode] {
        var p = JinjaParser(tokens: try JinjaLexer.tokenize(source))
        let (nodes, stop) = try p.body(until: [])
        if let stop { throw JinjaError(.syntax, "unexpected '\(stop)'", line: p.line) }
        return nodes
    }

    private init(tokens: [JinjaToken]) { self.tokens = tokens }

    private var current: JinjaToken.Kind { tokens[i].kind }
    private var line: Int { tokens[i].line }
    private mutating func advance() { if i < tokens.count - 1 { i += 1 } }

    private func fail(_ message: String) -> JinjaError { JinjaError(.syntax, message, line: line) }

    private var describe: String {
        switch current {
        case .text: return "text"
        case .variableBegin: return "{{"
        case .variableEnd: return "}}"
        case .blockBegin: return "{%"
        case .blockEnd: return "%}"
        case .name(let n): return n
        case .string(let s): return "'\(s)'"
        case .int(let n): return String(n)
        case .double(let d): return "\(d)"
        case .op(let o): return o
        case .end: return "the end of the template"
        }
    }

    private mutating func expect(_ kind: JinjaToken.Kind) throws(JinjaError) {
        guard current == kind else {
            let wanted: String
            switch kind {
            case .op(let o): wanted = o
            case .name(let n): wanted = n
            case .blockEnd: wanted = "%}"
            case .variableEnd: wanted = "}}"
            default: wanted = "\(kind)"
            }
            throw fail("expected '\(wanted)', found '\(describe)'")
        }
        advance()
    }

    private mutating func skip(_ kind: JinjaToken.Kind) -> Bool {
        guard current == kind else { return false }
        advance()
        return true
    }

    private mutating func name() throws(JinjaError) -> String {
        guard case .name(let n) = current else { throw fail("expected a name, found '\(describe)'") }
        advance()
        return n
    }

    // MARK: statements

    /// Nodes up to a block tag named in `until` (whose name is consumed and returned) or the end.
    private mutating func body(until: Set<String>) throws(JinjaError) -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while true {
            switch current {
            case .end:
                return (nodes, nil)
            case .text(let t):
                nodes.append(.text(t))
                advance()
            case .variableBegin:
                let at = line
                advance()
                let e = try expression()
                try expect(.variableEnd)
                nodes.append(.output(e, line: at))
            case .blockBegin:
                advance()
                let at = line
                let keyword = try name()
                if until.contains(keyword) { return (nodes, keyword) }
                if let node = try statement(keyword, line: at) {
                    nodes.append(node)
                } else {
                    // `{% generation %}` (Hugging Face's marker of assistant text): its body inline.
                    let (inner, _) = try body(until: ["endgeneration"])
                    try expect(.blockEnd)
                    nodes += inner
                }
            default:
                throw fail("unexpected '\(describe)'")
            }
        }
    }

    private mutating func block(_ until: Set<String>, opened keyword: String, line at: Int) throws(JinjaError) -> ([JinjaNode], String) {
        let (nodes, stop) = try body(until: until)
        guard let stop else {
            throw JinjaError(.syntax, "'\(keyword)' at line \(at) is never closed (expected \(until.sorted().joined(separator: " or ")))", line: line)
        }
        return (nodes, stop)
    }

    private mutating func statement(_ keyword: String, line at: Int) throws(JinjaError) -> JinjaNode? {
        switch keyword {
        case "if":
            var branches: [(condition: JinjaExpr, body: [JinjaNode])] = []
            var condition = try expression()
            while true {
                try expect(.blockEnd)
                let (nodes, stop) = try block(["elif", "else", "endif"], opened: "if", line: at)
                branches.append((condition, nodes))
                switch stop {
                case "elif":
                    condition = try expression()
                case "else":
                    try expect(.blockEnd)
                    let (otherwise, _) = try block(["endif"], opened: "if", line: at)
                    try expect(.blockEnd)
                    return .branches(branches, otherwise: otherwise, line: at)
                default:
                    try expect(.blockEnd)
                    return .branches(branches, otherwise: [], line: at)
                }
            }
        case "for":
            var targets = [try name()]
            while skip(.op(",")) { targets.append(try name()) }
            try expect(.name("in"))
            let iterable = try conditionalFree()
            var condition: JinjaExpr?
            if skip(.name("if")) { condition = try expression() }
            if skip(.name("recursive")) { throw fail("recursive loops are not supported") }
            try expect(.blockEnd)
            let (nodes, stop) = try block(["else", "endfor"], opened: "for", line: at)
            var otherwise: [JinjaNode] = []
            try expect(.blockEnd)
            if stop == "else" {
                (otherwise, _) = try block(["endfor"], opened: "for", line: at)
                try expect(.blockEnd)
            }
            return .loop(JinjaLoop(targets: targets, iterable: iterable, condition: condition, body: nodes, otherwise: otherwise), line: at)
        case "set":
            let first = try name()
            if skip(.op(".")) {
                let attribute = try name()
                try expect(.op("="))
                let value = try expression()
                try expect(.blockEnd)
                return .assignAttribute(object: first, attribute: attribute, value, line: at)
            }
            var targets = [first]
            while skip(.op(",")) { targets.append(try name()) }
            if skip(.blockEnd) {
                guard targets.count == 1 else { throw fail("a block set takes one name") }
                let (nodes, _) = try block(["endset"], opened: "set", line: at)
                try expect(.blockEnd)
                return .capture(name: first, body: nodes, line: at)
            }
            try expect(.op("="))
            let value = try tupleOrExpression()
            try expect(.blockEnd)
            return .assign(targets: targets, value, line: at)
        case "macro":
            let macroName = try name()
            try expect(.op("("))
            var parameters: [(name: String, fallback: JinjaExpr?)] = []
            while !skip(.op(")")) {
                let p = try name()
                parameters.append((p, skip(.op("=")) ? try expression() : nil))
                if !skip(.op(",")) {
                    try expect(.op(")"))
                    break
                }
            }
            try expect(.blockEnd)
            let (nodes, _) = try block(["endmacro"], opened: "macro", line: at)
            if case .name = current { advance() }  // {% endmacro name %}
            try expect(.blockEnd)
            return .macro(JinjaMacro(name: macroName, parameters: parameters, body: nodes), line: at)
        case "filter":
            let call = try filterCall()
            try expect(.blockEnd)
            let (nodes, _) = try block(["endfilter"], opened: "filter", line: at)
            try expect(.blockEnd)
            return .filtered(body: nodes, filter: call, line: at)
        case "break", "continue":
            try expect(.blockEnd)
            return keyword == "break" ? .breakLoop : .continueLoop
        case "generation":
            try expect(.blockEnd)
            return nil
        default:
            throw JinjaError(.syntax, "unknown tag '\(keyword)'", line: at)
        }
    }

    // MARK: expressions

    /// `a, b` as a list (a tuple in Python), or one expression.
    private mutating func tupleOrExpression() throws(JinjaError) -> JinjaExpr {
        let first = try expression()
        guard current == .op(",") else { return first }
        var items = [first]
        while skip(.op(",")) {
            if current == .blockEnd || current == .variableEnd { break }
            items.append(try expression())
        }
        return .list(items)
    }

    mutating func expression() throws(JinjaError) -> JinjaExpr {
        let value = try or()
        guard skip(.name("if")) else { return value }
        let condition = try or()
        let otherwise = skip(.name("else")) ? try expression() : nil
        return .conditional(then: value, condition: condition, otherwise: otherwise)
    }

    /// A for loop's iterable: its `if` is the loop's filter, not a conditional expression.
    private mutating func conditionalFree() throws(JinjaError) -> JinjaExpr { try or() }

    private mutating func or() throws(JinjaError) -> JinjaExpr {
        var left = try and()
        while skip(.name("or")) { left = .binary("or", left, try and()) }
        return left
    }

    private mutating func and() throws(JinjaError) -> JinjaExpr {
        var left = try not()
        while skip(.name("and")) { left = .binary("and", left, try not()) }
        return left
    }

    private mutating func not() throws(JinjaError) -> JinjaExpr {
        if skip(.name("not")) { return .unary("not", try not()) }
        return try compare()
    }

    private mutating func compare() throws(JinjaError) -> JinjaExpr {
        let left = try math1()
        var rest: [(op: String, JinjaExpr)] = []
        while true {
            if case .op(let o) = current, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
                advance()
                rest.append((o, try math1()))
            } else if skip(.name("in")) {
                rest.append(("in", try math1()))
            } else if current == .name("not"), i + 1 < tokens.count, tokens[i + 1].kind == .name("in") {
                advance()
                advance()
                rest.append(("not in", try math1()))
            } else {
                break
            }
        }
        return rest.isEmpty ? left : .compare(left, rest)
    }

    private mutating func math1() throws(JinjaError) -> JinjaExpr {
        var left = try concat()
        while case .op(let o) = current, o == "+" || o == "-" {
            advance()
            left = .binary(o, left, try concat())
        }
        return left
    }

    private mutating func concat() throws(JinjaError) -> JinjaExpr {
        var left = try math2()
        while skip(.op("~")) { left = .binary("~", left, try math2()) }
        return left
    }

    private mutating func math2() throws(JinjaError) -> JinjaExpr {
        var left = try pow()
        while case .op(let o) = current, ["*", "/", "//", "%"].contains(o) {
            advance()
            left = .binary(o, left, try pow())
        }
        return left
    }

    private mutating func pow() throws(JinjaError) -> JinjaExpr {
        var left = try unary()
        while skip(.op("**")) { left = .binary("**", left, try unary()) }
        return left
    }

    private mutating func unary() throws(JinjaError) -> JinjaExpr {
        if case .op(let o) = current, o == "-" || o == "+" {
            advance()
            return try filters(.unary(o, try unary()))
        }
        return try filters(try postfix(try primary()))
    }

    private mutating func primary() throws(JinjaError) -> JinjaExpr {
        let token = current
        advance()
        switch token {
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .string(var s):
            while case .string(let more) = current {  // 'a' 'b' is 'ab'
                s += more
                advance()
            }
            return .literal(.string(s))
        case .int(let n): return .literal(.int(n))
        case .double(let d): return .literal(.double(d))
        case .op("("):
            if skip(.op(")")) { return .list([]) }
            let first = try expression()
            if skip(.op(")")) { return first }
            var items = [first]
            while skip(.op(",")) {
                if current == .op(")") { break }
                items.append(try expression())
            }
            try expect(.op(")"))
            return .list(items)
        case .op("["):
            var items: [JinjaExpr] = []
            while !skip(.op("]")) {
                items.append(try expression())
                if !skip(.op(",")) {
                    try expect(.op("]"))
                    break
                }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !skip(.op("}")) {
                let key = try expression()
                try expect(.op(":"))
                pairs.append((key, try expression()))
                if !skip(.op(",")) {
                    try expect(.op("}"))
                    break
                }
            }
            return .dict(pairs)
        default:
            i -= 1
            throw fail("unexpected '\(describe)'")
        }
    }

    private mutating func postfix(_ start: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        var e = start
        while true {
            if skip(.op(".")) {
                if case .int(let n) = current {  // x.0 is x[0]
                    advance()
                    e = .item(e, .literal(.int(n)))
                } else {
                    e = .attribute(e, try name())
                }
            } else if skip(.op("[")) {
                e = try subscriptOrSlice(e)
            } else if current == .op("(") {
                let (args, named) = try arguments()
                e = .call(e, args, named: named)
            } else {
                return e
            }
        }
    }

    private mutating func subscriptOrSlice(_ target: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var colons = 0
        while !skip(.op("]")) {
            if skip(.op(":")) {
                colons += 1
                guard colons <= 2 else { throw fail("a slice takes at most two ':'") }
                parts.append(nil)
            } else {
                guard parts[parts.count - 1] == nil else { throw fail("expected ']' or ':', found '\(describe)'") }
                parts[parts.count - 1] = try expression()
            }
        }
        if colons == 0 {
            guard let index = parts[0] else { throw fail("an empty subscript []") }
            return .item(target, index)
        }
        return .slice(target, start: parts[0], stop: parts.count > 1 ? parts[1] : nil, step: parts.count > 2 ? parts[2] : nil)
    }

    private mutating func arguments() throws(JinjaError) -> ([JinjaExpr], [(String, JinjaExpr)]) {
        try expect(.op("("))
        var args: [JinjaExpr] = []
        var named: [(String, JinjaExpr)] = []
        while !skip(.op(")")) {
            if case .name(let n) = current, i + 1 < tokens.count, tokens[i + 1].kind == .op("=") {
                advance()
                advance()
                named.append((n, try expression()))
            } else {
                args.append(try expression())
            }
            if !skip(.op(",")) {
                try expect(.op(")"))
                break
            }
        }
        return (args, named)
    }

    private mutating func filterCall() throws(JinjaError) -> JinjaFilterCall {
        var filterName = try name()
        while skip(.op(".")) { filterName += "." + (try name()) }
        var call = JinjaFilterCall(name: filterName, arguments: [], named: [])
        if current == .op("(") { (call.arguments, call.named) = try arguments() }
        return call
    }

    private mutating func filters(_ start: JinjaExpr) throws(JinjaError) -> JinjaExpr {
        var e = start
        while true {
            if skip(.op("|")) {
                e = try postfix(.filter(e, try filterCall()))
            } else if skip(.name("is")) {
                let negated = skip(.name("not"))
                let testName: String
                switch current {
                case .name(let n): testName = n; advance()
                case .op(let o) where ["==", "!=", "<", "<=", ">", ">="].contains(o): testName = o; advance()
                default: throw fail("expected a test name after 'is', found '\(describe)'")
                }
                var args: [JinjaExpr] = []
                if current == .op("(") {
                    (args, _) = try arguments()
                } else if startsPrimary, !["and", "or", "else", "if", "in", "not", "is"].contains(currentName ?? "") {
                    args = [try primaryWithPostfix()]  // `x is divisibleby 3`, `x is sameas none`
                }
                e = .test(e, name: testName, args, negated: negated)
            } else {
                return e
            }
        }
    }

    private var currentName: String? { if case .name(let n) = current { return n } else { return nil } }

    private var startsPrimary: Bool {
        switch current {
        case .name, .string, .int, .double: return true
        default: return false
        }
    }

    private mutating func primaryWithPostfix() throws(JinjaError) -> JinjaExpr { try postfix(try primary()) }
}
