import Grammar

/// A vocabulary's tokens by their bytes, as a trie laid out in arrays (a node's children are
/// consecutive nodes), so that the tokens a grammar allows next are found in one walk that leaves
/// a branch at the first byte the grammar refuses: where a grammar allows few tokens (after a JSON
/// value: a comma, a brace) the walk is a few hundred steps, not the vocabulary.  Control tokens
/// are left out: they are never text.  Built once per worker, on the first constrained request.
public final class TokenTrie: Sendable {
    private let byte: [UInt8]
    private let firstChild: [Int32]
    private let childCount: [Int32]
    private let firstToken: [Int32]
    private let tokenCount: [Int32]
    private let tokenIDs: [Int32]
    public let vocabulary: Int

    public init(tokenizer: any Tokenizer, vocabulary: Int) {
        self.vocabulary = vocabulary
        let control = tokenizer.controlTokenIDs
        var entries: [(bytes: [UInt8], id: Int32)] = []
        entries.reserveCapacity(vocabulary)
        for id in 0..<Int32(vocabulary) where !control.contains(id) {
            let b = tokenizer.bytes(of: id)
            if !b.isEmpty { entries.append((b, id)) }
        }
        entries.sort { $0.bytes.lexicographicallyPrecedes($1.bytes) }
        var byte: [UInt8] = [0], firstChild: [Int32] = [0], childCount: [Int32] = [0], firstToken: [Int32] = [0], tokenCount: [Int32] = [0]
        var tokenIDs: [Int32] = []
        // Depth first over the sorted tokens: a node's tokens end there, its children are the
        // groups of the rest by their next byte, made side by side before any is filled.
        var work: [(node: Int, lo: Int, hi: Int, depth: Int)] = [(0, 0, entries.count, 0)]
        while let (node, lo, hi, depth) = work.popLast() {
            var i = lo
            firstToken[node] = Int32(tokenIDs.count)
            while i < hi && entries[i].bytes.count == depth {
                tokenIDs.append(entries[i].id)
                i += 1
            }
            tokenCount[node] = Int32(tokenIDs.count) - firstToken[node]
            var groups: [(UInt8, Int, Int)] = []
            while i < hi {
                let b = entries[i].bytes[depth]
                var j = i + 1
                while j < hi && entries[j].bytes[depth] == b { j += 1 }
                groups.append((b, i, j))
                i = j
            }
            firstChild[node] = Int32(byte.count)
            childCount[node] = Int32(groups.count)
            for (k, g) in groups.enumerated() {
                byte.append(g.0)
                firstChild.append(0)
                childCount.append(0)
                firstToken.append(0)
                tokenCount.append(0)
                work.append((Int(firstChild[node]) + k, g.1, g.2, depth + 1))
            }
        }
        self.byte = byte
        self.firstChild = firstChild
        self.childCount = childCount
        self.firstToken = firstToken
        self.tokenCount = tokenCount
        self.tokenIDs = tokenIDs
    }

    /// Nodes in the trie (its size).
    public var nodes: Int { byte.count }

    /// Which tokens `matcher` takes whole from where it stands (end-of-text tokens are the
    /// caller's: they are no bytes).
    public func allowed(_ matcher: GrammarMatcher) -> [Bool] {
        var out = [Bool](repeating: false, count: vocabulary)
        visit(0, matcher, &out)
        return out
    }

    private func visit(_ node: Int, _ matcher: GrammarMatcher, _ out: inout [Bool]) {
        let first = Int(firstChild[node])
        for child in first..<(first + Int(childCount[node])) {
            var m = matcher
            guard m.take(byte[child]) else { continue }
            let t = Int(firstToken[child])
            for k in t..<(t + Int(tokenCount[child])) { out[Int(tokenIDs[k])] = true }
            visit(child, m, &out)
        }
    }
}
