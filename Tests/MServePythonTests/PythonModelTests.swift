import Glibc
import MServe
import MServeTesting
import Testing

@testable import MServePython

/// The embedded interpreter in-process: pyvenv.cfg's reading, JSON to Python and back, and the
/// shapes of Python code found by duck typing, called as a worker calls them.
@Suite struct PythonModelTests {
    @Test func aVenvConfigGivesItsVersionAndWhetherSystemPackagesShow() throws {
        let venv = try #require(
            VirtualEnvironment(directory: "/v", config: "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"))
        #expect(venv.majorMinor == "3.11" && !venv.includesSystemPackages)
        #expect(venv.sitePackages(for: "3.11") == "/v/lib/python3.11/site-packages")
        let uv = try #require(
            VirtualEnvironment(
                directory: "/u",
                config: "home = /x\r\nimplementation = CPython\r\nversion_info = 3.12.3.final.0\r\ninclude-system-site-packages = True\r\n"))
        #expect(uv.majorMinor == "3.12" && uv.includesSystemPackages)
        #expect(VirtualEnvironment(directory: "/n", config: "home = /usr/bin\n") == nil)
    }

    @Test func jsonBecomesPythonAndComesBackUnchanged() throws {
        try PythonRuntime.start(paths: [], venv: nil)
        let value: JSON = [
            "s": "héllo", "i": 42, "big": .int(Int64.max), "d": 2.5, "t": true, "n": .null,
            "list": [1, "two", [3.0]], "nested": ["k": ["deep": false]], "f": .floats([0.5, 1.5])
        ]
        let back = try PythonRuntime.withGIL {
            // A named object: a temporary's reference could be dropped before the call that reads it.
            let object = try #require(PythonObject(Python.object(value)))
            return try Python.json(object.pointer)
        }
        #expect(
            back == [
                "s": "héllo", "i": 42, "big": .int(Int64.max), "d": 2.5, "t": true, "n": .null,
                "list": [1, "two", [3.0]], "nested": ["k": ["deep": false]], "f": [0.5, 1.5]
            ])
    }

    @Test func keywordAndRequestShapesAreFoundAndCalled() throws {
        let dir = "/tmp/mserve-python-tests-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = system("rm -rf \(dir)") }
        try appendToFile(
            "\(dir)/shapes_under_test.py",
            """
            class Keywords:
                def inference(self, a=0, b=0, **kw):
                    if a < 0:
                        raise ValueError("a must not be negative")
                    return {"sum": a + b}

            class Requests:
                content_type = "text/plain"
                def init(self, device):
                    self.device = device
                def inference(self, request):
                    if "raw" in request.GET:
                        return request.GET["raw"].encode()
                    return {"q": request.GET.get("q"), "json": request.json(), "device": self.device, "m": request.method}
            """, mode: 0o600)
        let logger = try TestServer.nullLogger()
        func model(_ spec: String) throws -> PythonModel {
            try PythonModel(
                context: ModelContext(
                    name: "m", slot: 0, device: "cuda:1", options: ["python": .string(spec), "pythonpath": .string(dir)], logger: logger))
        }
        let keywords = try model("shapes_under_test:Keywords")
        #expect(!keywords.answersQueries)
        #expect(try keywords.infer(InferenceRequest(recordID: "r", input: ["a": 2, "b": 3])) == ["sum": 5])
        #expect(throws: ModelInputError.self) { try keywords.infer(InferenceRequest(recordID: "r", input: ["a": -1])) }
        let requests = try model("shapes_under_test:Requests")
        #expect(requests.answersQueries)
        #expect(
            try requests.infer(InferenceRequest(recordID: "r", input: ["x": 1], query: [("q", "w")]))
                == ["q": "w", "json": ["x": 1], "device": "cuda:1", "m": "POST"])
        let raw = InferenceRequest(recordID: "r", input: [:], method: "GET", query: [("raw", "bytes")])
        _ = try requests.infer(raw)
        let answer = try #require(raw.reply.value)
        #expect(answer.status == 200 && answer.contentType == "text/plain" && answer.body == Array("bytes".utf8))
    }
}
