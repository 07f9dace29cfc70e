/// A Jinja template (a GGUF file's `tokenizer.chat_template`), parsed once and rendered per
/// request, in the environment Hugging Face renders chat templates in: `trim_blocks`,
/// `lstrip_blocks`, `break`/`continue`, transformers' `tojson` (no HTML escaping, keys in their
/// order), `raise_exception(message)` and `strftime_now(format)`, in a sandbox where lists and
/// dicts cannot be changed.  The output is a `JinjaText`: which parts the template wrote and which
/// came from the data it was given.
public struct JinjaTemplate: Sendable {
    let nodes: [JinjaNode]

    public init(_ source: String) throws(JinjaError) {
        nodes = try JinjaParser.parse(source)
    }

    /// What rendering may spend: a template loops only over what it is given, but `range(10**9)`
    /// or a macro calling itself must end in an error, not a stalled worker.
    public struct Limits: Sendable {
        public var steps = 1_000_000
        public var outputBytes = 16 << 20
        public var depth = 64
        public init() {}
    }

    /// The date `strftime_now` tells: now (UTC) unless given.
    public func render(_ variables: [String: JinjaValue], now: JinjaDate = .now(), limits: Limits = Limits()) throws(JinjaError) -> JinjaText {
        let renderer = JinjaRenderer(variables: variables, now: now, limits: limits)
        _ = try renderer.run(nodes)
        return renderer.output
    }
}
