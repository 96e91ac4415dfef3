/* attention_gemm.c -- attention for long sequences as two batched oneDNN matmuls per sequence:
 * S (H, Tq, Tk) = Q K^T over strided views of the q/k/v buffers (no copies), a vectorized
 * masked softmax in place, then O (H, Tq, hd) = P V written straight into the (Tq, H*hd) output
 * layout. With low_precision (bf16 models) oneDNN may run both products in bf16 on AMX
 * (fpmath_mode bf16). Primitives are cached per shape/stride set; scratchpads are per call. */
#ifndef MMS_NO_DNNL
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "cpu_internal.h"

dnnl_engine_t mms_dnnl_engine(void);
dnnl_stream_t mms_dnnl_stream(void);

typedef struct bmm_key {
    int64_t dims_a[3], str_a[3], dims_b[3], str_b[3], dims_c[3], str_c[3];
    int dt_a, dt_b, dt_c, lowp; /* 1 = bf16 */
} bmm_key;

typedef struct bmm_entry {
    bmm_key key;
    dnnl_primitive_t prim;
    size_t scratch;
} bmm_entry;

#define BMM_CAP 256
static bmm_entry g_bmm[BMM_CAP];
static int g_bmm_n;
static pthread_mutex_t g_bmm_lock = PTHREAD_MUTEX_INITIALIZER;

static dnnl_status_t md3(dnnl_memory_desc_t *md, const int64_t *dims, const int64_t *str, dnnl_data_type_t dt) {
    dnnl_dims_t d = {dims[0], dims[1], dims[2]}, st = {str[0], str[1], str[2]};
    return dnnl_memory_desc_create_with_strides(md, 3, d, dt, st);
}

static mms_status fail(mms_error *err, const char *what, dnnl_status_t s) {
    return mms_error_set(err, MMS_ERR_INTERNAL, "oneDNN attention %s failed (status %d)", what, (int)s);
}

