/* finite.c -- NaN / Inf scans of activations (see finite.h). */
#include "finite.h"

#include <string.h>

static int g_mode = MMS_FINITE_OUTPUTS; /* atomic */

void mms_set_finite_mode(mms_finite_mode m) { __atomic_store_n(&g_mode, (int)m, __ATOMIC_RELAXED); }
mms_finite_mode mms_get_finite_mode(void) { return (mms_finite_mode)__atomic_load_n(&g_mode, __ATOMIC_RELAXED); }

/* Count of values whose exponent bits are all ones (NaN or Inf): integer compares, so the
 * loop vectorises and is immune to fast-math assumptions. */
static int64_t count_nonfinite(const float *x, int64_t n) {
    const uint32_t *u = (const uint32_t *)x;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += (u[i] & 0x7f800000u) == 0x7f800000u;
    return bad;
}

/* x: n values starting at flat index `offset` of n_total */
static mms_status report(const float *x, int64_t n, int64_t offset, int64_t n_total, const char *what,
                         const char *hint, mms_error *err) {
    const uint32_t *u = (const uint32_t *)x;
    int64_t nan = 0, inf = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        if ((u[i] & 0x7f800000u) != 0x7f800000u) continue;
        if (first < 0) first = i;
        if (u[i] & 0x007fffffu) nan++;
        else inf++;
    }
    return mms_error_set(err, MMS_ERR_NONFINITE, "non-finite values in %s: %lld NaN, %lld Inf of %lld values (first at flat index %lld)%s",
                         what, (long long)nan, (long long)inf, (long long)n_total, (long long)(offset + first), hint ? hint : "");
}

mms_status mms_check_finite_host(const float *x, int64_t n, const char *what, const char *hint, mms_error *err) {
    if (n <= 0 || count_nonfinite(x, n) == 0) return MMS_OK;
    return report(x, n, 0, n, what, hint, err);
}

mms_status mms_check_finite(mms_backend *be, const float *x, int64_t n, const char *what, const char *hint,
                            mms_error *err) {
    if (be->device == MMS_DEVICE_CPU) return mms_check_finite_host(x, n, what, hint, err);
    enum { CHUNK = 1 << 18 };
    float *buf = mms_malloc(CHUNK * sizeof(float));
    if (!buf) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    mms_status rc = MMS_OK;
    for (int64_t i = 0; rc == MMS_OK && i < n; i += CHUNK) {
        const int64_t m = n - i < CHUNK ? n - i : CHUNK;
        rc = be->vt->download(be, buf, x + i, (size_t)m * sizeof(float), err);
        if (rc == MMS_OK && count_nonfinite(buf, m))
            rc = report(buf, m, i, n, what, hint, err); /* the counts are this chunk's */
    }
    mms_free(buf);
    return rc;
}
