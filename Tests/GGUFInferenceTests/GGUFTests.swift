import MServeJSON
import MServeSystem
import Testing

@testable import GGUFInference

#if canImport(Glibc)
    import Glibc
#endif

/// The GGUF reader against llama.cpp's own Python reader (`gguf`), on SmolLM2-135M-Instruct's file:
/// Tests/fixtures/smollm2/reference.json and make_reference.py, its generator.
enum SmolFixture {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]) }
        return path
    }()

    /// scripts/fetch-smollm2 puts it there; MSERVE_SMOLLM2 overrides.
    static var path: String {
        if let p = getenv("MSERVE_SMOLLM2") { return String(cString: p) }
        return root + "/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    static let file: GGUFFile? = try? GGUFFile(path: path)

    static let reference: JSON = json("reference.json")

    /// A committed fixture of Tests/fixtures/smollm2.
    static func json(_ name: String) -> JSON {
        (try? FileReading.bytes(root + "/Tests/fixtures/smollm2/" + name)).flatMap { try? JSONParser.parse($0) } ?? .null
    }
}

struct GGUFTests {
    func file() throws -> GGUFFile {
        try #require(SmolFixture.file, "no \(SmolFixture.path): run bash scripts/fetch-smollm2")
    }

    @Test func metadataAgreesWithTheReference() throws {
        let f = try file()
        let m = try #require(SmolFixture.reference["metadata"])
        #expect(f.version == 3 && f.alignment == 32)
        for key in ["general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre"] {
            #expect(f.metadata[key]?.stringValue == m[key]?.stringValue, "\(key)")
        }
        for key in [
            "llama.block_count", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
            "llama.attention.head_count_kv", "llama.context_length", "tokenizer.ggml.eos_token_id"
        ] {
            #expect(f.metadata[key]?.intValue == m[key]?.doubleValue.map { Int($0) }, "\(key)")
        }
        #expect(f.metadata["llama.rope.freq_base"]?.doubleValue == 100_000)
        #expect(abs((f.metadata["llama.attention.layer_norm_rms_epsilon"]?.doubleValue ?? 0) - 1e-5) < 1e-9)
        let tokens = try #require(f.metadata["tokenizer.ggml.tokens"]?.arrayValue)
        #expect(tokens.count == 49_152 && f.metadata["tokenizer.ggml.merges"]?.arrayValue?.count == 48_900)
        #expect(tokens.prefix(4).map(\.stringValue) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>"])
        #expect(tokens.last?.stringValue == m["tokens[-1]"]?.stringValue)
        #expect(try f.int("{arch}.block_count") == 30)
        try f.requireArchitecture(["llama"])
        #expect(throws: GGUFError(f.path, "architecture llama is not supported; supported: gemma3, qwen2")) {
            try f.requireArchitecture(["gemma3", "qwen2"])
        }
    }

    @Test func everyTensorIsWhereTheReferenceReaderFindsIt() throws {
        let f = try file()
        guard case .array(let ref)? = SmolFixture.reference["tensors"] else { Issue.record("no tensors in reference.json"); return }
        #expect(f.tensors.count == ref.count)
        for (t, r) in zip(f.tensors, ref) {
            let shape: [Int] = if case .array(let s)? = r["shape"] { s.compactMap { $0.doubleValue.map { Int($0) } } } else { [] }
            let offset = r["offset"]?.doubleValue.map { Int($0) }
            let same = t.name == r["name"]?.stringValue && t.type.description == r["type"]?.stringValue
            #expect(same && t.shape == shape && t.offset == offset, "\(t.name)")
        }
        // The last tensor ends within the file, and the types are the ones the issue describes.
        #expect(try f.tensor("token_embd.weight").type == .q8_0)
        #expect(try f.tensor("blk.0.ffn_up.weight").type == .q4_1)
        #expect(try f.tensor("output_norm.weight").type == .f32)
    }

    @Test func dequantizedRowsMatchTheReferenceExactly() throws {
        let f = try file()
        guard case .object(let tensors)? = SmolFixture.reference["rows"] else { Issue.record("no rows in reference.json"); return }
        #expect(tensors.count == 4)
        for (name, rows) in tensors {
            let t = try f.tensor(name)
            guard case .object(let picks) = rows else { continue }
            for (index, values) in picks {
                let i = Int(index) ?? -1
                guard case .array(let expected) = values else { continue }
                let got = f.dequantize(t, rows: i..<(i + 1))
                let want = expected.map { Float($0.doubleValue ?? .nan) }
                #expect(got == want, "\(name) row \(i) (\(t.type)): first \(got.prefix(4)) against \(want.prefix(4))")
            }
        }
    }
}

/// The two block formats the file does not use, from blocks built by hand.
struct BlockFormatTests {
    @Test func q4_0AndF16() {
        // Q4_0: scale 0.5 (float16 0x3800), nibbles: value j has low nibble j % 16 in byte j, high nibble 15 - j.
        var block: [UInt8] = [0x00, 0x38]
        for j in 0..<16 { block.append(UInt8(j) | UInt8(15 - j) << 4) }
        var out = [Float](repeating: 0, count: 32)
        block.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { GGMLType.q4_0.dequantize(src, into: $0) } }
        let low: [Float] = (0..<16).map { (j: Int) -> Float in Float(j - 8) * 0.5 }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in Float(7 - j) * 0.5 }
        #expect(Array(out[0..<16]) == low)
        #expect(Array(out[16..<32]) == high)
        let halves: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C]  // 1, -2, +inf
        var h = [Float](repeating: 0, count: 3)
        halves.withUnsafeBytes { src in h.withUnsafeMutableBufferPointer { GGMLType.f16.dequantize(src, into: $0) } }
        #expect(h == [1, -2, .infinity])
    }

    @Test func aFileThatIsNotGGUFOrIsTruncatedIsAClearError() throws {
        let dir = "/tmp/llmtests-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = system("rm -rf \(dir)") }
        func write(_ name: String, _ bytes: [UInt8]) -> String {
            let p = dir + "/" + name
            let f = fopen(p, "wb")
            _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
            fclose(f)
            return p
        }
        let notGGUF = write("a.bin", Array("PK\u{3}\u{4} this is a zip file, not a model".utf8))
        #expect(throws: GGUFError(notGGUF, "not a GGUF file (it does not start with \"GGUF\")")) { try GGUFFile(path: notGGUF) }
        // "GGUF", version 3, one tensor, a billion metadata entries: cut short.
        var header = Array("GGUF".utf8) + [3, 0, 0, 0] + [1, 0, 0, 0, 0, 0, 0, 0] + [0, 0xCA, 0x9A, 0x3B, 0, 0, 0, 0]
        header += [UInt8](repeating: 0, count: 8)
        let truncated = write("b.gguf", header)
        #expect(throws: GGUFError.self) { try GGUFFile(path: truncated) }
        #expect(throws: GGUFError(dir + "/none.gguf", "cannot open: No such file or directory")) { try GGUFFile(path: dir + "/none.gguf") }
    }
}
