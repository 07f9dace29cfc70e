/// GPT-2's byte-level BPE as SmolLM2's GGUF file describes it (`tokenizer.ggml.model` "gpt2",
/// pre-tokenizer "smollm"): control tokens are matched as text first; every digit is a piece of its
/// own; the rest is split by GPT-2's pattern (contractions, letters, numbers, other symbols, each
/// with one leading space; whitespace runs); each piece's UTF-8 bytes are written in GPT-2's
/// printable byte alphabet and merged by rank.  No BOS is added.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    /// How text is split before merging (`tokenizer.ggml.pre`): `smollm` (each digit alone, then
    /// GPT-2's pattern), `gpt2`, and Llama 3's pattern (`llama-bpe`: numbers in threes; `qwen2`:
    /// digits alone), whose pieces may lead with any one non-letter and keep line breaks together.
    public enum PreTokenizer: String, Sendable, CaseIterable {
        case smollm, gpt2, llamaBPE = "llama-bpe", qwen2
    }
    public let pre: PreTokenizer
    public let tokens: [String]
    /// The control tokens (type 3: `<|im_start|>`, `<|im_end|>`, ...), matched as whole texts.
    public let controlTokens: [Int32]
    public var controlTokenIDs: Set<Int32> { Set(controlTokens) }
    private let ids: [String: Int32]
    /// (left id, right id) → (rank, merged id).
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    private let byteToken: [Int32]
    private let tokenBytes: [[UInt8]]
    private let controlTexts: TokenTexts

    /// The most bytes of text one token stands for: a text of n bytes is at least n / this tokens.
    public let longestTokenBytes: Int

    /// The file's BOS when it asks for one (`add_bos_token`; SmolLM2's does not).
    public let leadingToken: Int32?
    public let trailingToken: Int32?

    public init(
        tokens: [String], merges: [String], tokenTypes: [Int], pre: PreTokenizer = .smollm, leadingToken: Int32? = nil,
        trailingToken: Int32? = nil
    ) throws(GGUFError) {
        self.pre = pre
        self.leadingToken = leadingToken
        self.trailingToken = trailingToken
        self.tokens = tokens
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        self.ids = ids
        let alphabet = BPETokenizer.byteAlphabet
        // SmolLM2's vocabulary lacks 21 bytes (control characters, bytes no UTF-8 text holds, lead
        // bytes of characters beyond U+3FFFF): such a byte is dropped, as Hugging Face's BPE without
        // an unknown token drops it.
        let byteToken = (0..<256).map { ids[String(alphabet[$0])] ?? -1 }
        self.byteToken = byteToken
        var table: [UInt64: (Int32, Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, m) in merges.enumerated() {
            guard let space = m.firstIndex(of: " ") else { throw GGUFError("tokenizer", "merge \(rank) '\(m)' has no space") }
            let a = String(m[..<space]), b = String(m[m.index(after: space)...])
            guard let l = ids[a], let r = ids[b], let merged = ids[a + b] else { continue }
            let key = UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
            if table[key] == nil { table[key] = (Int32(rank), merged) }
        }
        self.merges = table.mapValues { (rank: $0.0, id: $0.1) }
        var reverse: [Unicode.Scalar: UInt8] = [:]
        for b in 0..<256 { reverse[alphabet[b]] = UInt8(b) }
        let control = tokenTypes.enumerated().filter { $0.element == 3 }.map { Int32($0.offset) }
        controlTokens = control
        tokenBytes = tokens.enumerated().map { (i, t) in
            control.contains(Int32(i)) ? Array(t.utf8) : t.unicodeScalars.compactMap { reverse[$0] }
        }
        longestTokenBytes = max(1, tokenBytes.map(\.count).max() ?? 1)
        controlTexts = TokenTexts(control.map { (tokens[Int($0)], $0) })
    }

    /// From the file's `tokenizer.ggml.*` metadata; another model or pre-tokenizer is refused.
    public convenience init(gguf f: GGUFFile) throws(GGUFError) {
        guard f.metadata["tokenizer.ggml.model"]?.stringValue == "gpt2" else {
            throw GGUFError(f.path, "tokenizer \(f.metadata["tokenizer.ggml.model"]?.stringValue ?? "none") is not byte-level BPE (gpt2)")
        }
        let name = f.metadata["tokenizer.ggml.pre"]?.stringValue ?? "none"
        guard let pre = PreTokenizer(rawValue: name) else {
            throw GGUFError(
                f.path, "pre-tokenizer \(name) is not supported; supported: \(PreTokenizer.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let tokens = f.metadata["tokenizer.ggml.tokens"]?.arrayValue?.compactMap(\.stringValue),
            let merges = f.metadata["tokenizer.ggml.merges"]?.arrayValue?.compactMap(\.stringValue),
            let types = f.metadata["tokenizer.ggml.token_type"]?.arrayValue?.compactMap(\.intValue), types.count == tokens.count
        else {
            throw GGUFError(f.path, "the tokenizer's tokens, merges or token types are missing")
        }
        try self.init(
            tokens: tokens, merges: merges, tokenTypes: types, pre: pre, leadingToken: f.addedToken("bos", fallback: false),
            trailingToken: f.addedToken("eos", fallback: false))
    }

    public func id(of token: String) -> Int32? { ids[token] }

    /// A raw prompt: control tokens read wherever their text stands.
    public func encode(_ text: String) -> [Int32] { encode(text, controlOffsets: nil) }

    // MARK: encoding

    /// `controlOffsets`: where control tokens may stand (a chat template's own markers), in Unicode
    /// scalars; elsewhere their text is ordinary text.  Nil: anywhere (a raw prompt).
    public func encode(_ text: String, controlOffsets: Set<Int>?) -> [Int32] {
        let s = Array(text.unicodeScalars)
        return TokenTexts.encode(s, whole: { controlOffsets?.contains($0) ?? true ? controlTexts.match(at: $0, in: s) : nil }) {
            encodeText($0, into: &$1)
        }
    }

    /// Ordinary text, split by the pre-tokenizer's pattern, each piece merged.
    private func encodeText(_ s: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        pieces(s) { bpe($0, into: &out) }
    }

    /// The pieces the pre-tokenizer splits ordinary text into (what the tests compare with the
    /// regular expressions' own).
    func pieces(_ text: String) -> [String] {
        var out: [String] = []
        pieces(Array(text.unicodeScalars)[...]) { out.append(String(String.UnicodeScalarView($0))) }
        return out
    }

    private func pieces(_ s: ArraySlice<Unicode.Scalar>, _ emit: (ArraySlice<Unicode.Scalar>) -> Void) {
        switch pre {
        case .gpt2: return split(s, emit)
        case .llamaBPE: return splitLlama3(s, digits: 3, emit)
        case .qwen2: return splitLlama3(s, digits: 1, emit)
        case .smollm:
            // Each digit alone, the rest by GPT-2's pattern.
            var runStart = s.startIndex
            for i in s.indices where BPETokenizer.isNumber(s[i]) {
                split(s[runStart..<i], emit)
                emit(s[i...i])
                runStart = i + 1
            }
            split(s[runStart..<s.endIndex], emit)
        }
    }

    /// GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    private func split(_ s: ArraySlice<Unicode.Scalar>, _ emit: (ArraySlice<Unicode.Scalar>) -> Void) {
        var i = s.startIndex
        let end = s.endIndex
        func run(from j: Int, _ p: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < end && p(s[k]) { k += 1 }
            return k
        }
        while i < end {
            let c = s[i]
            var next = i + 1
            if c == "'", let n = BPETokenizer.contraction(s, i + 1) {
                next = i + 1 + n
            } else {
                let body = c == " " && i + 1 < end ? i + 1 : i
                let b = s[body]
                if BPETokenizer.isLetter(b) {
                    next = run(from: body, BPETokenizer.isLetter)
                } else if BPETokenizer.isNumber(b) {
                    next = run(from: body, BPETokenizer.isNumber)
                } else if !b.properties.isWhitespace {
                    next = run(from: body) { !$0.properties.isWhitespace && !BPETokenizer.isLetter($0) && !BPETokenizer.isNumber($0) }
                } else {
                    // Whitespace: all of it at the end of the text; before other text, all but the
                    // last character (which then leads the next piece if it is a space).
                    let w = run(from: i) { $0.properties.isWhitespace }
                    next = w == end || w - i == 1 ? w : w - 1
                }
            }
            emit(s[i..<next])
            i = next
        }
    }

    /// Llama 3's `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, with `\p{N}{1,digits}`: each
    /// alternative tried in that order at each position, as the regex does.
    private func splitLlama3(_ s: ArraySlice<Unicode.Scalar>, digits: Int, _ emit: (ArraySlice<Unicode.Scalar>) -> Void) {
        let end = s.endIndex
        func run(from j: Int, limit: Int = Int.max, _ p: (Unicode.Scalar) -> Bool) -> Int {
            var k = j
            while k < end && k - j < limit && p(s[k]) { k += 1 }
            return k
        }
        func isBreak(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
        func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !BPETokenizer.isLetter(c) && !BPETokenizer.isNumber(c) }
        var i = s.startIndex
        while i < end {
            let c = s[i]
            let next: Int
            if c == "'", let n = BPETokenizer.contraction(s, i + 1, ignoringCase: true) {
                next = i + 1 + n
            } else if BPETokenizer.isLetter(c) {
                next = run(from: i, BPETokenizer.isLetter)
            } else if !isBreak(c) && !BPETokenizer.isNumber(c) && i + 1 < end && BPETokenizer.isLetter(s[i + 1]) {
                next = run(from: i + 1, BPETokenizer.isLetter)
            } else if BPETokenizer.isNumber(c) {
                next = run(from: i, limit: digits, BPETokenizer.isNumber)
            } else if isOther(c) || (c == " " && i + 1 < end && isOther(s[i + 1])) {
                let body = c == " " ? i + 1 : i
                next = run(from: run(from: body, isOther), isBreak)
            } else {
                // Whitespace: up to its last line break if it has one; else all of it at the end
                // of the text, or all but the last character before other text.
                let w = run(from: i, isSpace)
                if let lastBreak = (i..<w).last(where: { isBreak(s[$0]) }) {
                    next = lastBreak + 1
                } else {
                    next = w == end || w - i == 1 ? w : w - 1
                }
            }
            emit(s[i..<next])
            i = next
        }
    }

    /// The length of a contraction's letters after an apostrophe at `j` (s t re ve m ll d), or nil.
    private static func contraction(_ s: ArraySlice<Unicode.Scalar>, _ j: Int, ignoringCase: Bool = false) -> Int? {
        guard j < s.endIndex else { return nil }
        func text(_ scalars: [Unicode.Scalar]) -> String {
            let t = String(String.UnicodeScalarView(scalars))
            return ignoringCase ? t.lowercased() : t
        }
        let two = j + 1 < s.endIndex ? text([s[j], s[j + 1]]) : ""
        if ["re", "ve", "ll"].contains(two) { return 2 }
        return ["s", "t", "m", "d"].contains(text([s[j]])) ? 1 : nil
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// The longest piece merged as one, in bytes: a longer one (a run of 100,000 letters) is merged
    /// in pieces of this size, so that no request makes one merge's work grow without bound.  No
    /// word of natural text comes near it.
    static let maxPieceBytes = 2048

    /// One piece: its UTF-8 bytes as byte tokens, merged pair by pair, lowest rank first.
    private func bpe(_ piece: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        guard !piece.isEmpty else { return }
        var parts: [Int32] = []
        for c in piece {
            if parts.count >= BPETokenizer.maxPieceBytes {
                merge(&parts)
                out += parts
                parts.removeAll(keepingCapacity: true)
            }
            for b in String(c).utf8 where byteToken[Int(b)] >= 0 { parts.append(byteToken[Int(b)]) }
        }
        merge(&parts)
        out += parts
    }

    /// The merge of two adjacent tokens: its rank (lower merges first) and the token it makes.
    func mergeRank(_ l: Int32, _ r: Int32) -> (rank: Int32, id: Int32)? {
        merges[UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))]
    }

    /// Merges byte tokens as Hugging Face's BPE does: the pair of lowest rank first, the leftmost
    /// of equal ones first, until no pair merges.  A heap of candidate pairs over a linked list of
    /// symbols makes it O(n log n); rescanning the piece for each merge was O(n²) (2.6 s for 30,000
    /// letters).  A candidate whose symbols changed since it was pushed is skipped when popped.
    func merge(_ parts: inout [Int32]) {
        let n = parts.count
        guard n > 1 else { return }
        var ids = parts
        var next = (0..<n).map { Int32($0 + 1) }
        var prev = (0..<n).map { Int32($0 - 1) }
        var heap = MergeHeap()
        let rank = mergeRank
        for k in 0..<(n - 1) { if let m = rank(ids[k], ids[k + 1]) { heap.push(rank: m.rank, at: k) } }
        while let (r, k) = heap.pop() {
            let right = Int(next[k])
            guard ids[k] >= 0, right < n, let m = rank(ids[k], ids[right]), m.rank == r else { continue }
            ids[k] = m.id
            ids[right] = -1
            next[k] = next[right]
            if Int(next[k]) < n { prev[Int(next[k])] = Int32(k) }
            if prev[k] >= 0, let p = rank(ids[Int(prev[k])], ids[k]) { heap.push(rank: p.rank, at: Int(prev[k])) }
            if Int(next[k]) < n, let q = rank(ids[k], ids[Int(next[k])]) { heap.push(rank: q.rank, at: k) }
        }
        parts.removeAll(keepingCapacity: true)
        var k = 0
        while k < n {
            parts.append(ids[k])
            k = Int(next[k])
        }
    }

    // MARK: decoding

    /// A token's bytes (a control token's text as it is).
    public func bytes(of id: Int32) -> [UInt8] {
        tokenBytes.indices.contains(Int(id)) ? tokenBytes[Int(id)] : []
    }

    public func decode(_ ids: [Int32]) -> String {
        String(decoding: ids.flatMap { bytes(of: $0) }, as: UTF8.self)
    }

    /// GPT-2's printable stand-ins for bytes: printable Latin-1 stays, the others move to U+0100 on.
    static let byteAlphabet: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                out[b] = Unicode.Scalar(UInt32(b)) ?? " "
            } else {
                out[b] = Unicode.Scalar(256 + n) ?? " "
                n += 1
            }
        }
        return out
    }()
}

