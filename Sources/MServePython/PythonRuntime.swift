internal import CPython
import MServe

/// The process's embedded CPython: started by the first Python model loaded, in a worker after the
/// fork, or in the master with --preload (each fork then hands the interpreter on, as os.fork
/// does).  Once started it is left without the GIL, so that the event loop never holds it; model
/// threads take it around each call into Python.
enum PythonRuntime {
    /// The virtual environment in use, once started ("" for none).
    private static let started = Locked<String?>(nil)

    /// The embedded Python's "major.minor".
    static let version = "\(PY_MAJOR_VERSION).\(PY_MINOR_VERSION)"

    /// Starts the interpreter if it is not, with the packages of `venv` and then `paths` first on
    /// sys.path; returns with the GIL released.
    static func start(paths: [String], venv: String?) throws {
        let venv = venv ?? ""
        let environment = try venv.isEmpty ? nil : VirtualEnvironment.open(venv, embedded: version)
        // Under the lock, so that a second caller waits for the interpreter to be ready.
        try started.withLock { (s: inout String?) throws in
            if let s {
                guard s == venv else {
                    throw ModelLoadError("python: one venv per server (\(s.isEmpty ? "none" : s) is in use, and \(venv) was asked for)")
                }
                return
            }
            s = venv
            Py_InitializeEx(0)  // 0: Python installs no signal handlers; the process keeps its own
            _ = PyRun_SimpleStringFlags(PythonRuntime.bootstrap, nil)
            var failure: PythonError?
            if let environment,
                call(
                    "use_venv", Python.string(environment.sitePackages(for: version)),
                    PyBool_FromLong(environment.includesSystemPackages ? 1 : 0)) == nil
            {
                failure = PythonError.fetch()
            }
            _ = PyEval_SaveThread()
            ChildProcess.onFork(prepare: prepareFork, parent: afterFork, child: afterForkInChild)
            if let failure { throw ModelLoadError("python venv \(venv) could not be used: \(failure.message)") }
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

    // Around a fork (the master's, with --preload), what os.fork does: the forking thread holds
    // the GIL and Python's own locks, so that the child finds them in a known state.
    private static let forkState = Locked<PyGILState_STATE?>(nil)
    private static func prepareFork() {
        let state = PyGILState_Ensure()
        PyOS_BeforeFork()
        forkState.withLock { $0 = state }
    }
    private static func afterFork() {
        PyOS_AfterFork_Parent()
        forkState.withLock { $0 }.map(PyGILState_Release)
    }
    private static func afterForkInChild() {
        PyOS_AfterFork_Child()
        forkState.withLock { $0 }.map(PyGILState_Release)
    }

    /// Calls a function of the `_mserve` module with `args` (new references, which it takes);
    /// nil with the exception set.  Under the GIL.
    static func call(_ name: String, _ args: UnsafeMutablePointer<PyObject>?...) -> PythonObject? { call(name, args) }

    static func call(_ name: String, _ args: [UnsafeMutablePointer<PyObject>?]) -> PythonObject? {
        guard let function = helper(name) else {
            for a in args { mserve_py_decref(a) }
            return nil
        }
        return function.call(args, keywords: nil)
    }

    /// The `_mserve` module: print() and logging into a buffer per thread, which `takeOutput`
    /// empties into the error log after each call, with the request's recordid; the venv's
    /// packages; the request and file objects modelserve-style models get.
    private static let bootstrap = #"""
        import io, logging, site, sys, threading, types
        _mserve = types.ModuleType("_mserve")
        sys.modules["_mserve"] = _mserve
        exec('''
        import io, site, sys, threading

        class Output:
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

        output = Output()

        def use_venv(site_dir, include_system):
            before = list(sys.path)
            site.addsitedir(site_dir)
            added = [p for p in sys.path if p not in before]
            if not include_system:
                system = set(site.getsitepackages() + [site.getusersitepackages()])
                before = [p for p in before if p not in system]
            sys.path[:] = added + before

        class UploadedFile(io.BytesIO):
            """A file of a multipart upload: a file object (read, seek: what PIL.Image.open takes),
            with Django's name, content_type and size."""
            def __init__(self, data, name, content_type):
                super().__init__(data)
                self.name = name
                self.content_type = content_type
                self.size = len(data)

        class Request:
            """What inference(self, request) gets, with Django's names: GET (query arguments), POST
            (form fields, or a JSON object body's keys), FILES (uploads), body (bytes), json()."""
            __slots__ = ("method", "path", "GET", "POST", "FILES", "body", "content_type", "recordid", "trace_id", "traceparent", "_json")
            def __init__(self, method, path, GET, POST, FILES, body, content_type, recordid, parsed, trace_id=None, traceparent=None):
                self.method, self.path, self.GET, self.POST, self.FILES = method, path, GET, POST, FILES
                self.body, self.content_type, self.recordid, self._json = body, content_type, recordid, parsed
                # W3C trace context: send traceparent on to a service the model calls.
                self.trace_id, self.traceparent = trace_id, traceparent
            def json(self):
                if self._json is None:
                    raise ValueError("the request's body is not a JSON object")
                return self._json
            def __repr__(self):
                return "<Request %s %s %s>" % (self.method, self.path, self.recordid)

        def takes_request(f):
            """modelserve's inference(self, request), rather than HepAI's inference(self, **kwargs)."""
            import inspect
            try:
                parameters = list(inspect.signature(f).parameters.values())
            except (TypeError, ValueError):
                return False
            if any(p.kind == p.VAR_KEYWORD for p in parameters):
                return False
            positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            return len(positional) == 1 and positional[0].name in ("request", "req")

        def accepts(f, name):
            """Whether f takes the keyword argument `name` (by name, or through **kwargs)."""
            import inspect
            try:
                parameters = inspect.signature(f).parameters.values()
            except (TypeError, ValueError):
                return True
            return any(p.kind == p.VAR_KEYWORD or (p.name == name and p.kind != p.POSITIONAL_ONLY) for p in parameters)

        def binds(f, kwargs):
            """Whether keyword arguments fit f's parameters (after a TypeError: whose mistake)."""
            import inspect
            if not inspect.isroutine(f) and inspect.ismethod(getattr(f, "__call__", None)):
                f = f.__call__
            try:
                if inspect.ismethod(f):
                    # With the instance in its place: a key named like it ("self") is then a
                    # second value for it, not one more keyword for **kwargs.
                    inspect.signature(f.__func__).bind(f.__self__, **kwargs)
                else:
                    inspect.signature(f).bind(**kwargs)
            except TypeError:
                return False
            except ValueError:
                pass
            return True

        def response_parts(r):
            """(status, content type, body) of a web framework's response (Django's JsonResponse or
            HttpResponse, Starlette's Response), or None."""
            status = getattr(r, "status_code", None)
            body = getattr(r, "content", None)
            if body is None:
                body = getattr(r, "body", None)
            if not isinstance(status, int) or not isinstance(body, (bytes, bytearray)):
                return None
            headers = getattr(r, "headers", None) or {}
            ctype = headers.get("Content-Type") or headers.get("content-type") or getattr(r, "media_type", None)
            return status, ctype or "application/octet-stream", bytes(body)
        ''', _mserve.__dict__)
        sys.stdout = sys.stderr = _mserve.output
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        """#

    /// What this thread's Python code printed or logged since the last look, a line each, under
    /// the GIL; `take` is the module's `output.take`.
    static func takeOutput(_ take: PythonObject) -> [String] {
        guard let text = PythonObject(PyObject_CallNoArgs(take.pointer)) else {
            PyErr_Clear()
            return []
        }
        guard PyObject_Length(text.pointer) > 0 else { return [] }
        return (Python.string(text.pointer) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// An attribute of the `_mserve` module (a.b for an attribute's attribute), under the GIL.
    static func helper(_ path: String) -> PythonObject? {
        var object = PythonObject(PyImport_ImportModule("_mserve"))
        for name in path.split(separator: ".") { object = object?.attribute(String(name)) }
        if object == nil { PyErr_Clear() }
        return object
    }

    /// Runs `body` holding the GIL, from any thread.
    static func withGIL<T>(_ body: () throws -> T) rethrows -> T {
        let state = PyGILState_Ensure()
        defer { PyGILState_Release(state) }
        return try body()
    }
}
