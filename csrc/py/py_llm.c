/* py_llm.c -- binding for language models (mms_decoder), LLaVA (mms_llava), decoder states
 * (KV caches) and the sampler. Model handles are capsules holding immutable models; a state
 * capsule keeps its model capsule alive and is used by one thread at a time (a second caller
 * gets a RuntimeError instead of a corrupted cache). Compute runs without the GIL. */
#include "py_common.h"

#define NO_IMPORT_ARRAY_UNUSED
#include <numpy/arrayobject.h>

#include <string.h>
#include <sys/stat.h>

#include "../llava.h"
#include "py_llm.h"
#include "../safetensors.h"
#include "../sampler.h"

const mms_decoder *mms_py_handle_decoder(const lm_handle *h) {
    return h->llava ? mms_llava_decoder(h->llava) : h->blip2 ? mms_blip2_decoder(h->blip2) : h->lm;
}
#define handle_decoder mms_py_handle_decoder

static void lm_destroy(PyObject *cap) {
    lm_handle *h = PyCapsule_GetPointer(cap, LM_CAPSULE);
    if (!h) return;
    mms_llava_free(h->llava);
    mms_blip2_free(h->blip2);
    mms_decoder_free(h->lm);
    mms_free(h);
}

static void free_weights(lm_handle *h) {
    mms_llava_free(h->llava);
    mms_blip2_free(h->blip2);
    mms_decoder_free(h->lm);
    h->llava = NULL;
    h->blip2 = NULL;
    h->lm = NULL;
}

static void state_destroy(PyObject *cap) {
    state_handle *s = PyCapsule_GetPointer(cap, STATE_CAPSULE);
    if (!s) return;
    mms_decoder_state_free(s->st);
    lm_handle *h = PyCapsule_GetPointer(s->model, LM_CAPSULE);
    if (h && --h->n_states == 0 && h->dead) free_weights(h);
    Py_XDECREF(s->model);
    mms_free(s);
}

lm_handle *mms_py_get_lm(PyObject *cap) {
    lm_handle *h = PyCapsule_GetPointer(cap, LM_CAPSULE);
    if (!h) return NULL;
    if (h->dead || (!h->lm && !h->llava && !h->blip2)) {
        PyErr_SetString(PyExc_RuntimeError, "model was unloaded");
        return NULL;
    }
    return h;
}

state_handle *mms_py_get_state(PyObject *cap) {
    state_handle *s = PyCapsule_GetPointer(cap, STATE_CAPSULE);
    if (!s) return NULL;
    if (s->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this generation state is in use by another thread; give each thread its own session");
        return NULL;
    }
    return s;
}

PyObject *mms_py_wrap_lm(mms_decoder *lm, mms_llava *llava, mms_blip2 *blip2) {
    lm_handle *h = mms_calloc(1, sizeof *h);
    if (!h) { mms_decoder_free(lm); mms_llava_free(llava); mms_blip2_free(blip2); return PyErr_NoMemory(); }
    h->lm = lm;
    h->llava = llava;
    h->blip2 = blip2;
    PyObject *cap = PyCapsule_New(h, LM_CAPSULE, lm_destroy);
    if (!cap) { mms_decoder_free(lm); mms_llava_free(llava); mms_blip2_free(blip2); mms_free(h); }
    return cap;
}
#define get_lm mms_py_get_lm
#define get_state mms_py_get_state

/* Load a standalone causal LM directory (config.json at the root). */
static mms_status load_lm(const char *dir, mms_dtype dt, mms_backend *be, int wflags, mms_decoder **out, mms_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0) return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no config.json (is this a checkpoint directory?)", dir);
    mms_json j;
    mms_status rc = mms_json_load(path, &j, err);
    if (rc != MMS_OK) return rc;
    mms_decoder_config cfg;
    mms_weights *w = NULL;
    rc = mms_decoder_config_parse(&j, j.root, NULL, &cfg, err);
    if (rc == MMS_OK) rc = mms_weights_open_ex(dir, NULL, wflags, &w, err);
    if (rc == MMS_OK) rc = mms_decoder_load(w, &cfg, dt, be, out, err);
    if (rc != MMS_OK) mms_error_in_file(err, dir);
    mms_weights_close(w);
    mms_json_free(&j);
    return rc;
}

