import MServeJSON
import Testing

@testable import Grammar

/// GBNF grammars and the matcher, without a model: what a grammar takes and refuses, character by
/// character and byte by byte, and the grammars it refuses to build.
@Suite struct GrammarTests {
    func matches(_ g: Grammar, _ text: String) -> Bool {
        var m = GrammarMatcher(g)
        return m.advance(Array(text.utf8)) && m.isComplete
    }

    @Test func llamaCppsArithmeticGrammar() throws {
        let g = try Grammar(
            gbnf: #"""
                # llama.cpp's grammars/arithmetic.gbnf
                root  ::= (expr "=" ws term "\n")+
                expr  ::= term ([-+*/] term)*
                term  ::= ident | num | "(" ws expr ")" ws
                ident ::= [a-z] [a-z0-9_]* ws
                num   ::= [0-9]+ ws
                ws    ::= [ \t\n]*
                """#)
        #expect(matches(g, "1+2=3\n"))
        #expect(matches(g, "(a*b)/c= x1\nz=0\n"))
        #expect(!matches(g, "1+2=3"))  // the line's end is part of the sentence
        #expect(!matches(g, "1++2=3\n"))
        let city = try Grammar(gbnf: "root ::= \"The answer is \" (\"Paris\" | \"Rome\" | \"Lyon\") \".\"")
        #expect(matches(city, "The answer is Rome."))
        var m = GrammarMatcher(g)
        #expect(m.advance(Array("1+".utf8)) && !m.isComplete && !m.accepts(Array("+".utf8)) && m.accepts(Array("(".utf8)))
    }

    @Test func repetitionsClassesEscapesAndLinesOfAlternatives() throws {
        let g = try Grammar(
            gbnf: #"""
                root ::= "a"{2,3} b? [^x-z\n]{1} "\u00e9" "\x41" tail
                b ::= "b"
                tail ::= "1"
                  | "2" | ("3" "4"){2}
                """#)
        #expect(matches(g, "aaq\u{e9}A1") && matches(g, "aabw\u{e9}A2") && matches(g, "aaaq\u{e9}A3434"))
        #expect(!matches(g, "aq\u{e9}A1") && !matches(g, "aaaaq\u{e9}A1") && !matches(g, "aay\u{e9}A1") && !matches(g, "aaq\u{e9}A34"))
    }

    /// A character split between two tokens: its first bytes are taken if some class could take a
    /// character that begins so, and the character is judged when its last byte comes.
    @Test func aCharacterSplitBetweenTokens() throws {
        let g = try Grammar(gbnf: #"root ::= "é" [a-z]"#)
        var m = GrammarMatcher(g)
        #expect(m.advance([0xC3]) && !m.isComplete)
        #expect(!m.accepts([0xA8]))  // è
        #expect(m.advance([0xA9]) && m.advance(Array("x".utf8)) && m.isComplete && m.isFinished)
        // Whole, with only blanks allowed after: done.
        var json = GrammarMatcher(try Grammar(gbnf: JSONSchemaGrammar.anyObject))
        #expect(json.advance(Array("{\"a\": 1".utf8)) && !json.isDone && json.advance(Array("}".utf8)) && json.isDone && !json.isFinished)
        let ascii = try Grammar(gbnf: #"root ::= [a-z]+"#)
        #expect(!GrammarMatcher(ascii).accepts([0xC3]))
        #expect(!GrammarMatcher(ascii).accepts([0x80]))  // a continuation byte with nothing begun
    }

    @Test(arguments: [
        ("root ::= a", "rule a is used but not defined"),
        ("root ::= root \"a\" | \"b\"", "rule root is left-recursive"),
        ("root ::= x \"a\"\nx ::= \"\" | root", "left-recursive"),
        ("root ::= (\"a\"?)*", "left-recursive"),
        ("main ::= \"a\"", "the grammar has no root rule"),
        ("root ::= \"a", "line 1 column 12: unterminated string"),
        ("root ::= \"a\"\nroot ::= \"b\"", "rule root is defined twice"),
        ("root ::= \"a\"{3,2}", "the most is below the least"),
        ("root ::= \"a\"{5000}", "repetitions above 1000"),
        ("root ::= [b-a]", "range out of order"),
        ("", "the grammar is empty"),
        ("root ::= \"a\" root", "the grammar admits no text"),
        ("root ::= [^\\x00-\\U0010FFFF]", "the grammar admits no text")
    ])
    func grammarsThatCannotBeUsedSayWhy(_ text: String, _ message: String) {
        do {
            _ = try Grammar(gbnf: text)
            Issue.record("expected an error for \(text)")
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }
}
