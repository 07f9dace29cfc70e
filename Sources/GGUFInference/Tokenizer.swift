/// What the engine and the chat model need of a GGUF file's tokenizer, whichever kind it is
/// (byte-level BPE, SentencePiece).
public protocol Tokenizer: AnyObject, Sendable {
    /// `controlOffsets`: where control tokens may stand (a chat template's own markers), in
    /// Unicode scalars; nil: anywhere the tokenizer reads them from text.
    func encode(_ text: String, controlOffsets: Set<Int>?) -> [Int32]
    /// A token's bytes as text shows them (a control token's as the tokenizer has it).
    func bytes(of id: Int32) -> [UInt8]
    func id(of token: String) -> Int32?
    /// The most bytes of text one token stands for: a text of n bytes is at least n / this tokens.
    var longestTokenBytes: Int { get }
    /// The token to put first in every prompt, when the file asks for one (`add_bos_token`).
    var leadingToken: Int32? { get }
    /// The token to put last in every prompt, when the file asks for one (`add_eos_token`, as
    /// llama.cpp's tokenizer adds it; rare in generative models).
    var trailingToken: Int32? { get }
    /// The control tokens (type 3 in the file): markers, never text a grammar could take.
    var controlTokenIDs: Set<Int32> { get }
}

extension GGUFFile {
    /// The `bos` or `eos` token's id when the file asks for it to be added to every text
    /// (`tokenizer.ggml.add_bos_token`, `add_eos_token`; `fallback` where it does not say).
    func addedToken(_ which: String, fallback: Bool) -> Int32? {
        let add: Bool
        if case .bool(let b)? = metadata["tokenizer.ggml.add_\(which)_token"] { add = b } else { add = fallback }
        guard add, let id = metadata["tokenizer.ggml.\(which)_token_id"]?.intValue else { return nil }
        return Int32(id)
    }
}

/// The tokenizer a GGUF file describes (`tokenizer.ggml.model`).
public func makeTokenizer(gguf f: GGUFFile) throws(GGUFError) -> any Tokenizer {
    switch f.metadata["tokenizer.ggml.model"]?.stringValue {
    case "gpt2": return try BPETokenizer(gguf: f)
    case "llama": return try SentencePieceTokenizer(gguf: f)
    case let other: throw GGUFError(f.path, "tokenizer \(other ?? "none") is not supported; supported: gpt2 (byte-level BPE), llama (SentencePiece)")
    }
}

/// Tokens read whole from text (control tokens; SentencePiece's user-defined ones): at a
/// position, the longest whose text stands there.  A text's first character is checked first,
/// so that most positions cost one set lookup.
struct TokenTexts: Sendable {
    private let texts: [(text: [Unicode.Scalar], id: Int32)]
    private let firsts: Set<Unicode.Scalar>

    /// Longest first, so that one text that begins another never hides it; empty texts never match.
    init(_ tokens: [(text: String, id: Int32)]) {
        texts = tokens.filter { !$0.text.isEmpty }.map { (Array($0.text.unicodeScalars), $0.id) }.sorted { $0.text.count > $1.text.count }
        firsts = Set(texts.compactMap(\.text.first))
    }

    /// `s` as tokens: wherever `whole(i)` finds a token's text (its length and id), that token;
    /// the text between goes through `encode` (both tokenizers read control tokens so).
    static func encode(
        _ s: [Unicode.Scalar], whole: (Int) -> (Int, Int32)?, between encode: (ArraySlice<Unicode.Scalar>, inout [Int32]) -> Void
    ) -> [Int32] {
        var out: [Int32] = []
        var start = 0, i = 0
        while i < s.count {
            if let (length, id) = whole(i) {
                encode(s[start..<i], &out)
                out.append(id)
                i += length
                start = i
            } else {
                i += 1
            }
        }
        encode(s[start..<s.count], &out)
        return out
    }

    /// The length (in scalars) and id of the longest token text at `i` of `s`.
    func match(at i: Int, in s: [Unicode.Scalar]) -> (Int, Int32)? {
        guard i < s.count, firsts.contains(s[i]) else { return nil }
        for (text, id) in texts where text.count <= s.count - i && s[i..<(i + text.count)].elementsEqual(text) {
            return (text.count, id)
        }
        return nil
    }
}
