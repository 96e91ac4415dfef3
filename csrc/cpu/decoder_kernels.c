/* decoder_kernels.c -- the CPU kernels decoders add to the encoder set: RMSNorm, rotary
 * embeddings, gated-MLP products, KV-cache row stores and attention over a KV cache.
 * Plain C for the vectorizer, cloned per ISA like kernels.c. Token-by-token decoding is bound
 * by reading weights, so these only need to stay out of the way (a few % of a step). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static int threads_for(int64_t work) { return work > (1 << 15) ? mms_get_num_threads() : 1; }

static inline float bf16_to_f32(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- RMSNorm: x * rsqrt(mean(x^2) + eps) * g, statistics in fp32 like HF (variance in fp32) ---- */
CLONES static void rms_row(const float *x, int64_t D, const float *g, float eps, float *yf, uint16_t *yb) {
    float ss = 0.f;
    #pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < D; i++) ss += x[i] * x[i];
    const float inv = 1.0f / sqrtf(ss / (float)D + eps);
    /* HF: weight * (x * rsqrt(...)) -- multiply in that order so fp32 rounding matches */
    if (yf) {
        for (int64_t i = 0; i < D; i++) yf[i] = g[i] * (x[i] * inv);
    } else {
        for (int64_t i = 0; i < D; i++) yb[i] = mms_f32_to_bf16(g[i] * (x[i] * inv));
    }
}

mms_status mms_cpu_rmsnorm(mms_backend *be, const mms_tensor *x, const float *g, float eps, mms_tensor *y,
                           mms_error *err) {
    (void)be; (void)err;
    const int64_t D = x->ne[x->ndim - 1], rows = mms_tensor_numel(x) / D;
    const float *xd = x->data;
    const int bf = y->dtype == MMS_DTYPE_BF16;
    #pragma omp parallel for num_threads(threads_for(rows * D)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        rms_row(xd + r * D, D, g, eps, bf ? NULL : (float *)y->data + r * D, bf ? (uint16_t *)y->data + r * D : NULL);
    return MMS_OK;
}

/* ---- rotary embedding (rotate-half): for d < rot/2, with a = pos * inv_freq[d]:
 *   x[d]         <- x[d] cos a - x[d + rot/2] sin a
 *   x[d + rot/2] <- x[d + rot/2] cos a + x[d] sin a
 * The angle is the fp32 product pos * inv_freq, as HF computes it (its cos/sin tables are fp32). */
mms_status mms_cpu_rope(mms_backend *be, float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t hd,
                        int64_t rot, const int64_t *pos, const float *inv_freq, float attn_factor, mms_error *err) {
    (void)be;
    const int64_t half = rot / 2;
    float *cs = mms_cpu_scratch_alloc((size_t)(rows * rot) * sizeof(float)); /* (rows, [cos half | sin half]) */
    if (!cs) return mms_error_set(err, MMS_ERR_NOMEM, "rope: out of memory");
    for (int64_t r = 0; r < rows; r++)
        for (int64_t d = 0; d < half; d++) {
            const float a = (float)pos[r] * inv_freq[d];
            cs[r * rot + d] = cosf(a) * attn_factor;
            cs[r * rot + half + d] = sinf(a) * attn_factor;
        }
    #pragma omp parallel for num_threads(threads_for(rows * n_heads * hd)) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *c = cs + r * rot, *s = c + half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + r * stride + h * hd;
            for (int64_t d = 0; d < half; d++) {
                const float x0 = v[d], x1 = v[d + half];
                v[d] = x0 * c[d] - x1 * s[d];
                v[d + half] = x1 * c[d] + x0 * s[d];
            }
        }
    }
    mms_cpu_scratch_free(cs);
    return MMS_OK;
}

/* ---- gated MLP product ---- */
CLONES static void glu_row(const float *g, const float *u, int64_t F, mms_act act, float *of, uint16_t *ob) {
    if (act == MMS_ACT_NONE) { /* gate already activated (the decoders fuse it into the gate GEMM) */
        if (of)
            for (int64_t i = 0; i < F; i++) of[i] = g[i] * u[i];
        else
            for (int64_t i = 0; i < F; i++) ob[i] = mms_f32_to_bf16(g[i] * u[i]);
        return;
    }
    if (act == MMS_ACT_SILU) {
        if (of)
            for (int64_t i = 0; i < F; i++) of[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        else
            for (int64_t i = 0; i < F; i++) ob[i] = mms_f32_to_bf16(g[i] / (1.0f + expf(-g[i])) * u[i]);
        return;
    }
    for (int64_t i = 0; i < F; i++) {
        const float v = mms_act_apply(g[i], act) * u[i];
        if (of) of[i] = v;
        else ob[i] = mms_f32_to_bf16(v);
    }
}

mms_status mms_cpu_glu(mms_backend *be, const float *gate, int64_t gs, const float *up, int64_t us, int64_t rows,
                       int64_t F, mms_act act, mms_tensor *out, mms_error *err) {
    (void)be; (void)err;
    const int bf = out->dtype == MMS_DTYPE_BF16;
    #pragma omp parallel for num_threads(threads_for(rows * F)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        glu_row(gate + r * gs, up + r * us, F, act, bf ? NULL : (float *)out->data + r * F,
                bf ? (uint16_t *)out->data + r * F : NULL);
    return MMS_OK;
}

