/* py_sentencepiece.c -- mmsuite._C.SentencePiece, the Python face of csrc/sentencepiece.h.
 * Converts arguments, releases the GIL around the C calls and raises mms_error values;
 * model-family text rules (SigLIP's canonicalization, HF special tokens) live in
 * mmsuite/tokenizer.py. */
#include "py_common.h"

#include "../sentencepiece.h"

typedef struct {
    PyObject_HEAD
    mms_sp_tokenizer *tok; /* owned; immutable and thread safe once built */
} SentencePieceObject;

#define TOK(o) (((SentencePieceObject *)(o))->tok)

/* C output that should be UTF-8; anything else (only from odd models) is replaced. */
static PyObject *str_from_c(const char *s, size_t n) {
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
}

static PyObject *wrap(PyTypeObject *cls, mms_sp_tokenizer *tok) {
    SentencePieceObject *self = (SentencePieceObject *)cls->tp_alloc(cls, 0);
    if (!self) {
        mms_sp_tokenizer_free(tok);
        return NULL;
    }
    self->tok = tok;
    return (PyObject *)self;
}

static PyObject *sp_new(PyTypeObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"model", "name", NULL};
    Py_buffer view;
    const char *name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|z:SentencePiece", kwlist, &view, &name)) return NULL;
    mms_sp_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_sp_tokenizer_create(view.buf, (size_t)view.len, name, &tok, &err);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (st) return mms_py_raise(&err);
    return wrap(cls, tok);
}

static PyObject *sp_from_file(PyObject *cls, PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    mms_sp_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_sp_tokenizer_load(PyBytes_AS_STRING(path), &tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st) return mms_py_raise(&err);
    return wrap((PyTypeObject *)cls, tok);
}

static void sp_dealloc(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    mms_sp_tokenizer_free(TOK(o));
    tp->tp_free(o);
    Py_DECREF(tp); /* instances of heap types own a reference to their type */
}

static PyObject *sp_encode(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"text", "add_bos", "add_eos", NULL};
    const mms_sp_tokenizer *tok = TOK(o);
    PyObject *text_o;
    int add_bos = 0, add_eos = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|pp:encode", kwlist, &text_o, &add_bos, &add_eos)) return NULL;
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(text_o, "encode: text", 1, &text, &len) < 0) return NULL;
    mms_sp_info info = mms_sp_tokenizer_info(tok);
    if ((add_bos && info.bos_id < 0) || (add_eos && info.eos_id < 0))
        return PyErr_Format(PyExc_ValueError, "encode: %s token is not defined as a control piece in this model",
                            add_bos && info.bos_id < 0 ? "BOS" : "EOS");
    Py_INCREF(text_o); /* keeps the bytes alive without the GIL */
    int64_t *ids = NULL;
    size_t n = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_sp_tokenizer_encode(tok, text, (size_t)len, &ids, &n, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(text_o);
    if (st) return mms_py_raise(&err);
    PyObject *body = mms_py_ids_to_list(ids, n);
    mms_free(ids);
    if (!body || (!add_bos && !add_eos)) return body;
    if (add_bos) {
        PyObject *b = PyLong_FromLongLong(info.bos_id);
        if (!b || PyList_Insert(body, 0, b) < 0) {
            Py_XDECREF(b);
            Py_DECREF(body);
            return NULL;
        }
        Py_DECREF(b);
    }
    if (add_eos) {
        PyObject *e = PyLong_FromLongLong(info.eos_id);
        if (!e || PyList_Append(body, e) < 0) {
            Py_XDECREF(e);
            Py_DECREF(body);
            return NULL;
        }
        Py_DECREF(e);
    }
    return body;
}

static PyObject *sp_normalize(PyObject *o, PyObject *arg) {
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "normalize: text", 1, &text, &len) < 0) return NULL;
    char *out = NULL;
    size_t out_len = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_INCREF(arg);
    Py_BEGIN_ALLOW_THREADS
    st = mms_sp_tokenizer_normalize(TOK(o), text, (size_t)len, &out, &out_len, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(arg);
    if (st) return mms_py_raise(&err);
    PyObject *r = str_from_c(out, out_len);
    mms_free(out);
    return r;
}

static mms_status batch_c(const void *tok, const void *params, const mms_py_batch *b, mms_error *err) {
    return mms_sp_tokenizer_encode_batch(tok, b->ptrs, b->lens, b->n, *(const mms_sp_batch_params *)params,
                                         b->ids_out, b->mask_out, b->lengths_out, err);
}

