/* matmul_dnnl.c -- the CPU linear op on oneDNN matmul: y = act(x W^T + b) [+ residual].
 *
 * W stays in its checkpoint layout (out, in) and is described to oneDNN as a (K, N) matrix
 * with tag `ba`, so mmap'ed fp32 weights are used in place. bf16 weights (converted once at
 * load) run on AMX / AVX512-BF16 when the CPU has them (oneDNN picks the ISA). Activation
 * and residual add are fused as post-ops. Primitives are cached per
 * (M, K, N, dtypes, bias, act, residual); scratchpads are per call (user mode), so one
 * primitive serves concurrent callers. */
#ifndef MMS_NO_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <string.h>
#include <omp.h>

#include "cpu_internal.h"

typedef struct prim_key {
    int64_t M, K, N;
    int xdt, wdt, ydt, bias, act, residual;
} prim_key;

typedef struct prim_entry {
    prim_key key;
    dnnl_primitive_t prim;
    size_t scratch_bytes;
} prim_entry;

#define CACHE_CAP 2048
static prim_entry g_cache[CACHE_CAP];
static int g_cache_n;
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_engine_status;
static _Thread_local dnnl_stream_t t_stream;

static void engine_init(void) { g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0); }

static dnnl_data_type_t to_dnnl(mms_dtype d) { return d == MMS_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32; }

static mms_status dnnl_fail(mms_error *err, const char *what, dnnl_status_t s) {
    return mms_error_set(err, MMS_ERR_INTERNAL, "oneDNN %s failed (status %d)", what, (int)s);
}

static mms_status create_prim(const prim_key *k, prim_entry *out, mms_error *err) {
    dnnl_memory_desc_t src = NULL, wei = NULL, bias = NULL, dst = NULL, res = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    mms_status rc = MMS_OK;
    dnnl_status_t s;
    dnnl_dims_t dsrc = {k->M, k->K}, dwei = {k->K, k->N}, ddst = {k->M, k->N}, dbias = {1, k->N};
    if ((s = dnnl_memory_desc_create_with_tag(&src, 2, dsrc, to_dnnl(k->xdt), dnnl_ab)) ||
        (s = dnnl_memory_desc_create_with_tag(&wei, 2, dwei, to_dnnl(k->wdt), dnnl_ba)) ||
        (s = dnnl_memory_desc_create_with_tag(&dst, 2, ddst, to_dnnl(k->ydt), dnnl_ab)) ||
        (k->bias && (s = dnnl_memory_desc_create_with_tag(&bias, 2, dbias, dnnl_f32, dnnl_ab))) ||
        (k->residual && (s = dnnl_memory_desc_create_with_tag(&res, 2, ddst, dnnl_f32, dnnl_ab))) ||
        (s = dnnl_primitive_attr_create(&attr)) ||
        (s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) ||
        (s = dnnl_post_ops_create(&po))) {
        rc = dnnl_fail(err, "descriptor setup", s);
        goto done;
    }
    if (k->act != MMS_ACT_NONE) {
        dnnl_alg_kind_t alg = dnnl_eltwise_relu;
        float alpha = 0.f;
        switch ((mms_act)k->act) {
        case MMS_ACT_GELU: alg = dnnl_eltwise_gelu_erf; break;
        case MMS_ACT_GELU_TANH: alg = dnnl_eltwise_gelu_tanh; break;
        case MMS_ACT_QUICK_GELU: alg = dnnl_eltwise_swish; alpha = 1.702f; break;
        case MMS_ACT_SILU: alg = dnnl_eltwise_swish; alpha = 1.f; break;
        default: alg = dnnl_eltwise_relu; break;
        }
        if ((s = dnnl_post_ops_append_eltwise(po, alg, alpha, 0.f))) { rc = dnnl_fail(err, "eltwise post-op", s); goto done; }
    }
    if (k->residual && (s = dnnl_post_ops_append_binary(po, dnnl_binary_add, res))) {
        rc = dnnl_fail(err, "binary post-op", s);
        goto done;
    }
    if ((s = dnnl_primitive_attr_set_post_ops(attr, po))) { rc = dnnl_fail(err, "post-ops", s); goto done; }
    if ((s = dnnl_matmul_primitive_desc_create(&pd, g_engine, src, wei, bias, dst, attr))) {
        rc = dnnl_fail(err, "matmul descriptor", s);
        goto done;
    }
    const_dnnl_memory_desc_t smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    out->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if ((s = dnnl_primitive_create(&out->prim, pd))) rc = dnnl_fail(err, "matmul primitive", s);
    out->key = *k;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(src);
    dnnl_memory_desc_destroy(wei);
    dnnl_memory_desc_destroy(dst);
    dnnl_memory_desc_destroy(bias);
    dnnl_memory_desc_destroy(res);
    return rc;
}

