/* config.h -- reading model config JSON files (HF config.json, open_clip_config.json).
 * A thin layer over cJSON that turns missing/mistyped keys into MMS_ERR_CONFIG errors
 * naming the file and key, and applies caller-supplied defaults (HF's config.json omits
 * keys equal to the class default). */
#ifndef MMS_CONFIG_H
#define MMS_CONFIG_H

#include <cjson/cJSON.h>

#include "mms_common.h"

/* Upper bounds of the sizes a config may declare: far above any real checkpoint, low enough that
 * nothing sized from them can overflow or ask for absurd memory before the weights' shapes are
 * checked against them. */
#define MMS_CONFIG_MAX_DIM ((int64_t)1 << 20)       /* hidden / ffn sizes, heads, head dims, image sides */
#define MMS_CONFIG_MAX_VOCAB ((int64_t)1 << 24)
#define MMS_CONFIG_MAX_LAYERS 1000
#define MMS_CONFIG_MAX_POSITIONS ((int64_t)1 << 40)

typedef struct mms_json {
    cJSON *root;
    char *path; /* for error messages */
} mms_json;

/* Parse file `path`; MMS_ERR_NOT_FOUND if absent, MMS_ERR_FORMAT for bad JSON. */
mms_status mms_json_load(const char *path, mms_json *out, mms_error *err);
/* Parse len bytes of text (need not be NUL-terminated; parsing stops at a NUL). `name` (may be
 * NULL: "<memory>") is what error messages call it. MMS_ERR_FORMAT for bad JSON or a non-object. */
mms_status mms_json_parse(const char *text, size_t len, const char *name, mms_json *out, mms_error *err);
void mms_json_free(mms_json *j);

/* Lookups in object `obj` (NULL obj -> default). `what` prefixes the key in errors
 * (e.g. "vision_config"). Wrong JSON type -> MMS_ERR_CONFIG. */
mms_status mms_json_int(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t dflt,
                        int64_t *out, mms_error *err);
mms_status mms_json_float(const mms_json *j, const cJSON *obj, const char *what, const char *key, double dflt,
                          double *out, mms_error *err);
/* *out points into the JSON tree (valid until mms_json_free), or is dflt. */
mms_status mms_json_str(const mms_json *j, const cJSON *obj, const char *what, const char *key, const char *dflt,
                        const char **out, mms_error *err);
mms_status mms_json_bool(const mms_json *j, const cJSON *obj, const char *what, const char *key, int dflt, int *out,
                         mms_error *err);
/* mms_json_int, then MMS_ERR_CONFIG naming the key and the value unless lo <= value <= hi (the
 * default too). Sizes a config declares are bounded here, before anything is allocated from them. */
mms_status mms_json_int_range(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t dflt,
                              int64_t lo, int64_t hi, int64_t *out, mms_error *err);
/* Required int key: missing -> MMS_ERR_CONFIG. */
mms_status mms_json_int_req(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t *out,
                            mms_error *err);
const cJSON *mms_json_obj(const cJSON *obj, const char *key); /* child object or NULL */

#endif
