/* py_tokenizer_hf.c -- mmsuite._C.HFTokenizer, the Python face of csrc/tokenizer_hf.h.
 * Converts arguments, releases the GIL around the C calls and raises mms_error values;
 * tokenizer_config.json is read by mmsuite/tokenizer.py, which passes what it says here. */
#include "py_common.h"

#include "../tokenizer_hf.h"

typedef struct {
    PyObject_HEAD
    mms_hf_tokenizer *tok; /* owned; immutable and thread safe once built */
} HFTokenizerObject;

#define TOK(o) (((HFTokenizerObject *)(o))->tok)

static PyObject *wrap(PyTypeObject *cls, mms_hf_tokenizer *tok) {
    HFTokenizerObject *self = (HFTokenizerObject *)cls->tp_alloc(cls, 0);
    if (!self) {
        mms_hf_tokenizer_free(tok);
        return NULL;
    }
    self->tok = tok;
    return (PyObject *)self;
}

/* ==== options =============================================================================== */

/* The keyword-only options every constructor takes (mms_hf_options), as parsed. */
#define OPTION_KWLIST "special_tokens", "override_post_processor", "add_bos", "add_eos", "bos_token", "eos_token", \
                      "add_prefix_space"
#define OPTION_FORMAT "$Opppzzp" /* after a '|' */
#define OPTION_ADDRS(a) &(a).special, &(a).override_post, &(a).add_bos, &(a).add_eos, &(a).bos, &(a).eos, &(a).prefix

typedef struct opt_args {
    PyObject *special; /* borrowed from the call's arguments */
    int override_post, add_bos, add_eos, prefix;
    const char *bos, *eos; /* UTF-8 of the argument str objects */
} opt_args;

#define OPT_ARGS_INIT {Py_None, 0, 0, 0, 0, NULL, NULL}

/* mms_hf_options of parsed arguments; its strings point into objects `keep` holds (a tuple of
 * the special tokens) or the call's own str objects, alive during the call. */
typedef struct py_options {
    mms_hf_options o;
    PyObject *keep;         /* owned */
    const char **specials;  /* PyMem */
} py_options;

static void options_clear(py_options *p) {
    Py_CLEAR(p->keep);
    PyMem_Free(p->specials);
    p->specials = NULL;
}

static int options_parse(py_options *p, const opt_args *a) {
    memset(p, 0, sizeof *p);
    p->o = mms_hf_default_options();
    p->o.override_post_processor = a->override_post;
    p->o.add_bos = a->add_bos;
    p->o.add_eos = a->add_eos;
    p->o.bos_token = a->bos;
    p->o.eos_token = a->eos;
    p->o.add_prefix_space = a->prefix;
    if (a->special == Py_None) return 0;
    if (PyUnicode_Check(a->special)) {
        PyErr_SetString(PyExc_TypeError, "special_tokens must be a sequence of str, not a str");
        return -1;
    }
    if (!(p->keep = PySequence_Tuple(a->special))) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(p->keep);
    if (!(p->specials = PyMem_Malloc(((size_t)n + 1) * sizeof *p->specials))) {
        PyErr_NoMemory();
        options_clear(p);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t len;
        if (mms_py_text_utf8(PyTuple_GET_ITEM(p->keep, i), "special_tokens[i]", 0, &p->specials[i], &len) < 0) {
            options_clear(p);
            return -1;
        }
    }
    p->o.special_tokens = p->specials;
    p->o.n_special_tokens = (size_t)n;
    return 0;
}

/* ==== construction =========================================================================== */

static PyObject *hf_new(PyTypeObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"json", "name", OPTION_KWLIST, NULL};
    PyObject *json_o;
    const char *name = NULL;
    opt_args a = OPT_ARGS_INIT;
    py_options opts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|z" OPTION_FORMAT ":HFTokenizer", kwlist, &json_o, &name,
                                     OPTION_ADDRS(a)))
        return NULL;
    const char *json;
    Py_ssize_t len;
    if (mms_py_text_utf8(json_o, "HFTokenizer: json", 1, &json, &len) < 0 || options_parse(&opts, &a) < 0)
        return NULL;
    mms_hf_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_hf_tokenizer_create_json(json, (size_t)len, name, &opts.o, &tok, &err);
    Py_END_ALLOW_THREADS
    options_clear(&opts);
    if (st) return mms_py_raise(&err);
    return wrap(cls, tok);
}