/* Cached primitive for key; *owned = 1 when the cache was full and the caller must destroy it. */
static mms_status get_prim(const prim_key *k, prim_entry *out, int *owned, mms_error *err) {
    *owned = 0;
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < g_cache_n; i++) {
        if (memcmp(&g_cache[i].key, k, sizeof *k) == 0) {
            *out = g_cache[i];
            pthread_mutex_unlock(&g_cache_lock);
            return MMS_OK;
        }
    }
    pthread_mutex_unlock(&g_cache_lock);
    mms_status rc = create_prim(k, out, err);
    if (rc != MMS_OK) return rc;
    pthread_mutex_lock(&g_cache_lock);
    for (int i = 0; i < g_cache_n; i++) { /* another thread may have raced us */
        if (memcmp(&g_cache[i].key, k, sizeof *k) == 0) {
            dnnl_primitive_destroy(out->prim);
            *out = g_cache[i];
            pthread_mutex_unlock(&g_cache_lock);
            return MMS_OK;
        }
    }
    if (g_cache_n < CACHE_CAP) g_cache[g_cache_n++] = *out;
    else *owned = 1;
    pthread_mutex_unlock(&g_cache_lock);
    return MMS_OK;
}

static mms_status bind(dnnl_memory_t *m, int64_t r, int64_t c, mms_dtype dt, dnnl_format_tag_t tag, void *p,
                       mms_error *err) {
    dnnl_memory_desc_t md;
    dnnl_dims_t d = {r, c};
    dnnl_status_t s = dnnl_memory_desc_create_with_tag(&md, 2, d, to_dnnl(dt), tag);
    if (s == dnnl_success) {
        s = dnnl_memory_create(m, md, g_engine, p);
        dnnl_memory_desc_destroy(md);
    }
    return s == dnnl_success ? MMS_OK : dnnl_fail(err, "memory", s);
}

/* Shared with attention_gemm.c: the engine and this thread's stream (NULL on failure). */
dnnl_engine_t mms_dnnl_engine(void) {
    pthread_once(&g_engine_once, engine_init);
    return g_engine_status == dnnl_success ? g_engine : NULL;
}

dnnl_stream_t mms_dnnl_stream(void) {
    if (!mms_dnnl_engine()) return NULL;
    if (!t_stream && dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags) != dnnl_success) return NULL;
    return t_stream;
}

