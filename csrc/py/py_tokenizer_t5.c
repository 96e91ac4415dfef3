/* py_tokenizer_t5.c -- mmsuite._C.T5Tokenizer, the Python face of csrc/tokenizer_t5.h.
 * Converts arguments, releases the GIL around the C calls and raises mms_error values; the
 * checkpoint files (tokenizer_config.json, added tokens) are read in mmsuite/tokenizer_t5.py. */
#include "py_common.h"

#include "../sentencepiece.h"
#include "../tokenizer_t5.h"

typedef struct {
    PyObject_HEAD
    mms_t5_tokenizer *tok; /* owned; immutable and thread safe once built */
} T5TokenizerObject;

#define TOK(o) (((T5TokenizerObject *)(o))->tok)

/* ==== construction ============================================================================= */

/* added_tokens[i] = (content, id, lstrip, rstrip, single_word, normalized, special) into *a;
 * content's UTF-8 is borrowed from the str (alive as long as the list holds it). */
static int added_from_item(PyObject *item, Py_ssize_t i, mms_t5_added_token *a) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 7) {
        PyErr_Format(PyExc_TypeError, "added_tokens[%zd] must be a tuple (content, id, lstrip, rstrip, single_word, "
                     "normalized, special), not %.100s", i, Py_TYPE(item)->tp_name);
        return -1;
    }
    char what[64];
    snprintf(what, sizeof what, "added_tokens[%zd][0]", i);
    Py_ssize_t len;
    if (mms_py_text_utf8(PyTuple_GET_ITEM(item, 0), what, 0, &a->content, &len) < 0) return -1;
    a->len = (size_t)len;
    PyObject *id = PyTuple_GET_ITEM(item, 1);
    if (!PyLong_Check(id)) {
        PyErr_Format(PyExc_TypeError, "added_tokens[%zd][1] (id) must be int, not %.100s", i, Py_TYPE(id)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(id, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    a->id = overflow ? -1 : v;
    int *flags[5] = {&a->lstrip, &a->rstrip, &a->single_word, &a->normalized, &a->special};
    for (int k = 0; k < 5; k++)
        if ((*flags[k] = PyObject_IsTrue(PyTuple_GET_ITEM(item, 2 + k))) < 0) return -1;
    return 0;
}

static PyObject *t5_new(PyTypeObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"model", "added_tokens", "extra_ids", "eos_id", "unk_id", "name", NULL};
    mms_t5_params p = mms_t5_default_params();
    Py_buffer view;
    PyObject *added_o = NULL, *seq = NULL;
    long long extra_ids = p.extra_ids, eos_id = p.eos_id, unk_id = p.unk_id;
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|OLLLz:T5Tokenizer", kwlist, &view, &added_o, &extra_ids,
                                     &eos_id, &unk_id, &name))
        return NULL;
    p.extra_ids = extra_ids;
    p.eos_id = eos_id;
    p.unk_id = unk_id;
    mms_t5_added_token *added = NULL;
    Py_ssize_t n = 0;
    PyObject *result = NULL;
    mms_sp_tokenizer *sp = NULL;
    mms_t5_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    if (added_o && added_o != Py_None) {
        if (!(seq = PySequence_Fast(added_o, "added_tokens must be a sequence of tuples"))) goto done;
        n = PySequence_Fast_GET_SIZE(seq);
        if (!(added = PyMem_Calloc((size_t)n + 1, sizeof *added))) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n; i++)
            if (added_from_item(PySequence_Fast_GET_ITEM(seq, i), i, &added[i]) < 0) goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    st = mms_sp_tokenizer_create(view.buf, (size_t)view.len, name, &sp, &err);
    if (!st) st = mms_t5_tokenizer_create(sp, added, (size_t)n, p, &tok, &err);
    mms_sp_tokenizer_free(sp);
    Py_END_ALLOW_THREADS
    if (st) {
        mms_py_raise(&err);
        goto done;
    }
    if (!(result = cls->tp_alloc(cls, 0))) {
        mms_t5_tokenizer_free(tok);
        goto done;
    }
    TOK(result) = tok;
done:
    PyMem_Free(added);
    Py_XDECREF(seq);
    PyBuffer_Release(&view);
    return result;
}

static void t5_dealloc(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    mms_t5_tokenizer_free(TOK(o));
    tp->tp_free(o);
    Py_DECREF(tp); /* instances of heap types own a reference to their type */
}

/* ==== encoding ================================================================================== */

static PyObject *t5_encode(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"text", "add_eos", NULL};
    PyObject *text_o;
    int add_eos = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:encode", kwlist, &text_o, &add_eos)) return NULL;
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(text_o, "encode: text", 1, &text, &len) < 0) return NULL;
    Py_INCREF(text_o); /* keeps the bytes alive without the GIL */
    int64_t *ids = NULL;
    size_t n = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_t5_tokenizer_encode(TOK(o), text, (size_t)len, add_eos, &ids, &n, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(text_o);
    if (st) return mms_py_raise(&err);
    PyObject *list = mms_py_ids_to_list(ids, n);
    mms_free(ids);
    return list;
}

static mms_status batch_c(const void *tok, const void *params, const mms_py_batch *b, mms_error *err) {
    return mms_t5_tokenizer_encode_batch(tok, b->ptrs, b->lens, b->n, *(const mms_t5_batch_params *)params,
                                         b->ids_out, b->mask_out, b->lengths_out, err);
}

