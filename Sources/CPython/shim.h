// CPython's C API (Debian: python3-dev, pkg-config python3-embed), for models written in Python.
// Its type checks, reference counts and singletons are macros, which Swift cannot import: these
// inline functions stand for them.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static inline PyObject *mserve_py_none(void) { Py_INCREF(Py_None); return Py_None; }
static inline int mserve_py_is_none(PyObject *o) { return o == Py_None; }
static inline int mserve_py_is_bool(PyObject *o) { return PyBool_Check(o); }
static inline int mserve_py_is_true(PyObject *o) { return o == Py_True; }
static inline int mserve_py_is_int(PyObject *o) { return PyLong_Check(o); }
static inline int mserve_py_is_float(PyObject *o) { return PyFloat_Check(o); }
static inline int mserve_py_is_str(PyObject *o) { return PyUnicode_Check(o); }
static inline int mserve_py_is_bytes(PyObject *o) { return PyBytes_Check(o); }
static inline int mserve_py_is_dict(PyObject *o) { return PyDict_Check(o); }
static inline int mserve_py_is_list(PyObject *o) { return PyList_Check(o); }
static inline int mserve_py_is_tuple(PyObject *o) { return PyTuple_Check(o); }
static inline int mserve_py_is_type(PyObject *o) { return PyType_Check(o); }
static inline int mserve_py_is_iterator(PyObject *o) { return PyIter_Check(o); }
static inline void mserve_py_incref(PyObject *o) { Py_INCREF(o); }
static inline void mserve_py_decref(PyObject *o) { Py_XDECREF(o); }
static inline PyObject *mserve_py_value_error(void) { return PyExc_ValueError; }
