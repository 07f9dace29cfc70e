import Foundation
import MServeJSON
import MServeSystem
import Testing

@testable import GGUFInference

/// mserve's forward pass against llama.cpp's own on the same files, each made by llama.cpp's
/// quantizer: Gemma 3 270M's Q4_K_M (Q4_K, Q6_K, Q5_0, Q8_0 and F32 tensors; its reference
/// committed, Tests/fixtures/gemma3/llamacpp.json), and the files `bash scripts/fetch-requantized`
/// makes with llama.cpp and caches with what llama.cpp computed on each (SmolLM2-135M-Instruct in
/// Q4_K_M, Q5_K_M, Q6_K and Q8_0; tiny random qwen2 and llama models in Q4_K_M).  Each reference
/// also holds the exact float32 pass on the file's weights (Tests/fixtures/float_reference.py).
/// For 20 prompts: the same tokens; the prompt read whole (float32, the prompt kernel) giving the
/// exact pass's logits; its last token fed again as a decode (the activations' kernels, as every
/// generated token is), next-token logits over llama.cpp's 64 largest at least as close to the
/// exact pass as llama.cpp's are (llama.cpp rounds activations to 8 bits in blocks of
/// 256 for K-quants, mserve in blocks of 32); the same top token at every step that llama.cpp and
/// the exact pass both decide alike by more than 0.5, after each prompt and along llama.cpp's
/// greedy continuations of 10 prompts (its tokens fed in turn: the first 16 of 32).  With int8
/// activations, as served.  (Whole greedy continuations are not compared: llama.cpp's own differ
/// between feeding a token at a time and reading the whole text again, 5 of 10 on Gemma 3, each
/// at a near-tie its rounding decides.)
struct LlamaCppComparisonTests {
    /// A file and what llama.cpp computed on it.
    struct Case: CustomTestStringConvertible, Sendable {
        let model: String
        let reference: String
        var testDescription: String { (model as NSString).lastPathComponent }
    }

    static let gemma3 = Case(model: GemmaFileTests.path, reference: SmolFixture.root + "/Tests/fixtures/gemma3/llamacpp.json")

