/* py_ops_dev.c -- test hooks: the decoder ops (rmsnorm, rope, glu, store_rows, kv_attention) and
 * attention (GQA, sliding window) on a chosen backend ('cpu' or 'cuda'), with NumPy arrays in and
 * out. Arrays are copied to the backend's device (alloc + upload, as the models do), the op runs
 * through ops.h, and the arrays marked as outputs are copied back in place. The same code path
 * serves both devices, so tests compare the CUDA backend against the CPU one on any sizes.
 * Array dtypes: float32 (F32), uint16 holding bfloat16 bits (BF16), int64 (I64). */
#include "py_common.h"

#include <string.h>

#include "../backend.h"
#include "../ops.h"

typedef struct {
    Py_buffer b;
    int held;
    mms_dtype dt;
    void *dev; /* on the backend */
} dev_arg;

static mms_backend *backend_of(const char *device, mms_error *err) {
    if (!strcmp(device, "cpu")) return mms_backend_cpu();
    if (!strcmp(device, "cuda") || !strncmp(device, "cuda:", 5)) return mms_backend_cuda(err);
    mms_error_set(err, MMS_ERR_VALUE, "device must be 'cpu' or 'cuda', not '%s'", device);
    return NULL;
}

/* o (None allowed when optional) -> buffer + dtype; writable for outputs */
static int arg_get(PyObject *o, dev_arg *a, int writable, int optional, const char *name) {
    memset(a, 0, sizeof *a);
    if (o == Py_None && optional) return 0;
    if (PyObject_GetBuffer(o, &a->b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    a->held = 1;
    const char *f = a->b.format ? a->b.format : "B";
    while (*f == '<' || *f == '=' || *f == '@') f++;
    if (!strcmp(f, "f") && a->b.itemsize == 4) a->dt = MMS_DTYPE_F32;
    else if (!strcmp(f, "H") && a->b.itemsize == 2) a->dt = MMS_DTYPE_BF16;
    else if ((!strcmp(f, "l") || !strcmp(f, "q")) && a->b.itemsize == 8) a->dt = MMS_DTYPE_I64;
    else {
        PyErr_Format(PyExc_ValueError, "%s: need a C-contiguous float32, uint16 (bfloat16 bits) or int64 array", name);
        PyBuffer_Release(&a->b);
        a->held = 0;
        return -1;
    }
    return 0;
}

static mms_status arg_upload(mms_backend *be, dev_arg *a, mms_error *err) {
    if (!a->held) return MMS_OK;
    a->dev = be->vt->alloc(be, (size_t)a->b.len);
    if (!a->dev) return mms_error_set(err, MMS_ERR_NOMEM, "out of device memory");
    return be->vt->upload(be, a->dev, a->b.buf, (size_t)a->b.len, err);
}

static mms_status arg_download(mms_backend *be, dev_arg *a, mms_error *err) {
    return be->vt->download(be, a->b.buf, a->dev, (size_t)a->b.len, err);
}

static void args_release(mms_backend *be, dev_arg *a, int n) {
    for (int i = 0; i < n; i++) {
        if (a[i].dev && be) be->vt->free(be, a[i].dev);
        if (a[i].held) PyBuffer_Release(&a[i].b);
        a[i].dev = NULL;
        a[i].held = 0;
    }
}

static int64_t arg_dim(const dev_arg *a, int i) { return i < a->b.ndim ? (int64_t)a->b.shape[i] : 1; }

static mms_tensor dev_tensor(mms_backend *be, const dev_arg *a) {
    int64_t ne[MMS_MAX_DIMS];
    for (int i = 0; i < a->b.ndim; i++) ne[i] = a->b.shape[i];
    mms_tensor t = mms_tensor_view(a->dev, a->dt, a->b.ndim ? a->b.ndim : 1, a->b.ndim ? ne : (int64_t[]){1});
    t.device = be->device;
    return t;
}

/* Uploads args [0, n) (args [n, n_all) stay host buffers), runs `call` (an mms_status
 * expression), downloads the outputs listed in `outs` (indices; -1 ends), frees all n_all args;
 * returns None or raises. */
#define RUN_DEV(n, n_all, outs, call)                                                                              \
    do {                                                                                                    \
        mms_status rc_ = MMS_OK;                                                                            \
        Py_BEGIN_ALLOW_THREADS                                                                              \
        for (int i_ = 0; i_ < (n) && rc_ == MMS_OK; i_++) rc_ = arg_upload(be, &A[i_], &err);               \
        if (rc_ == MMS_OK) rc_ = (call);                                                                    \
        for (const int *o_ = (outs); rc_ == MMS_OK && *o_ >= 0; o_++) rc_ = arg_download(be, &A[*o_], &err); \
        Py_END_ALLOW_THREADS                                                                                \
        args_release(be, A, (n_all));                                                                       \
        if (rc_ != MMS_OK) return mms_py_raise(&err);                                                       \
        Py_RETURN_NONE;                                                                                     \
    } while (0)

#define GET(i, obj, wr, opt, name)                                                                          \
    do {                                                                                                    \
        if (arg_get((obj), &A[i], (wr), (opt), (name)) < 0) { args_release(NULL, A, (i)); return NULL; }    \
    } while (0)

static int want(dev_arg *A, int n, int ok, const char *what) {
    if (ok) return 0;
    args_release(NULL, A, n);
    PyErr_Format(PyExc_ValueError, "%s", what);
    return -1;
}

static mms_status run_rmsnorm(mms_backend *be, const dev_arg *A, float eps, mms_error *err) {
    mms_tensor x = dev_tensor(be, &A[0]), g = dev_tensor(be, &A[1]), y = dev_tensor(be, &A[2]);
    return mms_op_rmsnorm(be, &x, &g, eps, &y, err);
}

/* dev_rmsnorm(device, x (rows, D) f32, g (D) f32, eps, y (rows, D) f32|bf16 out) */
static PyObject *py_dev_rmsnorm(PyObject *self, PyObject *args) {
    (void)self;
    const char *device;
    PyObject *xo, *go, *yo;
    float eps;
    if (!PyArg_ParseTuple(args, "sOOfO", &device, &xo, &go, &eps, &yo)) return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    dev_arg A[3];
    GET(0, xo, 0, 0, "x"); GET(1, go, 0, 0, "g"); GET(2, yo, 1, 0, "y");
    static const int outs[] = {2, -1};
    RUN_DEV(3, 3, outs, run_rmsnorm(be, A, eps, &err));
}

/* dev_rope(device, x (rows, stride) f32 in/out, n_heads, head_dim, rot_dim, pos (rows) i64,
 * inv_freq (rot_dim/2) f32, attn_factor): pos / inv_freq stay on the host (the op's contract) */
static PyObject *py_dev_rope(PyObject *self, PyObject *args) {
    (void)self;
    const char *device;
    PyObject *xo, *po, *fo;
    long long heads, hd, rot;
    float factor;
    if (!PyArg_ParseTuple(args, "sOLLLOOf", &device, &xo, &heads, &hd, &rot, &po, &fo, &factor)) return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    dev_arg A[3]; /* x (uploaded), pos and inv_freq (host) */
    GET(0, xo, 1, 0, "x"); GET(1, po, 0, 0, "pos"); GET(2, fo, 0, 0, "inv_freq");
    if (want(A, 3, A[0].dt == MMS_DTYPE_F32 && A[0].b.ndim == 2 && A[1].dt == MMS_DTYPE_I64 &&
                       A[1].b.len / 8 == arg_dim(&A[0], 0) && A[2].dt == MMS_DTYPE_F32 && A[2].b.len / 4 >= rot / 2,
             "dev_rope: x (rows, stride) float32, pos (rows,) int64, inv_freq (rot_dim/2,) float32") < 0)
        return NULL;
    const int64_t rows = arg_dim(&A[0], 0), stride = arg_dim(&A[0], 1);
    static const int outs[] = {0, -1};
    RUN_DEV(1, 3, outs, mms_op_rope(be, A[0].dev, rows, stride, heads, hd, rot, A[1].b.buf, A[2].b.buf, factor, &err));
}

static mms_status run_glu(mms_backend *be, const dev_arg *A, int64_t gs, int64_t us, int64_t rows, int64_t F,
                          mms_act act, mms_error *err) {
    mms_tensor o = dev_tensor(be, &A[2]);
    return mms_op_glu(be, A[0].dev, gs, A[1].dev, us, rows, F, act, &o, err);
}

/* dev_glu(device, gate (rows, gs) f32, up (rows, us) f32, F, act, out (rows, F) f32|bf16) */
static PyObject *py_dev_glu(PyObject *self, PyObject *args) {
    (void)self;
    const char *device, *act;
    PyObject *go, *uo, *oo;
    long long F;
    if (!PyArg_ParseTuple(args, "sOOLsO", &device, &go, &uo, &F, &act, &oo)) return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    const int a = mms_act_parse(act);
    if (a < 0) return PyErr_Format(PyExc_ValueError, "unknown activation '%s'", act);
    dev_arg A[3];
    GET(0, go, 0, 0, "gate"); GET(1, uo, 0, 0, "up"); GET(2, oo, 1, 0, "out");
    if (want(A, 3, A[0].b.ndim == 2 && A[1].b.ndim == 2 && arg_dim(&A[0], 0) == arg_dim(&A[1], 0) &&
                       A[0].dt == MMS_DTYPE_F32 && A[1].dt == MMS_DTYPE_F32, "dev_glu: gate/up (rows, stride) float32") < 0)
        return NULL;
    const int64_t rows = arg_dim(&A[0], 0), gs = arg_dim(&A[0], 1), us = arg_dim(&A[1], 1);
    static const int outs[] = {2, -1};
    RUN_DEV(3, 3, outs, run_glu(be, A, gs, us, rows, F, (mms_act)a, &err));
}

/* dev_store_rows(device, dst (rows, ds) f32|bf16 in/out, src (rows, ss) f32, cols) */
static PyObject *py_dev_store_rows(PyObject *self, PyObject *args) {
    (void)self;
    const char *device;
    PyObject *dst_o, *src_o;
    long long cols;
    if (!PyArg_ParseTuple(args, "sOOL", &device, &dst_o, &src_o, &cols)) return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    dev_arg A[2];
    GET(0, dst_o, 1, 0, "dst"); GET(1, src_o, 0, 0, "src");
    if (want(A, 2, A[0].b.ndim == 2 && A[1].b.ndim == 2 && arg_dim(&A[0], 0) == arg_dim(&A[1], 0) &&
                       A[1].dt == MMS_DTYPE_F32, "dev_store_rows: dst (rows, stride), src (rows, stride) float32") < 0)
        return NULL;
    const int64_t rows = arg_dim(&A[0], 0), ds = arg_dim(&A[0], 1), ss = arg_dim(&A[1], 1);
    static const int outs[] = {0, -1};
    RUN_DEV(2, 2, outs, mms_op_store_rows(be, A[0].dev, A[0].dt, ds, A[1].dev, ss, rows, cols, &err));
}

static mms_status run_kv_attention(mms_backend *be, const dev_arg *A, mms_kv_attn_args *a, mms_error *err) {
    a->q = A[0].dev; a->k = A[1].dev; a->v = A[2].dev; a->out = A[3].dev;
    return mms_op_kv_attention(be, a, err);
}

/* dev_kv_attention(device, q (n_q, q_row) f32, k, v (n_kv, kv_row) f32|bf16, n_heads, n_kv_heads,
 * head_dim, window, scale, out (n_q, out_row) f32|bf16 in/out) */
static PyObject *py_dev_kv_attention(PyObject *self, PyObject *args) {
    (void)self;
    const char *device;
    PyObject *qo, *ko, *vo, *oo;
    long long H, KVH, hd, window;
    float scale;
    if (!PyArg_ParseTuple(args, "sOOOLLLLfO", &device, &qo, &ko, &vo, &H, &KVH, &hd, &window, &scale, &oo)) return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    dev_arg A[4];
    GET(0, qo, 0, 0, "q"); GET(1, ko, 0, 0, "k"); GET(2, vo, 0, 0, "v"); GET(3, oo, 1, 0, "out");
    if (want(A, 4, A[0].b.ndim == 2 && A[1].b.ndim == 2 && A[2].b.ndim == 2 && A[3].b.ndim == 2 && A[0].dt == MMS_DTYPE_F32 &&
                       A[1].dt == A[2].dt && arg_dim(&A[1], 0) == arg_dim(&A[2], 0) && arg_dim(&A[1], 1) == arg_dim(&A[2], 1) &&
                       arg_dim(&A[0], 0) == arg_dim(&A[3], 0) && arg_dim(&A[0], 1) >= H * hd &&
                       arg_dim(&A[1], 1) >= KVH * hd && arg_dim(&A[3], 1) >= H * hd,
             "dev_kv_attention: q (n_q, >= H*hd) float32, k/v (n_kv, >= KVH*hd) alike, out (n_q, >= H*hd)") < 0)
        return NULL;
    mms_kv_attn_args a;
    memset(&a, 0, sizeof a);
    a.n_q = arg_dim(&A[0], 0); a.n_kv = arg_dim(&A[1], 0); a.n_heads = H; a.n_kv_heads = KVH; a.head_dim = hd;
    a.q_row = arg_dim(&A[0], 1); a.kv_dtype = A[1].dt; a.kv_row = arg_dim(&A[1], 1);
    a.out_dtype = A[3].dt; a.out_row = arg_dim(&A[3], 1); a.window = window; a.scale = scale;
    static const int outs[] = {3, -1};
    RUN_DEV(4, 4, outs, run_kv_attention(be, A, &a, &err));
}

static mms_status run_attention(mms_backend *be, const dev_arg *A, mms_attn_args *a, mms_error *err) {
    a->q = A[0].dev; a->k = A[1].dev; a->v = A[2].dev; a->out = A[3].dev; a->key_mask = A[4].dev;
    return mms_op_attention(be, a, err);
}

/* dev_attention(device, q (B, n_q, q_row) f32, k, v (B, n_kv, kv_row) f32, n_heads, n_kv_heads,
 * head_dim, causal, window, mask (B, n_kv) i64 or None, scale, out (B, n_q, H*hd) f32|bf16) */
static PyObject *py_dev_attention(PyObject *self, PyObject *args) {
    (void)self;
    const char *device;
    PyObject *qo, *ko, *vo, *mo, *oo;
    long long H, KVH, hd, window;
    int causal;
    float scale;
    if (!PyArg_ParseTuple(args, "sOOOLLLiLOfO", &device, &qo, &ko, &vo, &H, &KVH, &hd, &causal, &window, &mo, &scale, &oo))
        return NULL;
    mms_error err = {0};
    mms_backend *be = backend_of(device, &err);
    if (!be) return mms_py_raise(&err);
    dev_arg A[5];
    GET(0, qo, 0, 0, "q"); GET(1, ko, 0, 0, "k"); GET(2, vo, 0, 0, "v"); GET(3, oo, 1, 0, "out");
    GET(4, mo, 0, 1, "mask");
    if (want(A, 5, A[0].b.ndim == 3 && A[1].b.ndim == 3 && A[2].b.ndim == 3 && A[3].b.ndim == 3 &&
                       A[0].dt == MMS_DTYPE_F32 && A[1].dt == MMS_DTYPE_F32 && A[2].dt == MMS_DTYPE_F32 &&
                       arg_dim(&A[1], 1) == arg_dim(&A[2], 1) && arg_dim(&A[1], 2) == arg_dim(&A[2], 2) &&
                       arg_dim(&A[3], 2) == H * hd && arg_dim(&A[3], 1) == arg_dim(&A[0], 1) &&
                       (!A[4].held || (A[4].dt == MMS_DTYPE_I64 && A[4].b.len / 8 == arg_dim(&A[1], 0) * arg_dim(&A[1], 1))),
             "dev_attention: q (B, n_q, row), k/v (B, n_kv, row) float32, out (B, n_q, H*hd), mask (B, n_kv) int64") < 0)
        return NULL;
    mms_attn_args a;
    memset(&a, 0, sizeof a);
    a.batch = arg_dim(&A[0], 0); a.n_q = arg_dim(&A[0], 1); a.n_kv = arg_dim(&A[1], 1);
    a.n_heads = H; a.n_kv_heads = KVH; a.head_dim = hd;
    a.q_row = arg_dim(&A[0], 2); a.q_batch = a.n_q * a.q_row;
    a.kv_row = arg_dim(&A[1], 2); a.kv_batch = a.n_kv * a.kv_row;
    a.out_dtype = A[3].dt; a.causal = causal; a.window = window; a.scale = scale;
    static const int outs[] = {3, -1};
    RUN_DEV(5, 5, outs, run_attention(be, A, &a, &err));
}

static PyMethodDef ops_dev_methods[] = {
    {"dev_rmsnorm", py_dev_rmsnorm, METH_VARARGS, "test hook: dev_rmsnorm(device, x, g, eps, y)"},
    {"dev_rope", py_dev_rope, METH_VARARGS, "test hook: dev_rope(device, x, n_heads, head_dim, rot_dim, pos, inv_freq, factor)"},
    {"dev_glu", py_dev_glu, METH_VARARGS, "test hook: dev_glu(device, gate, up, F, act, out)"},
    {"dev_store_rows", py_dev_store_rows, METH_VARARGS, "test hook: dev_store_rows(device, dst, src, cols)"},
    {"dev_kv_attention", py_dev_kv_attention, METH_VARARGS,
     "test hook: dev_kv_attention(device, q, k, v, n_heads, n_kv_heads, head_dim, window, scale, out)"},
    {"dev_attention", py_dev_attention, METH_VARARGS,
     "test hook: dev_attention(device, q, k, v, n_heads, n_kv_heads, head_dim, causal, window, mask, scale, out)"},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_ops_dev(PyObject *m) { return PyModule_AddFunctions(m, ops_dev_methods); }