static PyObject *hf_from_file(PyObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", OPTION_KWLIST, NULL};
    PyObject *path = NULL;
    opt_args a = OPT_ARGS_INIT;
    py_options opts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|" OPTION_FORMAT ":from_file", kwlist, PyUnicode_FSConverter,
                                     &path, OPTION_ADDRS(a)))
        return NULL;
    if (options_parse(&opts, &a) < 0) {
        Py_DECREF(path);
        return NULL;
    }
    mms_hf_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_hf_tokenizer_load(PyBytes_AS_STRING(path), &opts.o, &tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    options_clear(&opts);
    if (st) return mms_py_raise(&err);
    return wrap((PyTypeObject *)cls, tok);
}

static PyObject *hf_from_gpt2_files(PyObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"vocab_path", "merges_path", OPTION_KWLIST, NULL};
    PyObject *vocab = NULL, *merges = NULL;
    opt_args a = OPT_ARGS_INIT;
    py_options opts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&|" OPTION_FORMAT ":from_gpt2_files", kwlist,
                                     PyUnicode_FSConverter, &vocab, PyUnicode_FSConverter, &merges, OPTION_ADDRS(a))) {
        Py_XDECREF(vocab);
        return NULL;
    }
    if (options_parse(&opts, &a) < 0) {
        Py_DECREF(vocab);
        Py_DECREF(merges);
        return NULL;
    }
    mms_hf_tokenizer *tok = NULL;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_hf_tokenizer_load_gpt2(PyBytes_AS_STRING(vocab), PyBytes_AS_STRING(merges), &opts.o, &tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(vocab);
    Py_DECREF(merges);
    options_clear(&opts);
    if (st) return mms_py_raise(&err);
    return wrap((PyTypeObject *)cls, tok);
}

static void hf_dealloc(PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    mms_hf_tokenizer_free(TOK(o));
    tp->tp_free(o);
    Py_DECREF(tp); /* instances of heap types own a reference to their type */
}

/* ==== encode / decode ============================================================================ */

static int encode_flags(int add_special, int split_special) {
    return (add_special ? MMS_HF_ADD_SPECIAL : 0) | (split_special ? MMS_HF_SPLIT_SPECIAL : 0);
}

static PyObject *hf_encode(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"text", "add_special_tokens", "split_special_tokens", NULL};
    PyObject *text_o;
    int add_special = 1, split_special = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|pp:encode", kwlist, &text_o, &add_special, &split_special))
        return NULL;
    const char *text;
    Py_ssize_t len;
    if (mms_py_text_utf8(text_o, "encode: text", 1, &text, &len) < 0) return NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_hf_tokenizer_encode(TOK(o), text, (size_t)len, encode_flags(add_special, split_special), &ids, &n, &err);
    Py_END_ALLOW_THREADS
    if (st) return mms_py_raise(&err);
    PyObject *list = mms_py_ids_to_list(ids, n);
    mms_free(ids);
    return list;
}

static mms_status batch_c(const void *tok, const void *params, const mms_py_batch *b, mms_error *err) {
    return mms_hf_tokenizer_encode_batch(tok, b->ptrs, b->lens, b->n, *(const mms_hf_batch_params *)params,
                                         b->ids_out, b->mask_out, b->lengths_out, err);
}

static PyObject *hf_encode_batch(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"texts", "context_length", "truncate", "pad_id", "add_special_tokens",
                             "split_special_tokens", "return_lengths", NULL};
    mms_hf_batch_params p = mms_hf_batch_default_params();
    PyObject *texts_o;
    long long context_length = p.context_length, pad_id = p.pad_id;
    int add_special = 1, split_special = 0, return_lengths = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|LpLppp:encode_batch", kwlist, &texts_o, &context_length,
                                     &p.truncate, &pad_id, &add_special, &split_special, &return_lengths))
        return NULL;
    if (PyUnicode_Check(texts_o))
        return PyErr_Format(PyExc_TypeError, "encode_batch: texts must be a sequence of str, not a str");
    const int64_t *pre, *suf;
    size_t np, ns;
    mms_hf_tokenizer_template(TOK(o), &pre, &np, &suf, &ns);
    long long min_len = add_special ? (long long)(np + ns) : 0;
    if (min_len < 1) min_len = 1;
    if (context_length < min_len)
        return PyErr_Format(PyExc_ValueError, "encode_batch: context_length must be >= %lld, got %lld", min_len,
                            context_length);
    p.context_length = context_length;
    p.pad_id = pad_id;
    p.flags = encode_flags(add_special, split_special);
    mms_py_batch b;
    if (mms_py_batch_init(&b, texts_o, 0, context_length, return_lengths) < 0) return NULL;
    return mms_py_batch_run(&b, batch_c, TOK(o), &p);
}