/* kind: 0 causal LM, 1 LLaVA, 2 BLIP-2 */
static PyObject *py_load(PyObject *args, PyObject *kw, int llava) {
    static char *kwlist[] = {"path", "dtype", "device", "mmap", NULL};
    PyObject *path_obj;
    const char *dtype = "float32", *device = "cpu";
    int use_mmap = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|ssp", kwlist, PyUnicode_FSConverter, &path_obj, &dtype, &device,
                                     &use_mmap))
        return NULL;
    const int wflags = use_mmap ? 0 : MMS_WEIGHTS_IN_MEMORY;
    mms_dtype dt;
    if (mms_py_parse_dtype(dtype, &dt) < 0) { Py_DECREF(path_obj); return NULL; }
    mms_error err = {0};
    mms_backend *be = mms_py_backend(device);
    if (!be) { Py_DECREF(path_obj); return NULL; }
    mms_status rc;
    mms_decoder *lm = NULL;
    mms_llava *lv = NULL;
    mms_blip2 *b2 = NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    Py_BEGIN_ALLOW_THREADS
    rc = llava == 2 ? mms_blip2_load_ex(path, dt, be, wflags, &b2, &err)
         : llava    ? mms_llava_load_ex(path, dt, be, wflags, &lv, &err)
                    : load_lm(path, dt, be, wflags, &lm, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (rc != MMS_OK) return mms_py_raise(&err);
    return mms_py_wrap_lm(lm, lv, b2);
}

static PyObject *py_lm_load(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return py_load(args, kw, 0); }
static PyObject *py_llava_load(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return py_load(args, kw, 1); }
static PyObject *py_blip2_load(PyObject *self, PyObject *args, PyObject *kw) { (void)self; return py_load(args, kw, 2); }

static PyObject *py_lm_unload(PyObject *self, PyObject *cap) {
    (void)self;
    lm_handle *h = PyCapsule_GetPointer(cap, LM_CAPSULE);
    if (!h) return NULL;
    if (h->busy) return PyErr_Format(PyExc_RuntimeError, "model is in use by another thread");
    /* live states keep using the weights: they are freed when the last state goes */
    h->dead = 1;
    if (h->n_states == 0) free_weights(h);
    Py_RETURN_NONE;
}

static const char *family_name(mms_decoder_family f) {
    switch (f) {
    case MMS_DEC_LLAMA: return "llama";
    case MMS_DEC_MISTRAL: return "mistral";
    case MMS_DEC_QWEN2: return "qwen2";
    case MMS_DEC_OPT: return "opt";
    case MMS_DEC_T5: return "t5";
    }
    return "?";
}

