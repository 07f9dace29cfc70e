internal import CPython
import MServe

/// JSON to Python objects and back, directly (no text in between): objects as dicts, arrays as
/// lists, strings, integers, floats, booleans and None; from Python, tuples as lists too, and
/// anything with `tolist()` (numpy arrays and scalars) through it.  Under the GIL.
enum Python {
    /// A new reference.
    static func object(_ v: JSON) -> UnsafeMutablePointer<PyObject> {
        switch v {
        case .null: return mserve_py_none()
        case .bool(let b): return PyBool_FromLong(b ? 1 : 0)
        case .int(let i): return PyLong_FromLongLong(i)
        case .double(let d): return PyFloat_FromDouble(d)
        case .string(let s): return string(s)
        case .array(let items):
            let list = PyList_New(items.count)!
            for (i, item) in items.enumerated() { PyList_SetItem(list, i, object(item)) }  // steals
            return list
        case .floats(let f):
            let list = PyList_New(f.count)!
            for (i, x) in f.enumerated() { PyList_SetItem(list, i, PyFloat_FromDouble(Double(x))) }
            return list
        case .object(let pairs):
            let dict = PyDict_New()!
            for (k, item) in pairs {
                let value = object(item)
                PyDict_SetItemString(dict, k, value)
                mserve_py_decref(value)
            }
            return dict
        }
    }

    static func string(_ s: String) -> UnsafeMutablePointer<PyObject> {
        var s = s
        return s.withUTF8 { utf8 in
            utf8.withMemoryRebound(to: CChar.self) { PyUnicode_FromStringAndSize($0.baseAddress, $0.count) }
        }
    }

    /// A new bytes object.
    static func bytes(_ data: [UInt8]) -> UnsafeMutablePointer<PyObject> {
        data.withUnsafeBytes { PyBytes_FromStringAndSize($0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    }

    /// The contents of a bytes or bytearray object.
    static func bytes(_ o: UnsafeMutablePointer<PyObject>) -> [UInt8] {
        if mserve_py_is_bytearray(o) != 0, let p = PyByteArray_AsString(o) {
            return Array(UnsafeRawBufferPointer(start: p, count: PyByteArray_Size(o)))
        }
        var pointer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard PyBytes_AsStringAndSize(o, &pointer, &size) == 0, let pointer else { PyErr_Clear(); return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: size))
    }

    static func string(_ o: UnsafeMutablePointer<PyObject>) -> String? {
        var size = 0
        guard let p = PyUnicode_AsUTF8AndSize(o, &size) else { PyErr_Clear(); return nil }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: size), as: UTF8.self)
    }

    struct NotJSON: Error, CustomStringConvertible {
        let typeName: String
        var description: String { "the model answered a \(typeName), which is not JSON (dict, list, str, int, float, bool, None)" }
    }

    static func json(_ o: UnsafeMutablePointer<PyObject>) throws(NotJSON) -> JSON {
        if mserve_py_is_none(o) != 0 { return .null }
        if mserve_py_is_bool(o) != 0 { return .bool(mserve_py_is_true(o) != 0) }
        if mserve_py_is_int(o) != 0 {
            var overflow: Int32 = 0
            let v = PyLong_AsLongLongAndOverflow(o, &overflow)
            if overflow == 0 { return .int(v) }
            return .double(PyLong_AsDouble(o))
        }
        if mserve_py_is_float(o) != 0 { return .double(PyFloat_AsDouble(o)) }
        if mserve_py_is_str(o) != 0 { return .string(string(o) ?? "") }
        if mserve_py_is_dict(o) != 0 {
            var pairs: [(String, JSON)] = []
            var pos = 0
            var key: UnsafeMutablePointer<PyObject>?, value: UnsafeMutablePointer<PyObject>?
            while PyDict_Next(o, &pos, &key, &value) != 0 {
                guard let key, let value else { continue }
                let name: String
                if mserve_py_is_str(key) != 0 {
                    name = string(key) ?? ""
                } else {
                    name = PythonObject(PyObject_Str(key)).flatMap { string($0.pointer) } ?? ""
                }
                pairs.append((name, try json(value)))
            }
            return .object(pairs)
        }
        if mserve_py_is_list(o) != 0 || mserve_py_is_tuple(o) != 0 {
            let n = PySequence_Size(o)
            var items: [JSON] = []
            items.reserveCapacity(n)
            for i in 0..<n {
                guard let item = PythonObject(PySequence_GetItem(o, i)) else { break }
                items.append(try json(item.pointer))
            }
            return .array(items)
        }
        // numpy arrays and scalars (and anything else that offers it).
        if let tolist = PythonObject(borrowing: o).attribute("tolist"), let plain = PythonObject(PyObject_CallNoArgs(tolist.pointer)) {
            return try json(plain.pointer)
        }
        PyErr_Clear()
        let type = PythonObject(PyObject_Type(o))
        let name = type.flatMap { $0.attribute("__name__") }.flatMap { string($0.pointer) } ?? "object"
        throw NotJSON(typeName: name)
    }
}
