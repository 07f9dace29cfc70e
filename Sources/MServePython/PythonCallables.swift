internal import CPython
import MServe

/// What `module:Attribute` names, found by duck typing under the GIL: the class is made (then
/// `init(device)`) or the module's `init()` called, and its `inference` (or the function), optional
/// `validate` and `inference_batch`, and the attributes that describe it are kept.
struct PythonCallables {
    /// What answers: the instance's bound `inference`, or the module's function.
    let target: PythonObject
    let validator: PythonObject?
    let batch: PythonObject?
    /// `inference(self, request)` (modelserve) rather than keyword arguments (HepAI, tornado).
    let takesRequest: Bool
    /// The media type of bytes answered (the class's `content_type`).
    let contentType: String
    /// The class's or module's `example` (a dict), for the web page.
    let example: JSON
    /// The class's `input_errors`: exception types that are the client's mistake (400), as ValueError.
    let inputErrors: PythonObject?
    /// mserve's own fields of a request ("recordid", "stream") that the function does not take: left
    /// out of its keyword arguments.
    let ownFieldsDropped: [String]

    /// `call` is the model's `python_call` ("request" or "keywords"), nil to find out.
    init(spec: String, paths: [String], device: String, call: String?, helpers: PythonHelpers, logger: Logger) throws {
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ModelLoadError("python: '\(spec)' is not module:Attribute (for example package.module:ClassName)")
        }
        func failed(_ what: String) -> ModelLoadError {
            let e = PythonError.fetch()
            logger.error("python: \(spec) failed \(what):")
            logger.log(.error, lines: e.traceback)
            return ModelLoadError("python: \(spec) failed \(what): \(e.message)")
        }
        guard let module = PythonObject(PyImport_ImportModule(parts[0])) else {
            let e = PythonError.fetch()
            logger.error("python: importing \(parts[0]) failed:")
            logger.log(.error, lines: e.traceback)
            throw ModelLoadError("python: cannot import \(parts[0]) (\(e.message)); sys.path has --pythonpath \(paths.joined(separator: ","))")
        }
        guard let attribute = module.attribute(parts[1]) else {
            throw ModelLoadError("python: module \(parts[0]) has no attribute \(parts[1])")
        }
        var contentType = "application/octet-stream"
        let isClass = mserve_py_is_type(attribute.pointer) != 0
        if isClass {
            guard let instance = PythonObject(PyObject_CallNoArgs(attribute.pointer)) else { throw failed("while loading") }
            if let initialize = instance.attribute("init"), initialize.isCallable {
                guard initialize.call(Python.string(device)) != nil else { throw failed("in init(device)") }
            }
            guard let inference = instance.attribute("inference"), inference.isCallable else {
                throw ModelLoadError(
                    "python: \(spec) has no inference method (HepAI's inference(self, **kwargs) or modelserve's inference(self, request))")
            }
            target = inference
            validator = instance.attribute("validate").flatMap { $0.isCallable ? $0 : nil }
            batch = instance.attribute("inference_batch").flatMap { $0.isCallable ? $0 : nil }
            if let type = instance.attribute("content_type").flatMap({ Python.string($0.pointer) }) { contentType = type }
        } else {
            guard attribute.isCallable else { throw ModelLoadError("python: \(spec) is neither a class nor a function") }
            if let initialize = module.attribute("init"), initialize.isCallable {
                guard PythonObject(PyObject_CallNoArgs(initialize.pointer)) != nil else { throw failed("in init()") }
            }
            target = attribute
            validator = nil
            batch = nil
        }
        self.contentType = contentType
        let target = target
        func yes(_ helper: String, _ args: UnsafeMutablePointer<PyObject>?...) -> Bool {
            defer { PyErr_Clear() }
            return PythonRuntime.call(helper, args).map { mserve_py_is_true($0.pointer) != 0 } ?? false
        }
        takesRequest = call.map { $0 == "request" } ?? yes("takes_request", mserve_py_newref(target.pointer))
        ownFieldsDropped = ["recordid", "stream"].filter { !yes("accepts", mserve_py_newref(target.pointer), Python.string($0)) }
        let owner = isClass ? attribute : module
        let example = owner.attribute("example").flatMap { try? Python.json($0.pointer) } ?? [:]
        self.example = example.isObject ? example : [:]
        PyErr_Clear()
        var inputErrors = owner.attribute("input_errors")
        // An exception type or a tuple of them is what isinstance takes; anything else raises.
        if let types = inputErrors, PyObject_IsInstance(mserve_py_value_error(), types.pointer) == -1 {
            PyErr_Clear()
            inputErrors = nil
            logger.warning("python: \(spec)'s input_errors is not an exception type or a tuple of them; ignored")
        }
        self.inputErrors = inputErrors
    }
}

/// The `_mserve` module's objects a model uses on every request.
struct PythonHelpers {
    let makeRequest: PythonObject
    let makeFile: PythonObject
    let responseParts: PythonObject
    /// `output.take`: what this thread printed or logged.
    let take: PythonObject

    init() throws {
        guard let makeRequest = PythonRuntime.helper("Request"), let makeFile = PythonRuntime.helper("UploadedFile"),
            let responseParts = PythonRuntime.helper("response_parts"), let take = PythonRuntime.helper("output.take")
        else {
            throw ModelLoadError("python: mserve's helper module did not start")
        }
        (self.makeRequest, self.makeFile, self.responseParts, self.take) = (makeRequest, makeFile, responseParts, take)
    }
}
