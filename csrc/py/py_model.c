/* py_model.c -- binding for contrastive models (mms_clip): load, encode, info, unload.
 * Results are NumPy arrays that wrap the C buffers (no copy); each array's base is a
 * _C.Buffer holding a reference on the storage, so results outlive the model. */
#include "py_common.h"

#define NO_IMPORT_ARRAY_UNUSED
#include <numpy/arrayobject.h>

#include "../clip.h"

/* ---- _C.Buffer: owner of one storage reference ------------------------------------- */

typedef struct {
    PyObject_HEAD
    mms_storage *storage;
} BufferObject;

static PyTypeObject *g_buffer_type;

static void buffer_dealloc(PyObject *self) {
    BufferObject *b = (BufferObject *)self;
    mms_storage_release(b->storage);
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *buffer_ptr(PyObject *self, void *closure) {
    (void)closure;
    return PyLong_FromVoidPtr(((BufferObject *)self)->storage->data);
}
static PyObject *buffer_nbytes(PyObject *self, void *closure) {
    (void)closure;
    return PyLong_FromSize_t(((BufferObject *)self)->storage->size);
}

static PyGetSetDef buffer_getset[] = {
    {"ptr", buffer_ptr, NULL, "address of the C buffer", NULL},
    {"nbytes", buffer_nbytes, NULL, "size of the C buffer in bytes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot buffer_slots[] = {
    {Py_tp_dealloc, buffer_dealloc},
    {Py_tp_getset, buffer_getset},
    {Py_tp_doc, "Owner of a C result buffer (the .base of mmsuite result arrays)."},
    {0, NULL},
};
static PyType_Spec buffer_spec = {"mmsuite._C.Buffer", sizeof(BufferObject), 0, Py_TPFLAGS_DEFAULT, buffer_slots};

/* NumPy array viewing tensor t (host); takes a new storage reference. */
static PyObject *tensor_to_numpy(const mms_tensor *t) {
    static const int npy[] = {NPY_FLOAT32, NPY_FLOAT16, NPY_UINT16, NPY_INT32, NPY_INT64, NPY_UINT8};
    npy_intp dims[MMS_MAX_DIMS], strides[MMS_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) { dims[i] = (npy_intp)t->ne[i]; strides[i] = (npy_intp)t->nb[i]; }
    PyObject *arr = PyArray_New(&PyArray_Type, t->ndim, dims, npy[t->dtype], strides, t->data, 0,
                                NPY_ARRAY_ALIGNED | NPY_ARRAY_WRITEABLE, NULL);
    if (!arr) return NULL;
    BufferObject *owner = PyObject_New(BufferObject, g_buffer_type);
    if (!owner) { Py_DECREF(arr); return NULL; }
    owner->storage = t->storage;
    mms_storage_retain(t->storage);
    if (PyArray_SetBaseObject((PyArrayObject *)arr, (PyObject *)owner) < 0) { Py_DECREF(arr); return NULL; }
    return arr;
}

static PyObject *outputs_to_dict(mms_outputs *o) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int i = 0; i < o->n; i++) {
        PyObject *a = tensor_to_numpy(&o->items[i].t);
        if (!a || PyDict_SetItemString(d, o->items[i].name, a) < 0) {
            Py_XDECREF(a);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(a);
    }
    return d;
}

/* ---- model handle -------------------------------------------------------------------- *
 * `busy` is only touched with the GIL held. A running call holds a reference to the capsule,
 * so the capsule destructor never runs while busy; clip_unload refuses while busy. */
typedef struct {
    mms_clip *m; /* NULL once unloaded */
    int busy;
} model_handle;

#define CAPSULE_NAME "mmsuite.clip"

static void handle_destroy(PyObject *cap) {
    model_handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h) return;
    mms_clip_free(h->m);
    mms_free(h);
}

