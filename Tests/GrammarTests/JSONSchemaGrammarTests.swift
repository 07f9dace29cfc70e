import MServeJSON
import Testing

@testable import Grammar

/// JSON Schema as a grammar: texts walked at random through the grammar always parse as JSON and
/// match the schema (checked by a small validator of the supported keywords); chosen texts are
/// taken or refused; unsupported keywords are refused by name.
@Suite struct JSONSchemaGrammarTests {
    /// A random sentence of `g`: a character drawn from a stack's next class at each step, ended
    /// at random once whole.  nil if none came within `limit` characters.
    static func walk(_ g: Grammar, _ rng: inout SystemRandomNumberGenerator, limit: Int = 600) -> String? {
        var m = GrammarMatcher(g)
        var out: [Unicode.Scalar] = []
        let alphabet: [UInt32] = Array(0x20...0x7E) + [0x0A, 0x09, 0xE9, 0x4E2D, 0x1F600]
        while out.count < limit {
            if m.isComplete && (m.isFinished || Int.random(in: 0..<4, using: &rng) == 0) { return String(String.UnicodeScalarView(out)) }
            let tops = m.stacks.compactMap { s -> (ranges: [ClosedRange<UInt32>], negated: Bool)? in
                guard let top = s.last, case .chars(let r, let n) = g.elements[Int(top)] else { return nil }
                return (r, n)
            }
            guard let (ranges, negated) = tops.randomElement(using: &rng) else { return nil }
            var c: UInt32
            if negated {
                let allowed = alphabet.filter { a in !ranges.contains { $0.contains(a) } }
                guard let a = allowed.randomElement(using: &rng) else { return nil }
                c = a
            } else {
                let r = ranges.randomElement(using: &rng) ?? 0...0
                // Mostly the range's printable ASCII, so that texts stay readable.
                c = UInt32.random(in: r, using: &rng)
                if r.upperBound > 0x7E, r.lowerBound <= 0x7E, Int.random(in: 0..<8, using: &rng) > 0 {
                    c = UInt32.random(in: max(r.lowerBound, 0x20)...0x7E, using: &rng)
                }
            }
            guard let u = Unicode.Scalar(c), m.accept(c) else { return nil }
            out.append(u)
        }
        return nil
    }

    /// Whether `v` matches `schema`, for the keywords the grammar enforces.
    static func valid(_ v: JSON, _ schema: JSON, root: JSON) -> Bool {
        if let ref = schema["$ref"]?.stringValue {
            let bits = ref.split(separator: "/").map(String.init)
            return valid(v, root[bits[1]]?[bits[2]] ?? .null, root: root)
        }
        if let c = schema["const"] { return v == c }
        if case .array(let e)? = schema["enum"] { return e.contains(v) }
        if case .array(let options)? = schema["anyOf"] { return options.contains { valid(v, $0, root: root) } }
        switch schema["type"]?.stringValue {
        case "string"?:
            guard case .string(let s) = v else { return false }
            let n = s.unicodeScalars.count
            if let lo = schema["minLength"]?.intValue, n < lo { return false }
            if let hi = schema["maxLength"]?.intValue, n > hi { return false }
            return true
        case "integer"?:
            guard case .int(let i) = v else { return false }
            if let lo = schema["minimum"]?.intValue, i < lo { return false }
            if let hi = schema["maximum"]?.intValue, i > hi { return false }
            return true
        case "number"?: return v.doubleValue != nil
        case "boolean"?: if case .bool = v { return true } else { return false }
        case "null"?: return v == .null
        case "array"?:
            guard case .array(let items) = v else { return false }
            if let lo = schema["minItems"]?.intValue, items.count < lo { return false }
            if let hi = schema["maxItems"]?.intValue, items.count > hi { return false }
            return schema["items"].map { s in items.allSatisfy { valid($0, s, root: root) } } ?? true
        case "object"?:
            guard case .object(let pairs) = v, case .object(let props)? = schema["properties"] else { return false }
            var required: [String] = []
            if case .array(let a)? = schema["required"] { required = a.compactMap(\.stringValue) }
            for r in required where !pairs.contains(where: { $0.0 == r }) { return false }
            // Declared keys once each; others only where additional properties are allowed.
            for (k, value) in pairs {
                guard let sub = props.first(where: { $0.0 == k })?.1 else {
                    if schema["additionalProperties"] != .bool(true) { return false }
                    continue
                }
                if !valid(value, sub, root: root) { return false }
            }
            let declared = pairs.map(\.0).filter { k in props.contains { $0.0 == k } }
            return Set(declared).count == declared.count
        default: return true
        }
    }

