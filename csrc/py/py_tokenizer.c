/* py_tokenizer.c -- mmsuite._C.BPETokenizer, the Python face of csrc/tokenizer.h.
 * Converts arguments, releases the GIL around the C calls and raises mms_error values;
 * text clean-up (ftfy, html, whitespace, lower) is mmsuite/tokenizer.py's job. */
#include "py_common.h"

#include "../tokenizer.h"

typedef struct {
    PyObject_HEAD
    mms_bpe_tokenizer *tok; /* owned; immutable and thread safe once built */
} BPETokenizerObject;

/* UTF-8 bytes of a str or a bytes-like object. view->obj is set when a buffer was taken
 * (release it with PyBuffer_Release); for a str the bytes live as long as the str. */
static int get_text(PyObject *o, const char *what, const char **data, Py_ssize_t *len,
                    Py_buffer *view) {
    view->obj = NULL;
    if (PyUnicode_Check(o)) {
        *data = PyUnicode_AsUTF8AndSize(o, len);
        return *data ? 0 : -1;
    }
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *data = view->buf;
    *len = view->len;
    return 0;
}

static PyObject *wrap(PyTypeObject *cls, mms_bpe_tokenizer *tok) {
    BPETokenizerObject *self = (BPETokenizerObject *)cls->tp_alloc(cls, 0);
    if (!self) {
        mms_bpe_tokenizer_free(tok);
        return NULL;
    }
    self->tok = tok;
    return (PyObject *)self;
}

static PyObject *tok_new(PyTypeObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"merges", "vocab_json", "n_merges", NULL};
    PyObject *merges_o, *vocab_o = Py_None;
    int n_merges = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$i:BPETokenizer", kwlist, &merges_o, &vocab_o,
                                     &n_merges))
        return NULL;
    const char *merges, *vocab = NULL;
    Py_ssize_t merges_len, vocab_len = 0;
    Py_buffer mview, vview = {0};
    if (get_text(merges_o, "merges", &merges, &merges_len, &mview) < 0) return NULL;
    if (vocab_o != Py_None && get_text(vocab_o, "vocab_json", &vocab, &vocab_len, &vview) < 0) {
        if (mview.obj) PyBuffer_Release(&mview);
        return NULL;
    }
    mms_bpe_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = vocab ? mms_bpe_tokenizer_create_hf(vocab, (size_t)vocab_len, merges, (size_t)merges_len, &tok, &err)
               : mms_bpe_tokenizer_create_openai(merges, (size_t)merges_len, n_merges, &tok, &err);
    Py_END_ALLOW_THREADS
    if (mview.obj) PyBuffer_Release(&mview);
    if (vview.obj) PyBuffer_Release(&vview);
    if (st) return mms_py_raise(&err);
    return wrap(cls, tok);
}

static PyObject *tok_from_hf_files(PyObject *cls, PyObject *args) {
    PyObject *vocab_path = NULL, *merges_path = NULL;
    if (!PyArg_ParseTuple(args, "O&O&:from_hf_files", PyUnicode_FSConverter, &vocab_path,
                          PyUnicode_FSConverter, &merges_path)) {
        Py_XDECREF(vocab_path);
        return NULL;
    }
    mms_bpe_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_bpe_tokenizer_load_hf(PyBytes_AS_STRING(vocab_path), PyBytes_AS_STRING(merges_path), &tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(vocab_path);
    Py_DECREF(merges_path);
    if (st) return mms_py_raise(&err);
    return wrap((PyTypeObject *)cls, tok);
}

static void tok_dealloc(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    mms_bpe_tokenizer_free(((BPETokenizerObject *)o)->tok);
    tp->tp_free(o);
    Py_DECREF(tp); /* instances of heap types own a reference to their type */
}

static PyObject *tok_encode(PyObject *o, PyObject *arg) {
    const mms_bpe_tokenizer *tok = ((BPETokenizerObject *)o)->tok;
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "encode: text", 0, &text, &len) < 0) return NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_bpe_tokenizer_encode(tok, text, (size_t)len, &ids, &n, &err);
    Py_END_ALLOW_THREADS
    if (st) return mms_py_raise(&err);
    PyObject *list = mms_py_ids_to_list(ids, n);
    mms_free(ids);
    return list;
}

static mms_status batch_c(const void *tok, const void *params, const mms_py_batch *b, mms_error *err) {
    return mms_bpe_tokenizer_encode_batch(tok, b->ptrs, b->lens, b->n, *(const mms_bpe_batch_params *)params,
                                          b->ids_out, b->mask_out, b->lengths_out, err);
}

static PyObject *tok_encode_batch(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"texts", "context_length", "truncate", "pad_id", "add_special",
                             "return_lengths", NULL};
    const mms_bpe_tokenizer *tok = ((BPETokenizerObject *)o)->tok;
    mms_bpe_batch_params p = mms_bpe_batch_default_params();
    PyObject *texts_o;
    long long context_length = p.context_length, pad_id = p.pad_id;
    int return_lengths = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|LpLpp:encode_batch", kwlist, &texts_o,
                                     &context_length, &p.truncate, &pad_id, &p.add_special, &return_lengths))
        return NULL;
    if (PyUnicode_Check(texts_o))
        return PyErr_Format(PyExc_TypeError, "encode_batch: texts must be a sequence of str, not a str");
    if (context_length < (p.add_special ? 2 : 1))
        return PyErr_Format(PyExc_ValueError, "encode_batch: context_length must be >= %d, got %lld",
                            p.add_special ? 2 : 1, context_length);
    p.context_length = context_length;
    p.pad_id = pad_id;
    mms_py_batch b;
    if (mms_py_batch_init(&b, texts_o, 0, context_length, return_lengths) < 0) return NULL;
    return mms_py_batch_run(&b, batch_c, tok, &p);
}

