import MServeJSON

/// A JSON Schema as a GBNF grammar of the JSON texts it admits, as llama.cpp's
/// json-schema-to-grammar writes one: `type` (one or a list), `properties` with `required` (in
/// the order declared: required ones always, the others each optional in turn),
/// `additionalProperties` (false when not given, as llama.cpp and OpenAI's strict mode read it),
/// `items`/`prefixItems` with `minItems`/`maxItems`, `enum`, `const`, `anyOf`/`oneOf`, `allOf` of
/// objects, `$ref` into `$defs`/`definitions` (recursion included), strings with
/// `minLength`/`maxLength`, a `pattern` (a regular expression's common subset) or a `format`
/// (date, time, date-time, uuid), integers with bounds it can enforce exactly.  A keyword that
/// would constrain the answer and is not enforced is refused by name, never ignored.
public enum JSONSchemaGrammar {
    /// The grammar of any JSON value whose outermost is an object (`response_format`
    /// `{"type": "json_object"}`).
    public static let anyObject: String = primitives + "root ::= object\n"

    /// The GBNF of `schema`'s JSON texts, or why it cannot be had.
    public static func gbnf(_ schema: JSON) throws(GrammarError) -> String {
        primitives + (try rules(schema, as: "root"))
    }

    /// The rules of `schema`'s texts, the first named `name`, without the primitives (for a
    /// grammar that puts them inside its own: a tool call's arguments).
    public static func rules(_ schema: JSON, as name: String, path: String = "schema") throws(GrammarError) -> String {
        var c = Converter(root: schema, prefix: name == "root" ? "" : name + "-")
        c.names.insert(name)
        let top = try c.visit(schema, name: name, path: path, depth: 0)
        var out = "\(name) ::= \(top)\n"
        for (rule, body) in c.rules { out += "\(rule) ::= \(body)\n" }
        return out
    }

