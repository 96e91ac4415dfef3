/* py_ops.c -- test hooks: run single ops of the CPU backend on NumPy arrays, with a chosen
 * ISA variant, so tests/test_ops.py can check every kernel against a float64 reference. */
#include "py_common.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../safetensors.h"
#include "../mapping.h"

#include "../backend.h"
#include "../cpu/cpu_internal.h"
#include "../ops.h"

static int f32_view(PyObject *o, const char *name, Py_buffer *v, mms_tensor *t) {
    if (PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (!v->format || strcmp(v->format, "f") != 0 || v->ndim > MMS_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: need a C-contiguous float32 array", name);
        PyBuffer_Release(v);
        return -1;
    }
    int64_t ne[MMS_MAX_DIMS];
    for (int i = 0; i < v->ndim; i++) ne[i] = v->shape[i];
    *t = mms_tensor_view(v->buf, MMS_DTYPE_F32, v->ndim, ne);
    return 0;
}

/* op_attention(q, k, v, out, heads, causal, mask_or_None, isa): q (B,Tq,A) k,v (B,Tk,A) out (B,Tq,A) */
static PyObject *py_op_attention(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *qo, *ko, *vo, *oo, *mo;
    int heads, causal, isa;
    if (!PyArg_ParseTuple(args, "OOOOiiOi", &qo, &ko, &vo, &oo, &heads, &causal, &mo, &isa)) return NULL;
    Py_buffer bq, bk, bv, bo, bm;
    mms_tensor q, k, v, o;
    int have_m = mo != Py_None;
    if (f32_view(qo, "q", &bq, &q) < 0) return NULL;
    if (f32_view(ko, "k", &bk, &k) < 0) { PyBuffer_Release(&bq); return NULL; }
    if (f32_view(vo, "v", &bv, &v) < 0) { PyBuffer_Release(&bq); PyBuffer_Release(&bk); return NULL; }
    if (f32_view(oo, "out", &bo, &o) < 0) { PyBuffer_Release(&bq); PyBuffer_Release(&bk); PyBuffer_Release(&bv); return NULL; }
    if (have_m && PyObject_GetBuffer(mo, &bm, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&bq); PyBuffer_Release(&bk); PyBuffer_Release(&bv); PyBuffer_Release(&bo);
        return NULL;
    }
    mms_attn_args a = {0};
    a.batch = q.ne[0]; a.n_q = q.ne[1]; a.n_kv = k.ne[1]; a.n_heads = heads; a.head_dim = q.ne[2] / heads;
    a.q = q.data; a.q_row = q.ne[2]; a.q_batch = q.ne[1] * q.ne[2];
    a.k = k.data; a.v = v.data; a.kv_row = k.ne[2]; a.kv_batch = k.ne[1] * k.ne[2];
    a.out = o.data; a.out_dtype = MMS_DTYPE_F32; a.key_mask = have_m ? bm.buf : NULL; a.causal = causal;
    a.scale = 1.0f / sqrtf((float)a.head_dim);
    mms_error err = {0};
    mms_status rc;
    Py_BEGIN_ALLOW_THREADS
    if (isa >= 10) { /* through the backend's dispatch; isa-10 = low_precision */
        a.low_precision = isa - 10;
        rc = mms_op_attention(mms_backend_cpu(), &a, &err);
    } else {
        rc = mms_cpu_attention_isa(&a, (mms_cpu_isa)isa, &err);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&bq); PyBuffer_Release(&bk); PyBuffer_Release(&bv); PyBuffer_Release(&bo);
    if (have_m) PyBuffer_Release(&bm);
    if (rc != MMS_OK) return mms_py_raise(&err);
    Py_RETURN_NONE;
}

/* op_layernorm(x, g, b, eps, out) */
static PyObject *py_op_layernorm(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *go, *bo, *oo;
    float eps;
    if (!PyArg_ParseTuple(args, "OOOfO", &xo, &go, &bo, &eps, &oo)) return NULL;
    Py_buffer bx, bg, bb, bout;
    mms_tensor x, g, b, o;
    if (f32_view(xo, "x", &bx, &x) < 0) return NULL;
    if (f32_view(go, "g", &bg, &g) < 0) { PyBuffer_Release(&bx); return NULL; }
    if (f32_view(bo, "b", &bb, &b) < 0) { PyBuffer_Release(&bx); PyBuffer_Release(&bg); return NULL; }
    if (f32_view(oo, "out", &bout, &o) < 0) { PyBuffer_Release(&bx); PyBuffer_Release(&bg); PyBuffer_Release(&bb); return NULL; }
    mms_error err = {0};
    mms_status rc = mms_op_layernorm(mms_backend_cpu(), &x, &g, &b, eps, &o, &err);
    PyBuffer_Release(&bx); PyBuffer_Release(&bg); PyBuffer_Release(&bb); PyBuffer_Release(&bout);
    if (rc != MMS_OK) return mms_py_raise(&err);
    Py_RETURN_NONE;
}

/* A C-contiguous float32 array as F32, or uint16 holding bfloat16 bits as BF16 (linear's x/w/y). */
static int lin_view(PyObject *o, const char *name, Py_buffer *v, mms_tensor *t) {
    if (PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const int bf = v->format && strcmp(v->format, "H") == 0;
    if (!v->format || (!bf && strcmp(v->format, "f") != 0) || v->ndim > MMS_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: need a C-contiguous float32 or uint16 (bfloat16 bits) array", name);
        PyBuffer_Release(v);
        return -1;
    }
    int64_t ne[MMS_MAX_DIMS];
    for (int i = 0; i < v->ndim; i++) ne[i] = v->shape[i];
    *t = mms_tensor_view(v->buf, bf ? MMS_DTYPE_BF16 : MMS_DTYPE_F32, v->ndim, ne);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* op_linear(x, w, b_or_None, act, residual_or_None, out, weight_dtype, isa=-1, path=0, reps=1)
 * -> seconds. x, out: float32 or uint16 (bfloat16 bits); w: (N, K) float32 / bfloat16 bits, or
 * (C, N, K) copies that the reps calls cycle through (benchmarks: more bytes than the L3, so W
 * comes from memory as in decoding). isa >= 0 forces the hand-written kernels' ISA (0 scalar,
 * 1 avx2, 2 avx512 without AMX tiles, 3 avx512 with them); path 0 = backend dispatch, 1 = GEMV
 * kernel, 2 = oneDNN (the reference GEMM in MMS_NO_DNNL builds). Returns the wall time of the
 * reps calls (GIL released). */
static PyObject *py_op_linear(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *xo, *wo, *bo, *ro, *oo;
    int act, isa = -1, path = 0, reps = 1;
    const char *wdt;
    if (!PyArg_ParseTuple(args, "OOOiOOs|iii", &xo, &wo, &bo, &act, &ro, &oo, &wdt, &isa, &path, &reps)) return NULL;
    Py_buffer bx, bw, bb, br, bout;
    mms_tensor x, w, b, r, o;
    int hb = bo != Py_None, hr = ro != Py_None;
    if (lin_view(xo, "x", &bx, &x) < 0) return NULL;
    if (lin_view(wo, "w", &bw, &w) < 0) { PyBuffer_Release(&bx); return NULL; }
    if (hb && f32_view(bo, "b", &bb, &b) < 0) { PyBuffer_Release(&bx); PyBuffer_Release(&bw); return NULL; }
    if (hr && f32_view(ro, "residual", &br, &r) < 0) { PyBuffer_Release(&bx); PyBuffer_Release(&bw); if (hb) PyBuffer_Release(&bb); return NULL; }
    if (lin_view(oo, "out", &bout, &o) < 0) { PyBuffer_Release(&bx); PyBuffer_Release(&bw); if (hb) PyBuffer_Release(&bb); if (hr) PyBuffer_Release(&br); return NULL; }
    mms_backend *be = mms_backend_cpu();
    mms_error err = {0};
    mms_status rc = MMS_OK;
    const int64_t ncopies = w.ndim == 3 ? w.ne[0] : 1;
    mms_linear *Ls = ncopies > 0 && (w.ndim == 2 || w.ndim == 3) ? PyMem_Calloc((size_t)ncopies, sizeof *Ls) : NULL;
    int64_t prepared = 0;
    double seconds = 0.0;
    if (!Ls) {
        PyErr_SetString(PyExc_ValueError, "op_linear: w must be (N, K) or (copies, N, K)");
        goto done;
    }
    for (; prepared < ncopies && rc == MMS_OK; prepared++) {
        const int64_t ne[2] = {w.ne[w.ndim - 2], w.ne[w.ndim - 1]};
        char *copy = (char *)w.data + prepared * ne[0] * ne[1] * (int64_t)mms_dtype_size(w.dtype);
        mms_tensor wc = mms_tensor_view(copy, w.dtype, 2, ne);
        rc = mms_linear_prepare(be, &wc, hb ? &b : NULL, strcmp(wdt, "bfloat16") == 0 ? MMS_DTYPE_BF16 : MMS_DTYPE_F32,
                                &Ls[prepared], &err);
    }
    if (rc != MMS_OK) { prepared--; goto done; } /* the failed one left nothing allocated */
    Py_BEGIN_ALLOW_THREADS
    if (isa >= 0) mms_cpu_force_isa(isa);
    const double t0 = now_seconds();
    for (int i = 0; i < reps && rc == MMS_OK; i++) {
        const mms_linear *L = &Ls[i % ncopies];
        const mms_tensor *res = hr ? &r : NULL;
        if (path == 1) rc = mms_cpu_gemv(&x, L, (mms_act)act, res, &o, &err);
        else if (path == 2) rc = mms_cpu_linear_dnnl(&x, L, (mms_act)act, res, &o, &err);
        else rc = mms_op_linear(be, &x, L, (mms_act)act, res, &o, &err);
    }
    seconds = now_seconds() - t0;
    if (isa >= 0) mms_cpu_force_isa(-1);
    Py_END_ALLOW_THREADS
done:
    for (int64_t i = 0; i < prepared; i++) mms_linear_release(&Ls[i]);
    PyMem_Free(Ls);
    PyBuffer_Release(&bx); PyBuffer_Release(&bw); PyBuffer_Release(&bout);
    if (hb) PyBuffer_Release(&bb);
    if (hr) PyBuffer_Release(&br);
    if (PyErr_Occurred()) return NULL;
    if (rc != MMS_OK) return mms_py_raise(&err);
    return PyFloat_FromDouble(seconds);
}

/* measure_read_bandwidth(bytes=1 GiB, threads=0 (all), reps=5) -> bytes/s (the GEMV roofline) */
static PyObject *py_measure_read_bandwidth(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"bytes", "threads", "reps", NULL};
    unsigned long long bytes = 1ull << 30;
    int threads = 0, reps = 5;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|Kii", kwlist, &bytes, &threads, &reps)) return NULL;
    double bw;
    Py_BEGIN_ALLOW_THREADS
    bw = mms_cpu_measure_read_bw((size_t)bytes, threads, reps);
    Py_END_ALLOW_THREADS
    if (bw <= 0) return PyErr_NoMemory();
    return PyFloat_FromDouble(bw);
}

static PyObject *py_weights_info(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path_obj;
    const char *fname = NULL;
    if (!PyArg_ParseTuple(args, "O&|z", PyUnicode_FSConverter, &path_obj, &fname)) return NULL;
    mms_weights *w = NULL;
    mms_error err = {0};
    mms_status rc = mms_weights_open(PyBytes_AS_STRING(path_obj), fname, &w, &err);
    Py_DECREF(path_obj);
    if (rc != MMS_OK) return mms_py_raise(&err);
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < mms_weights_count(w); i++) {
        const mms_tensor *t = mms_weights_find(w, mms_weights_name(w, i));
        PyObject *shape = PyTuple_New(t ? t->ndim : 0);
        for (int j = 0; t && j < t->ndim; j++) PyTuple_SET_ITEM(shape, j, PyLong_FromLongLong(t->ne[j]));
        PyObject *v = Py_BuildValue("(sN)", t ? mms_dtype_name(t->dtype) : "unsupported", shape);
        PyDict_SetItemString(d, mms_weights_name(w, i), v);
        Py_DECREF(v);
    }
    mms_weights_close(w);
    return d;
}

