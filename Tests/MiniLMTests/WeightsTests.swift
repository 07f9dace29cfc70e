#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import MiniLM

@Suite struct WeightsTests {
    @Test func sha256KnownAnswers() {
        func hex(_ s: String) -> String { var h = SHA256(); h.update(Array(s.utf8)); return h.finalizeHex() }
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()   // fed in odd pieces across block boundaries
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        var i = 0
        while i < million.count { let n = min(777, million.count - i); h.update(Array(million[i..<i + n])); i += n }
        #expect(h.finalizeHex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func write(_ bytes: [UInt8]) -> String {
        var template = Array("/tmp/mserve-st-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(header: String, data: [UInt8]) -> [UInt8] {
        let h = Array(header.utf8)
        let out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: h.count >> (8 * $0)) }
        return out + h + data
    }

    @Test func readsTensorsInPlace() throws {
        let floats: [Float] = [1, 2, 3, 4, 5, 6]
        let data = floats.withUnsafeBytes { Array($0) }
        let path = write(file(header: #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#, data: data))
        defer { unlink(path) }
        let st = try SafeTensors(path: path)
        #expect(Array(try st.floats("w", shape: [2, 3])) == floats)
        #expect(throws: WeightsError.self) { try st.floats("w", shape: [3, 2]) }
        #expect(throws: WeightsError.self) { try st.floats("missing", shape: [1]) }
    }

    @Test func rejectsDamagedFiles() {
        let cases: [[UInt8]] = [
            [1, 2, 3],                                                                    // too short
            file(header: "{", data: []),                                                  // not JSON
            file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0]),   // truncated data
            file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),  // size vs shape
            [255, 255, 255, 255, 0, 0, 0, 0, 123],                                        // header length beyond the file
        ]
        for c in cases {
            let path = write(c)
            defer { unlink(path) }
            #expect(throws: WeightsError.self) { try SafeTensors(path: path) }
        }
    }

    @Test func aWrongOrMissingModelNamesTheFileAndTheFix() {
        do {
            _ = try SentenceEmbedder(directory: "/nonexistent/minilm")
            Issue.record("loaded from nowhere")
        } catch {
            #expect(error.path == "/nonexistent/minilm/config.json")
        }
        do {
            _ = try SentenceEmbedder(directory: Fixture.modelDir, expectedSHA256: String(repeating: "0", count: 64))
            Issue.record("accepted a wrong hash")
        } catch {
            #expect(error.description.contains("model.safetensors: sha256 is 53aa5117"))
            #expect(error.description.contains("scripts/fetch-minilm"))
        }
    }
}
