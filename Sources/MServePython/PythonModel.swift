internal import CPython
import MServe

/// A model written in Python, served unchanged: `mserve NAME=package.module:Attribute` (or
/// `[model.NAME] python = "package.module:Attribute"`), the module found in the venv
/// (--python-venv, $VIRTUAL_ENV), on --pythonpath and on sys.path.  Found by duck typing:
/// - a class (made with `Class()`, then `init(device)` if it has one, as modelserve's) with
///   `inference(self, **kwargs)` (HepAI's workers: the JSON object or form fields become the
///   keyword arguments) or `inference(self, request)` (modelserve's: `request.GET`, `.POST`,
///   `.FILES`, `.body`, `.json()`, and `GET /NAME?ARGS` runs it too);
/// - a function (the tornado service's `predict(**kwargs)`), the module's `init()` called first.
/// Optional beside `inference`: `validate(self, input)`, run before it (a ValueError, False or a
/// message is a 400), and `inference_batch(self, inputs)`, which dynamic batching then calls with
/// the queued inputs together.  The answer is JSON (dicts, lists, str, numbers, bool, None, numpy
/// values), bytes (sent with the class's `content_type`), or a Django or Starlette response; a
/// generator streams its pieces.  A `ValueError` is a 400 with its message; any other exception a
/// 500 whose traceback goes to the error log.  Model threads hold the GIL only while Python runs.
public class PythonModel: Model {
    let code: PythonCode
    public static var acceptedMediaTypes: [String] { ["*/*"] }
    public static var optionNames: [String]? { ["python", "pythonpath", "python_venv", "python_call"] }
    public var answersQueries: Bool { code.takesRequest }
    /// The page offers an upload to `inference(self, request)`, JSON fields to keyword arguments.
    public var takesUploads: Bool { code.takesRequest }
    /// The class's (or module's) `example` dict, for the web page's form.
    public var example: JSON { code.callables.example }

    public required init(context: ModelContext) throws { code = try PythonCode(context: context) }
    init(code: PythonCode) { self.code = code }

    /// A model of the Python code the context names: one that batches if it has `inference_batch`.
    public static func make(context: ModelContext) throws -> any Model {
        let code = try PythonCode(context: context)
        guard let batch = code.batch else { return PythonModel(code: code) }
        return PythonBatchingModel(code: code, batch: batch)
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        var pieces: [JSON] = []
        var single: JSON?
        try code.call(request) { piece, isStream in
            if isStream { pieces.append(piece) } else { single = piece }
        }
        return single ?? ["pieces": .array(pieces)]
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try code.call(request) { piece, _ in try emit(piece) }
    }
}

/// Python code with `inference_batch(self, inputs)`.
final class PythonBatchingModel: PythonModel, BatchingModel {
    let batch: PythonObject

    init(code: PythonCode, batch: PythonObject) {
        self.batch = batch
        super.init(code: code)
    }

    required init(context: ModelContext) throws {
        let code = try PythonCode(context: context)
        guard let batch = code.batch else { throw ModelLoadError("python: \(code.spec) has no inference_batch") }
        self.batch = batch
        super.init(code: code)
    }

    func inferBatch(_ requests: [InferenceRequest]) -> [Result<JSON, any Error>] { code.callBatch(requests, batch: batch) }
}

extension ModelRegistry {
    /// Serves Python code named on the command line (`NAME=module:Attribute`) or in the config.
    public mutating func registerPython() { registerPython(PythonModel.self, make: PythonModel.make) }
}