static mms_status bmm_get(const bmm_key *k, bmm_entry *out, int *owned, mms_error *err) {
    *owned = 0;
    pthread_mutex_lock(&g_bmm_lock);
    for (int i = 0; i < g_bmm_n; i++)
        if (!memcmp(&g_bmm[i].key, k, sizeof *k)) {
            *out = g_bmm[i];
            pthread_mutex_unlock(&g_bmm_lock);
            return MMS_OK;
        }
    pthread_mutex_unlock(&g_bmm_lock);
    dnnl_memory_desc_t a = NULL, b = NULL, c = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t s;
    mms_status rc = MMS_OK;
    if ((s = md3(&a, k->dims_a, k->str_a, k->dt_a ? dnnl_bf16 : dnnl_f32)) ||
        (s = md3(&b, k->dims_b, k->str_b, k->dt_b ? dnnl_bf16 : dnnl_f32)) ||
        (s = md3(&c, k->dims_c, k->str_c, k->dt_c ? dnnl_bf16 : dnnl_f32)) ||
        (s = dnnl_primitive_attr_create(&attr)) ||
        (s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) ||
        (s = dnnl_matmul_primitive_desc_create(&pd, mms_dnnl_engine(), a, b, NULL, c, attr)) ||
        (s = dnnl_primitive_create(&out->prim, pd))) {
        rc = fail(err, "primitive creation", s);
    } else {
        const_dnnl_memory_desc_t smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        out->scratch = smd ? dnnl_memory_desc_get_size(smd) : 0;
        out->key = *k;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    dnnl_memory_desc_destroy(a);
    dnnl_memory_desc_destroy(b);
    dnnl_memory_desc_destroy(c);
    if (rc != MMS_OK) return rc;
    pthread_mutex_lock(&g_bmm_lock);
    if (g_bmm_n < BMM_CAP) g_bmm[g_bmm_n++] = *out;
    else *owned = 1;
    pthread_mutex_unlock(&g_bmm_lock);
    return MMS_OK;
}

/* c = a @ b for 3-D strided views (batch = heads). */
static mms_status bmm_run(const bmm_key *k, const void *pa, const void *pb, void *pc, mms_error *err) {
    bmm_entry e;
    int owned;
    mms_status rc = bmm_get(k, &e, &owned, err);
    if (rc != MMS_OK) return rc;
    dnnl_stream_t st = mms_dnnl_stream();
    dnnl_memory_desc_t da = NULL, db = NULL, dc = NULL;
    dnnl_memory_t ma = NULL, mb = NULL, mc = NULL, ms = NULL;
    void *scratch = e.scratch ? mms_cpu_scratch_alloc(e.scratch) : NULL;
    dnnl_status_t s = dnnl_success;
    if (!st) s = dnnl_runtime_error;
    if (!s && e.scratch && !scratch) { rc = mms_error_set(err, MMS_ERR_NOMEM, "attention: out of memory"); goto done; }
    if (s || (s = md3(&da, k->dims_a, k->str_a, k->dt_a ? dnnl_bf16 : dnnl_f32)) ||
        (s = md3(&db, k->dims_b, k->str_b, k->dt_b ? dnnl_bf16 : dnnl_f32)) ||
        (s = md3(&dc, k->dims_c, k->str_c, k->dt_c ? dnnl_bf16 : dnnl_f32)) ||
        (s = dnnl_memory_create(&ma, da, mms_dnnl_engine(), (void *)pa)) ||
        (s = dnnl_memory_create(&mb, db, mms_dnnl_engine(), (void *)pb)) ||
        (s = dnnl_memory_create(&mc, dc, mms_dnnl_engine(), pc))) {
        rc = fail(err, "memory setup", s);
        goto done;
    }
    if (e.scratch) {
        const_dnnl_primitive_desc_t cpd = NULL;
        dnnl_primitive_get_primitive_desc(e.prim, &cpd);
        if ((s = dnnl_memory_create(&ms, dnnl_primitive_desc_query_md(cpd, dnnl_query_scratchpad_md, 0),
                                    mms_dnnl_engine(), scratch))) {
            rc = fail(err, "scratchpad", s);
            goto done;
        }
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}, {DNNL_ARG_SCRATCHPAD, ms}};
    omp_set_num_threads(mms_get_num_threads());
    if ((s = dnnl_primitive_execute(e.prim, st, ms ? 4 : 3, args)) || (s = dnnl_stream_wait(st))) rc = fail(err, "execution", s);
done:
    if (ma) dnnl_memory_destroy(ma);
    if (mb) dnnl_memory_destroy(mb);
    if (mc) dnnl_memory_destroy(mc);
    if (ms) dnnl_memory_destroy(ms);
    dnnl_memory_desc_destroy(da);
    dnnl_memory_desc_destroy(db);
    dnnl_memory_desc_destroy(dc);
    mms_cpu_scratch_free(scratch);
    if (owned) dnnl_primitive_destroy(e.prim);
    return rc;
}

/* token-major f32 rows (T, H*hd) with row stride `stride` -> head-major bf16 (H, T, hd), the
 * plain layout oneDNN's AMX (brgemm) matmul wants */
/* G: query heads per source head (grouped-query attention replicates each kv head G times) */
static void to_bf16_heads(const float *src, int64_t stride, int64_t T, int64_t Tp, int64_t H, int64_t hd, int64_t G,
                          uint16_t *dst) {
    #pragma omp parallel for collapse(2) num_threads(mms_get_num_threads()) schedule(static)
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < Tp; t++)
            for (int64_t d = 0; d < hd; d++)
                dst[(h * Tp + t) * hd + d] = t < T ? mms_f32_to_bf16(src[t * stride + (h / G) * hd + d]) : 0;
}

