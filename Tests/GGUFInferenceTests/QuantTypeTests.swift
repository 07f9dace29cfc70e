import MServeJSON
import MServeSystem
import Testing

@testable import GGUFInference

/// Every block type mserve reads, decoded as llama.cpp's own `gguf` package decodes it
/// (Tests/fixtures/quants/make_blocks.py: random blocks with finite scales).
struct QuantTypeTests {
    static let fixture: JSON =
        (try? FileReading.bytes(SmolFixture.root + "/Tests/fixtures/quants/blocks.json"))
        .flatMap { try? JSONParser.parse($0) } ?? .null

    static func base64(_ text: String) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var value = [UInt8](repeating: 255, count: 256)
        for (i, c) in alphabet.enumerated() { value[Int(c)] = UInt8(i) }
        var out: [UInt8] = [], bits = 0, acc = 0
        for c in text.utf8 where value[Int(c)] != 255 {
            acc = acc << 6 | Int(value[Int(c)])
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> bits))
            }
        }
        return out
    }

    @Test(arguments: GGMLType.allCases)
    func blocksDecodeAsGGUFDecodesThem(_ type: GGMLType) throws {
        let entry = try #require(QuantTypeTests.fixture["types"]?[type.description], "no \(type) in blocks.json")
        let blocks = QuantTypeTests.base64(try #require(entry["blocks"]?.stringValue))
        let want = QuantTypeTests.base64(try #require(entry["values"]?.stringValue)).withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
        #expect(Int64(want.count) == entry["count"]?.intValue && type.bytes(forElements: want.count) == blocks.count)
        var got = [Float](repeating: .nan, count: want.count)
        blocks.withUnsafeBytes { src in got.withUnsafeMutableBufferPointer { type.dequantize(src, into: $0) } }
        // The same arithmetic in the same order: equal, but for float rounding in a product of three.
        let worst = zip(got, want).map { abs($0 - $1) / max(1e-6, abs($1)) }.max() ?? .infinity
        #expect(worst <= 1e-6, "\(type): largest relative difference \(worst)")
        #expect(!want.allSatisfy { $0 == 0 })
    }

    @Test func typesNotReadAreNamed() {
        #expect(GGMLType.name(17) == "IQ2_XS" && GGMLType.name(14) == "Q6_K" && GGMLType.name(99) == "99")
        #expect(GGMLType.q4_K.blockSize == 256 && GGMLType.q4_K.bytes(forElements: 512) == 288)
    }
}

extension QuantTypeTests {
    /// The dot product of a row of any type with floats: the same as over its decoded values.
    @Test(arguments: GGMLType.allCases)
    func aRowTimesFloatsIsItsDecodedValuesTimesThem(_ type: GGMLType) throws {
        let entry = try #require(QuantTypeTests.fixture["types"]?[type.description])
        let blocks = QuantTypeTests.base64(try #require(entry["blocks"]?.stringValue))
        let n = Int(try #require(entry["count"]?.intValue))
        var values = [Float](repeating: 0, count: n)
        blocks.withUnsafeBytes { src in values.withUnsafeMutableBufferPointer { type.dequantize(src, into: $0) } }
        let x = (0..<n).map { Float(($0 * 7919) % 13) / 13 - 0.5 }
        let want = zip(values, x).reduce(Double(0)) { $0 + Double($1.0) * Double($1.1) }
        let got = blocks.withUnsafeBytes { src in
            x.withUnsafeBufferPointer { QuantizedMatrix.dotThroughFloats(type, src.baseAddress!, $0.baseAddress!, n) }
        }
        let scale = zip(values, x).reduce(Double(0)) { $0 + abs(Double($1.0) * Double($1.1)) }
        #expect(abs(Double(got) - want) <= 1e-5 * max(scale, 1), "\(type): \(got) against \(want)")
    }
}

/// The reader on blocks llama.cpp's own quantizer wrote: Gemma 3 270M in Q4_K_M
/// (scripts/fetch-gemma3, which the full test run fetches), rows of each type against
/// Tests/fixtures/gemma3/rows.json (gguf's decoding).
struct GemmaFileTests {
    static let path = SmolFixture.root + "/models/gemma3/gemma-3-270m-q4_k_m.gguf"

    @Test(.enabled(if: fileExists(GemmaFileTests.path), "bash scripts/fetch-gemma3 fetches the file"))
    func rowsOfEveryTypeDecodeAsGGUFDecodesThem() throws {
        let file = try GGUFFile(path: GemmaFileTests.path)
        #expect(file.metadata["general.architecture"]?.stringValue == "gemma3")
        let fixture = try JSONParser.parse(try FileReading.bytes(SmolFixture.root + "/Tests/fixtures/gemma3/rows.json"))
        guard case .array(let rows)? = fixture["rows"] else { Issue.record("no rows in rows.json"); return }
        var types: Set<String> = []
        for entry in rows {
            let tensor = try file.tensor(try #require(entry["tensor"]?.stringValue))
            let row = Int(try #require(entry["row"]?.intValue))
            let want = QuantTypeTests.base64(try #require(entry["values"]?.stringValue)).withUnsafeBytes { raw in
                (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            }
            let got = file.dequantize(tensor, rows: row..<(row + 1))
            #expect(got.count == want.count)
            let worst = zip(got, want).map { abs($0 - $1) / max(1e-6, abs($1)) }.max() ?? .infinity
            #expect(worst <= 1e-6, "\(tensor.name) row \(row) (\(tensor.type)): \(worst)")
            types.insert(tensor.type.description)
        }
        #expect(types == ["F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"])
        // What /v1/models says of it.
        let summary = GGUFSummary(file)
        #expect(summary.architecture == "gemma3" && summary.quantization == "Q4_K_M" && summary.parameterText == "268 M")
    }
}
