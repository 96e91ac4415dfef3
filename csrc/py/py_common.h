/* py_common.h -- helpers shared by the binding files (csrc/py/ files).
 * The binding only converts arguments, releases the GIL, calls the C API and
 * turns mms_error values into Python exceptions. */
#ifndef MMS_PY_COMMON_H
#define MMS_PY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../mms_tensor.h"

#ifndef Py_TPFLAGS_IMMUTABLETYPE /* Python < 3.10 */
#define Py_TPFLAGS_IMMUTABLETYPE 0
#endif

/* Raise the Python exception matching err->code with err->msg; returns NULL.
 *   MMS_ERR_NOMEM -> MemoryError, MMS_ERR_IO / MMS_ERR_NOT_FOUND -> FileNotFoundError
 *   (OSError for IO), MMS_ERR_FORMAT -> mmsuite.FormatError (a ValueError),
 *   MMS_ERR_VALUE -> ValueError, MMS_ERR_CONFIG -> mmsuite.ConfigError (a ValueError),
 *   MMS_ERR_UNSUPPORTED -> mmsuite.UnsupportedError (a NotImplementedError),
 *   MMS_ERR_INTERNAL -> RuntimeError. */
PyObject *mms_py_raise(const mms_error *err);

/* "float32"/"fp32"/"f32" or "bfloat16"/"bf16" -> *dt; 0, or -1 with a ValueError. */
int mms_py_parse_dtype(const char *s, mms_dtype *dt);
/* "cpu" or "cuda"/"cuda:N" -> the backend, or NULL with an exception (ValueError for an unknown
 * name; the CUDA backend's error when it is not built or no device is usable). */
struct mms_backend *mms_py_backend(const char *device);

/* A Python sequence of ints -> PyMem_Malloc'd int64 array (*n elements; free with PyMem_Free),
 * or NULL with TypeError/ValueError naming `what`. */
int64_t *mms_py_ids_from_seq(PyObject *obj, const char *what, Py_ssize_t *n);

/* ids (n,) -> a new list of int, or NULL with an exception set. ids stay the caller's. */
PyObject *mms_py_ids_to_list(const int64_t *ids, size_t n);

/* ---- text arguments of the tokenizer bindings (py_text.c) ---------------------------- */

/* The UTF-8 bytes of a str (alive as long as the str) or, when allow_bytes, of a bytes
 * object (alive as long as it); 0, or -1 with an exception: a TypeError
 * "<what> must be str[ or bytes], not <type>" for any other type. */
int mms_py_text_utf8(PyObject *o, const char *what, int allow_bytes, const char **data, Py_ssize_t *len);

/* The texts of an encode_batch call as UTF-8 pointers, and the int64 arrays the C batch
 * encoder fills. Everything it points to stays alive (a tuple copy holds the texts) until
 * mms_py_batch_finish, so the encoder can run without the GIL. */
typedef struct mms_py_batch {
    Py_ssize_t n;                   /* number of texts */
    const char **ptrs;              /* (n,) UTF-8 of each text, borrowed from texts */
    size_t *lens;                   /* (n,) their lengths in bytes */
    int64_t *ids_out, *mask_out;    /* (n, context_length) each: ids and mask's data */
    int64_t *lengths_out;           /* (n,) lengths' data, NULL unless asked for */
    PyObject *texts;                /* owned: tuple(texts) */
    PyObject *ids, *mask, *lengths; /* owned numpy arrays (lengths NULL unless asked for) */
    Py_buffer ids_v, mask_v, len_v; /* their views */
} mms_py_batch;

/* Collect texts (a sequence of str, or also bytes when allow_bytes; a wrong item is a
 * TypeError naming "encode_batch: texts[i]") and make the arrays. 0, or -1 with an
 * exception and nothing left to free. */
int mms_py_batch_init(mms_py_batch *b, PyObject *texts, int allow_bytes, long long context_length,
                      int return_lengths);

/* A C batch encoder called on b's texts and arrays (it gets the tok and params given to
 * mms_py_batch_run) and runs without the GIL. */
typedef mms_status (*mms_py_batch_fn)(const void *tok, const void *params, const mms_py_batch *b,
                                      mms_error *err);

/* Run fn without the GIL; the result is (ids, mask[, lengths]), or NULL with fn's error
 * raised. Frees everything b holds either way. */
PyObject *mms_py_batch_run(mms_py_batch *b, mms_py_batch_fn fn, const void *tok, const void *params);

/* A C decoder: ids (n,) -> a new mms_malloc'd string (*text, *len bytes); runs without the GIL. */
typedef mms_status (*mms_py_decode_fn)(const void *ctx, const int64_t *ids, size_t n, char **text,
                                       size_t *len, mms_error *err);

/* decode(ids) of a binding: the sequence of ints ids_o through fn (without the GIL) to a
 * str, its UTF-8 decoded with Python's `errors` handler; NULL with an exception. */
PyObject *mms_py_decode(PyObject *ids_o, mms_py_decode_fn fn, const void *ctx, const char *errors);

/* Registration hooks called by the module init (module.c); each returns 0 / -1. */
int mms_py_init_image(PyObject *m);
int mms_py_init_tokenizer(PyObject *m);
int mms_py_init_model(PyObject *m);
int mms_py_init_ops(PyObject *m);
int mms_py_init_sentencepiece(PyObject *m);

#endif