typedef struct decode_args {
    const mms_bpe_tokenizer *tok;
    int skip_special;
} decode_args;

static mms_status decode_c(const void *ctx, const int64_t *ids, size_t n, char **text, size_t *len,
                           mms_error *err) {
    const decode_args *a = ctx;
    return mms_bpe_tokenizer_decode(a->tok, ids, n, a->skip_special, text, len, err);
}

static PyObject *tok_decode(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"ids", "skip_special_tokens", NULL};
    decode_args a = {((BPETokenizerObject *)o)->tok, 0};
    PyObject *ids_o;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:decode", kwlist, &ids_o, &a.skip_special)) return NULL;
    return mms_py_decode(ids_o, decode_c, &a, "strict"); /* valid UTF-8 by construction */
}

static PyObject *tok_token_to_id(PyObject *o, PyObject *arg) {
    const char *s;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "token_to_id: token", 0, &s, &len) < 0) return NULL;
    int64_t id = mms_bpe_tokenizer_token_to_id(((BPETokenizerObject *)o)->tok, s, (size_t)len);
    if (id < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(id);
}

static PyObject *tok_id_to_token(PyObject *o, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const char *s = mms_bpe_tokenizer_id_to_token(((BPETokenizerObject *)o)->tok, id);
    if (!s) Py_RETURN_NONE;
    return PyUnicode_FromString(s);
}

#define TOK_GETTER(name, fn)                                                   \
    static PyObject *tok_get_##name(PyObject *o, void *closure) {              \
        (void)closure;                                                         \
        return PyLong_FromLongLong(fn(((BPETokenizerObject *)o)->tok));       \
    }
TOK_GETTER(vocab_size, mms_bpe_tokenizer_vocab_size)
TOK_GETTER(n_merges, mms_bpe_tokenizer_n_merges)
TOK_GETTER(sot_id, mms_bpe_tokenizer_sot_id)
TOK_GETTER(eot_id, mms_bpe_tokenizer_eot_id)

static PyGetSetDef tok_getset[] = {
    {"vocab_size", tok_get_vocab_size, NULL, "Number of ids (max id + 1), 49408 for CLIP.", NULL},
    {"n_merges", tok_get_n_merges, NULL, "Number of BPE merges.", NULL},
    {"sot_id", tok_get_sot_id, NULL, "Id of <|startoftext|> (49406 for CLIP).", NULL},
    {"eot_id", tok_get_eot_id, NULL, "Id of <|endoftext|> (49407 for CLIP).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef tok_methods[] = {
    {"from_hf_files", tok_from_hf_files, METH_VARARGS | METH_CLASS,
     "from_hf_files(vocab_json_path, merges_path) -> BPETokenizer\n\n"
     "Load an HF CLIPTokenizer vocab.json + merges.txt (FileNotFoundError names a missing file)."},
    {"encode", tok_encode, METH_O,
     "encode(cleaned_text) -> list[int]\n\nIds of already cleaned (lowercased) text, no SOT/EOT."},
    {"encode_batch", (PyCFunction)(void (*)(void))tok_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "encode_batch(texts, context_length=77, truncate=True, pad_id=0, add_special=True,\n"
     "             return_lengths=False) -> (ids, mask[, lengths])\n\n"
     "Encode cleaned texts into int64 arrays ids and mask of shape (n, context_length):\n"
     "rows SOT + ids + EOT (add_special), padded with pad_id; mask is 1 on tokens. A longer\n"
     "text is cut with EOT last (truncate) or raises ValueError naming its index and length.\n"
     "lengths (n,) are the untruncated row lengths. Runs without the GIL, in parallel."},
    {"decode", (PyCFunction)(void (*)(void))tok_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(ids, skip_special_tokens=False) -> str\n\n"
     "Reference decode: bytes joined, invalid UTF-8 replaced, '</w>' -> ' '. ValueError for an\n"
     "id outside the vocabulary."},
    {"token_to_id", tok_token_to_id, METH_O, "token_to_id(token) -> int | None (vocabulary string, e.g. 'cat</w>')."},
    {"id_to_token", tok_id_to_token, METH_O, "id_to_token(id) -> str | None"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot tok_slots[] = {
    {Py_tp_doc, "BPETokenizer(merges, vocab_json=None, *, n_merges=-1)\n\n"
                "CLIP byte-level BPE tokenizer core. merges: OpenAI merges text (str or bytes, header\n"
                "line first) when vocab_json is None, using n_merges lines (-1 = all; 48894 for\n"
                "bpe_simple_vocab_16e6.txt); else HF merges.txt text with vocab_json the text of\n"
                "vocab.json. Immutable; safe to use from several threads."},
    {Py_tp_new, tok_new},
    {Py_tp_dealloc, tok_dealloc},
    {Py_tp_methods, tok_methods},
    {Py_tp_getset, tok_getset},
    {0, NULL},
};

static PyType_Spec tok_spec = {
    "mmsuite._C.BPETokenizer", sizeof(BPETokenizerObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, tok_slots,
};

int mms_py_init_tokenizer(PyObject *m) {
    PyObject *type = PyType_FromSpec(&tok_spec);
    if (!type) return -1;
    if (PyModule_AddObject(m, "BPETokenizer", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "CLIP_N_MERGES", MMS_CLIP_N_MERGES) < 0) return -1;
    return PyModule_AddStringConstant(m, "UNICODE_VERSION", mms_unicode_version());
}
