import MServe
import MServeTesting
import Testing
import WordCountModel

@Suite struct WordCountTests {
    func model(_ options: [String: JSON] = [:]) throws -> WordCount {
        let logger = Logger(file: try LogFile(path: "/dev/null", standardFD: 2), level: .critical)
        return try WordCount(context: ModelContext(name: "wordcount", slot: 0, device: "cpu", options: options, logger: logger))
    }

    @Test func countsWords() throws {
        let out = try model().infer(InferenceRequest(recordID: "r", input: ["text": "A b, a!"]))
        #expect(out == ["words": 3, "counts": ["a": 2, "b": 1]])
    }

    @Test func streamsARunningCount() throws {
        var pieces: [JSON] = []
        try model().stream(InferenceRequest(recordID: "r", input: ["text": "x y"])) { pieces.append($0) }
        #expect(pieces == [["word": "x", "count": 1], ["word": "y", "count": 2]])
    }

    @Test func rejectsBadInputAndBadOptions() throws {
        #expect(throws: ModelInputError.self) { try model().validate(["text": 5]) }
        #expect(throws: ModelLoadError.self) { try model(["lowercase": "yes"]) }
    }

    /// Through HTTP as a worker serves it, in-process (no server started).
    @Test func servedOverHTTP() throws {
        let server = try TestServer(model: WordCount.self, as: "wordcount")
        let r = try server.post("/wordcount", json: #"{"recordid": "w1", "text": "to be or not to be"}"#)
        #expect(r.status == 200)
        #expect(r.json?["recordid"] == "w1")
        #expect(r.json?["words"] == 6)
        #expect(try server.post("/wordcount", json: #"{"text": 5}"#).status == 400)
    }
}
