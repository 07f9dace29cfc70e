/// A value while a template renders, with Python's meaning: Jinja2 runs on Python, and chat
/// templates are written against Python's truthiness, equality, `str()` and methods.
public enum JinjaValue {
    /// A name or attribute that does not exist (Jinja2's `Undefined`): empty when printed, false,
    /// an empty sequence; an error only when looked into.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(JinjaText)
    case list([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case function(JinjaFunction)
    /// A for loop's `loop` (index, first, last, cycle ...): one per loop, not a dict per iteration.
    case loop(JinjaLoopState)

    /// Data the template was given (a message's text is not the template's own).
    public static func data(_ s: String) -> JinjaValue { .string(JinjaText(s, trusted: false)) }
    static func trusted(_ s: String) -> JinjaValue { .string(JinjaText(s, trusted: true)) }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        case .loop: return "LoopContext"
        }
    }

    var isDefined: Bool { if case .undefined = self { return false } else { return true } }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.string.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .function, .loop: return true
        }
    }

    /// A number as Python sees one (a bool is an int there).
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var integer: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python's `str()`, with the text's origin: a string keeps its own; a number is the template's;
    /// a container printed whole is data if it holds any.
    var text: JinjaText {
        switch self {
        case .string(let s): return s
        case .list, .dict: return JinjaText(pythonString, trusted: !holdsData)
        default: return JinjaText(pythonString, trusted: true)
        }
    }

    var holdsData: Bool {
        switch self {
        case .string(let s): return !s.isTrusted
        case .list(let l): return l.contains { $0.holdsData }
        case .dict(let d): return d.values.contains { $0.holdsData } || !d.keys.isEmpty
        default: return false
        }
    }

    /// Python's `str()`.
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return JinjaValue.pythonFloat(d)
        case .string(let s): return s.string
        case .list, .dict: return pythonRepr
        case .namespace: return "<Namespace>"
        case .function(let f): return "<function \(f.name)>"
        case .loop: return "<LoopContext>"
        }
    }

    /// Python's `repr()`, as a list or dict prints its items.
    var pythonRepr: String {
        switch self {
        case .string(let s): return JinjaValue.pythonQuoted(s.string)
        case .list(let l): return "[" + l.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { $0.key.value.pythonRepr + ": " + $0.value.pythonRepr }.joined(separator: ", ") + "}"
        default: return pythonString
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(Int(d)) + ".0" }
        return "\(d)"
    }

    static func pythonQuoted(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where Character(c) == quote: out += "\\" + String(quote)
            case _ where c.value < 0x20 || c.value == 0x7f: out += "\\x" + (c.value < 16 ? "0" : "") + String(c.value, radix: 16)
            default: out.unicodeScalars.append(c)
            }
        }
        out.append(quote)
        return out
    }

    /// Python's `==`.
    static func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.allSatisfy { kv in y[kv.key].map { equal(kv.value, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.function(let x), .function(let y)): return x === y
        default:
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }

    /// Python's `<`, or nil where Python raises (`'<' not supported between ...`).
    static func less(_ a: JinjaValue, _ b: JinjaValue) -> Bool? {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x < y
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return less(p, q) }
            return x.count < y.count
        default:
            if let x = a.number, let y = b.number { return x < y }
            return nil
        }
    }
}

/// A dict key: chat templates use strings, and now and then integers (`{0: 0, 1024: 1}`).
public enum JinjaKey: Hashable, Sendable {
    case string(String)
    case int(Int)

    init?(_ v: JinjaValue) {
        switch v {
        case .string(let s): self = .string(s.string)
        case .int(let i): self = .int(i)
        case .bool(let b): self = .int(b ? 1 : 0)
        case .double(let d) where d == d.rounded() && abs(d) < 1e18: self = .int(Int(d))
        default: return nil
        }
    }

    /// The key as a value: a string key is data (it came with the dict).
    var value: JinjaValue {
        switch self {
        case .string(let s): return .data(s)
        case .int(let i): return .int(i)
        }
    }

    /// How json.dumps writes it (an integer key as a string).
    var text: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        }
    }
}

/// A dict as Python 3.7+ keeps one: in insertion order.
public struct JinjaDict: Sequence {
    public private(set) var keys: [JinjaKey] = []
    private var storage: [JinjaKey: JinjaValue] = [:]

    public init() {}
    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public subscript(key: String) -> JinjaValue? {
        get { storage[.string(key)] }
        set { self[.string(key)] = newValue }
    }

    public subscript(key: JinjaKey) -> JinjaValue? {
        get { storage[key] }
        set {
            if storage[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil, storage[key] != nil { keys.removeAll { $0 == key } }
            storage[key] = newValue
        }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    var values: [JinjaValue] { keys.compactMap { storage[$0] } }

    public func makeIterator() -> AnyIterator<(key: JinjaKey, value: JinjaValue)> {
        var i = 0
        return AnyIterator {
            guard i < keys.count, let v = storage[keys[i]] else { return nil }
            defer { i += 1 }
            return (keys[i], v)
        }
    }
}

/// `namespace(...)`: the one value a template may change from inside a loop.
public final class JinjaNamespace {
    var values: JinjaDict
    init(_ values: JinjaDict) { self.values = values }
}

/// Where a for loop stands.
public final class JinjaLoopState {
    let items: [JinjaValue]
    var index = 0
    init(_ items: [JinjaValue]) { self.items = items }

    func attribute(_ name: String) -> JinjaValue? {
        let n = items.count
        switch name {
        case "index": return .int(index + 1)
        case "index0": return .int(index)
        case "revindex": return .int(n - index)
        case "revindex0": return .int(n - index - 1)
        case "first": return .bool(index == 0)
        case "last": return .bool(index == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return index > 0 ? items[index - 1] : .undefined("there is no previous item")
        case "nextitem": return index < n - 1 ? items[index + 1] : .undefined("there is no next item")
        case "cycle":
            let k = index
            return .function(
                JinjaFunction("loop.cycle") { args throws(JinjaError) in
                    guard !args.positional.isEmpty else { throw JinjaError(.render, "loop.cycle() takes at least one value") }
                    return args.positional[k % args.positional.count]
                })
        default: return nil
        }
    }
}

/// Positional and keyword arguments of a call.
struct JinjaArguments {
    var positional: [JinjaValue] = []
    var named: [(String, JinjaValue)] = []

    /// The argument at `index`, or given by `name`; nil if neither.
    func value(_ index: Int, _ name: String) -> JinjaValue? {
        if let v = named.first(where: { $0.0 == name })?.1 { return v }
        return index >= 0 && index < positional.count ? positional[index] : nil
    }
}

/// A macro, a global function (`range`, `namespace`, `raise_exception`) or a bound method.
public final class JinjaFunction {
    let name: String
    let call: (JinjaArguments) throws(JinjaError) -> JinjaValue
    init(_ name: String, _ call: @escaping (JinjaArguments) throws(JinjaError) -> JinjaValue) {
        self.name = name
        self.call = call
    }
}