/// Turns generated tokens into text as they come, never splitting a UTF-8 character between two
/// pieces: bytes of an unfinished character wait for the next token.
public struct StreamingDecoder: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        let complete = StreamingDecoder.completePrefix(pending)
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// What is left at the end (an unfinished character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix that does not end inside a character.
    static func completePrefix(_ b: [UInt8]) -> Int {
        var i = b.count
        var back = 0
        // At most three continuation bytes, then the lead byte that says how long the character is.
        while i > 0 && back < 4 {
            i -= 1
            back += 1
            let c = b[i]
            if c & 0xC0 == 0x80 { continue }
            let need = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1
            return back >= need ? b.count : i
        }
        return b.count
    }
}

/// A binary min-heap of merge candidates, ordered by rank and then position (one word each).
struct MergeHeap {
    private var items: [UInt64] = []

    mutating func push(rank: Int32, at position: Int) {
        items.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(position)))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[parent] > items[i] else { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> (rank: Int32, position: Int)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var least = i
                if l < items.count && items[l] < items[least] { least = l }
                if r < items.count && items[r] < items[least] { least = r }
                guard least != i else { break }
                items.swapAt(least, i)
                i = least
            }
        }
        return (Int32(bitPattern: UInt32(top >> 32)), Int(top & 0xFFFF_FFFF))
    }
}
