internal import CPython
import MServe

/// A model written in Python, served unchanged: `mserve NAME=package.module:Attribute` (or
/// `[model.NAME] python = "package.module:Attribute"`), the module found on --pythonpath (the
/// `pythonpath` option) and sys.path.  Found by duck typing:
/// - a class with `inference(self, **kwargs)` (HepAI's workers): made with `Class()`, then, if it
///   has one, `init(device)` (modelserve's); each request's JSON object becomes the keyword arguments;
/// - a function (the tornado service's `predict(**kwargs)`), with the module's `init()` called first
///   if there is one.
/// The answer is JSON (dicts, lists, str, numbers, bool, None, numpy values); a generator streams
/// its pieces.  A `ValueError` is a 400 with its message; any other exception a 500 whose traceback
/// goes to the error log.  Each worker runs its own interpreter; model threads hold the GIL only
/// while Python runs.
public final class PythonModel: Model {
    let spec: String
    let target: PythonObject
    let logger: Logger

    public init(context: ModelContext) throws {
        guard case .string(let spec)? = context.options["python"] else { throw ModelLoadError("python: no module:Attribute given") }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ModelLoadError("python: '\(spec)' is not module:Attribute (for example package.module:ClassName)")
        }
        // An interpreter started in the master would need CPython's after-fork handling in each
        // worker; until then, each worker starts its own.
        guard context.slot >= 0 else { throw ModelLoadError("python: \(spec) cannot be preloaded yet; run it without --preload") }
        self.spec = spec
        logger = context.logger
        var paths = (context.options["pythonpath"]?.stringValue ?? "").split(separator: ",").map(String.init)
        paths.append(".")
        PythonRuntime.start(paths: paths)
        let device = context.device
        target = try PythonRuntime.withGIL { () throws -> PythonObject in
            guard let module = PythonObject(PyImport_ImportModule(parts[0])) else {
                let e = PythonError.fetch()
                context.logger.error("python: importing \(parts[0]) failed:\n\(e.traceback)")
                throw ModelLoadError("python: cannot import \(parts[0]) (\(e.message)); sys.path has --pythonpath \(paths.joined(separator: ","))")
            }
            guard let attribute = module.attribute(parts[1]) else {
                throw ModelLoadError("python: module \(parts[0]) has no attribute \(parts[1])")
            }
            if mserve_py_is_type(attribute.pointer) != 0 {
                guard let instance = PythonObject(PyObject_CallNoArgs(attribute.pointer)) else { throw PythonModel.loadError(spec, context.logger) }
                if let initialize = instance.attribute("init"), initialize.isCallable {
                    let arg = Python.string(device)
                    defer { mserve_py_decref(arg) }
                    guard PythonObject(PyObject_CallOneArg(initialize.pointer, arg)) != nil else { throw PythonModel.loadError(spec, context.logger) }
                }
                guard let inference = instance.attribute("inference"), inference.isCallable else {
                    throw ModelLoadError("python: \(spec) has no inference method (HepAI's inference(self, **kwargs))")
                }
                PythonModel.log(PythonRuntime.takeOutput(), spec, context.logger)
                return inference
            }
            guard attribute.isCallable else { throw ModelLoadError("python: \(spec) is neither a class nor a function") }
            if let initialize = module.attribute("init"), initialize.isCallable {
                guard PythonObject(PyObject_CallNoArgs(initialize.pointer)) != nil else { throw PythonModel.loadError(spec, context.logger) }
            }
            PythonModel.log(PythonRuntime.takeOutput(), spec, context.logger)
            return attribute
        }
    }

    static func loadError(_ spec: String, _ logger: Logger) -> ModelLoadError {
        let e = PythonError.fetch()
        logger.error("python: \(spec) failed while loading:\n\(e.traceback)")
        return ModelLoadError("python: \(spec) failed while loading: \(e.message)")
    }

    public func infer(_ request: InferenceRequest) throws -> JSON {
        var pieces: [JSON] = []
        var single: JSON?
        try call(request) { piece, isStream in
            if isStream { pieces.append(piece) } else { single = piece }
        }
        return single ?? ["pieces": .array(pieces)]
    }

    public func stream(_ request: InferenceRequest, emit: (JSON) throws -> Void) throws {
        try call(request) { piece, _ in try emit(piece) }
    }

    /// Calls the Python code with the request's JSON object as keyword arguments; gives its answer,
    /// or each piece of a generator (`isStream`), to `deliver`, under the GIL.
    private func call(_ request: InferenceRequest, _ deliver: (JSON, _ isStream: Bool) throws -> Void) throws {
        try PythonRuntime.withGIL {
            defer { log(PythonRuntime.takeOutput(), request.recordID) }
            let kwargs = Python.object(request.input.isObject ? request.input : [:])
            let args = PyTuple_New(0)
            defer { mserve_py_decref(kwargs); mserve_py_decref(args) }
            guard let result = PythonObject(PyObject_Call(target.pointer, args, kwargs)) else { throw failure(request) }
            // A generator (or any iterator) streams: each piece as it comes.
            if mserve_py_is_iterator(result.pointer) != 0 {
                defer { if let close = result.attribute("close") { _ = PythonObject(PyObject_CallNoArgs(close.pointer)) } }
                while let item = PythonObject(PyIter_Next(result.pointer)) {
                    log(PythonRuntime.takeOutput(), request.recordID)
                    let piece = try Python.json(item.pointer)
                    try deliver(piece.isObject ? piece : ["result": piece], true)
                }
                if PyErr_Occurred() != nil { throw failure(request) }
                return
            }
            try deliver(try Python.json(result.pointer), false)
        }
    }

    /// What the model printed or logged, in the error log with the request's recordid.
    private func log(_ lines: [String], _ recordID: String? = nil) { PythonModel.log(lines, spec, logger, recordID) }

    static func log(_ lines: [String], _ spec: String, _ logger: Logger, _ recordID: String? = nil) {
        for line in lines { logger.info("python \(spec): \(line)", recordID: recordID) }
    }

    /// The exception Python raised: a ValueError is a 400, anything else a 500 with the traceback
    /// in the log (never in the answer).
    private func failure(_ request: InferenceRequest) -> Error {
        let e = PythonError.fetch()
        if e.isValueError { return ModelInputError(e.message) }
        logger.error("python: \(spec) raised \(e.message)\n\(e.traceback)", recordID: request.recordID)
        return PythonModelFailure(message: e.message)
    }
}

/// A Python exception other than ValueError: the model failed (500).
struct PythonModelFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { "Python raised \(message)" }
}

extension ModelRegistry {
    /// Serves Python code named on the command line (`NAME=module:Attribute`) or in the config.
    public mutating func registerPython() { registerPython(PythonModel.self) }
}
