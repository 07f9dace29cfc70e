/// Attributes, subscripts and slices, and the methods of strings, dicts and lists that chat
/// templates call, with Python's meaning.  Nothing here changes a value: as in the sandbox
/// transformers renders in, `list.append` and `dict.update` are refused.
extension JinjaRenderer {
    /// `x.name`: a method if the type has one, else (for a dict) its item; otherwise undefined.
    func attribute(_ v: JinjaValue, _ name: String) throws(JinjaError) -> JinjaValue {
        switch v {
        case .undefined(let why): throw fail(why)
        case .string(let s):
            return method(stringMethod(s, name), name) ?? .undefined("'str object' has no attribute '\(name)'")
        case .dict(let d):
            if let m = dictMethod(d, name) { return .function(JinjaFunction(name, m)) }
            return d[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .namespace(let ns):
            return ns.values[name] ?? .undefined("'Namespace object' has no attribute '\(name)'")
        case .loop(let state):
            return state.attribute(name) ?? .undefined("'LoopContext object' has no attribute '\(name)'")
        case .list(let l):
            if ["append", "pop", "insert", "extend", "remove", "clear", "sort", "reverse"].contains(name) {
                throw fail("access to attribute '\(name)' of 'list' object is unsafe (lists cannot be changed here)")
            }
            if name == "index" || name == "count" {
                return .function(
                    JinjaFunction(name) { args throws(JinjaError) in
                        guard let x = args.positional.first else { throw JinjaError(.render, "list.\(name)() takes one argument") }
                        if name == "count" { return .int(l.filter { JinjaValue.equal($0, x) }.count) }
                        guard let i = l.firstIndex(where: { JinjaValue.equal($0, x) }) else {
                            throw JinjaError(.render, "the value is not in the list")
                        }
                        return .int(i)
                    })
            }
            return .undefined("'list object' has no attribute '\(name)'")
        default:
            return .undefined("'\(v.typeName) object' has no attribute '\(name)'")
        }
    }

    private func method(_ body: ((JinjaArguments) throws(JinjaError) -> JinjaValue)?, _ name: String) -> JinjaValue? {
        body.map { .function(JinjaFunction(name, $0)) }
    }

    /// `x[key]`: an item (negative indices from the end), else an attribute of that name.
    func item(_ v: JinjaValue, _ key: JinjaValue) throws(JinjaError) -> JinjaValue {
        switch (v, key) {
        case (.undefined(let why), _): throw fail(why)
        case (.list(let l), _) where key.integer != nil:
            let i = key.integer ?? 0
            let k = i < 0 ? l.count + i : i
            return l.indices.contains(k) ? l[k] : .undefined("list index \(i) out of range")
        case (.string(let s), _) where key.integer != nil:
            let chars = Array(s.string)
            let i = key.integer ?? 0
            let k = i < 0 ? chars.count + i : i
            return chars.indices.contains(k)
                ? .string(JinjaText.derived(String(chars[k]), from: s))
                : .undefined("string index \(i) out of range")
        case (.dict(let d), _) where JinjaKey(key).flatMap({ d[$0] }) != nil:
            return JinjaKey(key).flatMap { d[$0] } ?? .none
        case (.dict(let d), .string(let k)):
            return dictMethod(d, k.string).map { .function(JinjaFunction(k.string, $0)) }
                ?? .undefined("'dict object' has no attribute '\(k.string)'")
        case (_, .string(let k)):
            return try attribute(v, k.string)
        default:
            return .undefined("'\(v.typeName) object' has no item \(key.pythonRepr)")
        }
    }

    func slice(_ v: JinjaValue, _ start: Int?, _ stop: Int?, _ by: Int?) throws(JinjaError) -> JinjaValue {
        let step = by ?? 1
        guard step != 0 else { throw fail("slice step cannot be zero") }
        func indices(_ n: Int) -> [Int] {
            func clamp(_ x: Int?, _ fallback: Int) -> Int {
                guard var x else { return fallback }
                if x < 0 { x += n }
                return step > 0 ? min(max(x, 0), n) : min(max(x, -1), n - 1)
            }
            let lo = clamp(start, step > 0 ? 0 : n - 1), hi = clamp(stop, step > 0 ? n : -1)
            return Array(stride(from: lo, to: hi, by: step))
        }
        switch v {
        case .list(let l): return .list(indices(l.count).map { l[$0] })
        case .string(let s):
            let chars = Array(s.string)
            return .string(JinjaText.derived(String(indices(chars.count).map { chars[$0] }), from: s))
        case .undefined(let why): throw fail(why)
        default: throw fail("'\(v.typeName)' object is not subscriptable")
        }
    }

    private func dictMethod(_ d: JinjaDict, _ name: String) -> ((JinjaArguments) throws(JinjaError) -> JinjaValue)? {
        switch name {
        case "items": return { _ in .list(d.map { .list([$0.key.value, $0.value]) }) }
        case "keys": return { _ in .list(d.keys.map(\.value)) }
        case "values": return { _ in .list(d.values) }
        case "get":
            return { args throws(JinjaError) in
                guard let k = args.positional.first.flatMap(JinjaKey.init) else { return args.value(1, "default") ?? .none }
                return d[k] ?? args.value(1, "default") ?? .none
            }
        case "update", "pop", "setdefault", "clear", "popitem":
            return { [unowned self] _ throws(JinjaError) in
                throw self.fail("access to attribute '\(name)' of 'dict' object is unsafe (dicts cannot be changed here)")
            }
        default: return nil
        }
    }

    private func text(_ args: JinjaArguments, _ k: Int, _ name: String) throws(JinjaError) -> JinjaText? {
        guard let v = args.value(k, name) else { return nil }
        switch v {
        case .string(let s): return s
        case .none: return nil
        default: throw fail("\(name) must be a string, got \(v.typeName)")
        }
    }

    private func stringMethod(_ s: JinjaText, _ name: String) -> ((JinjaArguments) throws(JinjaError) -> JinjaValue)? {
        let str = s.string
        func derived(_ r: String, _ others: JinjaText?...) -> JinjaValue {
            .string(JinjaText(r, trusted: s.isTrusted && others.allSatisfy { $0?.isTrusted ?? true }))
        }
        switch name {
        case "strip", "lstrip", "rstrip":
            return { [unowned self] args throws(JinjaError) in
                let chars = try self.text(args, 0, "chars")
                let set = chars.map { Set($0.string.unicodeScalars) }
                return derived(JinjaText.strip(str, set, leading: name != "rstrip", trailing: name != "lstrip"), chars)
            }
        case "upper": return { _ in derived(str.uppercased()) }
        case "lower": return { _ in derived(str.lowercased()) }
        case "title": return { _ in derived(JinjaText.title(str)) }
        case "capitalize": return { _ in derived(str.prefix(1).uppercased() + str.dropFirst().lowercased()) }
        case "startswith", "endswith":
            return { [unowned self] args throws(JinjaError) in
                let options: [JinjaValue]
                switch args.positional.first {
                case .list(let l)?: options = l
                case let v?: options = [v]
                case nil: throw self.fail("\(name)() takes a string")
                }
                for o in options {
                    guard case .string(let p) = o else { throw self.fail("\(name)() takes strings, got \(o.typeName)") }
                    let hit =
                        name == "startswith"
                        ? str.unicodeScalars.starts(with: p.string.unicodeScalars)
                        : str.unicodeScalars.reversed().starts(with: p.string.unicodeScalars.reversed())
                    if hit { return .bool(true) }
                }
                return .bool(false)
            }
        case "split", "rsplit":
            return { [unowned self] args throws(JinjaError) in
                let sep = try self.text(args, 0, "sep")
                let most = args.value(1, "maxsplit")?.integer ?? -1
                let parts = JinjaText.split(str, sep?.string, maxSplits: most, fromEnd: name == "rsplit")
                return .list(parts.map { derived($0, sep) })
            }
        case "splitlines":
            return { _ in
                .list(
                    str.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { derived(String($0)) }
                        .dropLast(str.last?.isNewline == true ? 1 : 0))
            }
        case "replace":
            return { [unowned self] args throws(JinjaError) in
                guard let old = try self.text(args, 0, "old"), let new = try self.text(args, 1, "new") else {
                    throw self.fail("replace() takes two strings")
                }
                let count = args.value(2, "count")?.integer ?? -1
                return derived(JinjaText.replace(str, old.string, new.string, count: count), old, new)
            }
        case "find", "rfind", "count", "index":
            return { [unowned self] args throws(JinjaError) in
                guard let needle = try self.text(args, 0, "sub") else { throw self.fail("\(name)() takes a string") }
                let hay = Array(str.unicodeScalars), n = Array(needle.string.unicodeScalars)
                let hits = JinjaText.occurrences(of: n, in: hay)
                switch name {
                case "count": return .int(hits.count)
                case "rfind": return .int(hits.last ?? -1)
                case "index":
                    guard let first = hits.first else { throw self.fail("substring not found") }
                    return .int(first)
                default: return .int(hits.first ?? -1)
                }
            }
        case "join":
            return { [unowned self] args throws(JinjaError) in
                guard let items = args.positional.first else { throw self.fail("join() takes a list") }
                var out = JinjaText()
                for (k, item) in try self.iterate(items).enumerated() {
                    if k > 0 { out.append(s) }
                    out.append(item.text)
                }
                return .string(out)
            }
        case "format":
            return { [unowned self] args throws(JinjaError) in .string(try self.format(s, args)) }
        case "isdigit": return { _ in .bool(!str.isEmpty && str.allSatisfy(\.isNumber)) }
        case "isalpha": return { _ in .bool(!str.isEmpty && str.allSatisfy(\.isLetter)) }
        case "isspace": return { _ in .bool(!str.isEmpty && str.allSatisfy(\.isWhitespace)) }
        case "islower": return { _ in .bool(str.contains(where: \.isLetter) && str == str.lowercased()) }
        case "isupper": return { _ in .bool(str.contains(where: \.isLetter) && str == str.uppercased()) }
        default: return nil
        }
    }

    /// Python's `str.format` for `{}`, `{0}` and `{name}` (a format spec after `:` is not applied),
    /// `{{` and `}}`: the pattern's parts keep their origin, each argument its own.
    private func format(_ pattern: JinjaText, _ args: JinjaArguments) throws(JinjaError) -> JinjaText {
        let trusted = pattern.isTrusted
        var out = JinjaText()
        var literal = ""
        var auto = 0
        let chars = Array(pattern.string)
        func flush() {
            out.append(JinjaText(literal, trusted: trusted))
            literal = ""
        }
        var i = 0
        while i < chars.count {
            let c = chars[i]
            i += 1
            if c == "}" || c == "{", i < chars.count, chars[i] == c {  // `{{` and `}}`
                literal.append(c)
                i += 1
                continue
            }
            guard c == "{" else {
                guard c != "}" else { throw fail("single '}' encountered in format string") }
                literal.append(c)
                continue
            }
            var field = ""
            while i < chars.count, chars[i] != "}" {
                field.append(chars[i])
                i += 1
            }
            guard i < chars.count else { throw fail("single '{' encountered in format string") }
            i += 1
            let key = String(field.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            let value: JinjaValue?
            if key.isEmpty {
                value = auto < args.positional.count ? args.positional[auto] : nil
                auto += 1
            } else if let n = Int(key) {
                value = n < args.positional.count ? args.positional[n] : nil
            } else {
                value = args.named.first { $0.0 == key }?.1
            }
            guard let value else { throw fail("format(): no argument for {\(field)}") }
            flush()
            out.append(value.text)
        }
        flush()
        return out
    }
}

extension JinjaText {
    static func strip(_ s: String, _ chars: Set<Unicode.Scalar>?, leading: Bool, trailing: Bool) -> String {
        let u = Array(s.unicodeScalars)
        func drop(_ c: Unicode.Scalar) -> Bool { chars?.contains(c) ?? c.properties.isWhitespace }
        var lo = 0, hi = u.count
        if leading { while lo < hi, drop(u[lo]) { lo += 1 } }
        if trailing { while hi > lo, drop(u[hi - 1]) { hi -= 1 } }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: u[lo..<hi])
        return String(out)
    }

    static func title(_ s: String) -> String {
        var out = ""
        var previousLetter = false
        for c in s {
            out += previousLetter ? c.lowercased() : c.uppercased()
            previousLetter = c.isLetter
        }
        return out
    }

    static func occurrences(of n: [Unicode.Scalar], in hay: [Unicode.Scalar]) -> [Int] {
        guard !n.isEmpty else { return Array(0...hay.count) }
        var hits: [Int] = []
        var i = 0
        while i + n.count <= hay.count {
            if hay[i..<(i + n.count)].elementsEqual(n) {
                hits.append(i)
                i += n.count
            } else {
                i += 1
            }
        }
        return hits
    }

    /// Python's `split`: by `sep`, or by runs of whitespace (empty parts dropped) when nil.
    static func split(_ s: String, _ sep: String?, maxSplits: Int, fromEnd: Bool) -> [String] {
        let u = Array(s.unicodeScalars)
        func string(_ r: ArraySlice<Unicode.Scalar>) -> String {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: r)
            return String(v)
        }
        guard let sep, !sep.isEmpty else {
            var parts: [String] = []
            var i = 0
            while i < u.count {
                while i < u.count, u[i].properties.isWhitespace { i += 1 }
                guard i < u.count else { break }
                if maxSplits >= 0, parts.count == maxSplits, !fromEnd {
                    parts.append(strip(string(u[i...]), nil, leading: false, trailing: true))
                    break
                }
                let start = i
                while i < u.count, !u[i].properties.isWhitespace { i += 1 }
                parts.append(string(u[start..<i]))
            }
            return parts
        }
        var hits = occurrences(of: Array(sep.unicodeScalars), in: u)
        if maxSplits >= 0, hits.count > maxSplits {
            hits = fromEnd ? Array(hits.suffix(maxSplits)) : Array(hits.prefix(maxSplits))
        }
        var parts: [String] = []
        var start = 0
        for h in hits {
            parts.append(string(u[start..<h]))
            start = h + sep.unicodeScalars.count
        }
        parts.append(string(u[start...]))
        return parts
    }

    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let u = Array(s.unicodeScalars)
        var hits = occurrences(of: Array(old.unicodeScalars), in: u)
        if count >= 0 { hits = Array(hits.prefix(count)) }
        var out = String.UnicodeScalarView()
        var start = 0
        for h in hits where h >= start {
            out.append(contentsOf: u[start..<h])
            out.append(contentsOf: new.unicodeScalars)
            start = h + old.unicodeScalars.count
        }
        if start <= u.count { out.append(contentsOf: u[start...]) }
        return String(out)
    }
}
