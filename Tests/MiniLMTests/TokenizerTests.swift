import Testing

@testable import MiniLM

@Suite struct TokenizerTests {
    /// A vocabulary small enough to reason about.
    static let tiny: BertTokenizer = {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "hello", ",", "world", "!", "cafe",
            "a", "##b", "中", "文", "ᄒ", "##ᅡ", "##ᆫ", "is"
        ]
        return try! BertTokenizer(vocabulary: Vocabulary(tokens: tokens), maxLength: 8)
    }()

    func ids(_ text: String, _ t: BertTokenizer = tiny) -> [String] {
        t.encode(text).ids.map { t.vocabulary.token($0) }
    }

    @Test func wordPiecesAreGreedyLongestMatch() {
        #expect(ids("unaffable") == ["[CLS]", "un", "##aff", "##able", "[SEP]"])
        // A word with a part no piece matches is unknown as a whole.
        #expect(ids("unaffablex") == ["[CLS]", "[UNK]", "[SEP]"])
    }

    @Test func punctuationWhitespaceAndCase() {
        #expect(ids("Hello,\tWORLD!\n") == ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
        #expect(ids("  \u{200B}hello\u{7}  ") == ["[CLS]", "hello", "[SEP]"])  // format and control characters dropped
    }

    @Test func accentsAreStrippedAndCJKSpacedOut() {
        #expect(ids("CAFÉ") == ["[CLS]", "cafe", "[SEP]"])
        #expect(ids("中文") == ["[CLS]", "中", "文", "[SEP]"])
        #expect(ids("한") == ["[CLS]", "ᄒ", "##ᅡ", "##ᆫ", "[SEP]"])  // Hangul decomposes into jamo
    }

    @Test func longWordsAreUnknownAndLongTextsTruncated() {
        #expect(ids(String(repeating: "a", count: 101)) == ["[CLS]", "[UNK]", "[SEP]"])
        #expect(Self.tiny.encode("a" + String(repeating: "b", count: 99)).pieces == 100)  // 100 characters: still split
        let (cut, pieces) = Self.tiny.encode("hello hello hello hello hello hello hello hello hello")
        #expect(cut.count == 8 && cut.last == Self.tiny.sep && pieces == 9)
    }

    @Test func vocabularyLooksUpContinuations() {
        let v = Self.tiny.vocabulary
        #expect(v.id(Array("aff".utf8), continuation: true) == 5)
        #expect(v.id(Array("aff".utf8)) == nil)
        #expect(v.id("is") == 19 && v.token(19) == "is")
    }

    /// Identical ids to Hugging Face's tokenizer on the 64 fixture sentences (accents, CJK, emoji,
    /// a 101-character word, a text cut at 256 tokens, controls, zero-width spaces...).
    @Test func matchesTheReferenceTokenizerOnTheFixture() {
        let t = Fixture.embedder.tokenizer
        var mismatches: [String] = []
        for s in Fixture.sentences where t.encode(s.text).ids != s.ids {
            mismatches.append("\(s.text.prefix(40)): \(t.encode(s.text).ids.prefix(20)) vs \(s.ids.prefix(20))")
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
        #expect(Fixture.sentences.count >= 50)
        #expect(Fixture.sentences.contains { $0.ids.count == 256 })
    }
}
