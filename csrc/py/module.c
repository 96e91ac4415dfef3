/* module.c -- the mmsuite._C extension module: init, exceptions, global settings. */
#include "py_common.h"

#include <string.h>

#include "../backend.h"
#include "../finite.h"

/* Weak defaults so the module links while a binding file is absent; each csrc/py file
 * defines the strong symbol. */
__attribute__((weak)) int mms_py_init_image(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_tokenizer(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_model(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_sentencepiece(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_tokenizer_hf(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_llm(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_ops_dev(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_blip2(PyObject *m) { (void)m; return 0; }
__attribute__((weak)) int mms_py_init_tokenizer_t5(PyObject *m) { (void)m; return 0; }
int mms_py_init_ops(PyObject *m);

static PyObject *g_format_error, *g_config_error, *g_unsupported_error, *g_nonfinite_error;

int mms_py_parse_dtype(const char *s, mms_dtype *dt) {
    if (!strcmp(s, "float32") || !strcmp(s, "fp32") || !strcmp(s, "f32")) { *dt = MMS_DTYPE_F32; return 0; }
    if (!strcmp(s, "bfloat16") || !strcmp(s, "bf16")) { *dt = MMS_DTYPE_BF16; return 0; }
    PyErr_Format(PyExc_ValueError, "dtype must be 'float32' or 'bfloat16', not '%s'", s);
    return -1;
}

struct mms_backend *mms_py_backend(const char *device) {
    if (!strcmp(device, "cpu")) return mms_backend_cpu();
    if (!strcmp(device, "cuda") || !strncmp(device, "cuda:", 5)) {
        mms_error err = {0};
        mms_backend *be = mms_backend_cuda(&err);
        if (!be) mms_py_raise(&err);
        return be;
    }
    PyErr_Format(PyExc_ValueError, "device must be 'cpu' or 'cuda', not '%s'", device);
    return NULL;
}

PyObject *mms_py_raise(const mms_error *err) {
    PyObject *type = PyExc_RuntimeError;
    switch (err->code) {
    case MMS_ERR_NOMEM: type = PyExc_MemoryError; break;
    case MMS_ERR_IO: type = PyExc_OSError; break;
    case MMS_ERR_NOT_FOUND: type = PyExc_FileNotFoundError; break;
    case MMS_ERR_FORMAT: type = g_format_error ? g_format_error : PyExc_ValueError; break;
    case MMS_ERR_VALUE: type = PyExc_ValueError; break;
    case MMS_ERR_CONFIG: type = g_config_error ? g_config_error : PyExc_ValueError; break;
    case MMS_ERR_UNSUPPORTED:
        type = g_unsupported_error ? g_unsupported_error : PyExc_NotImplementedError;
        break;
    case MMS_ERR_NONFINITE: type = g_nonfinite_error ? g_nonfinite_error : PyExc_FloatingPointError; break;
    default: break;
    }
    PyErr_SetString(type, err->msg[0] ? err->msg : "mmsuite: unknown error");
    return NULL;
}

int64_t *mms_py_ids_from_seq(PyObject *obj, const char *what, Py_ssize_t *n_out) {
    if (PyUnicode_Check(obj) || PyBytes_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: ids must be a sequence of int, not %.100s", what, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyObject *seq = PySequence_Fast(obj, "ids must be a sequence of int");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int64_t *ids = PyMem_Malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *v = PyNumber_Index(item);
        if (!v && PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s: id at position %zd must be an int, not %.100s", what, i,
                         Py_TYPE(item)->tp_name);
        }
        int overflow = 0;
        long long x = v ? PyLong_AsLongLongAndOverflow(v, &overflow) : -1;
        Py_XDECREF(v);
        if (!v || (x == -1 && PyErr_Occurred()) || overflow) {
            if (overflow) PyErr_Format(PyExc_ValueError, "%s: id at position %zd is out of range", what, i);
            PyMem_Free(ids);
            Py_DECREF(seq);
            return NULL;
        }
        ids[i] = x;
    }
    Py_DECREF(seq);
    *n_out = n;
    return ids;
}

PyObject *mms_py_ids_to_list(const int64_t *ids, size_t n) {
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(ids[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, v);
    }
    return list;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg) {
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "set_num_threads: n must be >= 0 (0 = all cores)");
        return NULL;
    }
    mms_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromLong(mms_get_num_threads());
}

static PyObject *py_memory_stats(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    mms_mem_stats s = mms_mem_get_stats();
    return Py_BuildValue("{s:L,s:L,s:L}", "current_bytes", (long long)s.current_bytes,
                         "peak_bytes", (long long)s.peak_bytes, "live_blocks", (long long)s.n_allocs);
}

static PyObject *py_trim_memory(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    mms_cpu_trim();
    Py_RETURN_NONE;
}

static const char *const k_finite_modes[] = {"off", "outputs", "layers"};

static PyObject *py_set_check_finite(PyObject *self, PyObject *arg) {
    (void)self;
    const char *s = PyUnicode_Check(arg) ? PyUnicode_AsUTF8(arg) : NULL;
    for (int i = 0; s && i < 3; i++)
        if (!strcmp(s, k_finite_modes[i])) {
            mms_set_finite_mode((mms_finite_mode)i);
            Py_RETURN_NONE;
        }
    if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "check_finite: expected 'off', 'outputs' or 'layers', got %R", arg);
    return NULL;
}

static PyObject *py_get_check_finite(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(k_finite_modes[mms_get_finite_mode()]);
}

static PyMethodDef module_methods[] = {
    {"set_check_finite", py_set_check_finite, METH_O, "set_check_finite('off'|'outputs'|'layers'): NaN/Inf guards (finite.h)"},
    {"get_check_finite", py_get_check_finite, METH_NOARGS, "the NaN/Inf guard mode"},
    {"trim_memory", py_trim_memory, METH_NOARGS, "Free cached activation buffers (they are reused across calls)."},
    {"set_num_threads", py_set_num_threads, METH_O, "Set the number of compute threads (0 = all cores)."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Number of compute threads in use."},
    {"memory_stats", py_memory_stats, METH_NOARGS, "Bytes held by mmsuite's C allocator."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "mmsuite._C", "mmsuite C core (see csrc/mms.h).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__C(void) {
    PyObject *errors = PyImport_ImportModule("mmsuite.errors");
    if (!errors) return NULL;
    g_format_error = PyObject_GetAttrString(errors, "FormatError");
    g_config_error = PyObject_GetAttrString(errors, "ConfigError");
    g_unsupported_error = PyObject_GetAttrString(errors, "UnsupportedError");
    g_nonfinite_error = PyObject_GetAttrString(errors, "NonFiniteError");
    Py_DECREF(errors);
    if (!g_format_error || !g_config_error || !g_unsupported_error || !g_nonfinite_error) return NULL;

    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    if (mms_py_init_image(m) < 0 || mms_py_init_tokenizer(m) < 0 || mms_py_init_model(m) < 0 ||
        mms_py_init_ops(m) < 0 || mms_py_init_sentencepiece(m) < 0 || mms_py_init_llm(m) < 0 ||
        mms_py_init_tokenizer_hf(m) < 0 || mms_py_init_ops_dev(m) < 0 || mms_py_init_blip2(m) < 0 ||
        mms_py_init_tokenizer_t5(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
