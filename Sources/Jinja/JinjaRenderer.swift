#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a parsed template: statements write to the output, expressions evaluate with Python's
/// meaning.  Scopes as Jinja2 keeps them: a loop's body has its own per iteration (a `set` there
/// is gone after it, which is why templates use `namespace`); a macro sees the template's
/// top-level names and its arguments; `if` makes none.
final class JinjaRenderer {
    private var scopes: [[String: JinjaValue]]
    private(set) var output = JinjaText()
    private let now: JinjaDate
    private let limits: JinjaTemplate.Limits
    private var steps = 0
    private var depth = 0
    var line = 0

    enum Flow { case normal, breakLoop, continueLoop }

    init(variables: [String: JinjaValue], now: JinjaDate, limits: JinjaTemplate.Limits) {
        scopes = [variables]
        self.now = now
        self.limits = limits
    }

    func fail(_ message: String) -> JinjaError { JinjaError(.render, message, line: line) }

    private func step() throws(JinjaError) {
        steps += 1
        if steps > limits.steps { throw fail("the template took more than \(limits.steps) steps") }
    }

    private func write(_ text: JinjaText) throws(JinjaError) {
        output.append(text)
        if output.string.utf8.count > limits.outputBytes { throw fail("the template wrote more than \(limits.outputBytes) bytes") }
    }

    // MARK: statements