mms_status mms_cpu_store_rows(mms_backend *be, void *dst, mms_dtype dt, int64_t ds, const float *src, int64_t ss,
                              int64_t rows, int64_t cols, mms_error *err) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        void *d = (char *)dst + (size_t)(r * ds) * mms_dtype_size(dt);
        mms_status rc = mms_convert(src + r * ss, MMS_DTYPE_F32, d, dt, cols, err);
        if (rc != MMS_OK) return rc;
    }
    return MMS_OK;
}

/* ---- attention over a KV cache ----
 * One task = (kv head, query): the G query heads sharing that kv head are scored together so
 * each cached key/value row is read (and widened from bf16) once per group. HOT in decoding
 * only through its memory reads: n_kv * kv_row values per layer, small next to the weights. */
CLONES static void kv_task(const mms_kv_attn_args *a, int64_t kvh, int64_t i, float *sc, float *krow, float *acc) {
    const int64_t hd = a->head_dim, G = a->n_heads / a->n_kv_heads;
    const int64_t p = a->n_kv - a->n_q + i; /* absolute position of the query */
    int64_t j0 = 0;
    if (!a->full && a->window > 0 && p - a->window + 1 > 0) j0 = p - a->window + 1;
    const int64_t n = a->full ? a->n_kv : p + 1 - j0;
    const int bf = a->kv_dtype == MMS_DTYPE_BF16;
    const float *q = a->q + i * a->q_row + kvh * G * hd;
    /* scores sc (G, n) */
    for (int64_t j = 0; j < n; j++) {
        const size_t off = (size_t)((j0 + j) * a->kv_row + kvh * hd);
        const float *k;
        if (bf) {
            const uint16_t *kb = (const uint16_t *)a->k + off;
            for (int64_t d = 0; d < hd; d++) krow[d] = bf16_to_f32(kb[d]);
            k = krow;
        } else {
            k = (const float *)a->k + off;
        }
        for (int64_t g = 0; g < G; g++) {
            const float *qg = q + g * hd;
            float dot = 0.f;
            #pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < hd; d++) dot += qg[d] * k[d];
            sc[g * n + j] = dot * a->scale;
        }
    }
    if (a->rel_bias) { /* T5: + bias[h][R + clamp(j - p)] */
        const int64_t R = a->rel_max;
        for (int64_t g = 0; g < G; g++) {
            const float *rb = a->rel_bias + (kvh * G + g) * (2 * R + 1) + R;
            for (int64_t j = 0; j < n; j++) {
                int64_t d = j0 + j - p;
                d = d < -R ? -R : (d > R ? R : d);
                sc[g * n + j] += rb[d];
            }
        }
    }
    for (int64_t g = 0; g < G; g++) {
        float *s = sc + g * n, mx = -INFINITY, sum = 0.f;
        for (int64_t j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
        for (int64_t j = 0; j < n; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < n; j++) s[j] *= inv;
    }
    memset(acc, 0, (size_t)(G * hd) * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
        const size_t off = (size_t)((j0 + j) * a->kv_row + kvh * hd);
        const float *v;
        if (bf) {
            const uint16_t *vb = (const uint16_t *)a->v + off;
            for (int64_t d = 0; d < hd; d++) krow[d] = bf16_to_f32(vb[d]);
            v = krow;
        } else {
            v = (const float *)a->v + off;
        }
        for (int64_t g = 0; g < G; g++) {
            const float w = sc[g * n + j];
            float *ag = acc + g * hd;
            #pragma omp simd
            for (int64_t d = 0; d < hd; d++) ag[d] += w * v[d];
        }
    }
    const size_t esz = mms_dtype_size(a->out_dtype);
    char *o = (char *)a->out + (size_t)(i * a->out_row + kvh * G * hd) * esz;
    if (a->out_dtype == MMS_DTYPE_F32) memcpy(o, acc, (size_t)(G * hd) * sizeof(float));
    else for (int64_t d = 0; d < G * hd; d++) ((uint16_t *)o)[d] = mms_f32_to_bf16(acc[d]);
}

mms_status mms_cpu_kv_attention(mms_backend *be, const mms_kv_attn_args *a, mms_error *err) {
    (void)be;
    const int64_t G = a->n_heads / a->n_kv_heads, ntask = a->n_kv_heads * a->n_q;
    int nt = mms_get_num_threads();
    if ((int64_t)nt > ntask) nt = (int)ntask;
    if (a->n_kv * a->n_kv_heads * a->head_dim * a->n_q < (1 << 14)) nt = 1; /* not worth waking threads */
    const size_t per = (size_t)(G * a->n_kv + a->head_dim + G * a->head_dim);
    float *ws = mms_cpu_scratch_alloc((size_t)nt * per * sizeof(float));
    if (!ws) return mms_error_set(err, MMS_ERR_NOMEM, "kv_attention: out of memory for %lld keys", (long long)a->n_kv);
    #pragma omp parallel num_threads(nt)
    {
        float *sc = ws + (size_t)omp_get_thread_num() * per, *krow = sc + G * a->n_kv, *acc = krow + a->head_dim;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntask; t++) kv_task(a, t % a->n_kv_heads, t / a->n_kv_heads, sc, krow, acc);
    }
    mms_cpu_scratch_free(ws);
    return MMS_OK;
}
