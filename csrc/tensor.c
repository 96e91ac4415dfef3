/* tensor.c -- tensor views, reference-counted storage, dtype conversion. */
#include "mms_tensor.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const size_t k_dtype_size[MMS_DTYPE_COUNT] = {4, 2, 2, 4, 8, 1};
static const char *k_dtype_name[MMS_DTYPE_COUNT] = {"float32", "float16", "bfloat16",
                                                    "int32",   "int64",   "uint8"};

size_t mms_dtype_size(mms_dtype t) { return (unsigned)t < MMS_DTYPE_COUNT ? k_dtype_size[t] : 0; }
const char *mms_dtype_name(mms_dtype t) { return (unsigned)t < MMS_DTYPE_COUNT ? k_dtype_name[t] : "?"; }

static void host_storage_destroy(mms_storage *s) {
    mms_free(s->data);
    mms_free(s);
}

mms_storage *mms_storage_new_host(size_t n) {
    mms_storage *s = mms_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->data = mms_malloc(n ? n : 1);
    if (!s->data) {
        mms_free(s);
        return NULL;
    }
    s->refs = 1;
    s->size = n;
    s->device = MMS_DEVICE_CPU;
    s->destroy = host_storage_destroy;
    return s;
}

void mms_storage_retain(mms_storage *s) {
    if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void mms_storage_release(mms_storage *s) {
    if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) s->destroy(s);
}

mms_tensor mms_tensor_view(void *data, mms_dtype dt, int ndim, const int64_t *ne) {
    mms_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    t.ndim = ndim;
    t.data = data;
    int64_t stride = (int64_t)mms_dtype_size(dt);
    for (int i = ndim - 1; i >= 0; i--) {
        t.ne[i] = ne[i];
        t.nb[i] = stride;
        stride *= ne[i];
    }
    return t;
}

mms_status mms_tensor_alloc(mms_tensor *t, mms_dtype dt, int ndim, const int64_t *ne, mms_error *err) {
    if (ndim < 0 || ndim > MMS_MAX_DIMS) return mms_error_set(err, MMS_ERR_VALUE, "tensor rank %d out of range", ndim);
    size_t n = mms_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        if (ne[i] < 0 || (ne[i] && n > SIZE_MAX / (size_t)ne[i]))
            return mms_error_set(err, MMS_ERR_VALUE, "tensor dimension %d has bad size %lld", i, (long long)ne[i]);
        n *= (size_t)ne[i];
    }
    mms_storage *s = mms_storage_new_host(n);
    if (!s) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory allocating %zu bytes", n);
    *t = mms_tensor_view(s->data, dt, ndim, ne);
    t->storage = s;
    return MMS_OK;
}

void mms_tensor_release(mms_tensor *t) {
    if (!t) return;
    mms_storage_release(t->storage);
    memset(t, 0, sizeof *t);
}

int64_t mms_tensor_numel(const mms_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

size_t mms_tensor_nbytes(const mms_tensor *t) { return (size_t)mms_tensor_numel(t) * mms_dtype_size(t->dtype); }

int mms_tensor_is_contiguous(const mms_tensor *t) {
    int64_t stride = (int64_t)mms_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->ne[i] != 1 && t->nb[i] != stride) return 0;
        stride *= t->ne[i];
    }
    return 1;
}

const char *mms_tensor_shape_str(const mms_tensor *t, char *buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->ne[i]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

float mms_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31) v.u = sign | 0x7f800000u | (man << 13);
    else v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

mms_status mms_convert(const void *src, mms_dtype st, void *dst, mms_dtype dt, int64_t n, mms_error *err) {
    if (dt != MMS_DTYPE_F32 && dt != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "conversion to %s not supported", mms_dtype_name(dt));
    if (st != MMS_DTYPE_F32 && st != MMS_DTYPE_F16 && st != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "conversion from %s not supported", mms_dtype_name(st));
    int nt = n > (1 << 16) ? mms_get_num_threads() : 1;
    /* one branch-free loop per (src, dst) pair so each vectorizes */
    if (st == MMS_DTYPE_F32 && dt == MMS_DTYPE_BF16) {
        const float *x = src;
        uint16_t *y = dst;
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = mms_f32_to_bf16(x[i]);
    } else if (st == MMS_DTYPE_BF16 && dt == MMS_DTYPE_F32) {
        const uint16_t *x = src;
        float *y = dst;
        #pragma omp parallel for simd num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = mms_bf16_to_f32(x[i]);
    } else if (st == dt) {
        memcpy(dst, src, (size_t)n * mms_dtype_size(st));
    } else {
        #pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float f;
            switch (st) {
            case MMS_DTYPE_F32: f = ((const float *)src)[i]; break;
            case MMS_DTYPE_F16: f = mms_f16_to_f32(((const uint16_t *)src)[i]); break;
            default: f = mms_bf16_to_f32(((const uint16_t *)src)[i]); break;
            }
            if (dt == MMS_DTYPE_F32) ((float *)dst)[i] = f;
            else ((uint16_t *)dst)[i] = mms_f32_to_bf16(f);
        }
    }
    return MMS_OK;
}

void mms_storage_drop_pages(mms_storage *s, const void *p, size_t n) {
    if (!s || !s->is_file_map || !n) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + n) & ~(page - 1);
    uintptr_t s_lo = (uintptr_t)s->data, s_hi = s_lo + s->size;
    if (lo < s_lo) lo = s_lo;
    if (hi > s_hi) hi = s_hi;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
