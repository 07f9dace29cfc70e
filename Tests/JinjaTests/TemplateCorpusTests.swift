import GGUFInference
import Jinja
import MServeJSON
import MServeSystem
import Testing

/// The chat templates of model families in Tests/fixtures/chat_templates (from llama.cpp's
/// models/templates; see SOURCES.md) rendered over the conversations of make_renders.py, against
/// what Python's Jinja2 rendered in transformers' environment (renders.json): the same text, or an
/// error where Jinja2 raised one.
struct TemplateCorpusTests {
    static let directory: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
        return path + "/Tests/fixtures/chat_templates"
    }()

    static let fixture: JSON = (try? FileReading.bytes(directory + "/renders.json")).flatMap { try? JSONParser.parse($0) } ?? .null

    static var templateNames: [String] {
        guard case .object(let pairs)? = fixture["renders"] else { return [] }
        return pairs.map(\.0)
    }

    /// Where Jinja2 raises and mserve renders, on purpose: Jinja2's `map` makes a generator, which
    /// `json.dumps` refuses; mserve's makes a list (as llama.cpp's own engine does, whose template this is).
    static let knownDifferences: Set<String> = ["llama-cpp-deepseek-r1.jinja tools", "llama-cpp-deepseek-r1.jinja tool_arguments_as_text"]

    @Test func theFixtureIsThere() {
        #expect(TemplateCorpusTests.templateNames.count >= 10)
    }

    @Test(arguments: templateNames)
    func rendersAsJinja2Does(_ name: String) throws {
        let source = try FileReading.text(TemplateCorpusTests.directory + "/" + name)
        let template = try JinjaTemplate(source)
        guard case .object(let cases)? = TemplateCorpusTests.fixture["renders"]?[name] else { return }
        for (caseName, expected) in cases {
            guard let given = TemplateCorpusTests.fixture["cases"]?[caseName] else { continue }
            var variables: [String: JinjaValue] = ["add_generation_prompt": .bool(true), "bos_token": .data("<s>"), "eos_token": .data("</s>")]
            if case .object(let pairs) = given { for (k, v) in pairs { variables[k] = JinjaValue(json: v) } }
            let result = Result { () throws(JinjaError) in
                try template.render(variables, now: JinjaDate(year: 2026, month: 3, day: 9, hour: 14, minute: 5))
            }
            switch (result, expected["text"]?.stringValue) {
            case (.success(let text), let wanted?):
                #expect(text.string == wanted, "\(name) \(caseName)")
            case (.failure(let error), let wanted?):
                Issue.record("\(name) \(caseName): \(error), expected \(wanted.prefix(80).debugDescription)")
            case (.success, nil) where TemplateCorpusTests.knownDifferences.contains("\(name) \(caseName)"):
                break
            case (.success(let text), nil):
                Issue.record(
                    "\(name) \(caseName): rendered \(text.string.prefix(80).debugDescription), Jinja2 raised \(expected["error"]?.stringValue ?? "")")
            case (.failure(let error), nil):
                // A template's own raise_exception(...) is the same refusal, word for word.
                let wanted = expected["error"]?.stringValue ?? ""
                if wanted.hasPrefix("TemplateError: ") {
                    #expect(error.kind == .raised && "TemplateError: " + error.message == wanted, "\(name) \(caseName): \(error)")
                }
            }
        }
    }
}
