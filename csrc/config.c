/* config.c -- typed lookups with defaults and precise errors over cJSON. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Up to the first NUL, as the NUL-terminated parse before it; only whitespace (cJSON's: bytes
 * <= 0x20) may follow the object. */
mms_status mms_json_parse(const char *text, size_t len, const char *name, mms_json *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) name = "<memory>";
    len = strnlen(text, len);
    const char *end = NULL;
    out->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    while (out->root && end < text + len && (unsigned char)*end <= ' ') end++;
    if (!out->root || !cJSON_IsObject(out->root) || end != text + len) {
        long at = end ? (long)(end - text) : -1;
        cJSON_Delete(out->root);
        out->root = NULL;
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: not a valid JSON object (error near byte %ld)", name, at);
    }
    out->path = mms_strdup(name);
    if (!out->path) {
        mms_json_free(out);
        return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    }
    return MMS_OK;
}

mms_status mms_json_load(const char *path, mms_json *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return mms_error_set(err, errno == ENOENT ? MMS_ERR_NOT_FOUND : MMS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (16l << 20)) {
        fclose(f);
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: unreasonable size for a config file", path);
    }
    char *buf = mms_malloc((size_t)n + 1);
    if (!buf) { fclose(f); return mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    mms_status rc = mms_json_parse(buf, got, path, out, err);
    mms_free(buf);
    return rc;
}

void mms_json_free(mms_json *j) {
    if (!j) return;
    cJSON_Delete(j->root);
    mms_free(j->path);
    memset(j, 0, sizeof *j);
}

const cJSON *mms_json_obj(const cJSON *obj, const char *key) {
    const cJSON *c = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsObject(c) ? c : NULL;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *c = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (c && !cJSON_IsNull(c)) ? c : NULL;
}

static mms_status bad(const mms_json *j, const char *what, const char *key, const char *need, mms_error *err) {
    return mms_error_set(err, MMS_ERR_CONFIG, "%s: key '%s%s%s' must be %s", j->path, what ? what : "", what ? "." : "",
                         key, need);
}

mms_status mms_json_int(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t dflt,
                        int64_t *out, mms_error *err) {
    const cJSON *c = get(obj, key);
    if (!c) { *out = dflt; return MMS_OK; }
    if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) || fabs(c->valuedouble) > 9e15)
        return bad(j, what, key, "an integer", err);
    *out = (int64_t)c->valuedouble;
    return MMS_OK;
}

mms_status mms_json_int_range(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t dflt,
                              int64_t lo, int64_t hi, int64_t *out, mms_error *err) {
    mms_status rc = mms_json_int(j, obj, what, key, dflt, out, err);
    if (rc != MMS_OK || (*out >= lo && *out <= hi)) return rc;
    return mms_error_set(err, MMS_ERR_CONFIG, "%s: key '%s%s%s' = %lld is out of range (expected %lld .. %lld)", j->path,
                         what ? what : "", what ? "." : "", key, (long long)*out, (long long)lo, (long long)hi);
}

mms_status mms_json_int_req(const mms_json *j, const cJSON *obj, const char *what, const char *key, int64_t *out,
                            mms_error *err) {
    if (!get(obj, key))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: missing required key '%s%s%s'", j->path, what ? what : "",
                             what ? "." : "", key);
    return mms_json_int(j, obj, what, key, 0, out, err);
}

mms_status mms_json_float(const mms_json *j, const cJSON *obj, const char *what, const char *key, double dflt,
                          double *out, mms_error *err) {
    const cJSON *c = get(obj, key);
    if (!c) { *out = dflt; return MMS_OK; }
    if (!cJSON_IsNumber(c)) return bad(j, what, key, "a number", err);
    *out = c->valuedouble;
    return MMS_OK;
}

mms_status mms_json_str(const mms_json *j, const cJSON *obj, const char *what, const char *key, const char *dflt,
                        const char **out, mms_error *err) {
    const cJSON *c = get(obj, key);
    if (!c) { *out = dflt; return MMS_OK; }
    if (!cJSON_IsString(c)) return bad(j, what, key, "a string", err);
    *out = c->valuestring;
    return MMS_OK;
}

mms_status mms_json_bool(const mms_json *j, const cJSON *obj, const char *what, const char *key, int dflt, int *out,
                         mms_error *err) {
    const cJSON *c = get(obj, key);
    if (!c) { *out = dflt; return MMS_OK; }
    if (!cJSON_IsBool(c)) return bad(j, what, key, "true or false", err);
    *out = cJSON_IsTrue(c);
    return MMS_OK;
}