    /// models/requantized's files, each beside its FILE.llamacpp.json.
    static let requantized: [Case] = {
        let dir = SmolFixture.root + "/models/requantized"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".gguf") }.sorted().map {
            Case(model: dir + "/" + $0, reference: dir + "/" + $0.dropLast(".gguf".count) + ".llamacpp.json")
        }
    }()

    /// The steps of each continuation fed (of its 32): enough decided steps, in a CI's time.
    static let forcedSteps = 16

    static func ints(_ j: JSON?) -> [Int32] { if case .array(let a)? = j { a.compactMap { $0.intValue.map { Int32($0) } } } else { [] } }

    @Test(.enabled(if: fileExists(GemmaFileTests.path), "bash scripts/fetch-gemma3 fetches the file"))
    func gemma3AgreesWithLlamaCppOnItsOwnFile() throws {
        try LlamaCppComparisonTests.compare(LlamaCppComparisonTests.gemma3)
    }

    @Test(.enabled(if: !requantized.isEmpty, "bash scripts/fetch-requantized makes the files"), arguments: requantized)
    func agreesWithLlamaCppOnFilesItQuantized(_ c: Case) throws {
        try LlamaCppComparisonTests.compare(c)
    }

    @Test(.enabled(if: !requantized.isEmpty, "bash scripts/fetch-requantized makes the files"))
    func theRequantizedFilesAreAllThere() {
        let names = Set(LlamaCppComparisonTests.requantized.map(\.testDescription))
        for quant in ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"] { #expect(names.contains("SmolLM2-135M-Instruct.\(quant).gguf")) }
        for arch in ["qwen2", "llama"] { #expect(names.contains("synthetic-\(arch).Q4_K_M.gguf")) }
    }

    static func floats(_ j: JSON?) -> [Float] { if case .array(let a)? = j { a.map { Float($0.doubleValue ?? .nan) } } else { [] } }

    static func compare(_ c: Case) throws {
        let fixture = try JSONParser.parse(try FileReading.bytes(c.reference))
        let file = try GGUFFile(path: c.model)
        if let sha = fixture["sha256"]?.stringValue {
            #expect(Crypto.sha256Hex(file.bytes) == sha, "\(c.reference) was made from another file")
        }
        let model = try LlamaModel(file: file, activations: .int8)
        let tokenizer = try makeTokenizer(gguf: file)
        guard case .array(let prompts)? = fixture["prompts"] else { Issue.record("no prompts in \(c.reference)"); return }
        #expect(prompts.count == 20)
        // Distances over llama.cpp's 64 largest logits: mserve's to llama.cpp's, mserve's to the
        // exact float32 pass's, llama.cpp's to the exact pass's.
        var toLlama = Distance(), toExact = Distance(), llamaToExact = Distance(), promptToExact = Distance()
        var decided = 0, agreed = 0, undecided = 0, greedyRuns = 0
        // A step both llama.cpp and the exact pass decide alike, each by more than 0.5: mserve
        // decides alike.  Where the exact pass has a near-tie or decides otherwise, rounding
        // decides (llama.cpp's or mserve's): only counted.
        func judge(_ logits: [Float], llama: Int32, margin: Double, exact: (Int, Double)?, _ what: @autoclosure () -> String) {
            guard margin > 0.5 else { return }
            if let (top, gap) = exact, top != Int(llama) || gap <= 0.5 { undecided += 1; return }
            decided += 1
            let top = Sampler.argmax(logits)
            if top == Int(llama) { agreed += 1 } else { Issue.record("\(what()): \(top), llama.cpp's \(llama)") }
        }
        for p in prompts {
            let text = try #require(p["text"]?.stringValue)
            let tokens = ints(p["tokens"])
            let mine =
                (tokenizer.leadingToken.map { [$0] } ?? []) + tokenizer.encode(text, controlOffsets: [])
                + (tokenizer.trailingToken.map { [$0] } ?? [])
            #expect(mine == tokens, "\(text.debugDescription)")
            let ids = ints(p["top_ids"]), theirs = floats(p["top_logits"]), exact = floats(p["float_top_logits"])
            // The prompt read whole (the prompt kernel, float32): the exact pass's logits.
            let whole = try #require(model.forward([LlamaModel.BatchEntry(model.newSequence(), tokens)])[0])
            for (k, id) in ids.enumerated() where k < exact.count { promptToExact.add(whole[Int(id)] - exact[k]) }
            // Its last token again as a decode (the activations' kernels, as every later token):
            // what is compared with llama.cpp below.
            let seq = model.newSequence()
            if tokens.count > 1 { _ = model.forward([LlamaModel.BatchEntry(seq, Array(tokens.dropLast()), wantsLogits: false)]) }
            let logits = try #require(model.forward([LlamaModel.BatchEntry(seq, [tokens[tokens.count - 1]], prompt: false)])[0])
            guard theirs.count >= 2 else { continue }
            for (k, id) in ids.enumerated() {
                toLlama.add(logits[Int(id)] - theirs[k])
                if k < exact.count {
                    toExact.add(logits[Int(id)] - exact[k])
                    llamaToExact.add(theirs[k] - exact[k])
                }
            }
            let exactTop = p["float_top"]?.intValue.map { (Int($0), p["float_top_margin"]?.doubleValue ?? 0) }
            judge(logits, llama: ids[0], margin: Double(theirs[0] - theirs[1]), exact: exactTop, "\(text.debugDescription)")
            let wanted = ints(p["greedy"])
            guard !wanted.isEmpty, case .array(let margins)? = p["greedy_margins"] else { continue }
            greedyRuns += 1
            let exactSteps = ints(p["float_greedy"]), exactMargins = floats(p["float_greedy_margins"])
            // llama.cpp's continuation fed in turn.
            var step = logits
            for (k, token) in wanted.prefix(forcedSteps).enumerated() {
                let exact = k < min(exactSteps.count, exactMargins.count) ? (Int(exactSteps[k]), Double(exactMargins[k])) : nil
                judge(
                    step, llama: token, margin: margins[k].doubleValue ?? 0, exact: exact,
                    "\(text.debugDescription), step \(k)")
                step = try #require(model.forward([LlamaModel.BatchEntry(seq, [token], prompt: false)])[0])
            }
        }
        print(
            "\(c.testDescription): logits over llama.cpp's top 64, mean and max distance: mserve to llama.cpp \(toLlama), "
                + "mserve to the exact float32 pass \(toExact), llama.cpp to it \(llamaToExact); the same top token at \(agreed) of "
                + "\(decided) decided steps (\(undecided) more where the exact pass has a near-tie or another top token); "
                + "the prompt read whole to the exact pass \(promptToExact)")
        #expect(agreed == decided && decided >= 100 && greedyRuns == 10)
        if toExact.count > 0 {
            // Prompt tokens are multiplied in float32: the logits after a prompt are the exact pass's.
            #expect(promptToExact.worst < 0.01, "\(promptToExact)")
            // mserve's 8-bit activations (blocks of 32) round no more than llama.cpp's (blocks of
            // 32, or 256 for K-quants): it stays at least as close to the exact pass.
            #expect(toExact.mean <= llamaToExact.mean && toLlama.mean < llamaToExact.mean + 0.1, "\(toExact) \(llamaToExact) \(toLlama)")
        } else {
            #expect(toLlama.mean < 0.25 && toLlama.worst < 1.5, "\(toLlama)")
        }
    }

    /// The mean and largest of absolute differences.
    struct Distance: CustomStringConvertible {
        var total: Float = 0, worst: Float = 0, count = 0
        mutating func add(_ d: Float) { total += abs(d); worst = max(worst, abs(d)); count += 1 }
        var mean: Float { total / Float(max(1, count)) }
        var description: String { String(format: "%.3f/%.3f", mean, worst) }
    }
}