static PyObject *t5_encode_batch(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"texts", "context_length", "truncate", "pad_id", "add_eos", "return_lengths", NULL};
    mms_t5_batch_params p = mms_t5_batch_default_params();
    PyObject *texts_o;
    long long context_length = p.context_length, pad_id = p.pad_id;
    int return_lengths = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|LpLpp:encode_batch", kwlist, &texts_o, &context_length,
                                     &p.truncate, &pad_id, &p.add_eos, &return_lengths))
        return NULL;
    if (PyUnicode_Check(texts_o) || PyBytes_Check(texts_o))
        return PyErr_Format(PyExc_TypeError, "encode_batch: texts must be a sequence of str, not a single %.100s",
                            Py_TYPE(texts_o)->tp_name);
    if (context_length < 1)
        return PyErr_Format(PyExc_ValueError, "encode_batch: context_length must be >= 1, got %lld", context_length);
    p.context_length = context_length;
    p.pad_id = pad_id;
    mms_py_batch b;
    if (mms_py_batch_init(&b, texts_o, 1, context_length, return_lengths) < 0) return NULL;
    return mms_py_batch_run(&b, batch_c, TOK(o), &p);
}

static PyObject *t5_normalize(PyObject *o, PyObject *arg) {
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "normalize: text", 1, &text, &len) < 0) return NULL;
    char *out = NULL;
    size_t out_len = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_INCREF(arg);
    Py_BEGIN_ALLOW_THREADS
    st = mms_t5_tokenizer_normalize(TOK(o), text, (size_t)len, &out, &out_len, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(arg);
    if (st) return mms_py_raise(&err);
    PyObject *r = PyUnicode_DecodeUTF8(out, (Py_ssize_t)out_len, "strict"); /* the C side checked it */
    mms_free(out);
    return r;
}

/* ==== properties ================================================================================= */

#define T5_INT_GETTER(field)                                            \
    static PyObject *t5_get_##field(PyObject *o, void *closure) {       \
        (void)closure;                                                  \
        return PyLong_FromLongLong(mms_t5_tokenizer_info(TOK(o)).field); \
    }
T5_INT_GETTER(n_pieces)
T5_INT_GETTER(vocab_size)
T5_INT_GETTER(extra_ids)
T5_INT_GETTER(eos_id)
T5_INT_GETTER(unk_id)

static PyObject *t5_get_has_charsmap(PyObject *o, void *closure) {
    (void)closure;
    return PyBool_FromLong(mms_t5_tokenizer_info(TOK(o)).has_charsmap);
}

static PyGetSetDef t5_getset[] = {
    {"n_pieces", t5_get_n_pieces, NULL, "Pieces of the SentencePiece model.", NULL},
    {"vocab_size", t5_get_vocab_size, NULL, "Pieces + sentinels (added tokens aside).", NULL},
    {"extra_ids", t5_get_extra_ids, NULL, "Number of <extra_id_N> sentinels.", NULL},
    {"eos_id", t5_get_eos_id, NULL, "Id that add_eos appends.", NULL},
    {"unk_id", t5_get_unk_id, NULL, "Id of an unknown run.", NULL},
    {"has_charsmap", t5_get_has_charsmap, NULL, "A precompiled charsmap normalizes text.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef t5_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))t5_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(text, add_eos=True) -> list[int]\n\n"
     "Ids of text (str, or bytes that must be UTF-8), then EOS when add_eos. Runs without the GIL."},
    {"encode_batch", (PyCFunction)(void (*)(void))t5_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "encode_batch(texts, context_length=512, truncate=True, pad_id=0, add_eos=True,\n"
     "             return_lengths=False) -> (ids, mask[, lengths])\n\n"
     "Encode texts into int64 arrays ids and mask of shape (n, context_length): rows ids [EOS],\n"
     "padded with pad_id; mask is 1 on tokens. A longer row is cut with EOS kept last (truncate)\n"
     "or raises ValueError naming the text. lengths (n,) are the untruncated row lengths.\n"
     "Runs without the GIL, in parallel."},
    {"normalize", t5_normalize, METH_O,
     "normalize(text) -> str\n\nText after the precompiled-charsmap normalizer (per grapheme cluster)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot t5_slots[] = {
    {Py_tp_doc, "T5Tokenizer(model, added_tokens=(), extra_ids=100, eos_id=-1, unk_id=2, name=None)\n\n"
                "transformers 5's T5Tokenizer on the bytes of a unigram spiece.model: added_tokens are\n"
                "tuples (content, id, lstrip, rstrip, single_word, normalized, special); eos_id -1 is the\n"
                "piece '</s>'; `name` is used in error messages. Immutable; safe to use from several\n"
                "threads."},
    {Py_tp_new, t5_new},
    {Py_tp_dealloc, t5_dealloc},
    {Py_tp_methods, t5_methods},
    {Py_tp_getset, t5_getset},
    {0, NULL},
};

static PyType_Spec t5_spec = {
    "mmsuite._C.T5Tokenizer", sizeof(T5TokenizerObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, t5_slots,
};

int mms_py_init_tokenizer_t5(PyObject *m) {
    PyObject *type = PyType_FromSpec(&t5_spec);
    if (!type) return -1;
    if (PyModule_AddObject(m, "T5Tokenizer", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}