    static let person: JSON = [
        "type": "object",
        "properties": [
            "name": ["type": "string", "minLength": 1, "maxLength": 12], "age": ["type": "integer", "minimum": 0, "maximum": 150],
            "email": ["type": "string", "format": "uuid"],
            "tags": ["type": "array", "items": ["enum": ["a", "b", 3, .null]], "minItems": 1, "maxItems": 3],
            "kind": ["const": "person"], "score": ["type": ["number", "null"]], "home": ["$ref": "#/$defs/place"]
        ],
        "required": ["name", "age", "kind"],
        "$defs": [
            "place": [
                "type": "object", "properties": ["city": ["type": "string"], "zip": ["type": "string", "pattern": "^[0-9]{5}(-[0-9]{4})?$"]],
                "required": ["city"]
            ]
        ]
    ]

    @Test(
        arguments: [
            JSONSchemaGrammarTests.person,
            ["type": "object", "properties": ["a": ["type": "boolean"], "b": ["type": "integer", "minimum": 7], "c": ["type": "string"]]],
            ["type": "array", "items": ["type": "object", "properties": ["x": ["type": "integer", "maximum": 3]], "required": ["x"]], "maxItems": 4],
            ["anyOf": [["type": "string", "maxLength": 3], ["type": "integer", "minimum": -20]]],
            ["type": "object", "properties": ["n": ["type": "string"]], "additionalProperties": true],
            [
                "type": "object", "properties": ["child": ["$ref": "#/$defs/node"]],
                "$defs": ["node": ["type": "object", "properties": ["v": ["type": "integer"], "next": ["$ref": "#/$defs/node"]], "required": ["v"]]]
            ]
        ] as [JSON])
    func everyTextTheGrammarAdmitsParsesAndMatches(_ schema: JSON) throws {
        let g = try Grammar(gbnf: try JSONSchemaGrammar.gbnf(schema))
        var rng = SystemRandomNumberGenerator()
        var made = 0
        for _ in 0..<400 {
            guard let text = JSONSchemaGrammarTests.walk(g, &rng) else { continue }
            made += 1
            let value = try JSONParser.parse(text)
            #expect(JSONSchemaGrammarTests.valid(value, schema, root: schema), "\(text)")
        }
        #expect(made >= 40, "only \(made) texts of 400 walks ended within the limit")
    }

    func admits(_ schema: JSON, _ text: String) throws -> Bool {
        var m = GrammarMatcher(try Grammar(gbnf: try JSONSchemaGrammar.gbnf(schema)))
        return m.advance(Array(text.utf8)) && m.isComplete
    }