    /// The rules every grammar here may use.  Whitespace between tokens is bounded (one line break
    /// and up to 20 indents), so that a model cannot spend its answer on it; `\u` escapes of UTF-16
    /// surrogates are left out (a lone one is not JSON that strict parsers take; the character
    /// itself can be written instead).
    public static let primitives = #"""
        space ::= | " " | "\n" [ \t]{0,20}
        value ::= object | array | string | number | boolean | null
        object ::= "{" space ( string ":" space value ( "," space string ":" space value )* )? "}" space
        array ::= "[" space ( value ( "," space value )* )? "]" space
        char ::= [^"\\\x7F\x00-\x1F] | escape
        escape ::= [\\] ( ["\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )
        string ::= "\"" char* "\"" space
        integral-part ::= [0] | [1-9] [0-9]{0,15}
        number ::= "-"? integral-part ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )? space
        integer ::= "-"? integral-part space
        boolean ::= ( "true" | "false" ) space
        null ::= "null" space

        """#

    /// A GBNF literal of `s`.
    public static func literal(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    out += "\\x" + (u.value < 16 ? "0" : "") + String(u.value, radix: 16)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

/// Keywords that describe without constraining: taken and ignored.
private let annotations: Set<String> = [
    "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly",
    "writeOnly", "$defs", "definitions", "strict", "name"
]
private let maxDepth = 64

private struct Converter {
    let root: JSON
    /// Rules in the order made, and the names taken (a `$ref` is made once, under its name).
    var rules: [(String, String)] = []
    var names: Set<String> = [
        "space", "value", "object", "array", "char", "escape", "string", "integral-part", "number", "integer", "boolean", "null", "root"
    ]
    var refs: [String: String] = [:]

    /// Put before every rule's name made here, so that the rules of several schemas can stand in one grammar.
    let prefix: String

    init(root: JSON, prefix: String = "") {
        self.root = root
        self.prefix = prefix
    }

    mutating func add(_ base: String, _ body: String) -> String {
        let name = claim(base)
        rules.append((name, body))
        return name
    }

    /// A rule name from `base` (letters and digits, the rest dashes, with this schema's prefix),
    /// made unique and taken.
    mutating func claim(_ base: String) -> String {
        var name = base.map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined().lowercased()
        if !name.hasPrefix(prefix) { name = prefix + name }
        if name.isEmpty || name.first == "-" { name = "r" + name }
        if names.contains(name) {
            var k = 1
            while names.contains("\(name)-\(k)") { k += 1 }
            name = "\(name)-\(k)"
        }
        names.insert(name)
        return name
    }

    func fail(_ path: String, _ why: String) -> GrammarError { GrammarError("\(path): \(why)") }

    /// The rule (or a primitive's name, or a parenthesized expression) for `schema`.
    mutating func visit(_ schema: JSON, name: String, path: String, depth: Int) throws(GrammarError) -> String {
        guard depth < maxDepth else { throw fail(path, "nested beyond \(maxDepth) levels") }
        if schema == .bool(true) || schema == [:] { return "value" }
        guard case .object(let pairs) = schema else { throw fail(path, "a schema must be an object, got \(schema.text)") }
        let keys = Set(pairs.map(\.0))
        if let ref = schema["$ref"]?.stringValue { return try reference(ref, path: path, depth: depth) }
        if let c = schema["const"] { return add(name, JSONSchemaGrammar.literal(String(decoding: c.serialized(), as: UTF8.self)) + " space") }
        if case .array(let values)? = schema["enum"] {
            guard !values.isEmpty else { throw fail(path, "enum is empty: no answer could match") }
            return add(
                name,
                "( " + values.map { JSONSchemaGrammar.literal(String(decoding: $0.serialized(), as: UTF8.self)) }.joined(separator: " | ")
                    + " ) space")
        }
        for key in ["anyOf", "oneOf"] {
            if case .array(let options)? = schema[key] {
                guard !options.isEmpty else { throw fail(path, "\(key) is empty") }
                var alts: [String] = []
                for (i, o) in options.enumerated() { alts.append(try visit(o, name: "\(name)-\(i)", path: "\(path).\(key)[\(i)]", depth: depth + 1)) }
                return add(name, alts.joined(separator: " | "))
            }
        }
        if case .array(let parts)? = schema["allOf"] { return try visit(try merged(parts, path: path), name: name, path: path, depth: depth + 1) }
        switch schema["type"] {
        case .array(let types)?:
            var alts: [String] = []
            for t in types {
                alts.append(
                    try visit(
                        .object(pairs.filter { $0.0 != "type" } + [("type", t)]), name: "\(name)-\(t.stringValue ?? "x")", path: path,
                        depth: depth + 1))
            }
            return add(name, alts.joined(separator: " | "))
        case .string(let type)?:
            return try typed(type, schema, keys, name: name, path: path, depth: depth)
        case nil:
            if keys.contains("properties") { return try typed("object", schema, keys, name: name, path: path, depth: depth) }
            if keys.contains("items") || keys.contains("prefixItems") {
                return try typed("array", schema, keys, name: name, path: path, depth: depth)
            }
            try only([], keys, path)
            return "value"
        case let t?:
            throw fail(path, "type must be a string or a list of them, got \(t.text)")
        }
    }

    /// Refuses a keyword the schema has and this type does not enforce.
    func only(_ allowed: Set<String>, _ keys: Set<String>, _ path: String) throws(GrammarError) {
        for k in keys.sorted() where !allowed.contains(k) && !annotations.contains(k) && k != "type" {
            throw fail(path, "the keyword \(k) is not supported")
        }
    }

    mutating func typed(_ type: String, _ schema: JSON, _ keys: Set<String>, name: String, path: String, depth: Int) throws(GrammarError) -> String {
        switch type {
        case "null": try only([], keys, path); return "null"
        case "boolean": try only([], keys, path); return "boolean"
        case "number":
            try only([], keys, path)
            return "number"
        case "integer":
            try only(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"], keys, path)
            return try integer(schema, name: name, path: path)
        case "string":
            try only(["minLength", "maxLength", "pattern", "format"], keys, path)
            return try string(schema, name: name, path: path)
        case "array":
            try only(["items", "prefixItems", "minItems", "maxItems"], keys, path)
            return try array(schema, name: name, path: path, depth: depth)
        case "object":
            try only(["properties", "required", "additionalProperties"], keys, path)
            return try object(schema, name: name, path: path, depth: depth)
        default:
            throw fail(path, "type \(type) is not a JSON Schema type")
        }
    }

    mutating func reference(_ ref: String, path: String, depth: Int) throws(GrammarError) -> String {
        if let made = refs[ref] { return made }
        let parts = ref.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[0] == "#", ["$defs", "definitions"].contains(parts[1]), let target = root[parts[1]]?[parts[2]] else {
            throw fail(path, "$ref \(ref) is not supported (only #/$defs/NAME and #/definitions/NAME of this schema)")
        }
        // Named before it is made, so that a schema that refers to itself refers to this rule.
        let name = claim(parts[2])
        refs[ref] = name
        let body = try visit(target, name: name + "-body", path: ref, depth: depth + 1)
        rules.append((name, body))
        return name
    }

    /// allOf of object schemas: their properties and required lists together.
    func merged(_ parts: [JSON], path: String) throws(GrammarError) -> JSON {
        var properties: [(String, JSON)] = [], required: [JSON] = []
        for (i, p) in parts.enumerated() {
            var part = p
            if let ref = p["$ref"]?.stringValue {
                let bits = ref.split(separator: "/").map(String.init)
                guard bits.count == 3, let t = root[bits[1]]?[bits[2]] else { throw fail(path, "allOf[\(i)]: $ref \(ref) is not supported") }
                part = t
            }
            guard case .object(let pairs) = part,
                pairs.allSatisfy({ ["type", "properties", "required"].contains($0.0) || annotations.contains($0.0) }),
                part["type"] == nil || part["type"] == "object"
            else {
                throw fail(path, "allOf is supported only of object schemas (properties and required)")
            }
            if case .object(let ps)? = part["properties"] { properties += ps }
            if case .array(let rs)? = part["required"] { required += rs }
        }
        return ["type": "object", "properties": .object(properties), "required": .array(required)]
    }

    mutating func object(_ schema: JSON, name: String, path: String, depth: Int) throws(GrammarError) -> String {
        var props: [(key: String, rule: String, required: Bool)] = []
        var required = Set<String>()
        switch schema["required"] {
        case nil: break
        case .array(let items)? where items.allSatisfy({ $0.stringValue != nil }): required = Set(items.compactMap(\.stringValue))
        case let v?: throw fail(path, "required must be a list of property names, got \(v.text)")
        }
        switch schema["properties"] {
        case nil: break
        case .object(let pairs)?:
            for (key, sub) in pairs {
                let rule = try visit(sub, name: "\(name)-\(key)", path: "\(path).properties.\(key)", depth: depth + 1)
                props.append((key, JSONSchemaGrammar.literal("\"" + jsonEscaped(key) + "\"") + " space \":\" space " + rule, required.contains(key)))
            }
        case let v?: throw fail(path, "properties must be an object, got \(v.text)")
        }
        if let missing = required.subtracting(props.map(\.key)).sorted().first {
            throw fail(path, "required names \(missing), which properties does not define")
        }
        var extra: String?
        switch schema["additionalProperties"] {
        case nil, .bool(false)?: break
        case .bool(true)?: extra = otherKey(props.map(\.key), name: name) + " \":\" space value"
        case let sub?:
            extra =
                otherKey(props.map(\.key), name: name) + " \":\" space "
                + (try visit(sub, name: "\(name)-additional", path: "\(path).additionalProperties", depth: depth + 1))
        }
        var members: String
        if props.contains(where: \.required) {
            // Declared order: the required always, an optional one before the first required
            // followed by its comma, after it preceded by one.
            var out: [String] = [], seenRequired = false
            for p in props {
                if p.required {
                    out.append(seenRequired ? "\",\" space " + p.rule : p.rule)
                    seenRequired = true
                } else {
                    out.append(seenRequired ? "( \",\" space \(p.rule) )?" : "( \(p.rule) \",\" space )?")
                }
            }
            members = out.joined(separator: " ")
            if let extra { members += " ( \",\" space \(extra) )*" }
            return add(name, "\"{\" space \(members) \"}\" space")
        }
        // Any subset of the optional ones, in order: from-i begins with property i or a later one.
        guard !props.isEmpty || extra != nil else { return add(name, "\"{\" space \"}\" space") }
        var rest = "", from = ""
        for (i, p) in props.enumerated().reversed() {
            let later = rest.isEmpty ? "" : " " + rest
            rest = add("\(name)-rest-\(i)", "( \",\" space \(p.rule) )?" + later)
            from = add("\(name)-from-\(i)", p.rule + later + (from.isEmpty ? "" : " | " + from))
        }
        if let extra {
            let start = from.isEmpty ? extra : "\(from) | \(extra)"
            members = "( \(start) ) ( \",\" space \(extra) )*"
        } else {
            members = from
        }
        return add(name, "\"{\" space ( \(members) )? \"}\" space")
    }

    /// A key that is none of `keys` (an additional property's: a declared one is written as
    /// declared), as llama.cpp's `_not_strings` makes it: down a trie of the keys, a character
    /// that leaves it, or an end where no key ends.  Keys with characters JSON escapes are not
    /// excluded (their escapes are not traced).
    mutating func otherKey(_ keys: [String], name: String) -> String {
        let plain = keys.filter { $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0 != "\"" && $0 != "\\" && $0.value != 0x7F } }
        guard !plain.isEmpty else { return "string" }
        final class Node { var children: [(Unicode.Scalar, Node)] = []; var end = false }
        let root = Node()
        for k in plain {
            var n = root
            for u in k.unicodeScalars {
                if let next = n.children.first(where: { $0.0 == u })?.1 {
                    n = next
                } else {
                    let next = Node()
                    n.children.append((u, next))
                    n = next
                }
            }
            n.end = true
        }
        func rule(_ n: Node) -> String {
            var alts: [String] = []
            if !n.end { alts.append("\"\\\"\" space") }  // the key may end here
            let excluded = n.children.map { RegexToGrammar.hex($0.0.value) }.joined()
            alts.append("( [^\"\\\\\\x7F\\x00-\\x1F\(excluded)] | escape ) char* \"\\\"\" space")
            for (u, child) in n.children { alts.append(JSONSchemaGrammar.literal(String(u)) + " " + rule(child)) }
            return add("\(name)-other-key", alts.joined(separator: " | "))
        }
        return "\"\\\"\" " + rule(root)
    }

    mutating func array(_ schema: JSON, name: String, path: String, depth: Int) throws(GrammarError) -> String {
        func count(_ key: String) throws(GrammarError) -> Int? {
            guard let v = schema[key] else { return nil }
            guard let n = v.intValue, n >= 0, n <= Int64(maxRepetitions) else {
                throw fail(path, "\(key) must be an integer from 0 to \(maxRepetitions), got \(v.text)")
            }
            return Int(n)
        }
        let least = try count("minItems") ?? 0, most = try count("maxItems")
        if let most, most < least { throw fail(path, "maxItems \(most) is below minItems \(least): no answer could match") }
        if case .array(let tuple)? = schema["prefixItems"] {
            var parts: [String] = []
            for (i, t) in tuple.enumerated() { parts.append(try visit(t, name: "\(name)-\(i)", path: "\(path).prefixItems[\(i)]", depth: depth + 1)) }
            guard !parts.isEmpty else { return add(name, "\"[\" space \"]\" space") }
            return add(name, "\"[\" space " + parts.joined(separator: " \",\" space ") + " \"]\" space")
        }
        let item =
            try schema["items"].map { v throws(GrammarError) in try visit(v, name: "\(name)-item", path: "\(path).items", depth: depth + 1) }
            ?? "value"
        if most == 0 { return add(name, "\"[\" space \"]\" space") }
        let more: String
        switch most {
        case nil: more = "( \",\" space \(item) ){\(max(0, least - 1)),}"
        case let m?: more = "( \",\" space \(item) ){\(max(0, least - 1)),\(m - 1)}"
        }
        let body = "\(item) \(more)"
        return add(name, least == 0 ? "\"[\" space ( \(body) )? \"]\" space" : "\"[\" space \(body) \"]\" space")
    }

    mutating func integer(_ schema: JSON, name: String, path: String) throws(GrammarError) -> String {
        func bound(_ key: String) throws(GrammarError) -> Int64? {
            guard let v = schema[key] else { return nil }
            if let i = v.intValue { return i }
            if let d = v.doubleValue, d == d.rounded(), abs(d) < 1e15 { return Int64(d) }
            throw fail(path, "\(key) must be a number, got \(v.text)")
        }
        var lo = try bound("minimum"), hi = try bound("maximum")
        if let e = try bound("exclusiveMinimum") { lo = max(lo ?? e + 1, e + 1) }
        if let e = try bound("exclusiveMaximum") { hi = min(hi ?? e - 1, e - 1) }
        if let lo, let hi, lo > hi { throw fail(path, "minimum \(lo) is above maximum \(hi): no answer could match") }
        let enumerable: Int64 = 2000
        func values(_ r: ClosedRange<Int64>) -> String { r.map { "\"\($0)\"" }.joined(separator: " | ") }
        switch (lo, hi) {
        case (nil, nil): return "integer"
        case (let l?, let h?) where h - l <= enumerable: return add(name, "( \(values(l...h)) ) space")
        case (let l?, nil) where l >= 0 && l <= enumerable:
            // From l to the largest number of as many digits written out, then every number of more digits.
            let digits = String(l).count
            let top = Int64(String(repeating: "9", count: digits)) ?? l
            return add(name, "( \(values(l...top)) | [1-9] [0-9]{\(digits),15} ) space")
        case (let l?, nil) where l < 0 && -l <= enumerable:
            return add(name, "( \(values(l...(-1))) | integral-part ) space")
        case (nil, let h?) where h >= 0 && h <= enumerable:
            return add(name, "( \"-\" [1-9] [0-9]{0,15} | \(values(0...h)) ) space")
        default:
            throw fail(path, "integer bounds other than small ranges (up to \(enumerable) values) or a lower bound near 0 are not supported")
        }
    }

    mutating func string(_ schema: JSON, name: String, path: String) throws(GrammarError) -> String {
        if let format = schema["format"] {
            let made: String
            switch format.stringValue {
            case "date"?: made = #""\"" [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ) "\"" space"#
            case "time"?:
                made =
                    #""\"" ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ) "\"" space"#
            case "date-time"?:
                made =
                    #""\"" [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ) "T" ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ) "\"" space"#
            case "uuid"?: made = #""\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space"#
            default: throw fail(path, "format \(format.text) is not supported (date, time, date-time, uuid are)")
            }
            guard schema["pattern"] == nil, schema["minLength"] == nil, schema["maxLength"] == nil else {
                throw fail(path, "format with pattern, minLength or maxLength is not supported")
            }
            return add(name, made)
        }
        if let p = schema["pattern"] {
            guard let pattern = p.stringValue else { throw fail(path, "pattern must be a string") }
            guard schema["minLength"] == nil, schema["maxLength"] == nil else {
                throw fail(path, "pattern with minLength or maxLength is not supported")
            }
            var regex = RegexToGrammar(Array(pattern.unicodeScalars), path: path)
            return add(name, "\"\\\"\" " + (try regex.convert()) + " \"\\\"\" space")
        }
        func length(_ key: String) throws(GrammarError) -> Int? {
            guard let v = schema[key] else { return nil }
            guard let n = v.intValue, n >= 0, n <= Int64(maxRepetitions) else {
                throw fail(path, "\(key) must be an integer from 0 to \(maxRepetitions), got \(v.text)")
            }
            return Int(n)
        }
        let least = try length("minLength"), most = try length("maxLength")
        if least == nil && most == nil { return "string" }
        if let least, let most, most < least { throw fail(path, "maxLength \(most) is below minLength \(least): no answer could match") }
        return add(name, "\"\\\"\" char{\(least ?? 0),\(most.map(String.init) ?? "")} \"\\\"\" space")
    }

    func jsonEscaped(_ s: String) -> String {
        let quoted = String(decoding: JSON.string(s).serialized(), as: UTF8.self)
        return String(quoted.dropFirst().dropLast())
    }
}

/// A JSON Schema `pattern` (ECMA-262, the common subset: literals, `.`, classes with ranges and
/// `\d \w \s` and their negations, groups (`(?:` too), `|`, `* + ? {m} {m,} {m,n}`, `^ $` at the
/// ends) as a GBNF expression over a JSON string's characters: a `"` or `\` the pattern admits is
/// written escaped, as JSON writes it.  Without `^`/`$` a pattern matches anywhere in a string,
/// which a grammar cannot bound: both anchors are required.
struct RegexToGrammar {
    let s: [Unicode.Scalar]
    let path: String
    var i = 0

    init(_ s: [Unicode.Scalar], path: String) {
        self.s = s
        self.path = path
    }

    func fail(_ why: String) -> GrammarError { GrammarError("\(path): pattern \(String(String.UnicodeScalarView(s))): \(why)") }

    mutating func convert() throws(GrammarError) -> String {
        guard s.first == "^", s.last == "$", s.count >= 2 else { throw fail("only patterns anchored at both ends (^...$) are supported") }
        i = 1
        let body = try alternation(end: s.count - 1)
        guard i == s.count - 1 else { throw fail("unexpected \(s[i])") }
        return "( \(body) )"
    }

    mutating func alternation(end: Int) throws(GrammarError) -> String {
        var alts = [try sequence(end: end)]
        while i < end && s[i] == "|" {
            i += 1
            alts.append(try sequence(end: end))
        }
        return alts.map { $0.isEmpty ? "\"\"" : $0 }.joined(separator: " | ")
    }

    mutating func sequence(end: Int) throws(GrammarError) -> String {
        var out: [String] = []
        while i < end && s[i] != "|" && s[i] != ")" {
            var atom: String
            let c = s[i]
            i += 1
            switch c {
            case "(":
                if i + 1 < end && s[i] == "?" && s[i + 1] == ":" {
                    i += 2
                } else if i < end && s[i] == "?" {
                    throw fail("(?\(s[i + 1]) groups are not supported")
                }
                let inner = try alternation(end: end)
                guard i < end, s[i] == ")" else { throw fail("expected )") }
                i += 1
                atom = "( \(inner) )"
            case ".": atom = "char"
            case "[": atom = try characterClass(end: end)
            case "\\": atom = try escape(end: end, inClass: false).grammar
            case "^", "$": throw fail("anchors inside the pattern are not supported")
            case "*", "+", "?", "{": throw fail("\(c) repeats nothing")
            default: atom = RegexToGrammar.quoted([c.value])
            }
            if i < end {
                switch s[i] {
                case "*": i += 1; atom += "*"
                case "+": i += 1; atom += "+"
                case "?": i += 1; atom += "?"
                case "{":
                    let start = i
                    while i < end && s[i] != "}" { i += 1 }
                    guard i < end else { throw fail("unterminated {") }
                    i += 1
                    let inside = String(String.UnicodeScalarView(s[(start + 1)..<(i - 1)]))
                    guard inside.allSatisfy({ $0.isNumber || $0 == "," }), inside.first?.isNumber == true else {
                        throw fail("bad repetition {\(inside)}")
                    }
                    atom += "{\(inside)}"
                default: break
                }
                let quantified = atom.hasSuffix("}") || atom.hasSuffix("*") || atom.hasSuffix("+") || atom.hasSuffix("?")
                if quantified && i < end && (s[i] == "?" || s[i] == "+") { throw fail("lazy and possessive quantifiers are not supported") }
            }
            out.append(atom)
        }
        return out.joined(separator: " ")
    }

    /// A character as a JSON string writes it, as a GBNF literal: `"` and `\` escaped, control
    /// characters as `\u00XX`.
    static func quoted(_ scalars: [UInt32]) -> String {
        var text = ""
        for v in scalars {
            switch v {
            case 0x22: text += "\\\""
            case 0x5C: text += "\\\\"
            case 0..<0x20, 0x7F: text += "\\u00" + (v < 16 ? "0" : "") + String(v, radix: 16)
            default: text.unicodeScalars.append(Unicode.Scalar(v) ?? "?")
            }
        }
        return JSONSchemaGrammar.literal(text)
    }

    /// `\d`, `\w`, `\s` and their negations as ranges (negated: the ranges to leave out), or one
    /// escaped character.
    mutating func escape(end: Int, inClass: Bool) throws(GrammarError) -> (grammar: String, ranges: [ClosedRange<UInt32>], negated: Bool) {
        guard i < end else { throw fail("unfinished escape") }
        let e = s[i]
        i += 1
        let digit: [ClosedRange<UInt32>] = [0x30...0x39], word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x5F...0x5F, 0x61...0x7A]
        let space: [ClosedRange<UInt32>] = [0x20...0x20, 0x09...0x0D]
        func single(_ v: UInt32) -> (String, [ClosedRange<UInt32>], Bool) { (RegexToGrammar.quoted([v]), [v...v], false) }
        switch e {
        case "d": return (RegexToGrammar.cls(digit, negated: false), digit, false)
        case "w": return (RegexToGrammar.cls(word, negated: false), word, false)
        case "s": return (RegexToGrammar.cls(space, negated: false), space, false)
        case "D": return (RegexToGrammar.cls(digit, negated: true), digit, true)
        case "W": return (RegexToGrammar.cls(word, negated: true), word, true)
        case "S": return (RegexToGrammar.cls(space, negated: true), space, true)
        case "n": return single(0x0A)
        case "t": return single(0x09)
        case "r": return single(0x0D)
        case "b", "B": throw fail("word boundaries are not supported")
        default:
            guard !e.properties.isAlphabetic && !("0"..."9").contains(e) else { throw fail("the escape \\\(e) is not supported") }
            return single(e.value)
        }
    }

    /// A class over a JSON string's characters: written out as alternatives, since `"`, `\` and
    /// control characters in it must be written escaped.
    static func cls(_ ranges: [ClosedRange<UInt32>], negated: Bool) -> String {
        // Characters JSON writes escaped: taken out of the class, and added back as their escapes
        // where the class admits them.
        let special: [UInt32] = Array(0..<0x20) + [0x22, 0x5C, 0x7F]
        let admitted = special.filter { v in ranges.contains { $0.contains(v) } != negated }
        var plain = ranges.flatMap { r -> [ClosedRange<UInt32>] in
            // Split the ranges around the special characters.
            var out: [ClosedRange<UInt32>] = [], lo = r.lowerBound
            for v in special where r.contains(v) {
                if v > lo { out.append(lo...(v - 1)) }
                lo = v + 1
            }
            if lo <= r.upperBound { out.append(lo...r.upperBound) }
            return out
        }
        var body = negated ? "[^" : "["
        if negated { plain += [0...0x1F, 0x22...0x22, 0x5C...0x5C, 0x7F...0x7F] }
        for r in plain {
            body += hex(r.lowerBound) + (r.lowerBound == r.upperBound ? "" : "-" + hex(r.upperBound))
        }
        body += "]"
        let parts = (plain.isEmpty && !negated ? [] : [body]) + admitted.map { quoted([$0]) }
        return parts.isEmpty ? "[^\\x00-\\U0010FFFF]" : "( " + parts.joined(separator: " | ") + " )"
    }

    static func hex(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return v <= 0xFF
            ? "\\x" + String(repeating: "0", count: 2 - h.count) + h
            : v <= 0xFFFF ? "\\u" + String(repeating: "0", count: 4 - h.count) + h : "\\U" + String(repeating: "0", count: 8 - h.count) + h
    }

    mutating func characterClass(end: Int) throws(GrammarError) -> String {
        var negated = false
        if i < end && s[i] == "^" { negated = true; i += 1 }
        var ranges: [ClosedRange<UInt32>] = []
        var first = true
        while true {
            guard i < end else { throw fail("unterminated [") }
            if s[i] == "]" && !first { i += 1; break }
            first = false
            var lo: UInt32
            if s[i] == "\\" {
                i += 1
                let e = try escape(end: end, inClass: true)
                if e.negated { throw fail("\\D, \\W and \\S inside a class are not supported") }
                if e.ranges.count != 1 || e.ranges[0].lowerBound != e.ranges[0].upperBound { ranges += e.ranges; continue }
                lo = e.ranges[0].lowerBound
            } else {
                lo = s[i].value
                i += 1
            }
            if i + 1 < end && s[i] == "-" && s[i + 1] != "]" {
                i += 1
                var hi: UInt32
                if s[i] == "\\" {
                    i += 1
                    let e = try escape(end: end, inClass: true)
                    guard !e.negated, e.ranges.count == 1, e.ranges[0].lowerBound == e.ranges[0].upperBound else {
                        throw fail("bad range in a class")
                    }
                    hi = e.ranges[0].lowerBound
                } else {
                    hi = s[i].value
                    i += 1
                }
                guard lo <= hi else { throw fail("range out of order in a class") }
                ranges.append(lo...hi)
            } else {
                ranges.append(lo...lo)
            }
        }
        return RegexToGrammar.cls(ranges, negated: negated)
    }
}