static PyObject *sp_encode_batch(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"texts", "context_length", "truncate", "pad_id", "add_bos", "add_eos",
                             "return_lengths", NULL};
    mms_sp_batch_params p = mms_sp_batch_default_params();
    PyObject *texts_o;
    long long context_length = p.context_length, pad_id = p.pad_id;
    int return_lengths = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|LpLppp:encode_batch", kwlist, &texts_o, &context_length,
                                     &p.truncate, &pad_id, &p.add_bos, &p.add_eos, &return_lengths))
        return NULL;
    if (PyUnicode_Check(texts_o) || PyBytes_Check(texts_o))
        return PyErr_Format(PyExc_TypeError, "encode_batch: texts must be a sequence of str, not a single %.100s",
                            Py_TYPE(texts_o)->tp_name);
    int n_special = p.add_bos + p.add_eos;
    if (context_length < 1 || context_length < n_special)
        return PyErr_Format(PyExc_ValueError, "encode_batch: context_length must be >= %d, got %lld",
                            n_special > 1 ? n_special : 1, context_length);
    p.context_length = context_length;
    p.pad_id = pad_id;
    mms_py_batch b;
    if (mms_py_batch_init(&b, texts_o, 1, context_length, return_lengths) < 0) return NULL;
    return mms_py_batch_run(&b, batch_c, TOK(o), &p);
}

static mms_status decode_c(const void *tok, const int64_t *ids, size_t n, char **text, size_t *len,
                           mms_error *err) {
    return mms_sp_tokenizer_decode(tok, ids, n, text, len, err);
}

static PyObject *sp_decode(PyObject *o, PyObject *arg) {
    return mms_py_decode(arg, decode_c, TOK(o), "replace"); /* only odd models give bad UTF-8 */
}

static PyObject *sp_piece_to_id(PyObject *o, PyObject *arg) {
    const char *s;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "piece_to_id: piece", 1, &s, &len) < 0) return NULL;
    int64_t id = mms_sp_tokenizer_piece_to_id(TOK(o), s, (size_t)len);
    if (id < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(id);
}

/* An int argument as int64, or -1 (an id that is never valid) when it does not fit. */
static int id_arg(PyObject *arg, int64_t *id) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    *id = overflow ? -1 : v;
    return 0;
}

static PyObject *sp_id_to_piece(PyObject *o, PyObject *arg) {
    int64_t id;
    if (id_arg(arg, &id) < 0) return NULL;
    size_t len;
    const char *s = mms_sp_tokenizer_id_to_piece(TOK(o), id, &len);
    if (!s) Py_RETURN_NONE;
    return str_from_c(s, len);
}

static PyObject *sp_piece_type(PyObject *o, PyObject *arg) {
    static const char *names[] = {NULL, "normal", "unknown", "control", "user_defined", "unused", "byte"};
    int64_t id;
    if (id_arg(arg, &id) < 0) return NULL;
    mms_sp_piece_type ty = mms_sp_tokenizer_piece_type(TOK(o), id);
    if (ty <= MMS_SP_PIECE_TYPE_INVALID || ty > MMS_SP_PIECE_TYPE_BYTE) Py_RETURN_NONE;
    return PyUnicode_FromString(names[ty]);
}

static PyObject *sp_score(PyObject *o, PyObject *arg) {
    int64_t id;
    if (id_arg(arg, &id) < 0) return NULL;
    if (mms_sp_tokenizer_piece_type(TOK(o), id) == MMS_SP_PIECE_TYPE_INVALID)
        return PyErr_Format(PyExc_IndexError, "score: id %lld is out of range", (long long)id);
    return PyFloat_FromDouble(mms_sp_tokenizer_piece_score(TOK(o), id));
}

/* ---- properties ---------------------------------------------------------------------------- */

#define SP_INT_GETTER(field)                                            \
    static PyObject *sp_get_##field(PyObject *o, void *closure) {       \
        (void)closure;                                                  \
        return PyLong_FromLongLong(mms_sp_tokenizer_info(TOK(o)).field); \
    }
#define SP_BOOL_GETTER(field)                                        \
    static PyObject *sp_get_##field(PyObject *o, void *closure) {    \
        (void)closure;                                               \
        return PyBool_FromLong(mms_sp_tokenizer_info(TOK(o)).field); \
    }
SP_INT_GETTER(vocab_size)
SP_INT_GETTER(unk_id)
SP_INT_GETTER(bos_id)
SP_INT_GETTER(eos_id)
SP_INT_GETTER(pad_id)
SP_BOOL_GETTER(byte_fallback)
SP_BOOL_GETTER(add_dummy_prefix)
SP_BOOL_GETTER(remove_extra_whitespaces)
SP_BOOL_GETTER(escape_whitespaces)
SP_BOOL_GETTER(treat_whitespace_as_suffix)
SP_BOOL_GETTER(has_charsmap)
SP_BOOL_GETTER(has_denormalizer)

static PyObject *sp_get_model_type(PyObject *o, void *closure) {
    (void)closure;
    return PyUnicode_FromString(mms_sp_tokenizer_info(TOK(o)).model_type == MMS_SP_MODEL_TYPE_BPE ? "bpe" : "unigram");
}

static PyObject *sp_get_normalizer_name(PyObject *o, void *closure) {
    (void)closure;
    const char *s = mms_sp_tokenizer_info(TOK(o)).normalizer_name;
    return str_from_c(s, strlen(s));
}

