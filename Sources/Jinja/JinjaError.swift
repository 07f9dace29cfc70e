/// Why a template could not be parsed or rendered, with the line of the template it concerns.
public struct JinjaError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The template's text is not Jinja mserve can parse.
        case syntax
        /// Rendering failed: an undefined attribute, a wrong type, a limit reached.
        case render
        /// The template itself refused the input (`raise_exception("...")`).
        case raised
    }

    public let kind: Kind
    public let message: String
    public let line: Int

    public init(_ kind: Kind, _ message: String, line: Int = 0) {
        self.kind = kind
        self.message = message
        self.line = line
    }

    public var description: String {
        switch kind {
        case .raised: return message
        case .syntax: return "template syntax error at line \(line): \(message)"
        case .render: return line > 0 ? "template error at line \(line): \(message)" : "template error: \(message)"
        }
    }
}
