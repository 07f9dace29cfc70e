/// BERT's uncased WordPiece tokenizer, as Hugging Face's tokenizers library runs it for
/// all-MiniLM-L6-v2 (BertNormalizer, BertPreTokenizer, WordPiece):
/// 1. drop NUL, U+FFFD and control characters (other than tab, newline, carriage return); turn
///    whitespace into spaces; put spaces around CJK ideographs;
/// 2. strip accents (canonical decomposition, then drop nonspacing marks), then lower-case;
/// 3. split on whitespace and around every punctuation character;
/// 4. split each word greedily into the longest word pieces in the vocabulary ("##" marks a piece
///    inside a word); a word with a part no piece matches, or of over 100 characters, is [UNK].
public struct BertTokenizer: Sendable {
    public let vocabulary: Vocabulary
    /// Tokens per sequence, [CLS] and [SEP] included (sentence-transformers' max_seq_length).
    public let maxLength: Int
    public let cls: Int32, sep: Int32, unk: Int32
    static let maxWordCharacters = 100

    public init(vocabulary: Vocabulary, maxLength: Int) throws(WeightsError) {
        guard let cls = vocabulary.id("[CLS]"), let sep = vocabulary.id("[SEP]"), let unk = vocabulary.id("[UNK]") else {
            throw WeightsError("vocab.txt", "the vocabulary lacks [CLS], [SEP] or [UNK]")
        }
        guard maxLength >= 2 else { throw WeightsError("sentence_bert_config.json", "max_seq_length \(maxLength) is below 2") }
        self.vocabulary = vocabulary
        self.maxLength = maxLength
        self.cls = cls
        self.sep = sep
        self.unk = unk
    }

    /// One text's ids, [CLS] ... [SEP], cut to `maxLength`; and how many word pieces the whole text
    /// has (more than `maxLength - 2` means it was truncated).
    public func encode(_ text: String) -> (ids: [Int32], pieces: Int) {
        var ids: [Int32] = [cls]
        var scratch = Scratch()
        let pieces = appendPieces(of: text, to: &ids, limit: maxLength - 2, scratch: &scratch)
        ids.append(sep)
        return (ids, pieces)
    }

    /// Buffers reused across the words of a text.
    struct Scratch {
        var scalars: [UInt32] = []
        var word: [UInt32] = []
        var utf8: [UInt8] = []
        /// utf8 offset where each scalar of the word starts, plus the end.
        var bounds: [Int] = []
    }

    /// Appends at most `limit` piece ids; returns the number of pieces the text has in all.
    func appendPieces(of text: String, to ids: inout [Int32], limit: Int, scratch: inout Scratch) -> Int {
        BertTokenizer.normalize(text, into: &scratch.scalars)
        var total = 0
        var word = scratch.word
        word.removeAll(keepingCapacity: true)
        func flush(_ scratch: inout Scratch) {
            guard !word.isEmpty else { return }
            total += wordPieces(word, into: &ids, room: limit - min(limit, total), scratch: &scratch)
            word.removeAll(keepingCapacity: true)
        }
        for c in scratch.scalars {
            if c == 0x20 {
                flush(&scratch)
            } else if BertTokenizer.isPunctuation(c) {
                flush(&scratch)
                word.append(c)
                flush(&scratch)
            } else {
                word.append(c)
            }
        }
        flush(&scratch)
        scratch.word = word
        return total
    }