typedef struct decode_args {
    const mms_hf_tokenizer *tok;
    int skip_special;
} decode_args;

static mms_status decode_c(const void *ctx, const int64_t *ids, size_t n, char **text, size_t *len, mms_error *err) {
    const decode_args *a = ctx;
    return mms_hf_tokenizer_decode(a->tok, ids, n, a->skip_special, text, len, err);
}

static PyObject *hf_decode(PyObject *o, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"ids", "skip_special_tokens", NULL};
    decode_args a = {TOK(o), 0};
    PyObject *ids_o;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:decode", kwlist, &ids_o, &a.skip_special)) return NULL;
    return mms_py_decode(ids_o, decode_c, &a, "strict"); /* valid UTF-8 by construction */
}

/* ==== lookups ==================================================================================== */

static PyObject *hf_token_to_id(PyObject *o, PyObject *arg) {
    const char *s;
    Py_ssize_t len;
    if (mms_py_text_utf8(arg, "token_to_id: token", 0, &s, &len) < 0) return NULL;
    int64_t id = mms_hf_tokenizer_token_to_id(TOK(o), s, (size_t)len);
    if (id < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(id);
}

static PyObject *hf_id_to_token(PyObject *o, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    size_t len;
    const char *s = mms_hf_tokenizer_id_to_token(TOK(o), id, &len);
    if (!s) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace");
}

static PyObject *hf_is_special(PyObject *o, PyObject *arg) {
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) return NULL;
    return PyBool_FromLong(mms_hf_tokenizer_is_special(TOK(o), id));
}

static PyObject *hf_get_vocab_size(PyObject *o, void *c) {
    (void)c;
    return PyLong_FromLongLong(mms_hf_tokenizer_vocab_size(TOK(o)));
}

static PyObject *hf_get_model_vocab_size(PyObject *o, void *c) {
    (void)c;
    return PyLong_FromLongLong(mms_hf_tokenizer_model_vocab_size(TOK(o)));
}

static PyObject *hf_get_unk_id(PyObject *o, void *c) {
    (void)c;
    return PyLong_FromLongLong(mms_hf_tokenizer_unk_id(TOK(o)));
}

static PyObject *hf_get_template(PyObject *o, void *c) {
    (void)c;
    const int64_t *pre, *suf;
    size_t np, ns;
    mms_hf_tokenizer_template(TOK(o), &pre, &np, &suf, &ns);
    PyObject *a = mms_py_ids_to_list(pre, np), *b = a ? mms_py_ids_to_list(suf, ns) : NULL;
    PyObject *r = b ? PyTuple_Pack(2, a, b) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    return r;
}

static PyObject *hf_get_added_tokens(PyObject *o, void *c) {
    (void)c;
    size_t n = mms_hf_tokenizer_n_added(TOK(o));
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        mms_hf_added_token a = mms_hf_tokenizer_added(TOK(o), i);
        PyObject *d = Py_BuildValue("{s:L,s:s#,s:O,s:O,s:O,s:O,s:O}", "id", (long long)a.id, "content", a.content,
                                    (Py_ssize_t)a.len, "special", a.special ? Py_True : Py_False, "lstrip",
                                    a.lstrip ? Py_True : Py_False, "rstrip", a.rstrip ? Py_True : Py_False,
                                    "single_word", a.single_word ? Py_True : Py_False, "normalized",
                                    a.normalized ? Py_True : Py_False);
        if (!d) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, d);
    }
    return list;
}

