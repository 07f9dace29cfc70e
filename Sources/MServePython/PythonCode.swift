internal import CPython
import MServe

/// The Python callables a model serves, found by duck typing (see PythonModel), and how a request
/// becomes their arguments and their return value an answer.  Every method takes the GIL itself.
final class PythonCode {
    let spec: String
    let logger: Logger
    let callables: PythonCallables
    private let helpers: PythonHelpers

    var target: PythonObject { callables.target }
    var validator: PythonObject? { callables.validator }
    var batch: PythonObject? { callables.batch }
    var takesRequest: Bool { callables.takesRequest }
    var inputErrors: PythonObject? { callables.inputErrors }

    init(context: ModelContext) throws {
        guard case .string(let spec)? = context.options["python"] else { throw ModelLoadError("python: no module:Attribute given") }
        self.spec = spec
        logger = context.logger
        var paths = (context.options["pythonpath"]?.stringValue ?? "").split(separator: ",").map(String.init)
        paths.append(".")
        let venv = context.options["python_venv"]?.stringValue ?? ProcessEnvironment.variables()["VIRTUAL_ENV"]
        try PythonRuntime.start(paths: paths, venv: venv.flatMap { $0.isEmpty ? nil : $0 })
        let call = context.options["python_call"]?.stringValue
        guard call == nil || call == "request" || call == "keywords" else {
            throw ModelLoadError(
                "python_call is \"request\" (inference(self, request)) or \"keywords\" (inference(self, **kwargs)), not \(call ?? "")")
        }
        (helpers, callables) = try PythonRuntime.withGIL { [logger] in
            let helpers = try PythonHelpers()
            defer { PythonCode.log(PythonRuntime.takeOutput(helpers.take), spec, logger) }
            return (helpers, try PythonCallables(spec: spec, paths: paths, device: context.device, call: call, helpers: helpers, logger: logger))
        }
    }

    /// Calls the Python code with the request; gives its answer, or each piece of a generator
    /// (`isStream`), to `deliver`, under the GIL.
    func call(_ request: InferenceRequest, _ deliver: (JSON, _ isStream: Bool) throws -> Void) throws {
        try PythonRuntime.withGIL {
            defer { log(request) }
            let argument = try self.argument(request)
            try validate(argument, request)
            guard
                let result = takesRequest
                    ? PythonObject(PyObject_CallOneArg(target.pointer, argument.pointer))
                    : target.call([], keywords: argument)
            else {
                throw failure(request, keywords: takesRequest ? nil : argument)
            }
            // A generator (or any iterator) streams: each piece as it comes.
            if mserve_py_is_iterator(result.pointer) != 0 {
                defer { if let close = result.attribute("close") { _ = PythonObject(PyObject_CallNoArgs(close.pointer)) } }
                while let item = PythonObject(PyIter_Next(result.pointer)) {
                    log(request)
                    let piece = try Python.json(item.pointer)
                    try deliver(piece.isObject ? piece : ["result": piece], true)
                }
                if PyErr_Occurred() != nil { throw failure(request) }
                return
            }
            try deliver(try answer(result, request), false)
        }
    }

    /// `inference_batch(inputs)` on the requests that pass `validate`: one result per request.
    func callBatch(_ requests: [InferenceRequest], batch: PythonObject) -> [Result<JSON, any Error>] {
        PythonRuntime.withGIL {
            defer { for r in requests { log(r) } }
            var results = [Result<JSON, any Error>](repeating: .success(.null), count: requests.count)
            var taken: [Int] = []
            let inputs = PythonObject(PyList_New(0))
            for (i, r) in requests.enumerated() {
                do {
                    let argument = try argument(r)
                    try validate(argument, r)
                    PyList_Append(inputs?.pointer, argument.pointer)
                    taken.append(i)
                } catch { results[i] = .failure(error) }
            }
            guard !taken.isEmpty, let inputs else { return results }
            guard let answers = PythonObject(PyObject_CallOneArg(batch.pointer, inputs.pointer)) else {
                let e = failure(requests[taken[0]])
                for i in taken { results[i] = .failure(e) }
                return results
            }
            guard let list = PythonObject(PySequence_List(answers.pointer)), PyList_Size(list.pointer) == taken.count else {
                PyErr_Clear()
                logger.error("python: \(spec)'s inference_batch did not return one answer per input (\(taken.count))")
                for i in taken { results[i] = .failure(PythonModelFailure(message: "inference_batch did not return one answer per input")) }
                return results
            }
            for (k, i) in taken.enumerated() {
                let item = PythonObject(borrowing: PyList_GetItem(list.pointer, k))
                if mserve_py_is_exception(item.pointer) != 0 {
                    results[i] = .failure(PythonError(exception: item.pointer, inputErrors: inputErrors).asModelError)
                } else {
                    results[i] = Result { try answer(item, requests[i]) }
                }
            }
            return results
        }
    }

