/* py_common.h -- helpers shared by the binding files (csrc/py/ files).
 * The binding only converts arguments, releases the GIL, calls the C API and
 * turns mms_error values into Python exceptions. */
#ifndef MMS_PY_COMMON_H
#define MMS_PY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../mms_common.h"

/* Raise the Python exception matching err->code with err->msg; returns NULL.
 *   MMS_ERR_NOMEM -> MemoryError, MMS_ERR_IO / MMS_ERR_NOT_FOUND -> FileNotFoundError
 *   (OSError for IO), MMS_ERR_FORMAT -> mmsuite.FormatError (a ValueError),
 *   MMS_ERR_VALUE -> ValueError, MMS_ERR_CONFIG -> mmsuite.ConfigError (a ValueError),
 *   MMS_ERR_UNSUPPORTED -> mmsuite.UnsupportedError (a NotImplementedError),
 *   MMS_ERR_INTERNAL -> RuntimeError. */
PyObject *mms_py_raise(const mms_error *err);

/* A Python sequence of ints -> PyMem_Malloc'd int64 array (*n elements; free with PyMem_Free),
 * or NULL with TypeError/ValueError naming `what`. */
int64_t *mms_py_ids_from_seq(PyObject *obj, const char *what, Py_ssize_t *n);

/* Registration hooks called by the module init (module.c); each returns 0 / -1. */
int mms_py_init_image(PyObject *m);
int mms_py_init_tokenizer(PyObject *m);
int mms_py_init_model(PyObject *m);
int mms_py_init_ops(PyObject *m);
int mms_py_init_sentencepiece(PyObject *m);

#endif