mms_status mms_cpu_linear_dnnl(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                               mms_tensor *y, mms_error *err) {
    pthread_once(&g_engine_once, engine_init);
    if (g_engine_status != dnnl_success) return dnnl_fail(err, "engine creation", g_engine_status);
    if (!t_stream && dnnl_stream_create(&t_stream, g_engine, dnnl_stream_default_flags) != dnnl_success)
        return mms_error_set(err, MMS_ERR_INTERNAL, "oneDNN stream creation failed");
    const int64_t K = mms_linear_in(L), N = mms_linear_out(L), M = mms_tensor_numel(x) / K;
    if (M == 0) return MMS_OK;
    /* bf16 weights need bf16 inputs: convert x when the caller passed fp32 */
    void *xconv = NULL;
    const void *xdata = x->data;
    mms_dtype xdt = x->dtype;
    if (xdt != L->w.dtype) {
        xconv = mms_malloc((size_t)(M * K) * mms_dtype_size(L->w.dtype));
        if (!xconv) return mms_error_set(err, MMS_ERR_NOMEM, "linear: out of memory");
        mms_status rc = mms_convert(x->data, xdt, xconv, L->w.dtype, M * K, err);
        if (rc != MMS_OK) { mms_free(xconv); return rc; }
        xdata = xconv;
        xdt = L->w.dtype;
    }
    prim_key key;
    memset(&key, 0, sizeof key);
    key.M = M; key.K = K; key.N = N;
    key.xdt = xdt; key.wdt = L->w.dtype; key.ydt = y->dtype;
    key.bias = L->b.ndim > 0; key.act = act; key.residual = residual != NULL;
    prim_entry pe;
    int owned = 0;
    mms_status rc = get_prim(&key, &pe, &owned, err);
    if (rc != MMS_OK) { mms_free(xconv); return rc; }
    void *scratch = pe.scratch_bytes ? mms_cpu_scratch_alloc(pe.scratch_bytes) : NULL;
    dnnl_memory_t msrc = NULL, mwei = NULL, mdst = NULL, mbias = NULL, mres = NULL, mscr = NULL;
    if (pe.scratch_bytes && !scratch) { rc = mms_error_set(err, MMS_ERR_NOMEM, "linear: out of memory (scratchpad)"); goto done; }
    if ((rc = bind(&msrc, M, K, xdt, dnnl_ab, (void *)xdata, err)) ||
        (rc = bind(&mwei, K, N, L->w.dtype, dnnl_ba, L->w.data, err)) ||
        (rc = bind(&mdst, M, N, y->dtype, dnnl_ab, y->data, err)) ||
        (key.bias && (rc = bind(&mbias, 1, N, MMS_DTYPE_F32, dnnl_ab, L->b.data, err))) ||
        (residual && (rc = bind(&mres, M, N, MMS_DTYPE_F32, dnnl_ab, residual->data, err))))
        goto done;
    if (pe.scratch_bytes) {
        const_dnnl_memory_desc_t smd = NULL;
        const_dnnl_primitive_desc_t cpd = NULL;
        dnnl_primitive_get_primitive_desc(pe.prim, &cpd);
        smd = dnnl_primitive_desc_query_md(cpd, dnnl_query_scratchpad_md, 0);
        if (dnnl_memory_create(&mscr, smd, g_engine, scratch) != dnnl_success) { rc = dnnl_fail(err, "scratchpad", 0); goto done; }
    }
    dnnl_exec_arg_t args[6];
    int nargs = 0;
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, msrc};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mwei};
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mdst};
    if (mbias) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mbias};
    if (mres) {
        int idx = act != MMS_ACT_NONE ? 1 : 0; /* binary post-op index */
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(idx) | DNNL_ARG_SRC_1, mres};
    }
    if (mscr) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mscr};
    omp_set_num_threads(mms_get_num_threads());
    dnnl_status_t s = dnnl_primitive_execute(pe.prim, t_stream, nargs, args);
    if (s == dnnl_success) s = dnnl_stream_wait(t_stream);
    if (s != dnnl_success) rc = dnnl_fail(err, "matmul execution", s);
done:
    if (msrc) dnnl_memory_destroy(msrc);
    if (mwei) dnnl_memory_destroy(mwei);
    if (mdst) dnnl_memory_destroy(mdst);
    if (mbias) dnnl_memory_destroy(mbias);
    if (mres) dnnl_memory_destroy(mres);
    if (mscr) dnnl_memory_destroy(mscr);
    mms_cpu_scratch_free(scratch);
    mms_free(xconv);
    if (owned) dnnl_primitive_destroy(pe.prim);
    return rc;
}
#endif /* MMS_NO_DNNL */
