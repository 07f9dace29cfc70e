/// A parsed template: statements over expressions.
indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr, line: Int)
    case branches([(condition: JinjaExpr, body: [JinjaNode])], otherwise: [JinjaNode], line: Int)
    case loop(JinjaLoop, line: Int)
    case assign(targets: [String], JinjaExpr, line: Int)
    /// `{% set ns.attr = ... %}`
    case assignAttribute(object: String, attribute: String, JinjaExpr, line: Int)
    /// `{% set name %}...{% endset %}`
    case capture(name: String, body: [JinjaNode], line: Int)
    case macro(JinjaMacro, line: Int)
    /// `{% filter name(args) %}...{% endfilter %}`
    case filtered(body: [JinjaNode], filter: JinjaFilterCall, line: Int)
    case breakLoop, continueLoop
}

struct JinjaLoop: Sendable {
    var targets: [String]
    var iterable: JinjaExpr
    var condition: JinjaExpr?
    var body: [JinjaNode]
    var otherwise: [JinjaNode]
}

struct JinjaMacro: Sendable {
    var name: String
    var parameters: [(name: String, fallback: JinjaExpr?)]
    var body: [JinjaNode]
}

struct JinjaFilterCall: Sendable {
    var name: String
    var arguments: [JinjaExpr]
    var named: [(String, JinjaExpr)]
}

enum JinjaLiteral: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

indirect enum JinjaExpr: Sendable {
    case literal(JinjaLiteral)
    case name(String)
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], named: [(String, JinjaExpr)])
    case filter(JinjaExpr, JinjaFilterCall)
    case test(JinjaExpr, name: String, [JinjaExpr], negated: Bool)
    case unary(String, JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case compare(JinjaExpr, [(op: String, JinjaExpr)])
    case conditional(then: JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
}
