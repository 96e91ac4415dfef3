/* py_blip2.c -- binding for BLIP-2 (mms_blip2): image features through the vision tower, the
 * Q-Former and the projection; the T5 encoder; encoder states of a T5 decoder state. Loading
 * and the language-model calls (lm_embed, lm_state_new, lm_forward) are in py_llm.c: a BLIP-2
 * handle is a language-model handle. Compute runs without the GIL. */
#include "py_llm.h"

#define NO_IMPORT_ARRAY_UNUSED
#include <numpy/arrayobject.h>

static PyArrayObject *as_f32(PyObject *o, int ndim_min, int ndim_max, const char *what) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(o, NPY_FLOAT32, ndim_min, ndim_max, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!a) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyErr_Format(PyExc_ValueError, "%s: expected a %d..%d-dimensional float32 array (%S)", what, ndim_min, ndim_max,
                     ev ? ev : Py_None);
        Py_XDECREF(et); Py_XDECREF(ev); Py_XDECREF(tb);
    }
    return a;
}

int mms_py_blip2_info(const mms_blip2 *m, PyObject *info) {
    const mms_blip2_config *c = mms_blip2_get_config(m);
    PyObject *v = Py_BuildValue("{s:L,s:L,s:O,s:L,s:L,s:L,s:L,s:L,s:i,s:L,s:L}", "num_query_tokens", (long long)c->n_query,
                                "image_token_id", (long long)c->image_token_id, "encoder_decoder",
                                c->encoder_decoder ? Py_True : Py_False, "image_size", (long long)c->image_size,
                                "vision_hidden_size", (long long)c->vision_hidden, "vision_tokens",
                                (long long)c->vision_tokens, "qformer_hidden_size", (long long)c->qformer_hidden,
                                "text_hidden_size", (long long)c->text_hidden, "qformer_layers", c->qformer.n_layers,
                                "cross_attention_frequency", (long long)c->qformer.block.cross_every,
                                "weight_bytes", (long long)mms_blip2_weight_bytes(m));
    if (!v) return -1;
    int r = PyDict_SetItemString(info, "blip2", v);
    Py_DECREF(v);
    return r;
}

static lm_handle *get_blip2(PyObject *cap) {
    lm_handle *h = mms_py_get_lm(cap);
    if (h && !h->blip2) {
        PyErr_SetString(PyExc_TypeError, "not a BLIP-2 model");
        return NULL;
    }
    return h;
}

static PyObject *py_blip2_image_features(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"model", "pixel_values", "intermediates", NULL};
    PyObject *cap, *px_o;
    int inter = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p", kwlist, &cap, &px_o, &inter)) return NULL;
    lm_handle *h = get_blip2(cap);
    if (!h) return NULL;
    const mms_blip2_config *c = mms_blip2_get_config(h->blip2);
    PyArrayObject *px = as_f32(px_o, 4, 4, "pixel_values");
    if (!px) return NULL;
    const npy_intp B = PyArray_DIM(px, 0), S = c->image_size;
    if (B < 1 || PyArray_DIM(px, 1) != 3 || PyArray_DIM(px, 2) != S || PyArray_DIM(px, 3) != S) {
        Py_DECREF(px);
        return PyErr_Format(PyExc_ValueError, "pixel_values: expected (images >= 1, 3, %lld, %lld), got (%lld, %lld, %lld, %lld)",
                            (long long)S, (long long)S, (long long)B, (long long)PyArray_DIM(px, 1),
                            (long long)PyArray_DIM(px, 2), (long long)PyArray_DIM(px, 3));
    }
    npy_intp dp[3] = {B, c->n_query, c->text_hidden}, dv[3] = {B, c->vision_tokens, c->vision_hidden},
             dq[3] = {B, c->n_query, c->qformer_hidden};
    PyArrayObject *proj = (PyArrayObject *)PyArray_SimpleNew(3, dp, NPY_FLOAT32), *vis = NULL, *qf = NULL;
    if (inter) {
        vis = (PyArrayObject *)PyArray_SimpleNew(3, dv, NPY_FLOAT32);
        qf = (PyArrayObject *)PyArray_SimpleNew(3, dq, NPY_FLOAT32);
    }
    if (!proj || (inter && (!vis || !qf))) { Py_XDECREF(proj); Py_XDECREF(vis); Py_XDECREF(qf); Py_DECREF(px); return NULL; }
    mms_tensor t = mms_tensor_view(PyArray_DATA(px), MMS_DTYPE_F32, 4, (int64_t[]){B, 3, S, S});
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_blip2_image_features(h->blip2, &t, vis ? PyArray_DATA(vis) : NULL, qf ? PyArray_DATA(qf) : NULL,
                                  PyArray_DATA(proj), &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(px);
    if (rc != MMS_OK) { Py_DECREF(proj); Py_XDECREF(vis); Py_XDECREF(qf); return mms_py_raise(&err); }
    if (!inter) return (PyObject *)proj;
    return Py_BuildValue("{s:N,s:N,s:N}", "vision_last_hidden_state", vis, "qformer_last_hidden_state", qf,
                         "language_projection", proj);
}