/* token-major f32 K rows -> bf16 K^T per head (H, hd, T) */
static void to_bf16_heads_t(const float *src, int64_t stride, int64_t T, int64_t Tp, int64_t H, int64_t hd, int64_t G,
                            uint16_t *dst) {
    #pragma omp parallel for collapse(2) num_threads(mms_get_num_threads()) schedule(static)
    for (int64_t h = 0; h < H; h++)
        for (int64_t d = 0; d < hd; d++)
            for (int64_t t = 0; t < Tp; t++)
                dst[(h * hd + d) * Tp + t] = t < T ? mms_f32_to_bf16(src[t * stride + (h / G) * hd + d]) : 0;
}

/* head-major f32 (H, T, hd) -> token-major (T, H*hd) output rows of dtype dt */
static void from_heads(const float *src, int64_t T, int64_t H, int64_t hd, void *dst, mms_dtype dt) {
    #pragma omp parallel for num_threads(mms_get_num_threads()) schedule(static)
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t d = 0; d < hd; d++) {
                float v = src[(h * T + t) * hd + d];
                if (dt == MMS_DTYPE_F32) ((float *)dst)[t * H * hd + h * hd + d] = v;
                else ((uint16_t *)dst)[t * H * hd + h * hd + d] = mms_f32_to_bf16(v);
            }
}