/* mapped_files() -> [{path, size, refs, in_memory, poisoned}]: the live checkpoint mappings */
static PyObject *py_mapped_files(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    mms_mapping_info info[64];
    int n = mms_mappings_list(info, 64);
    if (n > 64) n = 64;
    PyObject *l = PyList_New(0);
    for (int i = 0; l && i < n; i++) {
        PyObject *d = Py_BuildValue("{s:O&,s:K,s:i,s:O,s:O}", "path", PyUnicode_DecodeFSDefault, info[i].path, "size",
                                    (unsigned long long)info[i].size, "refs", info[i].refs, "in_memory",
                                    info[i].in_memory ? Py_True : Py_False, "poisoned", info[i].poisoned ? Py_True : Py_False);
        if (!d || PyList_Append(l, d) < 0) Py_CLEAR(l);
        Py_XDECREF(d);
    }
    return l;
}

/* test hook: map_read_byte(path, offset, truncate_to=-1) maps `path` (sharing a live mapping),
 * truncates the file to `truncate_to` bytes if >= 0, reads one byte through the mapping, then
 * checks the file like a model call does: exercises the SIGBUS guard of mapping.c */
static PyObject *py_map_read_byte(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path_obj;
    long long off, trunc_to = -1;
    if (!PyArg_ParseTuple(args, "O&L|L", PyUnicode_FSConverter, &path_obj, &off, &trunc_to)) return NULL;
    mms_error err = {0};
    mms_storage *s = NULL;
    mms_mapset set = {0};
    const char *path = PyBytes_AS_STRING(path_obj);
    mms_status rc = mms_map_file(path, 0, &s, &err);
    if (rc != MMS_OK) {
        Py_DECREF(path_obj);
        return mms_py_raise(&err);
    }
    if (off < 0 || (size_t)off >= s->size) {
        Py_DECREF(path_obj);
        mms_storage_release(s);
        return PyErr_Format(PyExc_IndexError, "offset %lld outside the mapping of %zu bytes", off, s->size);
    }
    if (trunc_to >= 0 && truncate(path, (off_t)trunc_to) != 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path_obj);
        Py_DECREF(path_obj);
        mms_storage_release(s);
        return NULL;
    }
    Py_DECREF(path_obj);
    int v;
    Py_BEGIN_ALLOW_THREADS
    v = ((volatile const unsigned char *)s->data)[off];
    Py_END_ALLOW_THREADS
    rc = mms_mapset_add(&set, s, &err);
    if (rc == MMS_OK) rc = mms_mapset_check(&set, &err);
    mms_mapset_release(&set);
    mms_storage_release(s);
    if (rc != MMS_OK) return mms_py_raise(&err);
    return PyLong_FromLong(v);
}

