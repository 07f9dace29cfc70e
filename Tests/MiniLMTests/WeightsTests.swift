import Testing

@testable import MiniLM

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct WeightsTests {
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
            [1, 2, 3],  // too short
            file(header: "{", data: []),  // not JSON
            file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0]),  // truncated data
            file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),  // size vs shape
            [255, 255, 255, 255, 0, 0, 0, 0, 123]  // header length beyond the file
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
