/* cpu_backend.c -- the CPU backend's vtable, ISA detection and weight preparation. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cpu_internal.h"

mms_status mms_cpu_layernorm(mms_backend *, const mms_tensor *, const float *, const float *, float, mms_tensor *, mms_error *);
mms_status mms_cpu_activation(mms_backend *, mms_tensor *, mms_act, mms_error *);
mms_status mms_cpu_add(mms_backend *, mms_tensor *, const mms_tensor *, mms_error *);
/* decoder_kernels.c */
mms_status mms_cpu_rmsnorm(mms_backend *, const mms_tensor *, const float *, float, mms_tensor *, mms_error *);
mms_status mms_cpu_rope(mms_backend *, float *, int64_t, int64_t, int64_t, int64_t, int64_t, const int64_t *,
                        const float *, float, mms_error *);
mms_status mms_cpu_glu(mms_backend *, const float *, int64_t, const float *, int64_t, int64_t, int64_t, mms_act,
                       mms_tensor *, mms_error *);
mms_status mms_cpu_store_rows(mms_backend *, void *, mms_dtype, int64_t, const float *, int64_t, int64_t, int64_t,
                              mms_error *);
mms_status mms_cpu_kv_attention(mms_backend *, const mms_kv_attn_args *, mms_error *);
mms_status mms_cpu_embedding(mms_backend *, const mms_tensor *, const mms_tensor *, mms_tensor *, mms_error *);
mms_status mms_cpu_im2col(mms_backend *, const mms_tensor *, int, mms_tensor *, mms_error *);
mms_status mms_cpu_copy2d(mms_backend *, float *, int64_t, const float *, int64_t, int64_t, int64_t, mms_error *);
mms_status mms_cpu_l2_normalize(mms_backend *, mms_tensor *, mms_error *);

static atomic_int g_forced = -1;

mms_cpu_isa mms_cpu_isa_get(void) {
    int f = atomic_load(&g_forced);
    if (f >= 0) return (mms_cpu_isa)f;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return MMS_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MMS_ISA_AVX2;
    return MMS_ISA_GENERIC;
}

static atomic_int g_no_amx; /* an ISA without tiles is forced (tests) */

void mms_cpu_force_isa(int isa) {
    mms_cpu_isa best;
    atomic_store(&g_forced, -1);
    best = mms_cpu_isa_get();
    atomic_store(&g_forced, isa < 0 ? -1 : (isa > (int)best ? (int)best : isa));
    atomic_store(&g_no_amx, isa >= 0 && isa < MMS_ISA_AVX512_AMX);
}

const char *mms_cpu_isa_name(void) {
    static const char *n[] = {"scalar", "avx2", "avx512"};
    return n[mms_cpu_isa_get()];
}

int mms_cpu_has_amx(void) {
    /* CPUID.(EAX=7,ECX=0):EDX bit 22 = AMX-BF16 */
    unsigned a = 7, b = 0, c = 0, d = 0;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return (d >> 22) & 1;
}

int mms_cpu_amx_usable(void) {
    static atomic_int granted = -1;
    if (atomic_load(&g_no_amx)) return 0;
    int g = atomic_load(&granted);
    if (g < 0) {
#ifdef __linux__ /* the tile data state is off until asked for: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) */
        g = mms_cpu_has_amx() && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
        g = 0;
#endif
        atomic_store(&granted, g);
    }
    return g;
}

/* Activation buffers are large and requested with the same sizes on every call; a small cache
 * of freed blocks (exact size match, bounded total) avoids re-faulting fresh pages each call. */
#define CACHE_SLOTS 64
#define CACHE_MAX_BYTES ((size_t)1 << 30)
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_cache[CACHE_SLOTS];
static size_t g_cache_bytes;

static size_t round_size(size_t n) { return n < 65536 ? (n ? n : 1) : (n + 65535) & ~(size_t)65535; }

void *mms_cpu_scratch_alloc(size_t n) {
    n = round_size(n);
    if (n >= 65536) {
        pthread_mutex_lock(&g_cache_lock);
        for (int i = 0; i < CACHE_SLOTS; i++) {
            if (g_cache[i] && mms_alloc_size(g_cache[i]) == n) {
                void *p = g_cache[i];
                g_cache[i] = NULL;
                g_cache_bytes -= n;
                pthread_mutex_unlock(&g_cache_lock);
                return p;
            }
        }
        pthread_mutex_unlock(&g_cache_lock);
    }
    return mms_malloc(n);
}

void mms_cpu_scratch_free(void *p) {
    if (!p) return;
    size_t n = mms_alloc_size(p);
    if (n >= 65536) {
        pthread_mutex_lock(&g_cache_lock);
        if (g_cache_bytes + n <= CACHE_MAX_BYTES) {
            for (int i = 0; i < CACHE_SLOTS; i++) {
                if (!g_cache[i]) {
                    g_cache[i] = p;
                    g_cache_bytes += n;
                    pthread_mutex_unlock(&g_cache_lock);
                    return;
                }
            }
        }
        pthread_mutex_unlock(&g_cache_lock);
    }
    mms_free(p);
}

static void *cpu_alloc(mms_backend *be, size_t n) { (void)be; return mms_cpu_scratch_alloc(n); }
static void cpu_free(mms_backend *be, void *p) { (void)be; mms_cpu_scratch_free(p); }

