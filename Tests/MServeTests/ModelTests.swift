import MServeSystem
import Testing

@testable import MServe

@Suite struct ModelTests {
    func context(_ options: [String: JSON] = [:]) throws -> ModelContext {
        let logger = Logger(file: try LogFile(path: "/dev/null", standardFD: 2), level: .critical)
        return ModelContext(name: "demo", slot: 0, device: "cpu", options: options, logger: logger)
    }

    func infer(_ m: Model, _ input: JSON) throws -> JSON {
        try m.infer(InferenceRequest(recordID: "r", input: input))
    }

    @Test func demoKeepsARunningSumPerInstance() throws {
        let a = try DemoModel(context: context())
        let b = try DemoModel(context: context(["start": 100]))
        #expect(try infer(a, ["cal_number": 5]) == ["result": 5])
        #expect(try infer(a, ["cal_number": 2]) == ["result": 7])
        #expect(try infer(b, ["cal_number": 1]) == ["result": 101])
        #expect(try infer(a, ["cal_number": 0.5]) == ["result": 7.5])
    }

    @Test func demoRejectsBadInputWithoutChangingTheSum() throws {
        let a = try DemoModel(context: context())
        #expect(throws: ModelInputError.self) { try infer(a, [:]) }
        #expect(throws: ModelInputError.self) { try infer(a, ["cal_number": "5"]) }
        #expect(throws: ModelInputError.self) { try infer(a, ["cal_number": nil]) }
        _ = try infer(a, ["cal_number": 1e308])
        #expect(throws: DemoModel.DemoOverflow.self) { try infer(a, ["cal_number": 1e308]) }
        #expect(try infer(a, ["cal_number": 0]) == ["result": 1e308])
    }

    @Test func demoFailsToLoadWithABadOption() throws {
        #expect(throws: ModelLoadError.self) { try DemoModel(context: context(["start": "ten"])) }
        // A misspelt option ("stat") is the registry's to refuse, before any model loads (ConfigTests).
    }

    @Test func echoDropsTheRecordID() throws {
        let e = try EchoModel(context: context())
        #expect(try infer(e, ["recordid": "r", "a": [1, 2]]) == ["a": [1, 2]])
    }
}

@Suite struct ModelLoaderTests {
    /// model_dir is the server's to give: a global one must not break a model that has no use for it.
    @Test func modelDirIsGivenApartFromTheOptions() throws {
        var settings = Settings()
        settings.models = ["demo", "echo"]
        settings.modelDir = "/srv/models"
        settings.modelSettings["echo"] = ModelSettings(options: ["model_dir": "/srv/echo"])
        let logger = Logger(file: try LogFile(path: "/dev/null", standardFD: 2), level: .critical)
        let models = try ModelLoader.load(settings, registry: .builtin, slot: 0, logger: logger)
        #expect(models.map(\.name) == ["demo", "echo"])
    }
}