    /// Greedy longest-match-first word pieces of one word; appends at most `room` of them and
    /// returns how many the word has.
    private func wordPieces(_ word: [UInt32], into ids: inout [Int32], room: Int, scratch: inout Scratch) -> Int {
        guard word.count <= BertTokenizer.maxWordCharacters else {
            if room > 0 { ids.append(unk) }
            return 1
        }
        scratch.utf8.removeAll(keepingCapacity: true)
        scratch.bounds.removeAll(keepingCapacity: true)
        for c in word {
            scratch.bounds.append(scratch.utf8.count)
            UTF8.encode(Unicode.Scalar(c)!) { scratch.utf8.append($0) }
        }
        scratch.bounds.append(scratch.utf8.count)
        let firstNew = ids.count
        var start = 0
        var count = 0
        while start < word.count {
            var end = word.count
            var found: Int32?
            let prefix = start > 0 ? 2 : 0
            while end > start {
                let a = scratch.bounds[start], b = scratch.bounds[end]
                if b - a + prefix <= vocabulary.longestToken,
                    let id = vocabulary.id(scratch.utf8[a..<b], continuation: start > 0)
                {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                // No piece fits here: the whole word is unknown.
                ids.removeSubrange(firstNew...)
                if room > 0 { ids.append(unk) }
                return 1
            }
            if count < room { ids.append(id) }
            count += 1
            start = end
        }
        return count
    }

    // MARK: normalization

    static func normalize(_ text: String, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        for s in text.unicodeScalars {
            let c = s.value
            if c < 0x80 {
                // ASCII: the common case, without Unicode property lookups.
                switch c {
                case 0x09, 0x0A, 0x0D, 0x20: out.append(0x20)
                case 0..<0x20, 0x7F: break
                case 0x41...0x5A: out.append(c + 0x20)
                default: out.append(c)
                }
                continue
            }
            if c == 0xFFFD || isControl(s) { continue }
            if s.properties.isWhitespace { out.append(0x20); continue }
            if isCJK(c) {
                out.append(0x20); out.append(c); out.append(0x20)
                continue
            }
            appendStrippedLowercased(s, to: &out)
        }
    }

    /// Accents stripped first, then lower-cased, per scalar (the order of the tokenizers library).
    private static func appendStrippedLowercased(_ s: Unicode.Scalar, to out: inout [UInt32]) {
        let c = s.value
        if (0xAC00...0xD7A3).contains(c) {
            // Hangul syllables decompose arithmetically into jamo (none of them marks).
            let i = c - 0xAC00
            out.append(0x1100 + i / 588)
            out.append(0x1161 + (i % 588) / 28)
            if i % 28 != 0 { out.append(0x11A7 + i % 28) }
            return
        }
        guard let k = accentIndex(c) else { return appendLowercased(s, to: &out) }
        for v in AccentTable.values[Int(AccentTable.offsets[k])..<Int(AccentTable.offsets[k + 1])] {
            appendLowercased(Unicode.Scalar(v)!, to: &out)
        }
    }

    private static func appendLowercased(_ s: Unicode.Scalar, to out: inout [UInt32]) {
        if s.properties.changesWhenLowercased {
            for l in s.properties.lowercaseMapping.unicodeScalars { out.append(l.value) }
        } else {
            out.append(s.value)
        }
    }

    private static func accentIndex(_ c: UInt32) -> Int? {
        var lo = 0, hi = AccentTable.keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if AccentTable.keys[mid] < c { lo = mid + 1 } else { hi = mid }
        }
        return lo < AccentTable.keys.count && AccentTable.keys[lo] == c ? lo : nil
    }

    /// Unicode "Other" (Cc, Cf, Cn, Co, Cs); tab, newline and carriage return are whitespace instead.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isPunctuation(_ c: UInt32) -> Bool {
        if c < 0x80 {
            return (33...47).contains(c) || (58...64).contains(c) || (91...96).contains(c) || (123...126).contains(c)
        }
        switch Unicode.Scalar(c)!.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT spaces out (not kana or hangul).
    static func isCJK(_ c: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(c) || (0x3400...0x4DBF).contains(c) || (0x20000...0x2A6DF).contains(c)
            || (0x2A700...0x2B73F).contains(c) || (0x2B740...0x2B81F).contains(c) || (0x2B820...0x2CEAF).contains(c)
            || (0xF900...0xFAFF).contains(c) || (0x2F800...0x2FA1F).contains(c)
    }
}