static PyObject *py_t5_encode(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"model", "embeds", "mask", NULL};
    PyObject *cap, *emb_o, *mask_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O", kwlist, &cap, &emb_o, &mask_o)) return NULL;
    lm_handle *h = get_blip2(cap);
    if (!h) return NULL;
    const mms_t5_encoder *enc = mms_blip2_t5_encoder(h->blip2);
    if (!enc) return PyErr_Format(PyExc_TypeError, "this BLIP-2 model has a decoder-only language model (no T5 encoder)");
    const int64_t D = mms_blip2_get_config(h->blip2)->text_hidden;
    PyArrayObject *emb = as_f32(emb_o, 2, 3, "embeds");
    if (!emb) return NULL;
    const int nd = PyArray_NDIM(emb);
    const npy_intp B = nd == 3 ? PyArray_DIM(emb, 0) : 1, L = PyArray_DIM(emb, nd - 2);
    if (PyArray_DIM(emb, nd - 1) != D || B < 1 || L < 1) {
        Py_DECREF(emb);
        return PyErr_Format(PyExc_ValueError, "embeds: expected ([batch,] length >= 1, %lld)", (long long)D);
    }
    PyArrayObject *mask = NULL;
    if (mask_o != Py_None) {
        mask = (PyArrayObject *)PyArray_FROMANY(mask_o, NPY_INT64, 1, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
        if (!mask || PyArray_SIZE(mask) != B * L) {
            Py_XDECREF(mask);
            Py_DECREF(emb);
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "mask: expected an int64 array of shape ([batch,] %lld)", (long long)L);
            }
            return NULL;
        }
    }
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(nd, PyArray_DIMS(emb), NPY_FLOAT32);
    if (!out) { Py_DECREF(emb); Py_XDECREF(mask); return NULL; }
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_t5_encoder_forward(enc, PyArray_DATA(emb), mask ? PyArray_DATA(mask) : NULL, B, L, PyArray_DATA(out), &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(emb);
    Py_XDECREF(mask);
    if (rc != MMS_OK) { Py_DECREF(out); return mms_py_raise(&err); }
    return (PyObject *)out;
}

static PyObject *py_state_set_encoder(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *enc_o;
    long long slot;
    if (!PyArg_ParseTuple(args, "OLO", &cap, &slot, &enc_o)) return NULL;
    state_handle *s = mms_py_get_state(cap);
    if (!s) return NULL;
    PyArrayObject *enc = as_f32(enc_o, 2, 2, "encoder_states");
    if (!enc) return NULL;
    const mms_decoder_config *c = mms_decoder_get_config(mms_py_handle_decoder(PyCapsule_GetPointer(s->model, LM_CAPSULE)));
    if (c->block.cross_dim <= 0) {
        Py_DECREF(enc);
        return PyErr_Format(PyExc_ValueError, "set_encoder: this decoder has no cross-attention (not an encoder-decoder model)");
    }
    if (PyArray_DIM(enc, 1) != c->block.cross_dim) {
        Py_DECREF(enc);
        return PyErr_Format(PyExc_ValueError, "encoder_states: expected (rows, %lld), got %lld columns",
                            (long long)c->block.cross_dim, (long long)PyArray_DIM(enc, 1));
    }
    mms_error err = {0};
    mms_status rc;
    s->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_decoder_state_set_encoder(s->st, slot, PyArray_DATA(enc), PyArray_DIM(enc, 0), &err);
    Py_END_ALLOW_THREADS
    s->busy = 0;
    Py_DECREF(enc);
    if (rc != MMS_OK) return mms_py_raise(&err);
    Py_RETURN_NONE;
}

static PyObject *py_t5_buckets(PyObject *self, PyObject *args) {
    (void)self;
    long long lq, lk, nb, md;
    int bidir;
    if (!PyArg_ParseTuple(args, "LLpLL", &lq, &lk, &bidir, &nb, &md)) return NULL;
    if (lq < 1 || lk < 1 || lq > 1 << 16 || lk > 1 << 16 || nb < 2 || md < 2)
        return PyErr_Format(PyExc_ValueError, "t5_buckets: bad sizes");
    npy_intp dims[2] = {lq, lk};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_INT64);
    if (!out) return NULL;
    int64_t *o = PyArray_DATA(out);
    for (long long i = 0; i < lq; i++)
        for (long long j = 0; j < lk; j++) o[i * lk + j] = mms_t5_bucket(j - i, bidir, nb, md);
    return (PyObject *)out;
}

static PyMethodDef blip2_methods[] = {
    {"t5_buckets", py_t5_buckets, METH_VARARGS,
     "t5_buckets(q_len, k_len, bidirectional, num_buckets, max_distance) -> (q_len, k_len) relative position buckets"},
    {"blip2_image_features", (PyCFunction)(void (*)(void))py_blip2_image_features, METH_VARARGS | METH_KEYWORDS,
     "blip2_image_features(model, pixel_values, intermediates=False) -> language_projection (B, Q, Dt) "
     "(or a dict with vision_last_hidden_state, qformer_last_hidden_state, language_projection)"},
    {"t5_encode", (PyCFunction)(void (*)(void))py_t5_encode, METH_VARARGS | METH_KEYWORDS,
     "t5_encode(model, embeds ([B,] L, D) float32, mask=None) -> encoder last_hidden_state"},
    {"lm_state_set_encoder", py_state_set_encoder, METH_VARARGS,
     "lm_state_set_encoder(state, slot, encoder_states (n, D)) -> None (cross-attention keys/values of the slot)"},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_blip2(PyObject *m) {
    import_array1(-1);
    return PyModule_AddFunctions(m, blip2_methods);
}
