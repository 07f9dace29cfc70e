internal import CPython
import MServe

/// An owned reference to a Python object, released when dropped (taking the GIL if the thread
/// does not hold it: a model, and its objects, may be dropped anywhere).  Made under the GIL.
final class PythonObject {
    let pointer: UnsafeMutablePointer<PyObject>

    /// Takes a new reference; nil (a Python exception is set) is nil.
    init?(_ pointer: UnsafeMutablePointer<PyObject>?) {
        guard let pointer else { return nil }
        self.pointer = pointer
    }

    /// A borrowed reference, kept.
    init(borrowing pointer: UnsafeMutablePointer<PyObject>) {
        mserve_py_incref(pointer)
        self.pointer = pointer
    }

    deinit { PythonRuntime.withGIL { mserve_py_decref(pointer) } }

    func attribute(_ name: String) -> PythonObject? {
        guard PyObject_HasAttrString(pointer, name) == 1 else { return nil }
        return PythonObject(PyObject_GetAttrString(pointer, name))
    }

    var isCallable: Bool { PyCallable_Check(pointer) == 1 }

    /// Calls it with positional `args` (new references, which the call takes over); nil with the
    /// exception set.
    func call(_ args: UnsafeMutablePointer<PyObject>?...) -> PythonObject? { call(args, keywords: nil) }

    /// nil as well when an argument is (its making failed, and set the exception).
    func call(_ args: [UnsafeMutablePointer<PyObject>?], keywords: PythonObject?) -> PythonObject? {
        guard let tuple = PyTuple_New(args.count), !args.contains(where: { $0 == nil }) else {
            for a in args { mserve_py_decref(a) }
            return nil
        }
        for (i, a) in args.enumerated() { PyTuple_SetItem(tuple, i, a) }  // steals
        defer { mserve_py_decref(tuple) }
        return PythonObject(PyObject_Call(pointer, tuple, keywords?.pointer))
    }
}

/// A Python exception, as a Swift error: a `ValueError` is the client's mistake (400), any other
/// the model's (500, its traceback logged).
struct PythonError: Error, CustomStringConvertible {
    let isValueError: Bool
    /// The exception's class name ("TypeError").
    let typeName: String
    let message: String
    let traceback: String

    var description: String { message }

    /// The error a model throws for it: ModelInputError for a ValueError, else a failure.
    var asModelError: any Error { isValueError ? ModelInputError(message) : PythonModelFailure(message: message) }

    /// Takes (and clears) the exception set; `inputErrors` (an exception type or a tuple of them)
    /// count as ValueError does.
    static func fetch(inputErrors: PythonObject? = nil) -> PythonError {
        var type: UnsafeMutablePointer<PyObject>?, value: UnsafeMutablePointer<PyObject>?, trace: UnsafeMutablePointer<PyObject>?
        PyErr_Fetch(&type, &value, &trace)
        PyErr_NormalizeException(&type, &value, &trace)
        defer { mserve_py_decref(type); mserve_py_decref(value); mserve_py_decref(trace) }
        if let value, trace != nil { PyException_SetTraceback(value, trace) }
        guard let value else { return PythonError(isValueError: false, message: "unknown Python error", traceback: "") }
        return PythonError(exception: value, inputErrors: inputErrors)
    }

    init(isValueError: Bool, message: String, traceback: String) {
        self.isValueError = isValueError
        typeName = "Exception"
        self.message = message
        self.traceback = traceback
    }

    /// An exception object (raised, or returned in a batch's answers).
    init(exception: UnsafeMutablePointer<PyObject>, inputErrors: PythonObject? = nil) {
        isValueError =
            PyObject_IsInstance(exception, mserve_py_value_error()) == 1
            || inputErrors.map { PyObject_IsInstance(exception, $0.pointer) == 1 } ?? false
        let text = PythonObject(PyObject_Str(exception)).flatMap { Python.string($0.pointer) } ?? "unknown Python error"
        let type = PythonObject(PyObject_Type(exception))
        let name = type.flatMap { $0.attribute("__name__") }.flatMap { Python.string($0.pointer) } ?? "Exception"
        typeName = name
        message = isValueError ? text : "\(name): \(text)"
        var lines = ""
        if let format = PythonObject(PyImport_ImportModule("traceback"))?.attribute("format_exception"), let type,
            let formatted = format.call(
                mserve_py_newref(type.pointer), mserve_py_newref(exception),
                PyException_GetTraceback(exception) ?? mserve_py_none()),
            let empty = PythonObject(Python.string("")), let joined = PythonObject(PyUnicode_Join(empty.pointer, formatted.pointer))
        {
            lines = Python.string(joined.pointer) ?? ""
        }
        PyErr_Clear()
        traceback = lines
    }
}
