internal import CPython
import MServe
import Synchronization

/// The worker's embedded CPython: started once, by the first Python model a worker loads (after the
/// fork: an interpreter does not survive one), and then left without the GIL, so that the event
/// loop never holds it; model threads take it around each call into Python.
enum PythonRuntime {
    private static let started = Mutex(false)

    /// Starts the interpreter if it is not, with `paths` first on sys.path; returns with the GIL
    /// released.  A model's loading takes it again through `withGIL`.
    static func start(paths: [String]) {
        let first = started.withLock { s in
            defer { s = true }
            return !s
        }
        if first {
            Py_InitializeEx(0)   // 0: Python installs no signal handlers; the worker keeps its own
            _ = PyRun_SimpleStringFlags(PythonRuntime.outputSetup, nil)
            _ = PyEval_SaveThread()
        }
        withGIL {
            guard let sysPath = PySys_GetObject("path") else { return }
            for p in paths.reversed() {
                let item = PyUnicode_FromString(p)
                if PySequence_Contains(sysPath, item) == 0 { PyList_Insert(sysPath, 0, item) }
                mserve_py_decref(item)
            }
        }
    }

    /// print() and logging go to a buffer per thread, which `takeOutput` empties into the error log
    /// after each call, with the request's recordid.
    private static let outputSetup = """
        import logging, sys, threading
        class _MserveOutput:
            def __init__(self):
                self.local = threading.local()
            def write(self, text):
                buf = getattr(self.local, "buf", None)
                if buf is None:
                    buf = self.local.buf = []
                buf.append(text)
                return len(text)
            def flush(self):
                pass
            def take(self):
                text = "".join(getattr(self.local, "buf", None) or [])
                self.local.buf = []
                return text
        sys._mserve_output = sys.stdout = sys.stderr = _MserveOutput()
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        """

    /// What this thread's Python code printed or logged since the last look, a line each, under
    /// the GIL.
    static func takeOutput() -> [String] {
        guard let sys = PythonObject(PyImport_ImportModule("sys")), let output = sys.attribute("_mserve_output"),
              let take = output.attribute("take"), let text = PythonObject(PyObject_CallNoArgs(take.pointer)) else {
            PyErr_Clear()
            return []
        }
        return (Python.string(text.pointer) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// Runs `body` holding the GIL, from any thread.
    static func withGIL<T>(_ body: () throws -> T) rethrows -> T {
        let state = PyGILState_Ensure()
        defer { PyGILState_Release(state) }
        return try body()
    }
}

/// An owned reference to a Python object, released when dropped.  Made and dropped under the GIL.
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

    deinit { mserve_py_decref(pointer) }

    func attribute(_ name: String) -> PythonObject? {
        guard PyObject_HasAttrString(pointer, name) == 1 else { return nil }
        return PythonObject(PyObject_GetAttrString(pointer, name))
    }

    var isCallable: Bool { PyCallable_Check(pointer) == 1 }
}

/// The Python exception set, as a Swift error: a `ValueError` is the client's mistake (400), any
/// other the model's (500, its traceback logged).
struct PythonError: Error, CustomStringConvertible {
    let isValueError: Bool
    let message: String
    let traceback: String

    var description: String { message }

    /// Takes (and clears) the exception set.
    static func fetch() -> PythonError {
        var type: UnsafeMutablePointer<PyObject>?, value: UnsafeMutablePointer<PyObject>?, trace: UnsafeMutablePointer<PyObject>?
        PyErr_Fetch(&type, &value, &trace)
        PyErr_NormalizeException(&type, &value, &trace)
        defer { mserve_py_decref(type); mserve_py_decref(value); mserve_py_decref(trace) }
        let isValue = type.map { PyErr_GivenExceptionMatches($0, mserve_py_value_error()) == 1 } ?? false
        let message = value.flatMap { v in PythonObject(PyObject_Str(v)).flatMap { Python.string($0.pointer) } } ?? "unknown Python error"
        var text = ""
        if let tb = PythonObject(PyImport_ImportModule("traceback")), let format = tb.attribute("format_exception"),
           let type, let value, let args = PythonObject(PyTuple_New(3)) {
            // PyTuple_SetItem steals a reference: each gets one of its own (None for no traceback).
            for (i, o) in [type, value, trace].enumerated() {
                if let o { mserve_py_incref(o) }
                PyTuple_SetItem(args.pointer, i, o ?? mserve_py_none())
            }
            if let lines = PythonObject(PyObject_CallObject(format.pointer, args.pointer)), let empty = PythonObject(PyUnicode_FromString("")),
               let joined = PythonObject(PyUnicode_Join(empty.pointer, lines.pointer)) {
                text = Python.string(joined.pointer) ?? ""
            }
            PyErr_Clear()
        }
        let name = type.flatMap { t in PythonObject(PyObject_GetAttrString(t, "__name__")).flatMap { Python.string($0.pointer) } } ?? "Exception"
        return PythonError(isValueError: isValue, message: isValue ? message : "\(name): \(message)", traceback: text)
    }
}
