/* py_llm.h -- language-model handles shared by py_llm.c and py_blip2.c (not installed). */
#ifndef MMS_PY_LLM_H
#define MMS_PY_LLM_H

#include "py_common.h"

#include "../blip2.h"
#include "../llava.h"

#define LM_CAPSULE "mmsuite.lm"
#define STATE_CAPSULE "mmsuite.lm_state"

/* One loaded model: exactly one of lm / llava / blip2 is set. */
typedef struct {
    mms_decoder *lm;    /* standalone causal LM (owned) or NULL       */
    mms_llava *llava;   /* LLaVA (owns its decoder) or NULL            */
    mms_blip2 *blip2;   /* BLIP-2 (owns its language model) or NULL    */
    int busy;           /* calls in flight (GIL held when touched)     */
    int n_states;       /* live states using the weights               */
    int dead;           /* unloaded: freed when the last state goes     */
} lm_handle;

typedef struct {
    mms_decoder_state *st;
    PyObject *model;    /* owned reference: the model outlives the state */
    int busy;
} state_handle;

/* The handle of a live model capsule, or NULL with an exception set. */
lm_handle *mms_py_get_lm(PyObject *cap);
/* A state capsule not in use by another thread, or NULL with an exception set. */
state_handle *mms_py_get_state(PyObject *cap);
const mms_decoder *mms_py_handle_decoder(const lm_handle *h);
/* New model capsule owning the model (freed on failure). */
PyObject *mms_py_wrap_lm(mms_decoder *lm, mms_llava *llava, mms_blip2 *blip2);
/* Adds "blip2": {...} to an lm_info dict; -1 with an exception on failure (py_blip2.c). */
int mms_py_blip2_info(const mms_blip2 *m, PyObject *info);

#endif
