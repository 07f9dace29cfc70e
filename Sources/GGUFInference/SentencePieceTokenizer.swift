/// SentencePiece's BPE as GGUF files of Gemma and Llama 2 describe it (`tokenizer.ggml.model`
/// "llama"): spaces written as "▁" (U+2581), a leading one added when `add_space_prefix` says so;
/// the file's user-defined tokens kept whole; the rest split into characters and merged pair by
/// pair, the merge whose piece scores highest first (the leftmost of equal ones); a character the
/// vocabulary lacks written as its UTF-8 bytes' `<0xXX>` tokens (byte fallback).  No BOS is added
/// here: `addsBOS` tells the caller.
public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    public let tokens: [String]
    public let addSpacePrefix: Bool
    public let addsBOS: Bool
    public let bos: Int32?
    public let trailingToken: Int32?
    public let longestTokenBytes: Int
    /// Control tokens (`<bos>`, `<end_of_turn>`, ...): never made from text here, and shown as nothing.
    public let controlTokens: Set<Int32>
    public var controlTokenIDs: Set<Int32> { controlTokens }
    /// The pieces merges may make (normal and user-defined tokens), by their UTF-8 bytes: Swift's
    /// String equality is canonical equivalence ("e" + U+0301 equals "é"), SentencePiece's is not.
    private let pieces: [[UInt8]: Int32]
    /// A piece's score as a rank (0: the highest), equal scores sharing one, so that the merge
    /// heap's ties fall to the leftmost pair.
    private let rank: [Int32]
    private let byteTokens: [Int32]
    private let userDefined: TokenTexts
    /// Control tokens by their text, longest first (read from text only where allowed).
    private let controlTexts: TokenTexts

    /// `types`: GGUF's (and SentencePiece's) 1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte.
    public init(
        tokens: [String], scores: [Float], types: [Int], addSpacePrefix: Bool, addsBOS: Bool, bos: Int32?,
        trailingToken: Int32? = nil
    ) throws(GGUFError) {
        guard scores.count == tokens.count, types.count == tokens.count else {
            throw GGUFError("tokenizer", "\(tokens.count) tokens, \(scores.count) scores and \(types.count) types do not agree")
        }
        self.tokens = tokens
        self.addSpacePrefix = addSpacePrefix
        self.addsBOS = addsBOS
        self.trailingToken = trailingToken
        self.bos = bos
        longestTokenBytes = tokens.reduce(1) { max($0, $1.utf8.count) }
        var pieces: [[UInt8]: Int32] = [:]
        var byteTokens = [Int32](repeating: -1, count: 256)
        var user: [(text: String, id: Int32)] = []
        var control: Set<Int32> = []
        for (i, t) in tokens.enumerated() {
            switch types[i] {
            case 1: if pieces[Array(t.utf8)] == nil { pieces[Array(t.utf8)] = Int32(i) }
            case 4:
                if pieces[Array(t.utf8)] == nil { pieces[Array(t.utf8)] = Int32(i) }
                user.append((t, Int32(i)))
            case 6:
                // "<0x41>"
                if t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).prefix(2), radix: 16) {
                    byteTokens[Int(b)] = Int32(i)
                }
            case 3: control.insert(Int32(i))
            default: break
            }
        }
        self.pieces = pieces
        self.byteTokens = byteTokens
        controlTokens = control
        userDefined = TokenTexts(user)
        controlTexts = TokenTexts(control.map { (tokens[Int($0)], $0) })
        let distinct = Array(Set(scores)).sorted(by: >)
        var order: [Float: Int32] = [:]
        for (r, s) in distinct.enumerated() { order[s] = Int32(r) }
        rank = scores.map { order[$0] ?? Int32.max }
    }

    /// From the file's `tokenizer.ggml.*` metadata.
    public convenience init(gguf f: GGUFFile) throws(GGUFError) {
        guard f.metadata["tokenizer.ggml.model"]?.stringValue == "llama" else {
            throw GGUFError(f.path, "tokenizer \(f.metadata["tokenizer.ggml.model"]?.stringValue ?? "none") is not SentencePiece (llama)")
        }
        guard let tokens = f.metadata["tokenizer.ggml.tokens"]?.arrayValue?.compactMap(\.stringValue),
            let scores = f.metadata["tokenizer.ggml.scores"]?.arrayValue?.compactMap(\.doubleValue),
            let types = f.metadata["tokenizer.ggml.token_type"]?.arrayValue?.compactMap(\.intValue)
        else {
            throw GGUFError(f.path, "the tokenizer's tokens, scores or token types are missing")
        }
        func flag(_ key: String, _ fallback: Bool) -> Bool {
            if case .bool(let b)? = f.metadata["tokenizer.ggml.\(key)"] { return b }
            return fallback
        }
        try self.init(
            tokens: tokens, scores: scores.map { Float($0) }, types: types, addSpacePrefix: flag("add_space_prefix", true),
            addsBOS: flag("add_bos_token", true), bos: f.metadata["tokenizer.ggml.bos_token_id"]?.intValue.map { Int32($0) },
            trailingToken: f.addedToken("eos", fallback: false))
    }

    static let space: Unicode.Scalar = "\u{2581}"

    public var leadingToken: Int32? { addsBOS ? bos : nil }

    public func id(of token: String) -> Int32? {
        tokens.firstIndex(of: token).map { Int32($0) }
    }

    /// A token's bytes: "▁" as a space, a byte token as its byte, a control token as nothing.
    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0, Int(id) < tokens.count, !controlTokens.contains(id) else { return [] }
        if let b = byteTokens.firstIndex(of: id) { return [UInt8(b)] }
        var out: [UInt8] = []
        for c in tokens[Int(id)].unicodeScalars { out += c == Self.space ? [0x20] : Array(String(c).utf8) }
        return out
    }

    /// `controlOffsets`: where control tokens (`<start_of_turn>`) may be read from the text, in
    /// Unicode scalars of `text` -- a chat template's own markers; nil: anywhere (a raw prompt, as
    /// llama.cpp's server reads them).  Elsewhere their text is ordinary text.
    public func encode(_ text: String, controlOffsets: Set<Int>?) -> [Int32] {
        encode(text, controlAt: { controlOffsets?.contains($0) ?? true })
    }

    /// SentencePiece's own encoding: control tokens are never read from text.
    public func encode(_ text: String) -> [Int32] { encode(text, controlAt: { _ in false }) }

    private func encode(_ text: String, controlAt: (Int) -> Bool) -> [Int32] {
        var s: [Unicode.Scalar] = addSpacePrefix ? [Self.space] : []
        let shift = s.count
        for c in text.unicodeScalars { s.append(c == " " ? Self.space : c) }
        return TokenTexts.encode(s, whole: { userDefined.match(at: $0, in: s) ?? (controlAt($0 - shift) ? controlTexts.match(at: $0, in: s) : nil) })
        {
            merge($0, into: &$1)
        }
    }

    /// Characters merged by score, through a heap of candidate pairs over a linked list of symbols
    /// (a candidate whose symbols changed since it was pushed is recomputed when popped).
    private func merge(_ text: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        let s = Array(text), n = s.count
        guard n > 0 else { return }
        var length = [Int](repeating: 1, count: n)
        var next = Array(1...n), prev = Array(-1..<(n - 1))
        func piece(_ i: Int, _ end: Int) -> Int32? {
            var bytes: [UInt8] = []
            for c in s[i..<end] { bytes += String(c).utf8 }
            return pieces[bytes]
        }
        func candidate(_ i: Int) -> Int32? {
            let j = next[i]
            guard j < n, let id = piece(i, j + length[j]) else { return nil }
            return rank[Int(id)]
        }
        var heap = MergeHeap()
        for i in 0..<(n - 1) { if let r = candidate(i) { heap.push(rank: r, at: i) } }
        while let (r, i) = heap.pop() {
            guard length[i] > 0, candidate(i) == r else { continue }
            let j = next[i]
            length[i] += length[j]
            length[j] = 0
            next[i] = next[j]
            if next[j] < n { prev[next[j]] = i }
            if prev[i] >= 0, let left = candidate(prev[i]) { heap.push(rank: left, at: prev[i]) }
            if let right = candidate(i) { heap.push(rank: right, at: i) }
        }
        var i = 0
        while i < n {
            if let id = piece(i, i + length[i]) {
                out.append(id)
            } else {
                for b in String(String.UnicodeScalarView(s[i..<(i + length[i])])).utf8 where byteTokens[Int(b)] >= 0 {
                    out.append(byteTokens[Int(b)])
                }
            }
            i = next[i]
        }
    }

    /// The text of `ids`: "▁" as a space (the added leading one dropped), byte tokens as their
    /// bytes, control tokens as nothing.
    public func decode(_ ids: [Int32]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && Int(id) < tokens.count && !controlTokens.contains(id) {
            if let b = byteTokens.firstIndex(of: id) {
                bytes.append(UInt8(b))
            } else {
                for c in tokens[Int(id)].unicodeScalars { bytes += c == Self.space ? [0x20] : Array(String(c).utf8) }
            }
        }
        if addSpacePrefix && bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