static PyObject *py_lm_info(PyObject *self, PyObject *cap) {
    (void)self;
    lm_handle *h = get_lm(cap);
    if (!h) return NULL;
    const mms_decoder *d = handle_decoder(h);
    const mms_decoder_config *c = mms_decoder_get_config(d);
    int64_t mapped, own;
    mms_decoder_weight_bytes(d, &mapped, &own);
    PyObject *r = Py_BuildValue(
        "{s:s,s:L,s:L,s:i,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:s,s:L,s:L}", "family", family_name(c->family), "vocab_size",
        (long long)c->vocab, "hidden_size", (long long)c->block.hidden, "num_layers", c->n_layers, "num_heads",
        (long long)c->block.n_heads, "num_kv_heads", (long long)mms_block_kv_heads(&c->block), "head_dim",
        (long long)c->block.head_dim, "max_position_embeddings", (long long)c->max_pos, "sliding_window",
        (long long)c->block.window, "bos_token_id", (long long)c->bos_token_id, "eos_token_id", (long long)c->eos_token_id,
        "pad_token_id", (long long)c->pad_token_id, "intermediate_size", (long long)c->block.ffn, "dtype",
        mms_decoder_dtype(d) == MMS_DTYPE_BF16 ? "bfloat16" : "float32", "weight_bytes_mapped", (long long)mapped,
        "weight_bytes_owned", (long long)own);
    if (r && c->family == MMS_DEC_T5) {
        PyObject *t = Py_BuildValue("{s:L,s:i,s:L,s:L}", "decoder_start_token_id", (long long)c->decoder_start_token_id,
                                    "num_encoder_layers", c->n_enc_layers, "relative_attention_num_buckets",
                                    (long long)c->rel_buckets, "relative_attention_max_distance", (long long)c->rel_max_distance);
        if (!t || PyDict_SetItemString(r, "t5", t) < 0) { Py_XDECREF(t); Py_DECREF(r); return NULL; }
        Py_DECREF(t);
    }
    if (r && h->blip2 && mms_py_blip2_info(h->blip2, r) < 0) { Py_DECREF(r); return NULL; }
    if (!r || !h->llava) return r;
    const mms_llava_config *lc = mms_llava_get_config(h->llava);
    PyObject *pp = PyList_New(lc->n_pinpoints);
    if (!pp) { Py_DECREF(r); return NULL; }
    for (int64_t i = 0; i < lc->n_pinpoints; i++)
        PyList_SET_ITEM(pp, i, Py_BuildValue("(LL)", (long long)lc->pinpoints[i][0], (long long)lc->pinpoints[i][1]));
    PyObject *v = Py_BuildValue("{s:O,s:L,s:i,s:i,s:s,s:L,s:L,s:L,s:L,s:N,s:L}", "next", lc->next ? Py_True : Py_False,
                                "image_token_id", (long long)lc->image_token_id, "vision_feature_layer", lc->feature_layer,
                                "vision_layers_run", lc->vision_layers_run, "select_strategy",
                                lc->select_full ? "full" : "default", "image_size", (long long)lc->image_size,
                                "patch_size", (long long)lc->patch_size, "vision_hidden_size", (long long)lc->vision_hidden,
                                "tokens_per_patch", (long long)lc->tokens_per_patch, "image_grid_pinpoints", pp,
                                "vision_weight_bytes", (long long)mms_llava_vision_weight_bytes(h->llava));
    if (!v || PyDict_SetItemString(r, "llava", v) < 0) { Py_XDECREF(v); Py_DECREF(r); return NULL; }
    Py_DECREF(v);
    return r;
}

/* A C-contiguous array of type `type` (a copy only when needed); NULL with a TypeError naming what. */
static PyArrayObject *as_array(PyObject *o, int type, int ndim_min, int ndim_max, const char *what) {
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(o, type, ndim_min, ndim_max, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!a) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyErr_Format(PyExc_ValueError, "%s: expected a %d..%d-dimensional %s array (%S)", what, ndim_min, ndim_max,
                     type == NPY_FLOAT32 ? "float32" : "int64", ev ? ev : Py_None);
        Py_XDECREF(et); Py_XDECREF(ev); Py_XDECREF(tb);
    }
    return a;
}

static PyObject *py_lm_embed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *ids_o;
    if (!PyArg_ParseTuple(args, "OO", &cap, &ids_o)) return NULL;
    lm_handle *h = get_lm(cap);
    if (!h) return NULL;
    PyArrayObject *ids = as_array(ids_o, NPY_INT64, 1, 1, "input_ids");
    if (!ids) return NULL;
    const mms_decoder *d = handle_decoder(h);
    npy_intp dims[2] = {PyArray_DIM(ids, 0), mms_decoder_get_config(d)->block.hidden};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!out) { Py_DECREF(ids); return NULL; }
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_decoder_embed(d, PyArray_DATA(ids), dims[0], PyArray_DATA(out), &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(ids);
    if (rc != MMS_OK) { Py_DECREF(out); return mms_py_raise(&err); }
    return (PyObject *)out;
}