static model_handle *get_handle(PyObject *cap) {
    model_handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h) return NULL;
    if (!h->m) {
        PyErr_SetString(PyExc_RuntimeError, "model was unloaded");
        return NULL;
    }
    return h;
}

static PyObject *py_clip_load(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"path", "dtype", "device", NULL};
    PyObject *path_obj;
    const char *dtype = "float32", *device = "cpu";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|ss", kwlist, PyUnicode_FSConverter, &path_obj, &dtype, &device)) return NULL;
    mms_dtype dt;
    if (mms_py_parse_dtype(dtype, &dt) < 0) { Py_DECREF(path_obj); return NULL; }
    mms_error err = {0};
    mms_backend *be = mms_py_backend(device);
    if (!be) { Py_DECREF(path_obj); return NULL; }
    mms_clip *m = NULL;
    mms_status rc;
    const char *path = PyBytes_AS_STRING(path_obj);
    Py_BEGIN_ALLOW_THREADS
    rc = mms_clip_load(path, dt, be, &m, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (rc != MMS_OK) return mms_py_raise(&err);
    model_handle *h = mms_calloc(1, sizeof *h);
    if (!h) { mms_clip_free(m); return PyErr_NoMemory(); }
    h->m = m;
    PyObject *cap = PyCapsule_New(h, CAPSULE_NAME, handle_destroy);
    if (!cap) { mms_clip_free(m); mms_free(h); }
    return cap;
}