void mms_cpu_trim(void) {
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        mms_free(g_cache[i]);
        g_cache[i] = NULL;
    }
    g_cache_bytes = 0;
    pthread_mutex_unlock(&g_cache_lock);
}
static mms_status cpu_copy(mms_backend *be, void *dst, const void *src, size_t n, mms_error *err) {
    (void)be; (void)err;
    memcpy(dst, src, n);
    return MMS_OK;
}
static mms_status cpu_sync(mms_backend *be, mms_error *err) { (void)be; (void)err; return MMS_OK; }

/* Rows of x up to which linear runs on the GEMV kernel (gemv.c) instead of oneDNN. Measured
 * (2 threads, Sapphire Rapids, W from DRAM, K = N = 2048): at 8 rows the kernel still streams
 * 21.9 GB/s of bf16 W and 20.4 of fp32 W against oneDNN's 17.2 and 16.5, so the crossover lies
 * above 8 and the threshold is the kernel's limit (MMS_GEMV_MAX_M). */
#define GEMV_MAX_ROWS MMS_GEMV_MAX_M

static mms_status cpu_linear(mms_backend *be, const mms_tensor *x, const mms_linear *L, mms_act act,
                             const mms_tensor *residual, mms_tensor *y, mms_error *err) {
    (void)be;
    const int64_t N = mms_linear_out(L);
    if (N > 0 && mms_tensor_numel(y) / N <= GEMV_MAX_ROWS && L->w.device == MMS_DEVICE_CPU)
        return mms_cpu_gemv(x, L, act, residual, y, err);
    return mms_cpu_linear_dnnl(x, L, act, residual, y, err);
}

static mms_status cpu_attention(mms_backend *be, const mms_attn_args *a, mms_error *err) {
    (void)be;
#ifndef MMS_NO_DNNL
    /* long sequences: GEMM-based path (oneDNN); short ones: the fused kernel */
    /* (its fp32 variant reads q/k/v through strided views, which cannot express shared kv heads;
     * and its softmax knows no sliding window) */
    const int gqa = a->n_kv_heads && a->n_kv_heads != a->n_heads, windowed = a->window > 0 && a->window < a->n_kv;
    if (a->n_q >= 128 && a->n_kv >= 128 && !windowed && (!gqa || a->low_precision)) return mms_cpu_attention_gemm(a, err);
#endif
    return mms_cpu_attention_isa(a, mms_cpu_isa_get(), err);
}

/* Borrow src when it already has the wanted dtype and is contiguous; else convert. */
static mms_status prepare_tensor(const mms_tensor *src, mms_dtype want, mms_tensor *out, mms_error *err) {
    if (src->dtype == want && mms_tensor_is_contiguous(src)) {
        *out = *src;
        mms_storage_retain(out->storage);
        return MMS_OK;
    }
    if (!mms_tensor_is_contiguous(src)) return mms_error_set(err, MMS_ERR_VALUE, "weight is not contiguous");
    mms_status rc = mms_tensor_alloc(out, want, src->ndim, src->ne, err);
    if (rc != MMS_OK) return rc;
    rc = mms_convert(src->data, src->dtype, out->data, want, mms_tensor_numel(src), err);
    if (rc != MMS_OK) mms_tensor_release(out);
    else mms_storage_drop_pages(src->storage, src->data, mms_tensor_nbytes(src)); /* source not read again */
    return rc;
}

static mms_status cpu_tensor_prepare(mms_backend *be, const mms_tensor *src, mms_dtype dtype, mms_tensor *out,
                                     mms_error *err) {
    (void)be;
    return prepare_tensor(src, dtype, out, err);
}

static mms_status cpu_softmax(mms_backend *be, mms_tensor *x, mms_error *err) {
    (void)be; (void)err;
    const int64_t C = x->ne[x->ndim - 1], rows = mms_tensor_numel(x) / C;
    mms_cpu_softmax_rows(x->data, rows, C, 1, NULL, 0, 0, 1.0f);
    return MMS_OK;
}

static void cpu_destroy(mms_backend *be) { (void)be; }

static const mms_backend_vtable k_cpu_vt = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .linear = cpu_linear,
    .layernorm = mms_cpu_layernorm,
    .attention = cpu_attention,
    .rmsnorm = mms_cpu_rmsnorm,
    .rope = mms_cpu_rope,
    .glu = mms_cpu_glu,
    .store_rows = mms_cpu_store_rows,
    .kv_attention = mms_cpu_kv_attention,
    .softmax = cpu_softmax,
    .activation = mms_cpu_activation,
    .add = mms_cpu_add,
    .embedding = mms_cpu_embedding,
    .im2col = mms_cpu_im2col,
    .copy2d = mms_cpu_copy2d,
    .l2_normalize = mms_cpu_l2_normalize,
    .tensor_prepare = cpu_tensor_prepare,
    .destroy = cpu_destroy,
};

static mms_backend g_cpu = {&k_cpu_vt, MMS_DEVICE_CPU, NULL};

mms_backend *mms_backend_cpu(void) { return &g_cpu; }

#ifndef MMS_WITH_CUDA
mms_backend *mms_backend_cuda(mms_error *err) {
    mms_error_set(err, MMS_ERR_UNSUPPORTED, "device='cuda': mmsuite was built without CUDA (nvcc/cuBLAS not found at build time)");
    return NULL;
}
#endif