    func run(_ nodes: [JinjaNode]) throws(JinjaError) -> Flow {
        for node in nodes {
            let flow = try execute(node)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ node: JinjaNode) throws(JinjaError) -> Flow {
        try step()
        switch node {
        case .text(let t):
            try write(JinjaText(t, trusted: true))
        case .output(let e, let at):
            line = at
            let v = try eval(e)
            if case .function = v { throw fail("a function is printed without being called") }
            try write(v.text)
        case .branches(let branches, let otherwise, let at):
            line = at
            for b in branches where try eval(b.condition).truthy { return try run(b.body) }
            return try run(otherwise)
        case .loop(let loop, let at):
            line = at
            return try runLoop(loop)
        case .assign(let targets, let e, let at):
            line = at
            let v = try eval(e)
            for (name, value) in try unpack(targets, v) { scopes[scopes.count - 1][name] = value }
        case .assignAttribute(let object, let attribute, let e, let at):
            line = at
            guard case .namespace(let ns) = lookup(object) else {
                throw fail("cannot set \(object).\(attribute): \(object) is not a namespace")
            }
            ns.values[attribute] = try eval(e)
        case .capture(let name, let body, let at):
            line = at
            scopes[scopes.count - 1][name] = .string(try capture(body))
        case .macro(let m, _):
            scopes[scopes.count - 1][m.name] = .function(macro(m))
        case .filtered(let body, let call, let at):
            line = at
            let text = try capture(body)
            try write(try filter(.string(text), call).text)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    /// What `body` writes, written nowhere else.
    private func capture(_ body: [JinjaNode]) throws(JinjaError) -> JinjaText {
        let saved = output
        output = JinjaText()
        defer { output = saved }
        _ = try run(body)
        return output
    }

    private func unpack(_ targets: [String], _ v: JinjaValue) throws(JinjaError) -> [(String, JinjaValue)] {
        if targets.count == 1 { return [(targets[0], v)] }
        let items = try iterate(v)
        guard items.count == targets.count else {
            throw fail("cannot unpack \(items.count) values into \(targets.count) names (\(targets.joined(separator: ", ")))")
        }
        return Array(zip(targets, items))
    }

    private func runLoop(_ loop: JinjaLoop) throws(JinjaError) -> Flow {
        var items = try iterate(try eval(loop.iterable))
        if let condition = loop.condition {
            var kept: [JinjaValue] = []
            for item in items {
                scopes.append(Dictionary(uniqueKeysWithValues: try unpack(loop.targets, item)))
                defer { scopes.removeLast() }
                if try eval(condition).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty { return try run(loop.otherwise) }
        let state = JinjaLoopState(items)
        for (k, item) in items.enumerated() {
            try step()
            var scope = Dictionary(uniqueKeysWithValues: try unpack(loop.targets, item))
            state.index = k
            scope["loop"] = .loop(state)
            scopes.append(scope)
            let flow = try run(loop.body)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
        return .normal
    }

    private func macro(_ m: JinjaMacro) -> JinjaFunction {
        JinjaFunction(m.name) { [unowned self] args throws(JinjaError) in
            guard args.positional.count <= m.parameters.count else {
                throw self.fail("macro \(m.name) takes \(m.parameters.count) arguments, \(args.positional.count) given")
            }
            guard self.depth < self.limits.depth else { throw self.fail("macros call each other more than \(self.limits.depth) deep") }
            var frame: [String: JinjaValue] = [:]
            for (k, p) in m.parameters.enumerated() {
                if let v = args.value(k, p.name) {
                    frame[p.name] = v
                } else if let fallback = p.fallback {
                    frame[p.name] = try self.eval(fallback)
                } else {
                    frame[p.name] = .undefined("'\(p.name)' is undefined")
                }
            }
            for (name, _) in args.named where !m.parameters.contains(where: { $0.name == name }) {
                throw self.fail("macro \(m.name) has no parameter \(name)")
            }
            let saved = self.scopes
            self.scopes = [saved[0], frame]
            self.depth += 1
            defer {
                self.scopes = saved
                self.depth -= 1
            }
            return .string(try self.capture(m.body))
        }
    }

    // MARK: names

    func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() {
            if let v = scope[name] { return v }
        }
        return globals(name) ?? .undefined("'\(name)' is undefined")
    }

    private func globals(_ name: String) -> JinjaValue? {
        switch name {
        case "range":
            return .function(
                JinjaFunction("range") { [unowned self] args throws(JinjaError) in
                    let n = try args.positional.map { v throws(JinjaError) -> Int in
                        guard let i = v.integer else { throw self.fail("range() takes integers, got \(v.typeName)") }
                        return i
                    }
                    let (start, stop, by) =
                        n.count == 1
                        ? (0, n[0], 1)
                        : n.count == 2
                            ? (n[0], n[1], 1)
                            : n.count == 3 ? (n[0], n[1], n[2]) : (0, 0, 0)
                    guard by != 0 else { throw self.fail("range() takes 1 to 3 integers, the step not 0") }
                    let count = by > 0 ? (stop - start + by - 1) / by : (start - stop - by - 1) / -by
                    guard count <= 100_000 else { throw self.fail("range() of more than 100000 numbers") }
                    return .list(stride(from: start, to: stop, by: by).map { .int($0) })
                })
        case "namespace", "dict":
            return .function(
                JinjaFunction(name) { args throws(JinjaError) in
                    var d = JinjaDict()
                    for p in args.positional {  // namespace({...}) / dict(other)
                        if case .dict(let given) = p { for (k, v) in given { d[k] = v } }
                    }
                    for (k, v) in args.named { d[k] = v }
                    return name == "dict" ? .dict(d) : .namespace(JinjaNamespace(d))
                })
        case "raise_exception":
            return .function(
                JinjaFunction(name) { args throws(JinjaError) in
                    throw JinjaError(.raised, args.positional.first?.pythonString ?? "the template raised an exception")
                })
        case "strftime_now":
            return .function(
                JinjaFunction(name) { [now] args throws(JinjaError) in
                    .trusted(now.format(args.positional.first?.pythonString ?? ""))
                })
        default:
            return nil
        }
    }

    // MARK: expressions

    func eval(_ e: JinjaExpr) throws(JinjaError) -> JinjaValue {
        try step()
        switch e {
        case .literal(let l):
            switch l {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .trusted(s)
            }
        case .name(let n):
            return lookup(n)
        case .attribute(let target, let name):
            return try attribute(try eval(target), name)
        case .item(let target, let key):
            return try item(try eval(target), try eval(key))
        case .slice(let target, let start, let stop, let by):
            func bound(_ b: JinjaExpr?) throws(JinjaError) -> Int? {
                guard let b else { return nil }
                let v = try eval(b)
                if case .none = v { return nil }
                guard let i = v.integer else { throw fail("slice indices must be integers, got \(v.typeName)") }
                return i
            }
            return try slice(try eval(target), try bound(start), try bound(stop), try bound(by))
        case .call(let callee, let args, let named):
            let f = try eval(callee)
            var a = JinjaArguments()
            for x in args { a.positional.append(try eval(x)) }
            for (k, x) in named { a.named.append((k, try eval(x))) }
            switch f {
            case .function(let fn): return try fn.call(a)
            case .undefined(let why): throw fail(why)
            default: throw fail("'\(f.typeName)' object is not callable")
            }
        case .filter(let target, let call):
            return try filter(try eval(target), call)
        case .test(let target, let name, let args, let negated):
            let v = try eval(target)
            var a: [JinjaValue] = []
            for x in args { a.append(try eval(x)) }
            return .bool(try test(v, name, a) != negated)
        case .unary(let op, let operand):
            let v = try eval(operand)
            switch op {
            case "not": return .bool(!v.truthy)
            case "-":
                switch v {
                case .int(let i): return .int(-i)
                case .double(let d): return .double(-d)
                case .bool(let b): return .int(b ? -1 : 0)
                default: throw fail("bad operand type for unary -: '\(v.typeName)'")
                }
            default:
                guard v.number != nil else { throw fail("bad operand type for unary +: '\(v.typeName)'") }
                return v
            }
        case .binary("and", let l, let r):
            let a = try eval(l)
            return a.truthy ? try eval(r) : a
        case .binary("or", let l, let r):
            let a = try eval(l)
            return a.truthy ? a : try eval(r)
        case .binary(let op, let l, let r):
            return try arithmetic(op, try eval(l), try eval(r))
        case .compare(let first, let rest):
            var left = try eval(first)
            for (op, r) in rest {
                let right = try eval(r)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let then, let condition, let otherwise):
            if try eval(condition).truthy { return try eval(then) }
            return try otherwise.map { x throws(JinjaError) in try eval(x) } ?? .undefined("the conditional has no else")
        case .list(let items):
            var out: [JinjaValue] = []
            for x in items { out.append(try eval(x)) }
            return .list(out)
        case .dict(let pairs):
            var d = JinjaDict()
            for (k, v) in pairs {
                let key = try eval(k)
                guard let dictKey = JinjaKey(key) else { throw fail("dict keys must be strings or integers here, got \(key.typeName)") }
                d[dictKey] = try eval(v)
            }
            return .dict(d)
        }
    }

    func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws(JinjaError) -> Bool {
        switch op {
        case "==": return JinjaValue.equal(a, b)
        case "!=": return !JinjaValue.equal(a, b)
        case "in": return try contains(b, a)
        case "not in": return !(try contains(b, a))
        default:
            let ordered: Bool?
            switch op {
            case "<": ordered = JinjaValue.less(a, b)
            case ">": ordered = JinjaValue.less(b, a)
            case "<=": ordered = JinjaValue.less(b, a).map { !$0 }
            default: ordered = JinjaValue.less(a, b).map { !$0 }
            }
            guard let ordered else { throw fail("'\(op)' not supported between '\(a.typeName)' and '\(b.typeName)'") }
            return ordered
        }
    }

    func contains(_ container: JinjaValue, _ x: JinjaValue) throws(JinjaError) -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let needle) = x else { throw fail("'in <string>' requires a string, not \(x.typeName)") }
            return needle.string.isEmpty || s.string.contains(needle.string)
        case .list(let l): return l.contains { JinjaValue.equal($0, x) }
        case .dict(let d): return JinjaKey(x).map { d[$0] != nil } ?? false
        case .undefined: return false  // Jinja2's Undefined iterates as empty
        default: throw fail("argument of type '\(container.typeName)' is not iterable")
        }
    }

    func arithmetic(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws(JinjaError) -> JinjaValue {
        if op == "~" { return .string(a.text + b.text) }
        for v in [a, b] { if case .undefined(let why) = v { throw fail(why) } }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)): return .string(JinjaText.adding(x, y))
        case ("+", .list(let x), .list(let y)): return .list(x + y)
        case ("*", .string(let s), _), ("*", _, .string(let s)):
            guard let n = (a.integer ?? b.integer), n < 1_000_000 else { throw fail("can't multiply a string by that") }
            return .string(JinjaText.derived(String(repeating: s.string, count: max(n, 0)), from: s))
        case ("%", .string, _): throw fail("string formatting with % is not supported; use format()")
        default: break
        }
        guard let x = a.number, let y = b.number else {
            throw fail("unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        if let i = a.integer, let j = b.integer {
            switch op {
            case "+": return .int(i &+ j)
            case "-": return .int(i &- j)
            case "*": return .int(i &* j)
            case "//", "%":
                guard j != 0 else { throw fail("integer division or modulo by zero") }
                let q = Int((Double(i) / Double(j)).rounded(.down))
                return op == "//" ? .int(q) : .int(i - q * j)
            case "**" where j >= 0:
                var r = 1
                for _ in 0..<min(j, 64) { r = r &* i }
                return .int(r)
            default: break
            }
        }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            guard y != 0 else { throw fail("division by zero") }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw fail("float floor division by zero") }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw fail("float modulo by zero") }
            return .double(x - (x / y).rounded(.down) * y)
        case "**": return .double(pow(x, y))
        default: throw fail("unknown operator \(op)")
        }
    }

    /// A sequence's items as a for loop sees them: a dict's keys, a string's characters, nothing
    /// for an undefined value.
    func iterate(_ v: JinjaValue) throws(JinjaError) -> [JinjaValue] {
        switch v {
        case .list(let l): return l
        case .dict(let d): return d.keys.map(\.value)
        case .string(let s): return s.string.map { .string(JinjaText.derived(String($0), from: s)) }
        case .undefined: return []
        default: throw fail("'\(v.typeName)' object is not iterable")
        }
    }
}
