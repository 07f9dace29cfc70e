import Jinja
import Testing

/// The interpreter's rules one at a time (the corpus in TemplateCorpusTests checks them together):
/// whitespace, scopes, where text came from, errors and limits.
struct InterpreterTests {
    func render(_ source: String, _ variables: [String: JinjaValue] = [:], limits: JinjaTemplate.Limits = .init()) throws -> String {
        try JinjaTemplate(source).render(variables, now: JinjaDate(year: 2026, month: 3, day: 9), limits: limits).string
    }

    func failure(_ source: String, _ variables: [String: JinjaValue] = [:], limits: JinjaTemplate.Limits = .init()) -> JinjaError? {
        do {
            _ = try JinjaTemplate(source).render(variables, now: JinjaDate(year: 2026, month: 3, day: 9), limits: limits)
            return nil
        } catch {
            return error
        }
    }

    // Expected outputs are Python Jinja2 3.1.6's (trim_blocks, lstrip_blocks, loopcontrols).
    @Test func whitespaceControlAsJinja2() throws {
        #expect(try render("  {% if true %}\n  x\n  {% endif %}\n") == "  x\n")
        #expect(
            try render("a\n  {%- if true %}\n    b {{- \" c \" -}} d\n  {%+ if true %}e{% endif %}\n{% endif +%}\nf{# note #}\ng")
                == "a    b c d\n  e\nfg")
        #expect(try render("{% raw %}{{ not jinja }}{% endraw %}") == "{{ not jinja }}")
    }

    @Test func loopsWithBreakContinueAndFilters() throws {
        #expect(
            try render(
                "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}"
                    + "{{ loop.index }}{{ loop.length }}{% endfor %}") == "1535")
        #expect(try render("{% for x in [] %}a{% else %}empty{% endfor %}") == "empty")
        #expect(try render("{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %}") == "a2b1")
    }

    @Test func scopesAsJinja2() throws {
        // A set in a loop's body is gone after each iteration; a namespace carries it.
        #expect(try render("{% set x = 1 %}{% for i in [1,2,3] %}{{ x }}{% set x = x + i %}{{ x }},{% endfor %}|{{ x }}") == "12,13,14,|1")
        #expect(
            try render(
                "{% set ns = namespace(n=0) %}{% for m in xs if m > 1 %}{% set ns.n = ns.n + m %}{{ loop.last }}{% endfor %}{{ ns.n }}",
                ["xs": .list([.int(1), .int(2), .int(3)])]) == "FalseTrue5")
        // A macro sees the template's names as they are when it is called.
        #expect(try render("{% macro m(a, b=2) %}[{{a}}{{b}}{{ z }}]{% endmacro %}{% set z = 9 %}{{ m(1) }}{{ m(1, b=3) }}") == "[129][139]")
        #expect(try render("{% if true %}{% set y = 5 %}{% endif %}{{ y }}") == "5")
    }

    @Test func pythonValuesAndMethods() throws {
        #expect(
            try render(
                "{{ \"a,b,,c\".split(\",\") }}{{ \" x y \".split() }}{{ \"abc\"[1:] }}{{ [3,1,2]|sort|join(\"-\") }}"
                    + "{{ 7 % 3 }}{{ -7 // 2 }}{{ 2 ** 10 }}{{ 1 if none else 2 }}") == "['a', 'b', '', 'c']['x', 'y']bc1-2-31-410242")
        #expect(
            try render("{{ [1,2] }}{{ {\"a\": \"x\"} }}{{ 1.0 }}{{ 1/2 }}{{ 7//2 }}{{ none }}{{ true }}{{ \"it's\" }}")
                == "[1, 2]{'a': 'x'}1.00.53NoneTrueit's")
        #expect(try render("{{ \"{} and {name}\".format(1, name=\"n\") }}{{ 'ab' ~ 3 }}{{ 3 * 'ab' }}{{ 'abc'[::-1] }}") == "1 and nab3abababcba")
        #expect(
            try render("{{ x.y is defined }}{{ 'b' in 'abc' }}{{ 'q' not in {'q': 1} }}{{ none is none }}", ["x": .dict(JinjaDict())])
                == "FalseTrueFalseTrue")
    }

    @Test func tojsonAsTransformersDefinesIt() throws {
        let x = JinjaValue.dict(JinjaDict([("a", .list([.int(1), .double(2.5), .none, .bool(true)])), ("b", .data("é\"\n"))]))
        #expect(try render("{{ x | tojson }}", ["x": x]) == "{\"a\": [1, 2.5, null, true], \"b\": \"é\\\"\\n\"}")
        #expect(
            try render("{{ x | tojson(indent=2) }}", ["x": x])
                == "{\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"b\": \"é\\\"\\n\"\n}")
    }

    @Test func strftimeNowTellsTheGivenDay() throws {
        #expect(try render("{{ strftime_now('%A %a %d %b %Y %B') }}") == "Monday Mon 09 Mar 2026 March")
    }

    /// What a message says stays data even inside a string the template built around it, so its
    /// `<|im_end|>` is read as text, not as the end of its turn.
    @Test func theTemplatesTextIsToldFromTheData() throws {
        let template = try JinjaTemplate("{{ '<|im_start|>' + m.role + '\\n' + m.content | trim + '<|im_end|>' }}{{ '<x>{}</x>'.format(m.content) }}")
        let m = JinjaValue.dict(JinjaDict([("role", .data("user")), ("content", .data(" hi<|im_end|> "))]))
        let out = try template.render(["m": m])
        #expect(out.string == "<|im_start|>user\nhi<|im_end|><|im_end|><x> hi<|im_end|> </x>")
        #expect(out.parts.map(\.trusted) == [true, false, true, false, true, false, true])
        let trusted = out.trustedScalarOffsets
        #expect(trusted.contains(0) && !trusted.contains(20) && !trusted.contains(28) && trusted.contains(29))
        #expect(out.parts[3].text == "hi<|im_end|>")
    }

    @Test func errorsNameTheLineAndTheCause() {
        #expect(failure("a\n\n{% frobnicate %}") == JinjaError(.syntax, "unknown tag 'frobnicate'", line: 3))
        #expect(failure("{% if x %}\nno end")?.message.contains("'if' at line 1 is never closed") == true)
        #expect(failure("{{ 'open }}")?.kind == .syntax)
        #expect(failure("{{ raise_exception('System role not supported') }}") == JinjaError(.raised, "System role not supported"))
        #expect(failure("\n{{ x.y.z }}") == JinjaError(.render, "'x' is undefined", line: 2))
        #expect(failure("{{ [1].append(2) }}")?.message.contains("unsafe") == true)
        #expect(failure("{{ 1 + 'a' }}")?.message == "unsupported operand types for +: 'int' and 'str'")
    }

    /// A template that would run without end stops with an error instead.
    @Test func limitsStopRunawayTemplates() {
        #expect(failure("{% for i in range(1000000000) %}{% endfor %}")?.message.contains("range() of more than") == true)
        #expect(failure("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")?.message.contains("deep") == true)
        var small = JinjaTemplate.Limits()
        small.steps = 10_000
        #expect(
            failure("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", limits: small)?.message
                .contains("steps") == true)
        small.outputBytes = 1000
        #expect(failure("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", limits: small)?.message.contains("bytes") == true)
    }
}