static PyObject *py_llava_image_features(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"model", "pixel_values", "intermediates", NULL};
    PyObject *cap, *px_o;
    int inter = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p", kwlist, &cap, &px_o, &inter)) return NULL;
    lm_handle *h = get_lm(cap);
    if (!h) return NULL;
    if (!h->llava) return PyErr_Format(PyExc_TypeError, "not a LLaVA model");
    const mms_llava_config *c = mms_llava_get_config(h->llava);
    PyArrayObject *px = as_array(px_o, NPY_FLOAT32, 4, 4, "pixel_values");
    if (!px) return NULL;
    const npy_intp N = PyArray_DIM(px, 0), g = c->image_size / c->patch_size;
    if (PyArray_DIM(px, 1) != 3 || PyArray_DIM(px, 2) != c->image_size || PyArray_DIM(px, 3) != c->image_size) {
        Py_DECREF(px);
        return PyErr_Format(PyExc_ValueError, "pixel_values: expected (patches, 3, %lld, %lld)", (long long)c->image_size,
                            (long long)c->image_size);
    }
    npy_intp dp[3] = {N, c->tokens_per_patch, c->text_hidden}, df[3] = {N, g * g + 1, c->vision_hidden},
             ds[3] = {N, c->tokens_per_patch, c->vision_hidden};
    PyArrayObject *proj = (PyArrayObject *)PyArray_SimpleNew(3, dp, NPY_FLOAT32), *full = NULL, *sel = NULL;
    if (inter) {
        full = (PyArrayObject *)PyArray_SimpleNew(3, df, NPY_FLOAT32);
        sel = (PyArrayObject *)PyArray_SimpleNew(3, ds, NPY_FLOAT32);
    }
    if (!proj || (inter && (!full || !sel))) { Py_XDECREF(proj); Py_XDECREF(full); Py_XDECREF(sel); Py_DECREF(px); return NULL; }
    mms_tensor t = mms_tensor_view(PyArray_DATA(px), MMS_DTYPE_F32, 4, (int64_t[]){N, 3, c->image_size, c->image_size});
    mms_error err = {0};
    mms_status rc;
    h->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_llava_image_features(h->llava, &t, full ? PyArray_DATA(full) : NULL, sel ? PyArray_DATA(sel) : NULL,
                                  PyArray_DATA(proj), &err);
    Py_END_ALLOW_THREADS
    h->busy--;
    Py_DECREF(px);
    if (rc != MMS_OK) { Py_DECREF(proj); Py_XDECREF(full); Py_XDECREF(sel); return mms_py_raise(&err); }
    if (!inter) return (PyObject *)proj;
    return Py_BuildValue("{s:N,s:N,s:N}", "projected", proj, "layer_full", full, "selected", sel);
}

static PyObject *py_llava_pack_next(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap, *proj_o;
    long long gh, gw, row0, rows, col0, cols;
    if (!PyArg_ParseTuple(args, "OOLLLLLL", &cap, &proj_o, &gh, &gw, &row0, &rows, &col0, &cols)) return NULL;
    lm_handle *h = get_lm(cap);
    if (!h) return NULL;
    if (!h->llava) return PyErr_Format(PyExc_TypeError, "not a LLaVA model");
    const mms_llava_config *c = mms_llava_get_config(h->llava);
    PyArrayObject *proj = as_array(proj_o, NPY_FLOAT32, 3, 3, "projected");
    if (!proj) return NULL;
    if (PyArray_DIM(proj, 0) != 1 + gh * gw || PyArray_DIM(proj, 1) != c->tokens_per_patch || PyArray_DIM(proj, 2) != c->text_hidden) {
        Py_DECREF(proj);
        return PyErr_Format(PyExc_ValueError, "projected: expected (%lld, %lld, %lld) for a %lldx%lld grid", 1 + gh * gw,
                            (long long)c->tokens_per_patch, (long long)c->text_hidden, gh, gw);
    }
    if (rows < 0 || cols < 0 || rows > 1 << 20 || cols > 1 << 20) { Py_DECREF(proj); return PyErr_Format(PyExc_ValueError, "bad grid extent"); }
    npy_intp dims[2] = {c->tokens_per_patch + rows * (cols + 1), c->text_hidden};
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (!out) { Py_DECREF(proj); return NULL; }
    mms_error err = {0};
    int64_t n_out = 0;
    mms_status rc = mms_llava_pack_next(h->llava, PyArray_DATA(proj), gh, gw, row0, rows, col0, cols, PyArray_DATA(out), &n_out, &err);
    Py_DECREF(proj);
    if (rc != MMS_OK) { Py_DECREF(out); return mms_py_raise(&err); }
    return (PyObject *)out;
}

