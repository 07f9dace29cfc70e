import MServeSystem
import Testing

@testable import MServe

@Suite struct RecordIDTests {
    @Test func bodyWinsOverHeader() {
        let r = RecordID().resolve(bodyValue: .string("r1"), header: "h1")
        #expect(r.id == "r1")
        #expect(r.error == nil)
    }

    @Test func headerWhenBodyHasNone() {
        #expect(RecordID().resolve(bodyValue: nil, header: "h1").id == "h1")
        #expect(RecordID().resolve(bodyValue: .null, header: "h1").id == "h1")
    }

    @Test func integerRecordIDsAreEchoedAsIntegers() {
        let r = RecordID().resolve(bodyValue: .int(42), header: nil)
        #expect(r.id == "42")
        #expect(r.value == .int(42))
    }

    @Test func generatedIDsAreUniqueAndFixedWidth() {
        var seen: Set<String> = []
        for _ in 0..<10_000 {
            let r = RecordID().resolve(bodyValue: nil, header: nil)
            #expect(r.id.count == 20)
            seen.insert(r.id)
        }
        #expect(seen.count == 10_000)
    }

    @Test(arguments: ["", "has space", "new\nline", String(repeating: "x", count: 129), "é"])
    func invalidClientIDsAreRejected(_ bad: String) {
        let r = RecordID().resolve(bodyValue: .string(bad), header: nil)
        #expect(r.error?.status == 400)
        #expect(r.id != bad)
        #expect(RecordID().resolve(bodyValue: nil, header: bad).error?.status == 400)
    }

    @Test func nonScalarRecordIDIsRejected() {
        #expect(RecordID().resolve(bodyValue: .array([]), header: nil).error?.status == 400)
    }
}