static PyObject *hf_get_decoders(PyObject *o, void *c) {
    (void)c;
    PyObject *list = PyList_New(0);
    const char *name;
    for (size_t i = 0; list && (name = mms_hf_tokenizer_decoder(TOK(o), i)); i++) {
        PyObject *s = PyUnicode_FromString(name);
        if (!s || PyList_Append(list, s) < 0) Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
}

static PyGetSetDef hf_getset[] = {
    {"vocab_size", hf_get_vocab_size, NULL, "Max id + 1 (model vocabulary and added tokens).", NULL},
    {"model_vocab_size", hf_get_model_vocab_size, NULL, "Entries of the model vocabulary alone.", NULL},
    {"unk_id", hf_get_unk_id, NULL, "The BPE model's unk token id, -1 if none.", NULL},
    {"template", hf_get_template, NULL, "(prefix ids, suffix ids) the post-processor puts around a text.", NULL},
    {"decoders", hf_get_decoders, NULL, "Types of the decoder steps, in order (Sequences flattened).", NULL},
    {"added_tokens", hf_get_added_tokens, NULL, "The added tokens as dicts (id, content, flags), in file order.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define OPTIONS_DOC                                                                                               \
    "Options (keyword-only): special_tokens (added as special tokens unless already added),\n"                  \
    "override_post_processor, add_bos, add_eos, bos_token, eos_token (the [bos] $A [eos] template\n"            \
    "transformers builds from tokenizer_config.json), add_prefix_space (GPT-2 files)."

static PyMethodDef hf_methods[] = {
    {"from_file", (PyCFunction)(void (*)(void))hf_from_file, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "from_file(path, **options) -> HFTokenizer\n\nLoad a tokenizer.json, or a directory with tokenizer.json,\n"
     "vocab.json + merges.txt or encoder.json + vocab.bpe. " OPTIONS_DOC},
    {"from_gpt2_files", (PyCFunction)(void (*)(void))hf_from_gpt2_files, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "from_gpt2_files(vocab_path, merges_path, **options) -> HFTokenizer\n\n"
     "GPT-2 layout: vocab.json / encoder.json + merges.txt / vocab.bpe. " OPTIONS_DOC},
    {"encode", (PyCFunction)(void (*)(void))hf_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(text, add_special_tokens=True, split_special_tokens=False) -> list[int]\n\n"
     "Ids of text (str or UTF-8 bytes); without the GIL."},
    {"encode_batch", (PyCFunction)(void (*)(void))hf_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "encode_batch(texts, context_length=512, truncate=True, pad_id=0, add_special_tokens=True,\n"
     "             split_special_tokens=False, return_lengths=False) -> (ids, mask[, lengths])\n\n"
     "int64 arrays (n, context_length), right-padded; a longer text keeps its template ids and\n"
     "as many of its own as fit (truncate) or raises ValueError. Parallel, without the GIL."},
    {"decode", (PyCFunction)(void (*)(void))hf_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(ids, skip_special_tokens=False) -> str\n\nThe file's decoder; ValueError for an unknown id."},
    {"token_to_id", hf_token_to_id, METH_O, "token_to_id(token) -> int | None"},
    {"id_to_token", hf_id_to_token, METH_O, "id_to_token(id) -> str | None"},
    {"is_special", hf_is_special, METH_O, "is_special(id) -> bool (a special added token)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot hf_slots[] = {
    {Py_tp_doc, "HFTokenizer(json, name=None, **options)\n\n"
                "BPE tokenizer of a Hugging Face tokenizer.json (its text, str or bytes; name is used in\n"
                "error messages). Immutable; safe to use from several threads. " OPTIONS_DOC},
    {Py_tp_new, hf_new},
    {Py_tp_dealloc, hf_dealloc},
    {Py_tp_methods, hf_methods},
    {Py_tp_getset, hf_getset},
    {0, NULL},
};

static PyType_Spec hf_spec = {
    "mmsuite._C.HFTokenizer", sizeof(HFTokenizerObject), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE, hf_slots,
};

int mms_py_init_tokenizer_hf(PyObject *m) {
    PyObject *type = PyType_FromSpec(&hf_spec);
    if (!type) return -1;
    if (PyModule_AddObject(m, "HFTokenizer", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}