/* ---- states ------------------------------------------------------------------------------ */

static PyObject *py_state_new(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"model", "n_slots", "n_ctx", "kv_dtype", "max_tokens", "enc_ctx", NULL};
    PyObject *cap;
    long long slots, ctx, maxt = 512, enc_ctx = 0;
    const char *kvd = "float32";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OLL|sLL", kwlist, &cap, &slots, &ctx, &kvd, &maxt, &enc_ctx)) return NULL;
    lm_handle *h = get_lm(cap);
    if (!h) return NULL;
    mms_dtype dt;
    if (mms_py_parse_dtype(kvd, &dt) < 0) return NULL;
    mms_error err = {0};
    mms_decoder_state *st = NULL;
    mms_status rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mms_decoder_state_new_ex(handle_decoder(h), slots, ctx, dt, maxt, enc_ctx, &st, &err);
    Py_END_ALLOW_THREADS
    if (rc != MMS_OK) return mms_py_raise(&err);
    state_handle *s = mms_calloc(1, sizeof *s);
    if (!s) { mms_decoder_state_free(st); return PyErr_NoMemory(); }
    s->st = st;
    s->model = cap;
    Py_INCREF(cap);
    h->n_states++;
    PyObject *sc = PyCapsule_New(s, STATE_CAPSULE, state_destroy);
    if (!sc) {
        mms_decoder_state_free(st);
        h->n_states--;
        Py_DECREF(cap);
        mms_free(s);
    }
    return sc;
}

static PyObject *py_lm_forward(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"state", "slots", "n_new", "ids", "embeds", "logits_all", "want_logits", NULL};
    PyObject *scap, *slots_o, *nnew_o, *ids_o = Py_None, *emb_o = Py_None;
    int all = 0, want = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OOpp", kwlist, &scap, &slots_o, &nnew_o, &ids_o, &emb_o, &all, &want)) return NULL;
    state_handle *s = get_state(scap);
    if (!s) return NULL;
    if ((ids_o == Py_None) == (emb_o == Py_None)) return PyErr_Format(PyExc_ValueError, "give exactly one of ids or embeds");
    PyArrayObject *slots = as_array(slots_o, NPY_INT64, 1, 1, "slots"), *nn = NULL, *ids = NULL, *emb = NULL, *out = NULL;
    if (!slots) return NULL;
    nn = as_array(nnew_o, NPY_INT64, 1, 1, "n_new");
    if (!nn) goto fail;
    const npy_intp S = PyArray_DIM(slots, 0);
    if (PyArray_DIM(nn, 0) != S) { PyErr_Format(PyExc_ValueError, "slots and n_new differ in length"); goto fail; }
    int64_t M = 0;
    const int64_t *nv = PyArray_DATA(nn);
    for (npy_intp i = 0; i < S; i++) M += nv[i];
    const mms_decoder_config *c = mms_decoder_get_config(handle_decoder(PyCapsule_GetPointer(s->model, LM_CAPSULE)));
    if (ids_o != Py_None) {
        if (!(ids = as_array(ids_o, NPY_INT64, 1, 1, "ids"))) goto fail;
        if (PyArray_DIM(ids, 0) != M) { PyErr_Format(PyExc_ValueError, "ids: %lld rows, n_new sums to %lld", (long long)PyArray_DIM(ids, 0), (long long)M); goto fail; }
    } else {
        if (!(emb = as_array(emb_o, NPY_FLOAT32, 2, 2, "embeds"))) goto fail;
        if (PyArray_DIM(emb, 0) != M || PyArray_DIM(emb, 1) != c->block.hidden) {
            PyErr_Format(PyExc_ValueError, "embeds: expected (%lld, %lld)", (long long)M, (long long)c->block.hidden);
            goto fail;
        }
    }
    if (want) {
        npy_intp dims[2] = {all ? M : S, c->vocab};
        if (!(out = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT32))) goto fail;
    }
    mms_error err = {0};
    mms_status rc;
    s->busy = 1;
    Py_INCREF(scap);
    Py_BEGIN_ALLOW_THREADS
    rc = mms_decoder_forward(s->st, S, PyArray_DATA(slots), nv, ids ? PyArray_DATA(ids) : NULL,
                             emb ? PyArray_DATA(emb) : NULL, all, out ? PyArray_DATA(out) : NULL, &err);
    Py_END_ALLOW_THREADS
    s->busy = 0;
    Py_DECREF(scap);
    Py_DECREF(slots); Py_DECREF(nn); Py_XDECREF(ids); Py_XDECREF(emb);
    if (rc != MMS_OK) { Py_XDECREF(out); return mms_py_raise(&err); }
    if (!out) Py_RETURN_NONE;
    return (PyObject *)out;
