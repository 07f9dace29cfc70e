/// Where a text stands in a grammar, as llama.cpp's grammar sampler tracks it: a set of stacks of
/// places in the grammar, each a way the text so far can be read; a stack's top is the character
/// class that must come next, the places under it where to go on after the rules it is in.  A
/// character keeps the stacks whose top takes it (each moved on and expanded through the rules
/// that now come first); none left: the character is refused.  An empty stack: the text is a
/// whole sentence of the grammar.  Bytes come in as a token has them: a character split between
/// two tokens waits for its last byte, and its first bytes are taken if some class could still
/// take a character that begins so.
public struct GrammarMatcher: Sendable {
    public let grammar: Grammar
    private(set) var stacks: [[Int32]]
    /// A character begun and not finished: its bits so far and the bytes still to come.
    private var partial: (value: UInt32, missing: Int) = (0, 0)

    /// Ambiguous grammars can multiply the ways to read a text; past this many the rest are dropped.
    static let maxStacks = 4096

    public init(_ grammar: Grammar) {
        self.grammar = grammar
        var out = Set<[Int32]>()
        for start in grammar.alternatives[Int(grammar.root)] {
            GrammarMatcher.expand(grammar.closes(start) ? [] : [start], grammar, into: &out)
        }
        stacks = Array(out)
    }

    /// The text so far is a whole sentence of the grammar (an end of generation may come now).
    public var isComplete: Bool { partial.missing == 0 && stacks.contains { $0.isEmpty } }

    /// Nothing more can come: only the end.
    public var isFinished: Bool { stacks.allSatisfy(\.isEmpty) }

    /// The text is whole and at most whitespace could follow (a JSON value's trailing `space`):
    /// where an answer ends rather than spend its tokens on blanks.
    public var isDone: Bool {
        isComplete
            && stacks.allSatisfy { stack in
                guard let top = stack.last else { return true }
                guard case .chars(let ranges, let negated) = grammar.elements[Int(top)], !negated else { return false }
                return ranges.allSatisfy { r in r.allSatisfy { [0x09, 0x0A, 0x0D, 0x20].contains($0) } }
            }
    }

    /// Whether `bytes` may come next (the state is left as it was).
    public func accepts(_ bytes: [UInt8]) -> Bool {
        var copy = self
        return copy.advance(bytes)
    }

    /// Takes `bytes`; false (and the state unusable) if the grammar refuses them.
    @discardableResult
    public mutating func advance(_ bytes: [UInt8]) -> Bool {
        for b in bytes where !take(b) { return false }
        return true
    }

    /// Takes one byte: a character when it completes one.
    public mutating func take(_ b: UInt8) -> Bool {
        if partial.missing > 0 {
            guard b & 0xC0 == 0x80 else { return false }
            partial = (partial.value << 6 | UInt32(b & 0x3F), partial.missing - 1)
            guard partial.missing == 0 else { return true }
            return accept(partial.value)
        }
        switch b {
        case 0..<0x80: return accept(UInt32(b))
        case 0xC2..<0xE0: partial = (UInt32(b & 0x1F), 1); return mayBegin(0x80...0x7FF)
        case 0xE0..<0xF0: partial = (UInt32(b & 0x0F), 2); return mayBegin(0x800...0xFFFF)
        case 0xF0..<0xF5: partial = (UInt32(b & 0x07), 3); return mayBegin(0x10000...0x10FFFF)
        default: return false
        }
    }

    /// Some stack's next class takes some character in `range`.
    private func mayBegin(_ range: ClosedRange<UInt32>) -> Bool {
        stacks.contains { stack in
            guard let top = stack.last, case .chars(let ranges, let negated) = grammar.elements[Int(top)] else { return false }
            if negated { return !ranges.contains { $0.lowerBound <= range.lowerBound && $0.upperBound >= range.upperBound } }
            return ranges.contains { $0.overlaps(range) }
        }
    }

    /// Takes one character.
    public mutating func accept(_ c: UInt32) -> Bool {
        var out = Set<[Int32]>()
        for stack in stacks {
            guard let top = stack.last, case .chars(let ranges, let negated) = grammar.elements[Int(top)],
                ranges.contains(where: { $0.contains(c) }) != negated
            else { continue }
            var next = stack
            next.removeLast()
            if !grammar.closes(top + 1) { next.append(top + 1) }
            GrammarMatcher.expand(next, grammar, into: &out)
            if out.count >= GrammarMatcher.maxStacks { break }
        }
        stacks = Array(out)
        return !stacks.isEmpty
    }

    /// A stack made ready: while its top is a rule, the rule's alternatives in its place (the
    /// place after the reference kept beneath, unless the reference ended its alternative).
    static func expand(_ stack: [Int32], _ g: Grammar, into out: inout Set<[Int32]>) {
        guard let top = stack.last else {
            out.insert(stack)
            return
        }
        switch g.elements[Int(top)] {
        case .chars:
            out.insert(stack)
        case .rule(let r):
            var base = stack
            base.removeLast()
            if !g.closes(top + 1) { base.append(top + 1) }
            for start in g.alternatives[Int(r)] {
                guard out.count < maxStacks else { return }
                expand(g.closes(start) ? base : base + [start], g, into: &out)
            }
        case .alternative, .end:
            out.insert(stack)  // not pushed by construction
        }
    }
}
