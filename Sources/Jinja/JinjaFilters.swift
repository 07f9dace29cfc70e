/// Jinja2's filters and tests that chat templates use (`x | trim`, `x is defined`), with
/// transformers' `tojson`.
extension JinjaRenderer {
    func filter(_ v: JinjaValue, _ call: JinjaFilterCall) throws(JinjaError) -> JinjaValue {
        var args = JinjaArguments()
        for x in call.arguments { args.positional.append(try eval(x)) }
        for (k, x) in call.named { args.named.append((k, try eval(x))) }
        return try applyFilter(call.name, v, args)
    }

    // swiftlint:disable:next cyclomatic_complexity
    func applyFilter(_ name: String, _ v: JinjaValue, _ args: JinjaArguments) throws(JinjaError) -> JinjaValue {
        func string() throws(JinjaError) -> JinjaText {
            if case .undefined = v, name != "string" { return JinjaText() }
            return v.text
        }
        func method(_ m: String) throws(JinjaError) -> JinjaValue {
            guard case .function(let f) = try attribute(.string(try string()), m) else { throw fail("no \(m) for \(name)") }
            return try f.call(args)
        }
        switch name {
        case "trim":
            let s = try string()
            let chars = args.value(0, "chars").flatMap { if case .string(let c) = $0 { return Set(c.string.unicodeScalars) } else { return nil } }
            return .string(JinjaText.derived(JinjaText.strip(s.string, chars, leading: true, trailing: true), from: s))
        case "upper", "lower", "title", "capitalize":
            return try method(name)
        case "replace":
            return try method("replace")
        case "string":
            if case .undefined = v { return .trusted("") }
            return .string(v.text)
        case "safe":
            guard case .string(var s) = v else { return v }
            s.isMarkup = true
            return .string(s)
        case "e", "escape", "forceescape":
            let s = try string()
            guard !s.isMarkup || name == "forceescape" else { return v }
            var out = JinjaText.derived(JinjaText.escapeHTML(s.string), from: s)
            out.isMarkup = true
            return .string(out)
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.string.count)
            case .list(let l): return .int(l.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            case .namespace(let ns): return .int(ns.values.count)
            default: throw fail("object of type '\(v.typeName)' has no len()")
            }
        case "default", "d":
            let fallback = args.value(0, "default_value") ?? .trusted("")
            let boolean = args.value(1, "boolean")?.truthy ?? false
            if case .undefined = v { return fallback }
            return boolean && !v.truthy ? fallback : v
        case "tojson":
            var json = JinjaJSON(indent: try jsonIndent(args.value(0, "indent")), separators: try separators(args.value(-1, "separators")))
            json.sortKeys = args.value(-1, "sort_keys")?.truthy ?? false
            json.ensureASCII = args.value(-1, "ensure_ascii")?.truthy ?? false
            return .string(JinjaText(try json.encode(v), trusted: !v.holdsData))
        case "join":
            let separator = args.value(0, "d").map(\.text) ?? JinjaText()
            var items = try iterate(v)
            if let a = args.value(1, "attribute") { items = try items.map { x throws(JinjaError) in try path(x, a) } }
            var out = JinjaText()
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(separator) }
                out.append(item.text)
            }
            return .string(out)
        case "list":
            return .list(try iterate(v))
        case "first", "last":
            let items = try iterate(v)
            return (name == "first" ? items.first : items.last) ?? .undefined("the sequence is empty")
        case "reverse":
            if case .string(let s) = v { return .string(JinjaText.derived(String(s.string.reversed()), from: s)) }
            return .list(try iterate(v).reversed())
        case "items":
            if case .undefined = v { return .list([]) }
            guard case .dict(let d) = v else { throw fail("items takes a dict, got \(v.typeName)") }
            return .list(d.map { .list([$0.key.value, $0.value]) })
        case "dictsort":
            guard case .dict(let d) = v else { throw fail("dictsort takes a dict, got \(v.typeName)") }
            let caseSensitive = args.value(0, "case_sensitive")?.truthy ?? false
            let byValue = args.value(1, "by")?.pythonString == "value"
            let reverse = args.value(2, "reverse")?.truthy ?? false
            let pairs = d.map { (key: $0.key, value: $0.value) }
            var sorted = try sortValues(pairs.map { byValue ? $0.value : $0.key.value }, caseSensitive: caseSensitive)
                .map { pairs[$0] }
            if reverse { sorted.reverse() }
            return .list(sorted.map { .list([$0.key.value, $0.value]) })
        case "sort":
            let items = try iterate(v)
            let reverse = args.value(0, "reverse")?.truthy ?? false
            let caseSensitive = args.value(1, "case_sensitive")?.truthy ?? false
            var keys = items
            if let a = args.value(2, "attribute") { keys = try items.map { x throws(JinjaError) in try path(x, a) } }
            var order = try sortValues(keys, caseSensitive: caseSensitive)
            if reverse { order.reverse() }
            return .list(order.map { items[$0] })
        case "unique":
            var out: [JinjaValue] = []
            for x in try iterate(v) where !out.contains(where: { JinjaValue.equal($0, x) }) { out.append(x) }
            return .list(out)
        case "min", "max":
            let items = try iterate(v)
            guard var best = items.first else { return .undefined("\(name) of an empty sequence") }
            for x in items.dropFirst() {
                guard let less = JinjaValue.less(x, best), let more = JinjaValue.less(best, x) else {
                    throw fail("cannot compare \(x.typeName) with \(best.typeName)")
                }
                if name == "min" ? less : more { best = x }
            }
            return best
        case "sum":
            var total: JinjaValue = .int(0)
            for x in try iterate(v) { total = try arithmetic("+", total, x) }
            return total
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            default: throw fail("abs takes a number, got \(v.typeName)")
            }
        case "int":
            switch v {
            case .int, .bool: return .int(v.integer ?? 0)
            case .double(let d): return .int(d.isFinite ? Int(d) : 0)
            case .string(let s):
                return .int(
                    Int(s.string.trimmingSpaces) ?? Double(s.string.trimmingSpaces).map { Int($0) } ?? (args.value(0, "default")?.integer ?? 0))
            default: return args.value(0, "default") ?? .int(0)
            }
        case "float":
            if let d = v.number { return .double(d) }
            if case .string(let s) = v, let d = Double(s.string.trimmingSpaces) { return .double(d) }
            return args.value(0, "default") ?? .double(0)
        case "round":
            guard let d = v.number else { throw fail("round takes a number, got \(v.typeName)") }
            let digits = args.value(0, "precision")?.integer ?? 0
            var scale = 1.0
            for _ in 0..<max(digits, 0) { scale *= 10 }
            let method = args.value(1, "method")?.pythonString ?? "common"
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrAwayFromZero
            return .double((d * scale).rounded(rule) / scale)
        case "indent":
            let s = try string()
            let width: String
            switch args.value(0, "width") {
            case .string(let w)?: width = w.string
            case let w?: width = String(repeating: " ", count: w.integer ?? 4)
            case nil: width = "    "
            }
            let first = args.value(1, "first")?.truthy ?? false
            let blank = args.value(2, "blank")?.truthy ?? false
            var lines = s.string.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for k in lines.indices where (k > 0 || first) && (blank || !lines[k].allSatisfy(\.isWhitespace)) {
                lines[k] = width + lines[k]
            }
            return .string(JinjaText.derived(lines.joined(separator: "\n"), from: s))
        case "wordcount":
            return .int(try string().string.split(whereSeparator: \.isWhitespace).count)
        case "map":
            let items = v.truthy ? try iterate(v) : []
            if let a = args.named.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = args.named.first { $0.0 == "default" }?.1
                return .list(
                    try items.map { x throws(JinjaError) in
                        let r = try path(x, a)
                        if case .undefined = r, let fallback { return fallback }
                        return r
                    })
            }
            guard case .string(let f)? = args.positional.first else { throw fail("map takes a filter name or attribute=") }
            let rest = JinjaArguments(positional: Array(args.positional.dropFirst()), named: args.named)
            return .list(try items.map { x throws(JinjaError) in try applyFilter(f.string, x, rest) })
        case "selectattr", "rejectattr", "select", "reject":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = args.positional
            var attributeName: JinjaValue?
            if byAttribute {
                guard !rest.isEmpty else { throw fail("\(name) takes an attribute name") }
                attributeName = rest.removeFirst()
            }
            let testName = rest.isEmpty ? nil : rest.removeFirst().pythonString
            var out: [JinjaValue] = []
            for x in v.truthy ? try iterate(v) : [] {
                let subject = try attributeName.map { a throws(JinjaError) in try path(x, a) } ?? x
                let passes = try testName.map { t throws(JinjaError) in try test(subject, t, rest) } ?? subject.truthy
                if passes == keep { out.append(x) }
            }
            return .list(out)
        case "batch":
            guard let size = args.value(0, "linecount")?.integer, size > 0 else { throw fail("batch takes a positive size") }
            let items = try iterate(v)
            return .list(stride(from: 0, to: items.count, by: size).map { .list(Array(items[$0..<min($0 + size, items.count)])) })
        default:
            throw fail("no filter named '\(name)'")
        }
    }

    /// tojson's `indent`: a number of spaces or the string to indent with.
    private func jsonIndent(_ v: JinjaValue?) throws(JinjaError) -> String? {
        switch v {
        case nil, .none?: return nil
        case .string(let s)?: return s.string
        case let n?:
            guard let i = n.integer else { throw fail("tojson's indent must be a number or a string, got \(n.typeName)") }
            return String(repeating: " ", count: max(i, 0))
        }
    }

    /// tojson's `separators`: (item, key).
    private func separators(_ v: JinjaValue?) throws(JinjaError) -> (String, String)? {
        switch v {
        case nil, .none?: return nil
        case .list(let l)? where l.count == 2: return (l[0].pythonString, l[1].pythonString)
        case let other?: throw fail("tojson's separators must be two strings, got \(other.typeName)")
        }
    }

    /// `x.a.b` for map/selectattr/sort's `attribute="a.b"` (an integer part is an index).
    private func path(_ x: JinjaValue, _ attributePath: JinjaValue) throws(JinjaError) -> JinjaValue {
        if let i = attributePath.integer { return try item(x, .int(i)) }
        var v = x
        for part in attributePath.pythonString.split(separator: ".") {
            if case .undefined = v { return v }
            v = try item(v, Int(part).map { .int($0) } ?? .trusted(String(part)))
        }
        return v
    }

    /// The order `sort` and `dictsort` give (stable; strings case-insensitive unless asked).
    private func sortValues(_ keys: [JinjaValue], caseSensitive: Bool) throws(JinjaError) -> [Int] {
        let folded: [JinjaValue] = keys.map {
            if !caseSensitive, case .string(let s) = $0 { return .trusted(s.string.lowercased()) }
            return $0
        }
        var failed = false
        let order = folded.indices.sorted { a, b in
            guard let l = JinjaValue.less(folded[a], folded[b]) else {
                failed = true
                return a < b
            }
            return l || (!(JinjaValue.less(folded[b], folded[a]) ?? false) && a < b)
        }
        if failed { throw fail("the values to sort cannot be compared") }
        return order
    }

    func test(_ v: JinjaValue, _ name: String, _ args: [JinjaValue]) throws(JinjaError) -> Bool {
        func other() throws(JinjaError) -> JinjaValue {
            guard let a = args.first else { throw fail("test \(name) takes a value") }
            return a
        }
        switch name {
        case "defined": return v.isDefined
        case "undefined": return !v.isDefined
        case "none": if case .none = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": return v.number != nil
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "iterable", "sequence":
            switch v {
            case .string, .list, .dict: return true
            default: return false
            }
        case "callable": if case .function = v { return true } else { return false }
        case "equalto", "eq", "==", "sameas": return JinjaValue.equal(v, try other())
        case "ne", "!=": return !JinjaValue.equal(v, try other())
        case "lt", "<": return try compare("<", v, try other())
        case "le", "<=": return try compare("<=", v, try other())
        case "gt", ">": return try compare(">", v, try other())
        case "ge", ">=": return try compare(">=", v, try other())
        case "in": return try contains(try other(), v)
        case "odd", "even":
            guard let i = v.integer else { throw fail("test \(name) takes an integer, got \(v.typeName)") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let i = v.integer, let n = try other().integer, n != 0 else { throw fail("divisibleby takes non-zero integers") }
            return i % n == 0
        case "lower", "upper":
            guard case .string(let s) = v else { return false }
            return name == "lower" ? s.string == s.string.lowercased() : s.string == s.string.uppercased()
        default:
            throw fail("no test named '\(name)'")
        }
    }
}

extension String {
    var trimmingSpaces: String { JinjaText.strip(self, nil, leading: true, trailing: true) }
}
