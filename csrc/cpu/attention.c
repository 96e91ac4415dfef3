/* attention.c -- instantiates the fused attention kernel per ISA and picks one at run time. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../backend.h"
#include "cpu_internal.h"

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
#define VW 16
#define SUFFIX avx512
#include "attention_impl.h"
#undef VW
#undef SUFFIX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VW 8
#define SUFFIX avx2
#include "attention_impl.h"
#undef VW
#undef SUFFIX
#pragma GCC pop_options

#define VW 4
#define SUFFIX generic
#include "attention_impl.h"
#undef VW
#undef SUFFIX

mms_status mms_cpu_attention_isa(const mms_attn_args *a, mms_cpu_isa isa, mms_error *err) {
    const int nt = mms_get_num_threads();
    /* sized for the widest variant (16 lanes), which needs the most padding; see attention_scratch */
    const int64_t nkp = (a->n_kv + 15) / 16 * 16, hdp = (a->head_dim + 15) / 16 * 16;
    const size_t per_thread = (size_t)(a->head_dim * nkp + nkp + hdp);
    float *ws = mms_cpu_scratch_alloc((size_t)nt * per_thread * sizeof(float));
    if (!ws) return mms_error_set(err, MMS_ERR_NOMEM, "attention: out of memory for %d thread buffers", nt);
    switch (isa) {
    case MMS_ISA_AVX512: attention_avx512(a, nt, ws); break;
    case MMS_ISA_AVX2: attention_avx2(a, nt, ws); break;
    default: attention_generic(a, nt, ws); break;
    }
    mms_cpu_scratch_free(ws);
    return MMS_OK;
}

/* ---- masked softmax rows for the GEMM attention path ---- */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
/* reuses the AVX-512 instantiation's vector type, select and exp from attention_impl.h */
typedef vf_avx512 sm_vf;
#define sm_sel vsel_avx512
#define sm_exp vexp_avx512
static void softmax_row_avx512(float *s, int64_t n, int64_t kend, const int64_t *mask, float scale) {
    float mx = -INFINITY;
    if (!mask) {
        sm_vf vm = (sm_vf){0} - INFINITY;
        int64_t j = 0;
        for (; j + 16 <= kend; j += 16) {
            sm_vf v;
            memcpy(&v, s + j, sizeof v);
            v *= scale;
            memcpy(s + j, &v, sizeof v);
            vm = sm_sel(v > vm, v, vm);
        }
        for (int i = 0; i < 16; i++) mx = vm[i] > mx ? vm[i] : mx;
        for (; j < n; j++) {
            float v = j < kend ? s[j] * scale : -INFINITY;
            s[j] = v;
            mx = v > mx ? v : mx;
        }
    } else {
        for (int64_t j = 0; j < n; j++) {
            float v = (j < kend && mask[j]) ? s[j] * scale : -INFINITY;
            s[j] = v;
            mx = v > mx ? v : mx;
        }
    }
    if (mx == -INFINITY) {
        memset(s, 0, (size_t)n * sizeof(float));
        return;
    }
    sm_vf vsum = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        sm_vf v;
        memcpy(&v, s + j, sizeof v);
        sm_vf e = sm_exp(v - mx);
        e = sm_sel(v == -INFINITY, (sm_vf){0}, e);
        memcpy(s + j, &e, sizeof e);
        vsum += e;
    }
    float sum = 0.f;
    for (int i = 0; i < 16; i++) sum += vsum[i];
    for (; j < n; j++) {
        float e = s[j] == -INFINITY ? 0.f : expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (j = 0; j < n; j++) s[j] *= inv;
}
#pragma GCC pop_options

static void softmax_row_generic(float *s, int64_t n, int64_t kend, const int64_t *mask, float scale) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        float v = (j < kend && (!mask || mask[j])) ? s[j] * scale : -INFINITY;
        s[j] = v;
        mx = v > mx ? v : mx;
    }
    if (mx == -INFINITY) {
        memset(s, 0, (size_t)n * sizeof(float));
        return;
    }
    float sum = 0.f;
    for (int64_t j = 0; j < n; j++) {
        float e = s[j] == -INFINITY ? 0.f : expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++) s[j] *= inv;
}

void mms_cpu_softmax_rows_strided(float *s, int64_t rows, int64_t n_kv, int64_t ld, int64_t n_q, const int64_t *mask,
                                  int causal, int64_t causal_off, float scale, const float *rel_bias, int64_t rel_max) {
    const int avx512 = mms_cpu_isa_get() == MMS_ISA_AVX512;
    #pragma omp parallel for num_threads(mms_get_num_threads()) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t i = r % n_q; /* query index within its head (rows are (head, query)) */
        int64_t kend = causal ? i + causal_off + 1 : n_kv;
        if (kend > n_kv) kend = n_kv;
        if (kend < 0) kend = 0;
        float *row = s + r * ld;
        float sc = scale;
        if (rel_bias) { /* scaled score + bias[h][R + clamp(j - p)], then an unscaled softmax */
            const int64_t R = rel_max, p = i + causal_off;
            const float *rb = rel_bias + (r / n_q) * (2 * R + 1) + R;
            for (int64_t j = 0; j < kend; j++) {
                int64_t d = j - p;
                d = d < -R ? -R : (d > R ? R : d);
                row[j] = row[j] * scale + rb[d];
            }
            sc = 1.0f;
        }
        if (avx512) softmax_row_avx512(row, ld, kend, mask, sc);
        else softmax_row_generic(row, ld, kend, mask, sc);
    }
}

void mms_cpu_softmax_rows(float *s, int64_t rows, int64_t n_kv, int64_t row_stride, const int64_t *mask,
                          int causal, int64_t causal_off, float scale) {
    mms_cpu_softmax_rows_strided(s, rows, n_kv, n_kv, row_stride, mask, causal, causal_off, scale, NULL, 0);
}