mms_status mms_cpu_attention_gemm(const mms_attn_args *a, mms_error *err) {
    const int64_t H = a->n_heads, hd = a->head_dim, Tq = a->n_q, Tk = a->n_kv, A = H * hd;
    const int lowp = a->low_precision != 0;
    /* with lowp, K^T and S rows are padded to a multiple of 64 keys (zero keys, ignored by the
     * softmax), which lets oneDNN pick its AMX kernel for QK^T */
    const int64_t Tkp = lowp ? (Tk + 63) / 64 * 64 : Tk;
    /* scores (H, Tq, Tk) f32; with lowp also bf16 copies of q, k, v (T, A) and of P */
    size_t need = (size_t)(H * Tq * Tkp) * 4 + (size_t)(H * Tq * Tkp) * 2 * lowp + (size_t)((Tq + 2 * Tkp) * A) * 2 * lowp +
                  (a->out_dtype != MMS_DTYPE_F32 || lowp ? (size_t)(Tq * A) * 4 : 0);
    char *ws = mms_cpu_scratch_alloc(need);
    if (!ws) return mms_error_set(err, MMS_ERR_NOMEM, "attention: out of memory for scores (%lld x %lld x %lld)",
                                  (long long)H, (long long)Tq, (long long)Tk);
    float *S = (float *)ws;
    char *p = ws + (size_t)(H * Tq * Tkp) * 4;
    uint16_t *P16 = NULL, *q16 = NULL, *k16 = NULL, *v16 = NULL;
    if (lowp) {
        P16 = (uint16_t *)p; p += (size_t)(H * Tq * Tkp) * 2;
        q16 = (uint16_t *)p; p += (size_t)(Tq * A) * 2;
        k16 = (uint16_t *)p; p += (size_t)(Tkp * A) * 2;
        v16 = (uint16_t *)p; p += (size_t)(Tkp * A) * 2;
    }
    /* f32 staging of the output: (Tq, A) before a bf16 output, or head-major (H, Tq, hd) with lowp */
    float *tmp = a->out_dtype != MMS_DTYPE_F32 || lowp ? (float *)p : NULL;
    bmm_key qk, pv;
    memset(&qk, 0, sizeof qk);
    memset(&pv, 0, sizeof pv);
    /* S = Q (H, Tq, hd) @ K^T (H, hd, Tk) */
    qk.dims_a[0] = H; qk.dims_a[1] = Tq; qk.dims_a[2] = hd;
    qk.dims_b[0] = H; qk.dims_b[1] = hd; qk.dims_b[2] = Tkp;
    if (lowp) { /* head-major bf16 copies: Q (H, Tq, hd), K^T (H, hd, Tk), both plain */
        qk.str_a[0] = Tq * hd; qk.str_a[1] = hd; qk.str_a[2] = 1;
        qk.str_b[0] = Tkp * hd; qk.str_b[1] = Tkp; qk.str_b[2] = 1;
    } else { /* strided views of the token-major q/k buffers */
        qk.str_a[0] = hd; qk.str_a[1] = a->q_row; qk.str_a[2] = 1;
        qk.str_b[0] = hd; qk.str_b[1] = 1; qk.str_b[2] = a->kv_row;
    }
    qk.dims_c[0] = H; qk.dims_c[1] = Tq; qk.dims_c[2] = Tkp;
    qk.str_c[0] = Tq * Tkp; qk.str_c[1] = Tkp; qk.str_c[2] = 1;
    qk.dt_a = qk.dt_b = lowp;
    /* O (H, Tq, hd) -> (Tq, H*hd) = P (H, Tq, Tk) @ V (H, Tk, hd) */
    pv.dims_a[0] = H; pv.dims_a[1] = Tq; pv.dims_a[2] = Tkp;
    pv.str_a[0] = Tq * Tkp; pv.str_a[1] = Tkp; pv.str_a[2] = 1;
    pv.dims_b[0] = H; pv.dims_b[1] = Tkp; pv.dims_b[2] = hd;
    pv.dims_c[0] = H; pv.dims_c[1] = Tq; pv.dims_c[2] = hd;
    if (lowp) {
        pv.str_b[0] = Tkp * hd; pv.str_b[1] = hd; pv.str_b[2] = 1;
        pv.str_c[0] = Tq * hd; pv.str_c[1] = hd; pv.str_c[2] = 1;
    } else {
        pv.str_b[0] = hd; pv.str_b[1] = a->kv_row; pv.str_b[2] = 1;
        pv.str_c[0] = hd; pv.str_c[1] = A; pv.str_c[2] = 1;
    }
    pv.dt_a = pv.dt_b = lowp;
    mms_status rc = MMS_OK;
    const size_t esz = mms_dtype_size(a->out_dtype);
    for (int64_t b = 0; b < a->batch && rc == MMS_OK; b++) {
        const float *qb = a->q + b * a->q_batch, *kb = a->k + b * a->kv_batch, *vb = a->v + b * a->kv_batch;
        if (lowp) {
            const int64_t G = a->n_kv_heads ? H / a->n_kv_heads : 1;
            to_bf16_heads(qb, a->q_row, Tq, Tq, H, hd, 1, q16);
            to_bf16_heads_t(kb, a->kv_row, Tk, Tkp, H, hd, G, k16);
            to_bf16_heads(vb, a->kv_row, Tk, Tkp, H, hd, G, v16);
        }
        rc = bmm_run(&qk, lowp ? (const void *)q16 : qb, lowp ? (const void *)k16 : kb, S, err);
        if (rc != MMS_OK) break;
        /* padded key columns [Tk, Tkp) are masked by the softmax's kend (rows have stride Tkp) */
        mms_cpu_softmax_rows_strided(S, H * Tq, Tk, Tkp, Tq, a->key_mask ? a->key_mask + b * Tk : NULL, a->causal, Tk - Tq,
                                     a->scale, a->rel_bias, a->rel_max);
        if (lowp && (rc = mms_convert(S, MMS_DTYPE_F32, P16, MMS_DTYPE_BF16, H * Tq * Tkp, err)) != MMS_OK) break;
        void *dst = (char *)a->out + (size_t)(b * Tq * A) * esz;
        rc = bmm_run(&pv, lowp ? (const void *)P16 : S, lowp ? (const void *)v16 : vb, tmp ? (void *)tmp : dst, err);
        if (rc != MMS_OK) break;
        if (lowp) from_heads(tmp, Tq, H, hd, dst, a->out_dtype);
        else if (tmp) rc = mms_convert(tmp, MMS_DTYPE_F32, dst, a->out_dtype, Tq * A, err);
    }
    mms_cpu_scratch_free(ws);
    return rc;
}
#endif
