/* py_text.c -- text in and out of the tokenizer bindings (py_tokenizer.c, py_sentencepiece.c):
 * a str (or bytes) argument as UTF-8 bytes, the texts and int64 arrays of an encode_batch
 * call, and decode(ids); the C encoders and decoders run without the GIL. */
#include "py_common.h"

/* ==== one text ============================================================================== */

/* 0 with the bytes, 1 when o is of no accepted type (nothing raised), -1 with an exception
 * set. A str's UTF-8 is cached on it, so it lives as long as the str. */
static int utf8_of(PyObject *o, int allow_bytes, const char **data, Py_ssize_t *len) {
    if (PyUnicode_Check(o)) {
        *data = PyUnicode_AsUTF8AndSize(o, len);
        return *data ? 0 : -1;
    }
    if (allow_bytes && PyBytes_Check(o)) {
        *data = PyBytes_AS_STRING(o);
        *len = PyBytes_GET_SIZE(o);
        return 0;
    }
    return 1;
}

/* A str holding a lone surrogate has no UTF-8 (transformers refuses it too): the
 * UnicodeEncodeError stays, its reason naming the argument. Returns -1. */
static int encode_error(PyObject *o, const char *what) {
    if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
    PyObject *type, *value, *tb;
    Py_ssize_t start = 0, end = 1;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && (PyUnicodeEncodeError_GetStart(value, &start) < 0 || PyUnicodeEncodeError_GetEnd(value, &end) < 0)) {
        PyErr_Clear();
        start = 0;
        end = 1;
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    char reason[160];
    snprintf(reason, sizeof reason, "%s holds a lone surrogate (not valid Unicode text)", what);
    PyObject *exc = PyObject_CallFunction(PyExc_UnicodeEncodeError, "sOnns", "utf-8", o, start, end, reason);
    if (exc) {
        PyErr_SetObject(PyExc_UnicodeEncodeError, exc);
        Py_DECREF(exc);
    }
    return -1;
}

static int type_error(PyObject *o, const char *what, int allow_bytes) {
    PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", what, allow_bytes ? "str or bytes" : "str",
                 Py_TYPE(o)->tp_name);
    return -1;
}

int mms_py_text_utf8(PyObject *o, const char *what, int allow_bytes, const char **data, Py_ssize_t *len) {
    int r = utf8_of(o, allow_bytes, data, len);
    return r == 1 ? type_error(o, what, allow_bytes) : r < 0 ? encode_error(o, what) : 0;
}

/* ==== encode_batch ========================================================================== */

/* numpy.empty(shape, "int64") and a writable C-contiguous view of it. */
static PyObject *new_int64_array(PyObject *shape, Py_buffer *view) {
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np) return NULL;
    PyObject *arr = PyObject_CallMethod(np, "empty", "Os", shape, "int64");
    Py_DECREF(np);
    if (!arr) return NULL;
    if (PyObject_GetBuffer(arr, view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

static void batch_clear(mms_py_batch *b) {
    if (b->ids_v.obj) PyBuffer_Release(&b->ids_v);
    if (b->mask_v.obj) PyBuffer_Release(&b->mask_v);
    if (b->len_v.obj) PyBuffer_Release(&b->len_v);
    Py_XDECREF(b->ids);
    Py_XDECREF(b->mask);
    Py_XDECREF(b->lengths);
    PyMem_Free(b->ptrs);
    PyMem_Free(b->lens);
    Py_XDECREF(b->texts);
    memset(b, 0, sizeof *b);
}

/* Texts to UTF-8 pointers; each item is named in its TypeError. */
static int batch_texts(mms_py_batch *b, int allow_bytes) {
    b->ptrs = PyMem_Malloc(((size_t)b->n + 1) * sizeof *b->ptrs);
    b->lens = PyMem_Malloc(((size_t)b->n + 1) * sizeof *b->lens);
    if (!b->ptrs || !b->lens) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < b->n; i++) {
        PyObject *t = PyTuple_GET_ITEM(b->texts, i);
        Py_ssize_t l;
        int r = utf8_of(t, allow_bytes, &b->ptrs[i], &l);
        if (r != 0) {
            char what[64];
            snprintf(what, sizeof what, "encode_batch: texts[%zd]", i);
            return r == 1 ? type_error(t, what, allow_bytes) : encode_error(t, what);
        }
        b->lens[i] = (size_t)l;
    }
    return 0;
}

static int batch_arrays(mms_py_batch *b, long long context_length, int return_lengths) {
    PyObject *shape = Py_BuildValue("(nL)", b->n, context_length);
    if (!shape) return -1;
    b->ids = new_int64_array(shape, &b->ids_v);
    if (b->ids) b->mask = new_int64_array(shape, &b->mask_v);
    Py_DECREF(shape);
    if (!b->mask) return -1;
    if (return_lengths) {
        PyObject *shape1 = Py_BuildValue("(n)", b->n);
        if (!shape1) return -1;
        b->lengths = new_int64_array(shape1, &b->len_v);
        Py_DECREF(shape1);
        if (!b->lengths) return -1;
    }
    b->ids_out = b->ids_v.buf;
    b->mask_out = b->mask_v.buf;
    b->lengths_out = b->lengths ? b->len_v.buf : NULL;
    return 0;
}

int mms_py_batch_init(mms_py_batch *b, PyObject *texts, int allow_bytes, long long context_length,
                      int return_lengths) {
    memset(b, 0, sizeof *b);
    /* A tuple copy keeps every text (and a str's cached UTF-8) alive while the GIL is released. */
    if (!(b->texts = PySequence_Tuple(texts))) return -1;
    b->n = PyTuple_GET_SIZE(b->texts);
    if (batch_texts(b, allow_bytes) < 0 || batch_arrays(b, context_length, return_lengths) < 0) {
        batch_clear(b);
        return -1;
    }
    return 0;
}

PyObject *mms_py_batch_run(mms_py_batch *b, mms_py_batch_fn fn, const void *tok, const void *params) {
    PyObject *result = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = fn(tok, params, b, &err);
    Py_END_ALLOW_THREADS
    if (st) mms_py_raise(&err);
    else if (b->lengths) result = PyTuple_Pack(3, b->ids, b->mask, b->lengths);
    else result = PyTuple_Pack(2, b->ids, b->mask);
    batch_clear(b);
    return result;
}

/* ==== decode ================================================================================ */

PyObject *mms_py_decode(PyObject *ids_o, mms_py_decode_fn fn, const void *ctx, const char *errors) {
    Py_ssize_t n;
    int64_t *ids = mms_py_ids_from_seq(ids_o, "decode", &n);
    if (!ids) return NULL;
    char *text = NULL;
    size_t len = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = fn(ctx, ids, (size_t)n, &text, &len, &err);
    Py_END_ALLOW_THREADS
    PyMem_Free(ids);
    if (st) return mms_py_raise(&err);
    PyObject *result = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, errors);
    mms_free(text);
    return result;
}
