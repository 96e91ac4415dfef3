/* tokenizer_hf_json.h -- reading tokenizer.json with cJSON: small typed lookups and the
 * error helper shared by tokenizer_hf_json.c (normalizer, pre-tokenizer, decoder and
 * post-processor readers) and tokenizer_hf_load.c (model, added tokens, constructors).
 * Internal. */
#ifndef MMS_TOKENIZER_HF_JSON_H
#define MMS_TOKENIZER_HF_JSON_H

#include "tokenizer_hf_internal.h"

/* An error whose message starts with the file (name) and the JSON key path (at). */
mms_status mms_hf_fail(mms_error *err, mms_status code, const char *name, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* In a reader with `t` and `err` in scope. */
#define FAIL(code, at, ...) mms_hf_fail(err, code, t->name, at, __VA_ARGS__)
#define NOMEM() mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", t->name)

static inline const cJSON *jget(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static inline int jnull(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Boolean o[key] (default when absent or null); -1 if it is another type. */
static inline int jbool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = jget(o, key);
    if (jnull(v)) return dflt;
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

static inline const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline int jint(const cJSON *v, int64_t lo, int64_t hi, int64_t *out) {
    /* range first: casting a double outside int64's range is undefined behaviour */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9.0e18 && v->valuedouble <= 9.0e18) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *out = (int64_t)v->valuedouble;
    return *out >= lo && *out <= hi ? 0 : -1;
}

static inline char *dup_n(const char *s, size_t n) {
    char *p = mms_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Append one element to a growable array (*arr, *n); 0 or -1. */
static inline int grow_one(void **arr, size_t *n, size_t size) {
    void *p = mms_realloc(*arr, (*n + 1) * size);
    if (!p) return -1;
    *arr = p;
    memset((char *)p + *n * size, 0, size);
    (*n)++;
    return 0;
}

/* Append ids (k,) to the growable array *arr (*n). 0 or -1. */
static inline int append_ids(int64_t **arr, size_t *n, const int64_t *ids, size_t k) {
    int64_t *p = mms_realloc(*arr, (*n + k + 1) * sizeof *p);
    if (!p) return -1;
    if (k) memcpy(p + *n, ids, k * sizeof *ids);
    *arr = p;
    *n += k;
    return 0;
}

/* The pipeline parts of a tokenizer.json, appended to t's steps; `at` names the key for
 * messages. A null object adds nothing. */
mms_status mms_hf_read_normalizer(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err);
mms_status mms_hf_read_pre(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err);
mms_status mms_hf_read_decoder(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err);
mms_status mms_hf_read_post(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err);

#endif
