import Testing

@testable import MServeJSON

@Suite struct JSONTests {
    @Test func roundTripKeepsIntegersAndKeyOrder() throws {
        let text = #"{"recordid":"r1","cal_number":5,"x":[1.5,true,null,"a\"b\n"],"neg":-12}"#
        let v = try JSONParser.parse(text)
        #expect(v["cal_number"] == .int(5))
        #expect(v["neg"] == .int(-12))
        #expect(v.text == text)
    }

    @Test func unicodeEscapesAndSurrogatePairs() throws {
        let v = try JSONParser.parse(#"["\u00e9\ud83d\ude00", "日本"]"#)
        #expect(v == .array([.string("é😀"), .string("日本")]))
    }

    @Test(arguments: [
        "", "{", "{bad}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "nul", "\"abc", "[1] 2",
        "\"\\ud800\"", "\"a\u{01}\"", "1e999", "{\"a\" 1}"
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0xFE, 0x22]) }
        // ASCII first, then a cut-off sequence: the ASCII fast path must not take it.
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0x61, 0x62, 0xC3, 0x22]) }
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONParser.parse(ok)) != nil)
    }

    @Test func largeIntegersBecomeDoubles() throws {
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("9223372036854775808") == .double(9223372036854775808.0))
    }

    @Test func writerEscapesControlCharactersAndNonFinite() {
        #expect(JSON.string("a\u{01}\t").text == #""a\u0001\t""#)
        #expect(JSON.string("é\\\u{7F}").text == #""é\\\u007f""#)
        #expect(JSON.string("plain ascii, no escapes").text == #""plain ascii, no escapes""#)
        for i: Int64 in [0, 7, -7, 10, -10, 123_456, Int64.max, Int64.min] { #expect(JSON.int(i).text == String(i)) }
        #expect(JSON.double(-3).text == "-3.0" && JSON.double(1e14).text == "100000000000000.0")
        #expect(JSON.double(.infinity).text == "null")
        #expect(JSON.double(2).text == "2.0")
        #expect(JSON.double(0.1).text == "0.1")
    }
}