    /// What the Python code gets: a dict of keyword arguments (the JSON object or form fields,
    /// with the uploads as files), or a Request object.
    private func argument(_ request: InferenceRequest) throws -> PythonObject {
        var files: [(String, PythonObject)] = []
        for f in request.files {
            guard let made = helpers.makeFile.call(Python.bytes(f.data), Python.string(f.filename), Python.string(f.contentType)) else {
                throw failure(request)
            }
            files.append((f.field, made))
        }
        if !takesRequest {
            guard request.input.isObject || request.body.isEmpty else {
                throw ModelInputError("model takes a JSON object or form fields as its keyword arguments; got \(request.contentType)")
            }
            guard let kwargs = PythonObject(Python.object(request.input.isObject ? request.input : [:])) else { throw failure(request) }
            for (name, file) in files { PyDict_SetItemString(kwargs.pointer, name, file.pointer) }
            for name in callables.ownFieldsDropped where PyDict_DelItemString(kwargs.pointer, name) != 0 { PyErr_Clear() }
            return kwargs
        }
        let query = PyDict_New()
        for (k, v) in request.query { let value = Python.string(v); PyDict_SetItemString(query, k, value); mserve_py_decref(value) }
        let form = Python.object(request.input.isObject ? request.input : [:])
        let fileDict = PyDict_New()
        for (name, file) in files { PyDict_SetItemString(fileDict, name, file.pointer) }
        let parsed = MediaType.isJSON(request.contentType) && request.input.isObject ? Python.object(request.input) : mserve_py_none()
        let args = [
            Python.string(request.method), Python.string(request.path), query, form, fileDict, Python.bytes(request.body),
            Python.string(request.contentType), Python.string(request.recordID), parsed,
            request.trace.map { Python.string($0.traceID) } ?? mserve_py_none(),
            request.trace.map { Python.string($0.traceparent) } ?? mserve_py_none()
        ]
        guard let made = helpers.makeRequest.call(args, keywords: nil) else { throw failure(request) }
        return made
    }

    /// `validate(input)`: a ValueError (or another exception), False, or a message rejects it (400).
    private func validate(_ argument: PythonObject, _ request: InferenceRequest) throws {
        guard let validator else { return }
        guard let verdict = PythonObject(PyObject_CallOneArg(validator.pointer, argument.pointer)) else {
            let e = PythonError.fetch(inputErrors: inputErrors)
            if !e.isValueError { logger.info("python: \(spec)'s validate raised \(e.message)", recordID: request.recordID) }
            throw ModelInputError(e.isValueError ? e.message : "invalid input: \(e.message)")
        }
        if mserve_py_is_str(verdict.pointer) != 0, let message = Python.string(verdict.pointer), !message.isEmpty {
            throw ModelInputError(message)
        }
        if mserve_py_is_bool(verdict.pointer) != 0, mserve_py_is_true(verdict.pointer) == 0 {
            throw ModelInputError("invalid input (rejected by \(spec)'s validate)")
        }
    }

    /// The answer: JSON; or bytes (with the class's content type) or a web framework's response,
    /// put in the request's raw reply.
    private func answer(_ result: PythonObject, _ request: InferenceRequest) throws -> JSON {
        let p = result.pointer
        if mserve_py_is_bytes(p) != 0 || mserve_py_is_bytearray(p) != 0 {
            request.reply.set(Python.bytes(p), contentType: callables.contentType)
            return .null
        }
        if mserve_py_is_dict(p) == 0, mserve_py_is_list(p) == 0, mserve_py_is_str(p) == 0,
            let parts = PythonObject(PyObject_CallOneArg(helpers.responseParts.pointer, p))
        {
            if mserve_py_is_tuple(parts.pointer) != 0, let status = PythonObject(PySequence_GetItem(parts.pointer, 0)),
                let type = PythonObject(PySequence_GetItem(parts.pointer, 1)), let body = PythonObject(PySequence_GetItem(parts.pointer, 2))
            {
                request.reply.set(
                    Python.bytes(body.pointer), contentType: Python.string(type.pointer) ?? "application/octet-stream",
                    status: Int(PyLong_AsLong(status.pointer)))
                return .null
            }
        }
        PyErr_Clear()
        do { return try Python.json(p) } catch { throw PythonModelFailure(message: error.description) }
    }

    /// What the model printed or logged, in the error log with the request's recordid.
    private func log(_ request: InferenceRequest) { PythonCode.log(PythonRuntime.takeOutput(helpers.take), spec, logger, request.recordID) }

    static func log(_ lines: [String], _ spec: String, _ logger: Logger, _ recordID: String? = nil) {
        for line in lines { logger.info("python \(spec): \(line)", recordID: recordID) }
    }

    /// The exception Python raised: a ValueError (or one of the class's `input_errors`) is a 400,
    /// anything else a 500 with the traceback in the log (never in the answer).
    /// With the `keywords` a call was given: a TypeError because they do not fit the function's
    /// parameters (an unknown or missing argument) is the client's mistake too.
    private func failure(_ request: InferenceRequest, keywords: PythonObject? = nil) -> Error {
        let e = PythonError.fetch(inputErrors: inputErrors)
        if e.typeName == "TypeError", let keywords,
            let binds = PythonRuntime.call("binds", mserve_py_newref(target.pointer), mserve_py_newref(keywords.pointer)),
            mserve_py_is_true(binds.pointer) == 0
        {
            return ModelInputError(e.message.hasPrefix("TypeError: ") ? String(e.message.dropFirst(11)) : e.message)
        }
        PyErr_Clear()
        if !e.isValueError {
            logger.error("python: \(spec) raised \(e.message)", recordID: request.recordID)
            logger.log(.error, lines: e.traceback, recordID: request.recordID)
        }
        return e.asModelError
    }
}

/// A Python exception other than ValueError: the model failed (500).
struct PythonModelFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { "Python raised \(message)" }
}
