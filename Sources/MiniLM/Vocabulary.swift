/// BERT's vocab.txt (one token per line; the line number is the id), looked up by UTF-8 bytes
/// without building a String: an open-addressing table over one byte arena.
public struct Vocabulary: Sendable {
    private var arena: [UInt8] = []
    /// Per id: where its bytes are in the arena.
    private var spans: [(start: Int32, count: Int32)] = []
    /// Slot → id + 1 (0 is empty); power-of-two size.
    private var table: [Int32]
    private let mask: Int
    /// The longest token in bytes, "##" included: longer candidates need no lookup.
    public private(set) var longestToken = 0

    public var count: Int { spans.count }

    public init(tokens: [String]) {
        var size = 1
        while size < tokens.count * 2 { size <<= 1 }
        table = [Int32](repeating: 0, count: size)
        mask = size - 1
        for t in tokens {
            let bytes = Array(t.utf8)
            spans.append((Int32(arena.count), Int32(bytes.count)))
            arena.append(contentsOf: bytes)
            longestToken = max(longestToken, bytes.count)
            let id = Int32(spans.count - 1)
            // vocab.txt has no duplicate lines; were there one, its first id would win.
            var slot = Vocabulary.hash(bytes[...], continuation: false) & mask
            while table[slot] != 0 {
                if equal(Int(table[slot] - 1), bytes[...], continuation: false) { break }
                slot = (slot + 1) & mask
            }
            if table[slot] == 0 { table[slot] = id + 1 }
        }
    }

    /// Reads vocab.txt.
    public init(contentsOf path: String) throws(WeightsError) {
        let text = try FileText.read(path)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasSuffix("\r") ? String($0.dropLast()) : String($0) }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw WeightsError(path, "empty vocabulary") }
        self.init(tokens: lines)
    }

    /// The id of `bytes`, or of "##" + `bytes` when `continuation`.
    public func id<C: Collection<UInt8>>(_ bytes: C, continuation: Bool = false) -> Int32? {
        var slot = Vocabulary.hash(bytes, continuation: continuation) & mask
        while table[slot] != 0 {
            let id = Int(table[slot] - 1)
            if equal(id, bytes, continuation: continuation) { return Int32(id) }
            slot = (slot + 1) & mask
        }
        return nil
    }

    public func id(_ token: String) -> Int32? { id(Array(token.utf8)) }

    public func token(_ id: Int32) -> String {
        let s = spans[Int(id)]
        return String(decoding: arena[Int(s.start)..<Int(s.start + s.count)], as: UTF8.self)
    }

    private func equal<C: Collection<UInt8>>(_ id: Int, _ bytes: C, continuation: Bool) -> Bool {
        let s = spans[id]
        var i = Int(s.start)
        let end = i + Int(s.count)
        if continuation {
            guard s.count >= 2, arena[i] == UInt8(ascii: "#"), arena[i + 1] == UInt8(ascii: "#") else { return false }
            i += 2
        }
        guard end - i == bytes.count else { return false }
        for b in bytes {
            if arena[i] != b { return false }
            i += 1
        }
        return true
    }

    /// FNV-1a.
    private static func hash<C: Collection<UInt8>>(_ bytes: C, continuation: Bool) -> Int {
        var h: UInt64 = 0xcbf29ce484222325
        if continuation {
            h = (h ^ UInt64(UInt8(ascii: "#"))) &* 0x100000001b3
            h = (h ^ UInt64(UInt8(ascii: "#"))) &* 0x100000001b3
        }
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }
}