static Py_ssize_t sp_len(PyObject *o) { return (Py_ssize_t)mms_sp_tokenizer_info(TOK(o)).vocab_size; }

static PyGetSetDef sp_getset[] = {
    {"vocab_size", sp_get_vocab_size, NULL, "Number of pieces (ids are 0 .. vocab_size - 1).", NULL},
    {"model_type", sp_get_model_type, NULL, "'bpe' or 'unigram'.", NULL},
    {"unk_id", sp_get_unk_id, NULL, "Id of <unk> (-1 if none).", NULL},
    {"bos_id", sp_get_bos_id, NULL, "Id of the BOS control piece (-1 if none).", NULL},
    {"eos_id", sp_get_eos_id, NULL, "Id of the EOS control piece (-1 if none).", NULL},
    {"pad_id", sp_get_pad_id, NULL, "Id of the PAD control piece (-1 if none).", NULL},
    {"byte_fallback", sp_get_byte_fallback, NULL, "Unknown characters become <0xXX> byte pieces.", NULL},
    {"add_dummy_prefix", sp_get_add_dummy_prefix, NULL, "Normalizer puts a '\\u2581' in front.", NULL},
    {"remove_extra_whitespaces", sp_get_remove_extra_whitespaces, NULL, "Normalizer drops extra spaces.", NULL},
    {"escape_whitespaces", sp_get_escape_whitespaces, NULL, "Normalizer writes ' ' as '\\u2581'.", NULL},
    {"treat_whitespace_as_suffix", sp_get_treat_whitespace_as_suffix, NULL, "Dummy '\\u2581' at the end.", NULL},
    {"has_charsmap", sp_get_has_charsmap, NULL, "A precompiled_charsmap normalizes text (nmt_nfkc, ...).", NULL},
    {"has_denormalizer", sp_get_has_denormalizer, NULL, "Decoded text goes through a denormalizer charsmap.", NULL},
    {"normalizer_name", sp_get_normalizer_name, NULL, "NormalizerSpec.name.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef sp_methods[] = {
    {"from_file", sp_from_file, METH_O | METH_CLASS,
     "from_file(path) -> SentencePiece\n\nLoad a tokenizer.model / spiece.model (FileNotFoundError names a missing\n"
     "file, mmsuite.FormatError a corrupt one)."},
    {"encode", (PyCFunction)(void (*)(void))sp_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(text, add_bos=False, add_eos=False) -> list[int]\n\n"
     "Ids of text (str, or bytes taken as they are), as sentencepiece's encode()."},
    {"encode_batch", (PyCFunction)(void (*)(void))sp_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "encode_batch(texts, context_length=64, truncate=True, pad_id=0, add_bos=False, add_eos=False,\n"
     "             return_lengths=False) -> (ids, mask[, lengths])\n\n"
     "Encode texts into int64 arrays ids and mask of shape (n, context_length): rows\n"
     "[BOS] ids [EOS], padded with pad_id; mask is 1 on tokens. A longer row is cut with EOS\n"
     "kept last (truncate) or raises ValueError naming the text. lengths (n,) are the\n"
     "untruncated row lengths. Runs without the GIL, in parallel."},
    {"decode", sp_decode, METH_O,
     "decode(ids) -> str\n\nsentencepiece's decode(): control pieces dropped, <unk> as ' \\u2047 ', byte pieces\n"
     "joined as UTF-8 (U+FFFD per bad byte), leading '\\u2581' dropped. ValueError for an id out of range."},
    {"normalize", sp_normalize, METH_O, "normalize(text) -> str\n\nThe text the model segments (sentencepiece's normalize())."},
    {"piece_to_id", sp_piece_to_id, METH_O, "piece_to_id(piece) -> int | None"},
    {"id_to_piece", sp_id_to_piece, METH_O, "id_to_piece(id) -> str | None"},
    {"piece_type", sp_piece_type, METH_O,
     "piece_type(id) -> 'normal' | 'unknown' | 'control' | 'user_defined' | 'unused' | 'byte' | None"},
    {"score", sp_score, METH_O, "score(id) -> float (IndexError out of range)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot sp_slots[] = {
    {Py_tp_doc, "SentencePiece(model, name=None)\n\n"
                "SentencePiece tokenizer (BPE or unigram) from the bytes of a ModelProto file\n"
                "(tokenizer.model, spiece.model); `name` is used in error messages. Ids match the\n"
                "sentencepiece library. Immutable; safe to use from several threads."},
    {Py_tp_new, sp_new},
    {Py_tp_dealloc, sp_dealloc},
    {Py_tp_methods, sp_methods},
    {Py_tp_getset, sp_getset},
    {Py_sq_length, sp_len},
    {0, NULL},
};

static PyType_Spec sp_spec = {
    "mmsuite._C.SentencePiece", sizeof(SentencePieceObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    sp_slots,
};

int mms_py_init_sentencepiece(PyObject *m) {
    PyObject *type = PyType_FromSpec(&sp_spec);
    if (!type) return -1;
    if (PyModule_AddObject(m, "SentencePiece", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}