    @Test func chosenTextsAreTakenOrRefused() throws {
        let p = JSONSchemaGrammarTests.person
        #expect(try admits(p, #"{"name": "Ada", "age": 36, "kind": "person"}"#))
        #expect(
            try admits(
                p, "{\n  \"name\": \"A\\\"da\",\n  \"age\": 150,\n  \"email\": \"0f8fad5b-d9cb-469f-a165-70867728950e\",\n  \"kind\": \"person\"}"))
        #expect(try admits(p, #"{"name":"x","age":1,"tags":[3,null],"kind":"person","score":-1.5e3,"home":{"city":"Oslo","zip":"12345-6789"}}"#))
        #expect(try !admits(p, #"{"age": 36, "name": "Ada", "kind": "person"}"#))  // the declared order
        #expect(try !admits(p, #"{"name": "Ada", "kind": "person"}"#))  // age is required
        #expect(try !admits(p, #"{"name": "Ada", "age": 151, "kind": "person"}"#))
        #expect(try !admits(p, #"{"name": "", "age": 1, "kind": "person"}"#))
        #expect(try !admits(p, #"{"name": "x", "age": 1, "tags": [], "kind": "person"}"#))
        #expect(try !admits(p, #"{"name": "x", "age": 1, "kind": "person", "extra": 1}"#))
        #expect(try !admits(p, #"{"name": "x", "age": 1, "kind": "person", "home": {"city": "Oslo", "zip": "1234"}}"#))
        #expect(try admits(["type": "object", "properties": ["a": ["type": "integer"], "b": ["type": "integer"]]], #"{"b": 2}"#))
        #expect(try admits(["type": "object", "properties": ["a": ["type": "integer"], "b": ["type": "integer"]]], #"{}"#))
        #expect(try !admits(["type": "object", "properties": ["a": ["type": "integer"], "b": ["type": "integer"]]], #"{"b": 2, "a": 1}"#))
        #expect(try admits(["type": "integer", "minimum": 50], "50") && admits(["type": "integer", "minimum": 50], "100"))
        #expect(try !admits(["type": "integer", "minimum": 50], "49") && !admits(["type": "integer", "minimum": 50], "-60"))
        // Additional properties: any other key, never a declared one again.
        let open: JSON = ["type": "object", "properties": ["n": ["type": "string"]], "additionalProperties": true]
        #expect(try admits(open, #"{"n": "a", "m": 1}"#) && admits(open, #"{"nn": 1, "": 2}"#) && admits(open, #"{"m": 1}"#))
        #expect(try !admits(open, #"{"n": "a", "n": 1}"#) && !admits(open, #"{"n": 1}"#))
        var any = GrammarMatcher(try Grammar(gbnf: JSONSchemaGrammar.anyObject))
        #expect(any.advance(Array(#"{"a": [1, {"b": null}], "c": "\u00e9"}"#.utf8)) && any.isComplete)
        #expect(!GrammarMatcher(try Grammar(gbnf: JSONSchemaGrammar.anyObject)).accepts(Array("[".utf8)))
    }

    @Test(
        arguments: [
            (
                ["type": "object", "properties": ["a": ["type": "string", "format": "email"]]],
                "schema.properties.a: format \"email\" is not supported"
            ),
            (["type": "string", "pattern": "abc"], "only patterns anchored at both ends"),
            (["type": "integer", "minimum": 5, "maximum": 100000], "integer bounds"),
            (["type": "number", "minimum": 0], "the keyword minimum is not supported"),
            (["type": "array", "uniqueItems": true], "the keyword uniqueItems is not supported"),
            (["not": ["type": "string"]], "the keyword not is not supported"),
            (["type": "object", "required": ["a"]], "required names a"),
            (["$ref": "http://example.com/s.json"], "$ref http://example.com/s.json is not supported"),
            (["enum": []], "enum is empty"),
            (["type": "strin"], "type strin is not a JSON Schema type"),
            (["type": "string", "minLength": 3, "maxLength": 2], "maxLength 2 is below minLength 3")
        ] as [(JSON, String)])
    func unsupportedSchemasAreRefusedByName(_ schema: JSON, _ message: String) {
        do {
            _ = try Grammar(gbnf: try JSONSchemaGrammar.gbnf(schema))
            Issue.record("expected an error for \(schema.text)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func aSchemaNestedTooDeepIsRefused() {
        var s: JSON = ["type": "string"]
        for _ in 0..<70 { s = ["type": "array", "items": s] }
        #expect(throws: GrammarError.self) { try JSONSchemaGrammar.gbnf(s) }
    }
}
