// CPython's C API (Debian: python3-dev, pkg-config python3-embed), for models written in Python.
// Its type checks, reference counts and singletons are macros, which Swift cannot import: these
// inline functions stand for them.
//
// Python.h defines the feature macros it wants (_GNU_SOURCE, _XOPEN_SOURCE, ...) before it includes
// the system's headers, which changes their declarations: fd_set's member is then `fds_bits`, not
// `__fds_bits` as libevent's module (CEvent) saw it, and a program that loads both modules fails
// to build.  The headers both include come first here, as the rest of the program sees them.
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <limits.h>
#include <wchar.h>
#include <math.h>
#include <time.h>
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
static inline int mserve_py_is_bytearray(PyObject *o) { return PyByteArray_Check(o); }
static inline int mserve_py_is_exception(PyObject *o) { return PyExceptionInstance_Check(o); }
static inline PyObject *mserve_py_newref(PyObject *o) { Py_INCREF(o); return o; }
