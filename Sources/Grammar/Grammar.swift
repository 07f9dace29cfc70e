/// A context-free grammar over Unicode scalars, as llama.cpp's GBNF writes one, compiled for
/// matching: every rule's alternatives laid out in one array of elements, so that a place in the
/// grammar is an index (what `GrammarMatcher`'s stacks hold).  Repetitions and groups are rules of
/// their own by the time they are here (`x*` is `r ::= x r | ""`), so an element is a character
/// class or a rule reference; `.alternative` and `.end` close an alternative and a rule.
public struct Grammar: Sendable, Equatable {
    public enum Element: Sendable, Equatable {
        /// One scalar in these ranges (or outside them, negated).
        case chars([ClosedRange<UInt32>], negated: Bool)
        case rule(Int32)
        case alternative
        case end
    }

    /// Rule after rule, each its alternatives separated by `.alternative` and closed by `.end`.
    let elements: [Element]
    /// Where each rule's alternatives begin in `elements`.
    let alternatives: [[Int32]]
    public let ruleNames: [String]
    public let root: Int32

    /// A grammar from rules (each a list of alternatives, each a list of elements of `.chars` and
    /// `.rule`), checked: every rule referred to is defined, and none is left-recursive (a matcher
    /// would expand it forever).
    init(rules: [[[Element]]], names: [String], root: Int32) throws(GrammarError) {
        var elements: [Element] = [], alternatives: [[Int32]] = []
        for rule in rules {
            var starts: [Int32] = []
            for (i, alt) in rule.enumerated() {
                starts.append(Int32(elements.count))
                elements += alt
                elements.append(i == rule.count - 1 ? .end : .alternative)
            }
            alternatives.append(starts)
        }
        for e in elements {
            if case .rule(let r) = e, !alternatives.indices.contains(Int(r)) || alternatives[Int(r)].isEmpty {
                throw GrammarError("rule \(names.indices.contains(Int(r)) ? names[Int(r)] : "#\(r)") is used but not defined")
            }
        }
        self.elements = elements
        self.alternatives = alternatives
        ruleNames = names
        self.root = root
        try checkLeftRecursion()
        try checkProductive()
    }

    /// The root must derive some finite text: a rule is productive when one of its alternatives is
    /// all characters some scalar matches and productive rules (`root ::= "a" root` is not: it
    /// never ends; neither is a class that matches nothing).
    private func checkProductive() throws(GrammarError) {
        var productive = Array(repeating: false, count: alternatives.count)
        var changed = true
        while changed {
            changed = false
            for (r, starts) in alternatives.enumerated() where !productive[r] {
                for start in starts {
                    var p = Int(start), ok = true
                    while !closes(Int32(p)) {
                        switch elements[p] {
                        case .rule(let s): ok = ok && productive[Int(s)]
                        case .chars(let ranges, let negated):
                            // Negated: some scalar is left when the ranges, joined from 0, stop short of the last.
                            let reach = ranges.sorted { $0.lowerBound < $1.lowerBound }.reduce(UInt32(0)) { next, r in
                                r.lowerBound <= next ? max(next, r.upperBound &+ 1) : next
                            }
                            ok = ok && (negated ? reach <= 0x10FFFF : !ranges.isEmpty)
                        default: break
                        }
                        p += 1
                    }
                    if ok { productive[r] = true; changed = true; break }
                }
            }
        }
        guard productive[Int(root)] else { throw GrammarError("the grammar admits no text: rule \(ruleNames[Int(root)]) never ends") }
    }

    /// Whether position `p` closes its alternative.
    @inline(__always) func closes(_ p: Int32) -> Bool {
        switch elements[Int(p)] {
        case .alternative, .end: true
        default: false
        }
    }

    /// The rules that can match nothing, then a search from each rule through what can come first
    /// in it: a rule reached again before any character is left recursion.
    private func checkLeftRecursion() throws(GrammarError) {
        var nullable = Array(repeating: false, count: alternatives.count)
        var changed = true
        while changed {
            changed = false
            for (r, starts) in alternatives.enumerated() where !nullable[r] {
                for start in starts {
                    var p = Int(start), empty = true
                    while !closes(Int32(p)) {
                        if case .rule(let s) = elements[p], nullable[Int(s)] { p += 1; continue }
                        empty = false
                        break
                    }
                    if empty { nullable[r] = true; changed = true; break }
                }
            }
        }
        // The rules each rule can begin with (through nullable ones before them).
        var firsts = Array(repeating: [Int32](), count: alternatives.count)
        for (r, starts) in alternatives.enumerated() {
            for start in starts {
                var p = Int(start)
                while !closes(Int32(p)), case .rule(let s) = elements[p] {
                    firsts[r].append(s)
                    guard nullable[Int(s)] else { break }
                    p += 1
                }
            }
        }
        var state = Array(repeating: 0, count: alternatives.count)  // 0 unseen, 1 on the path, 2 done
        func visit(_ r: Int) throws(GrammarError) {
            if state[r] == 2 { return }
            if state[r] == 1 { throw GrammarError("rule \(ruleNames[r]) is left-recursive (it can begin with itself): not supported") }
            state[r] = 1
            for s in firsts[r] { try visit(Int(s)) }
            state[r] = 2
        }
        for r in alternatives.indices { try visit(r) }
    }
}

/// Why a grammar or a JSON schema cannot be used: the request's 400 says it.
public struct GrammarError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