fail:
    Py_XDECREF(slots); Py_XDECREF(nn); Py_XDECREF(ids); Py_XDECREF(emb); Py_XDECREF(out);
    return NULL;
}

static PyObject *py_state_op(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *scap;
    const char *op;
    long long a = 0, b = 0;
    if (!PyArg_ParseTuple(args, "Os|LL", &scap, &op, &a, &b)) return NULL;
    state_handle *s = get_state(scap);
    if (!s) return NULL;
    mms_error err = {0};
    mms_status rc = MMS_OK;
    if (!strcmp(op, "len")) {
        if (a < 0 || a >= mms_decoder_state_slots(s->st)) return PyErr_Format(PyExc_ValueError, "slot %lld out of range", a);
        return PyLong_FromLongLong(mms_decoder_state_len(s->st, a));
    } else if (!strcmp(op, "truncate")) {
        rc = mms_decoder_state_truncate(s->st, a, b, &err);
    } else if (!strcmp(op, "copy")) {
        rc = mms_decoder_state_copy(s->st, a, b, &err);
    } else if (!strcmp(op, "info")) {
        int64_t kv, sc;
        mms_decoder_state_bytes(s->st, &kv, &sc);
        return Py_BuildValue("{s:L,s:L,s:L,s:L}", "kv_bytes", (long long)kv, "scratch_bytes", (long long)sc, "n_slots",
                             (long long)mms_decoder_state_slots(s->st), "n_ctx", (long long)mms_decoder_state_ctx(s->st));
    } else {
        return PyErr_Format(PyExc_ValueError, "unknown state op '%s'", op);
    }
    if (rc != MMS_OK) return mms_py_raise(&err);
    Py_RETURN_NONE;
}

/* ---- sampler ----------------------------------------------------------------------------- */

static PyObject *py_rng_new(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "K", &seed)) return NULL;
    mms_rng r;
    mms_rng_seed(&r, seed);
    return PyByteArray_FromStringAndSize((const char *)&r, sizeof r);
}

