/* common.c -- error slots, the aligned allocator with statistics, thread count. */
#include "mms_common.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

mms_status mms_error_set(mms_error *err, mms_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

mms_status mms_error_prefix(mms_error *err, const char *fmt, ...) {
    if (!err) return MMS_ERR_INTERNAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t k = strlen(prefix);
    if (k > sizeof err->msg - 3) k = sizeof err->msg - 3;
    memcpy(err->msg, prefix, k);
    memcpy(err->msg + k, ": ", 2);
    size_t room = sizeof err->msg - k - 3;
    size_t m = strnlen(old, room);
    memcpy(err->msg + k + 2, old, m);
    err->msg[k + 2 + m] = 0;
    return err->code;
}

mms_status mms_error_in_file(mms_error *err, const char *path) {
    if (!err) return MMS_ERR_INTERNAL;
    if (!path || strstr(err->msg, path)) return err->code;
    return mms_error_prefix(err, "%s", path);
}

/* Each block carries a 64-byte header holding its size, so frees can be counted. */
#define MMS_ALIGN 64
typedef struct { size_t size; } block_hdr;

static atomic_llong g_cur, g_peak, g_count;

static void stats_add(long long n) {
    long long cur = atomic_fetch_add(&g_cur, n) + n;
    long long peak = atomic_load(&g_peak);
    while (cur > peak && !atomic_compare_exchange_weak(&g_peak, &peak, cur)) {}
}

void *mms_malloc(size_t n) {
    if (n > SIZE_MAX - MMS_ALIGN) return NULL;
    void *raw = NULL;
    if (posix_memalign(&raw, MMS_ALIGN, n + MMS_ALIGN) != 0) return NULL;
    ((block_hdr *)raw)->size = n;
    stats_add((long long)n);
    atomic_fetch_add(&g_count, 1);
    return (char *)raw + MMS_ALIGN;
}

void *mms_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = mms_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *mms_realloc(void *p, size_t n) {
    if (!p) return mms_malloc(n);
    size_t old = ((block_hdr *)((char *)p - MMS_ALIGN))->size;
    void *q = mms_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    mms_free(p);
    return q;
}

void mms_free(void *p) {
    if (!p) return;
    void *raw = (char *)p - MMS_ALIGN;
    stats_add(-(long long)((block_hdr *)raw)->size);
    atomic_fetch_sub(&g_count, 1);
    free(raw);
}

size_t mms_alloc_size(const void *p) { return p ? ((const block_hdr *)((const char *)p - MMS_ALIGN))->size : 0; }

char *mms_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mms_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

mms_mem_stats mms_mem_get_stats(void) {
    mms_mem_stats s = {atomic_load(&g_cur), atomic_load(&g_peak), atomic_load(&g_count)};
    return s;
}

static atomic_int g_threads;

void mms_set_num_threads(int n) { atomic_store(&g_threads, n < 0 ? 0 : n); }

int mms_get_num_threads(void) {
    int n = atomic_load(&g_threads);
    if (n > 0) return n;
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

int mms_grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < n) c += c / 2;
    if (c > SIZE_MAX / sz) return -1;
    void *q = mms_realloc(*p, c * sz);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}
