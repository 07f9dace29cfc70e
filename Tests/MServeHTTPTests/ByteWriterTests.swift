import MServeSystem
import Testing

@Suite struct ByteWriterTests {
    func text(_ w: borrowing ByteWriter) -> String { String(decoding: w.bytes(), as: UTF8.self) }

    @Test func piecesOfEveryKindGrowTheBufferPastItsCapacity() {
        var w = ByteWriter(capacity: 16)
        w.append("GET ")
        w.append(string: "/ünïcode")
        w.append(UInt8(ascii: " "))
        w.append(contentsOf: Array("HTTP/1.1".utf8))
        w.append(contentsOf: Array("xx\r\n".utf8)[2...])
        for _ in 0..<100 { w.append("0123456789") }
        #expect(w.count == "GET /ünïcode HTTP/1.1\r\n".utf8.count + 1000)
        #expect(text(w).hasPrefix("GET /ünïcode HTTP/1.1\r\n0123456789"))
        #expect(w.capacity >= w.count)
    }

    @Test(arguments: [0, 5, 9, 10, 99, 100, 65535, 1_000_000_007, -1, -10, Int.max, Int.min])
    func decimalsAreWrittenAsStringWouldWriteThem(n: Int) {
        var w = ByteWriter(capacity: 1)
        w.append("x")
        w.appendDecimal(n)
        #expect(text(w) == "x" + String(n))
    }

    @Test func truncatingAndEmptyingKeepWhatIsAskedFor() {
        var w = ByteWriter(capacity: 16)
        w.append("hello, world")
        w.truncate(to: 5)
        #expect(text(w) == "hello")
        #expect(w.bytes(from: 1) == Array("ello".utf8))
        for _ in 0..<1000 { w.append("abcdefgh") }
        w.removeAll(keepingCapacityUpTo: 64)
        #expect(w.isEmpty && w.capacity == 64)
        w.append("again")
        #expect(text(w) == "again")
    }
}