static PyObject *py_sample(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"logits", "history", "rng", "do_sample", "temperature", "top_k", "top_p",
                             "repetition_penalty", NULL};
    PyObject *lg_o, *hist_o, *rng_o;
    mms_sampling_params p = mms_sampling_default_params();
    long long topk = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|pfLff", kwlist, &lg_o, &hist_o, &rng_o, &p.do_sample, &p.temperature,
                                     &topk, &p.top_p, &p.repetition_penalty))
        return NULL;
    p.top_k = topk;
    if (!PyByteArray_Check(rng_o) || PyByteArray_GET_SIZE(rng_o) != (Py_ssize_t)sizeof(mms_rng))
        return PyErr_Format(PyExc_TypeError, "rng: expected the bytearray returned by rng_new");
    PyArrayObject *lg = as_array(lg_o, NPY_FLOAT32, 2, 2, "logits");
    if (!lg) return NULL;
    PyArrayObject *hist = as_array(hist_o, NPY_INT64, 2, 2, "history");
    if (!hist) { Py_DECREF(lg); return NULL; }
    const npy_intp n = PyArray_DIM(lg, 0), V = PyArray_DIM(lg, 1);
    if (PyArray_DIM(hist, 0) != n) { Py_DECREF(lg); Py_DECREF(hist); return PyErr_Format(PyExc_ValueError, "history must have one row per logits row"); }
    void *work = mms_malloc(mms_sample_work_bytes(V));
    npy_intp dn = n;
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, &dn, NPY_INT64);
    if (!work || !out) { mms_free(work); Py_XDECREF(out); Py_DECREF(lg); Py_DECREF(hist); return PyErr_NoMemory(); }
    mms_error err = {0};
    mms_status rc = MMS_OK;
    mms_rng r;
    memcpy(&r, PyByteArray_AS_STRING(rng_o), sizeof r);
    const npy_intp H = PyArray_DIM(hist, 1);
    const int64_t *hd = PyArray_DATA(hist);
    int64_t *od = PyArray_DATA(out);
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp i = 0; i < n && rc == MMS_OK; i++) {
        /* rows of history are right-padded with -1 (ignored) */
        rc = mms_sample((const float *)PyArray_DATA(lg) + i * V, V, &p, hd + i * H, H, &r, work, &od[i], &err);
    }
    Py_END_ALLOW_THREADS
    memcpy(PyByteArray_AS_STRING(rng_o), &r, sizeof r);
    mms_free(work);
    Py_DECREF(lg);
    Py_DECREF(hist);
    if (rc != MMS_OK) { Py_DECREF(out); return mms_py_raise(&err); }
    return (PyObject *)out;
}

static PyMethodDef llm_methods[] = {
    {"lm_load", (PyCFunction)(void (*)(void))py_lm_load, METH_VARARGS | METH_KEYWORDS, "lm_load(path, dtype='float32', device='cpu', mmap=True) -> causal LM handle (mmap=False: weights read into huge-page memory)"},
    {"llava_load", (PyCFunction)(void (*)(void))py_llava_load, METH_VARARGS | METH_KEYWORDS, "llava_load(path, dtype='float32', device='cpu', mmap=True) -> LLaVA handle"},
    {"blip2_load", (PyCFunction)(void (*)(void))py_blip2_load, METH_VARARGS | METH_KEYWORDS, "blip2_load(path, dtype='float32', device='cpu', mmap=True) -> BLIP-2 handle"},
    {"lm_unload", py_lm_unload, METH_O, "free a model's weights (refused while states are alive)"},
    {"lm_info", py_lm_info, METH_O, "config and memory of a language model / LLaVA handle"},
    {"lm_embed", py_lm_embed, METH_VARARGS, "lm_embed(model, ids) -> (n, hidden) float32 token embeddings"},
    {"llava_image_features", (PyCFunction)(void (*)(void))py_llava_image_features, METH_VARARGS | METH_KEYWORDS,
     "llava_image_features(model, pixel_values, intermediates=False)"},
    {"llava_pack_next", py_llava_pack_next, METH_VARARGS, "llava_pack_next(model, projected, gh, gw, row0, rows, col0, cols)"},
    {"lm_state_new", (PyCFunction)(void (*)(void))py_state_new, METH_VARARGS | METH_KEYWORDS,
     "lm_state_new(model, n_slots, n_ctx, kv_dtype='float32', max_tokens=512, enc_ctx=0) -> KV-cache state (enc_ctx: encoder rows per slot, T5)"},
    {"lm_forward", (PyCFunction)(void (*)(void))py_lm_forward, METH_VARARGS | METH_KEYWORDS,
     "lm_forward(state, slots, n_new, ids=None, embeds=None, logits_all=False, want_logits=True) -> logits"},
    {"lm_state_op", py_state_op, METH_VARARGS, "lm_state_op(state, 'len'|'truncate'|'copy'|'info', a, b)"},
    {"rng_new", py_rng_new, METH_VARARGS, "rng_new(seed) -> generator state (bytearray)"},
    {"sample", (PyCFunction)(void (*)(void))py_sample, METH_VARARGS | METH_KEYWORDS,
     "sample(logits (n, V), history (n, H) int64 (-1 = none), rng, do_sample, temperature, top_k, top_p, repetition_penalty) -> ids (n,)"},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_llm(PyObject *m) {
    import_array1(-1);
    return PyModule_AddFunctions(m, llm_methods);
}
