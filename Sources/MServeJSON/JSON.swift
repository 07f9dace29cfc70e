/// A JSON value as models receive and return it.
///
/// Integers stay integers (`5` round-trips as `5`, not `5.0`) and objects keep their key order, so a
/// response reads back exactly as the model built it.  Objects are small in practice; a list of pairs
/// is cheaper to build and search than a dictionary at that size.
public enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])
    /// An array of numbers held as 32-bit floats (a model's vectors): compact to build, and written
    /// with the shortest digits that read back as the same float (0.1, not 0.10000000149011612).
    case floats([Float])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.int(a), .double(b)), let (.double(b), .int(a)): return Double(a) == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.floats(a), .floats(b)): return a == b
        case let (.floats(f), .array(a)), let (.array(a), .floats(f)):
            return f.count == a.count && zip(f, a).allSatisfy { JSON.double(Double($0)) == $1 }
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// Integers as written (`.int`); nil for anything else.
    public var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    /// Numbers as Double; nil for anything that is not a JSON number.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    /// The name of the value's JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .array, .floats: return "array"
        case .object: return "object"
        }
    }

    /// Returns the object with `key` set, replacing an existing value in place or appending it.
    public func setting(_ key: String, _ value: JSON, first: Bool = false) -> JSON {
        guard case .object(var pairs) = self else { return self }
        if let i = pairs.firstIndex(where: { $0.0 == key }) {
            pairs[i].1 = value
        } else if first {
            pairs.insert((key, value), at: 0)
        } else {
            pairs.append((key, value))
        }
        return .object(pairs)
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(elements) }
    public init(nilLiteral: ()) { self = .null }
}