static PyObject *py_op_attention_backend(PyObject *self, PyObject *args) {
    PyObject *qo, *ko, *vo, *oo, *mo;
    int heads, causal, lowp;
    if (!PyArg_ParseTuple(args, "OOOOiiOi", &qo, &ko, &vo, &oo, &heads, &causal, &mo, &lowp)) return NULL;
    PyObject *t = Py_BuildValue("(OOOOiiOi)", qo, ko, vo, oo, heads, causal, mo, 10 + lowp);
    if (!t) return NULL;
    PyObject *r = py_op_attention(self, t);
    Py_DECREF(t);
    return r;
}

/* op_softmax(x): in place over the last axis */
static PyObject *py_op_softmax(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer b;
    mms_tensor t;
    if (f32_view(arg, "x", &b, &t) < 0) return NULL;
    mms_error err = {0};
    mms_status rc = mms_op_softmax(mms_backend_cpu(), &t, &err);
    PyBuffer_Release(&b);
    if (rc != MMS_OK) return mms_py_raise(&err);
    Py_RETURN_NONE;
}

static PyMethodDef ops_methods[] = {
    {"op_softmax", py_op_softmax, METH_O, "test hook: softmax over the last axis, in place"},
    {"op_attention_backend", py_op_attention_backend, METH_VARARGS, "test hook: attention through the CPU backend dispatch"},
    {"op_attention", py_op_attention, METH_VARARGS, "test hook: fused attention with a given ISA (0 scalar, 1 avx2, 2 avx512)"},
    {"op_layernorm", py_op_layernorm, METH_VARARGS, "test hook: layernorm"},
    {"op_linear", py_op_linear, METH_VARARGS, "test hook: linear (backend dispatch, GEMV kernel or oneDNN), timed"},
    {"measure_read_bandwidth", (PyCFunction)(void (*)(void))py_measure_read_bandwidth, METH_VARARGS | METH_KEYWORDS,
     "measure_read_bandwidth(bytes=1<<30, threads=0, reps=5) -> bytes/s streamed from memory (best of reps)"},
    {"mapped_files", py_mapped_files, METH_NOARGS, "mapped_files() -> [{path, size, refs, in_memory, poisoned}] of live checkpoint mappings"},
    {"map_read_byte", py_map_read_byte, METH_VARARGS, "test hook: map_read_byte(path, offset, truncate_to=-1): one byte through the shared mapping after an optional truncation, then the file check"},
    {"weights_info", py_weights_info, METH_VARARGS, "weights_info(path, filename=None) -> {name: (dtype, shape)} (validates the checkpoint)"},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_ops(PyObject *m) { return PyModule_AddFunctions(m, ops_methods); }