/* Borrow a tensor from a buffer-protocol object (no copy). fmt: 'f' float32, 'q' int64. */
static int get_tensor(PyObject *obj, const char *argname, char want, mms_dtype dt, Py_buffer *view, mms_tensor *t) {
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an array supporting the buffer protocol, got %s", argname,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    int ok = (f[0] == want && f[1] == 0) || (want == 'q' && f[0] == 'l' && f[1] == 0 && view->itemsize == 8);
    if (!ok || view->ndim > MMS_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "%s: expected %s data, got buffer format '%s' with %d dims", argname,
                     mms_dtype_name(dt), view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = view->ndim;
    t->data = view->buf;
    for (int i = 0; i < view->ndim; i++) {
        t->ne[i] = view->shape[i];
        t->nb[i] = view->strides ? view->strides[i] : 0;
    }
    if (!view->strides) *t = mms_tensor_view(view->buf, dt, view->ndim, t->ne);
    return 0;
}

static PyObject *py_clip_encode_image(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *px;
    if (!PyArg_ParseTuple(args, "OO", &cap, &px)) return NULL;
    model_handle *h = get_handle(cap);
    if (!h) return NULL;
    Py_buffer view;
    mms_tensor t;
    if (get_tensor(px, "pixel_values", 'f', MMS_DTYPE_F32, &view, &t) < 0) return NULL;
    mms_outputs out;
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_INCREF(cap);
    Py_BEGIN_ALLOW_THREADS
    rc = mms_clip_encode_image(h->m, &t, &out, &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(cap);
    PyBuffer_Release(&view);
    if (rc != MMS_OK) return mms_py_raise(&err);
    PyObject *d = outputs_to_dict(&out);
    mms_outputs_release(&out);
    return d;
}

static PyObject *py_clip_encode_text(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *ids, *mask = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O", &cap, &ids, &mask)) return NULL;
    model_handle *h = get_handle(cap);
    if (!h) return NULL;
    Py_buffer vi, vm;
    mms_tensor ti, tm;
    if (get_tensor(ids, "input_ids", 'q', MMS_DTYPE_I64, &vi, &ti) < 0) return NULL;
    int has_mask = mask != Py_None;
    if (has_mask && get_tensor(mask, "attention_mask", 'q', MMS_DTYPE_I64, &vm, &tm) < 0) {
        PyBuffer_Release(&vi);
        return NULL;
    }
    mms_outputs out;
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_INCREF(cap);
    Py_BEGIN_ALLOW_THREADS
    rc = mms_clip_encode_text(h->m, &ti, has_mask ? &tm : NULL, &out, &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(cap);
    PyBuffer_Release(&vi);
    if (has_mask) PyBuffer_Release(&vm);
    if (rc != MMS_OK) return mms_py_raise(&err);
    PyObject *d = outputs_to_dict(&out);
    mms_outputs_release(&out);
    return d;
}

static PyObject *py_clip_info(PyObject *self, PyObject *cap) {
    (void)self;
    model_handle *h = get_handle(cap);
    if (!h) return NULL;
    const mms_clip_config *c = mms_clip_get_config(h->m);
    static const char *kinds[] = {"clip", "openclip", "siglip"};
    static const char *pools[] = {"argmax", "first_eos", "last"};
    return Py_BuildValue(
        "{s:s,s:s,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:s,s:f,s:f,s:L,s:i,s:i,s:s,s:s}", "kind", kinds[c->kind],
        "dtype", mms_dtype_name(mms_clip_dtype(h->m)), "image_size", (long long)c->image_size, "patch_size",
        (long long)c->patch_size, "num_channels", (long long)c->num_channels, "vocab_size", (long long)c->vocab_size,
        "max_position_embeddings", (long long)c->max_positions, "eos_token_id", (long long)c->eos_token_id,
        "pad_token_id", (long long)c->pad_token_id, "bos_token_id", (long long)c->bos_token_id, "projection_dim",
        (long long)c->projection_dim, "vision_hidden_size", (long long)c->vision.hidden, "text_hidden_size",
        (long long)c->text.hidden, "text_pooling", pools[c->pool], "logit_scale", (double)mms_clip_logit_scale(h->m),
        "logit_bias", (double)mms_clip_logit_bias(h->m), "weight_bytes", (long long)mms_clip_weight_bytes(h->m),
        "vision_layers", c->vision_layers, "text_layers", c->text_layers, "vision_act", mms_act_name(c->vision.act),
        "text_act", mms_act_name(c->text.act));
}

static PyObject *py_clip_unload(PyObject *self, PyObject *cap) {
    (void)self;
    model_handle *h = PyCapsule_GetPointer(cap, CAPSULE_NAME);
    if (!h) return NULL;
    if (h->busy) return PyErr_Format(PyExc_RuntimeError, "cannot unload: %d call(s) still running on this model", h->busy);
    if (h->m) {
        mms_clip_free(h->m);
        h->m = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_cpu_info(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return Py_BuildValue("{s:s,s:O}", "isa", mms_cpu_isa_name(), "amx_bf16", mms_cpu_has_amx() ? Py_True : Py_False);
}

static PyMethodDef model_methods[] = {
    {"clip_load", (PyCFunction)(void (*)(void))py_clip_load, METH_VARARGS | METH_KEYWORDS,
     "clip_load(path, dtype='float32', device='cpu') -> handle"},
    {"clip_encode_image", py_clip_encode_image, METH_VARARGS, "clip_encode_image(handle, pixel_values) -> dict"},
    {"clip_encode_text", py_clip_encode_text, METH_VARARGS, "clip_encode_text(handle, input_ids, attention_mask=None) -> dict"},
    {"clip_info", py_clip_info, METH_O, "clip_info(handle) -> dict"},
    {"clip_unload", py_clip_unload, METH_O, "clip_unload(handle): free the weights now"},
    {"cpu_info", py_cpu_info, METH_NOARGS, "ISA used by the hand-written kernels, AMX availability"},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_model(PyObject *m) {
    import_array1(-1);
    g_buffer_type = (PyTypeObject *)PyType_FromSpec(&buffer_spec);
    if (!g_buffer_type) return -1;
    Py_INCREF(g_buffer_type);
    if (PyModule_AddObject(m, "Buffer", (PyObject *)g_buffer_type) < 0) return -1;
    return PyModule_AddFunctions(m, model_methods);
}
