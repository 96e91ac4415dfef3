/* kernels.c -- the CPU backend's elementwise / row kernels: layernorm, activations,
 * broadcast add, embedding gather, im2col, strided copy, L2 normalization.
 * Plain C written for the vectorizer; GCC's target_clones builds AVX-512, AVX2 and
 * baseline variants of each hot loop and picks one at load time (ifunc). */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

/* "avx512f" rather than "arch=skylake-avx512": the arch= clone is only picked on that exact CPU model */
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static int threads_for(int64_t work) { return work > (1 << 15) ? mms_get_num_threads() : 1; }

/* ---- layernorm: two-pass mean/variance in fp32, biased variance (like torch) ---- */
CLONES static void ln_row(const float *x, int64_t D, const float *g, const float *b, float eps, float *yf,
                          uint16_t *yb) {
    float mean = 0.f;
    #pragma omp simd reduction(+ : mean)
    for (int64_t i = 0; i < D; i++) mean += x[i];
    mean /= (float)D;
    float var = 0.f;
    #pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < D; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)D;
    const float inv = 1.0f / sqrtf(var + eps);
    if (yf) {
        for (int64_t i = 0; i < D; i++) yf[i] = (x[i] - mean) * inv * g[i] + (b ? b[i] : 0.f);
    } else {
        for (int64_t i = 0; i < D; i++) yb[i] = mms_f32_to_bf16((x[i] - mean) * inv * g[i] + (b ? b[i] : 0.f));
    }
}

mms_status mms_cpu_layernorm(mms_backend *be, const mms_tensor *x, const float *g, const float *b, float eps,
                             mms_tensor *y, mms_error *err) {
    (void)be; (void)err;
    const int64_t D = x->ne[x->ndim - 1], rows = mms_tensor_numel(x) / D;
    const float *xd = x->data;
    const int bf = y->dtype == MMS_DTYPE_BF16;
    #pragma omp parallel for num_threads(threads_for(rows * D)) schedule(static)
    for (int64_t r = 0; r < rows; r++)
        ln_row(xd + r * D, D, g, b, eps, bf ? NULL : (float *)y->data + r * D, bf ? (uint16_t *)y->data + r * D : NULL);
    return MMS_OK;
}

/* ---- activations ---- */

mms_status mms_cpu_activation(mms_backend *be, mms_tensor *x, mms_act act, mms_error *err) {
    (void)be; (void)err;
    const int64_t n = mms_tensor_numel(x);
    float *d = x->data;
    #pragma omp parallel for num_threads(threads_for(n)) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] = mms_act_apply(d[i], act);
    return MMS_OK;
}

/* ---- y += v (broadcast rows or elementwise) ---- */
CLONES static void add_row(float *y, const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += v[i];
}

mms_status mms_cpu_add(mms_backend *be, mms_tensor *y, const mms_tensor *v, mms_error *err) {
    (void)be; (void)err;
    const int64_t C = y->ne[y->ndim - 1], n = mms_tensor_numel(y), rows = n / C;
    const int bcast = mms_tensor_numel(v) == C && rows > 1;
    float *yd = y->data;
    const float *vd = v->data;
    #pragma omp parallel for num_threads(threads_for(n)) schedule(static)
    for (int64_t r = 0; r < rows; r++) add_row(yd + r * C, bcast ? vd : vd + r * C, C);
    return MMS_OK;
}

/* ---- embedding gather with id range check ---- */
mms_status mms_cpu_embedding(mms_backend *be, const mms_tensor *table, const mms_tensor *ids, mms_tensor *out,
                             mms_error *err) {
    (void)be; (void)err;
    const int64_t V = table->ne[0], D = table->ne[1], n = mms_tensor_numel(ids);
    const int64_t *id = ids->data;
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= V)
            return mms_error_set(err, MMS_ERR_VALUE, "input_ids: token id %lld at position %lld is outside the vocabulary [0, %lld)",
                                 (long long)id[i], (long long)i, (long long)V);
    float *o = out->data;
    for (int64_t i = 0; i < n; i++) {
        const char *row = (const char *)table->data + id[i] * table->nb[0];
        mms_status rc = mms_convert(row, table->dtype, o + i * D, MMS_DTYPE_F32, D, err);
        if (rc != MMS_OK) return rc;
    }
    return MMS_OK;
}

/* ---- im2col for stride = kernel = p convolutions; column order (c, ky, kx) ---- */
mms_status mms_cpu_im2col(mms_backend *be, const mms_tensor *px, int p, mms_tensor *out, mms_error *err) {
    (void)be; (void)err;
    const int64_t B = px->ne[0], C = px->ne[1], H = px->ne[2], W = px->ne[3];
    const int64_t gh = H / p, gw = W / p, cols = C * p * p;
    const char *base = px->data;
    float *o = out->data;
    #pragma omp parallel for collapse(2) num_threads(threads_for(B * C * H * W)) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t py = 0; py < gh; py++)
            for (int64_t pxi = 0; pxi < gw; pxi++) {
                float *row = o + ((b * gh + py) * gw + pxi) * cols;
                for (int64_t c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++) {
                        const char *src = base + b * px->nb[0] + c * px->nb[1] + (py * p + ky) * px->nb[2] + pxi * p * px->nb[3];
                        float *dst = row + (c * p + ky) * p;
                        if (px->nb[3] == 4) memcpy(dst, src, (size_t)p * 4);
                        else for (int kx = 0; kx < p; kx++) memcpy(dst + kx, src + kx * px->nb[3], 4);
                    }
            }
    return MMS_OK;
}

mms_status mms_cpu_copy2d(mms_backend *be, float *dst, int64_t ds, const float *src, int64_t ss, int64_t rows,
                          int64_t cols, mms_error *err) {
    (void)be; (void)err;
    for (int64_t r = 0; r < rows; r++) memmove(dst + r * ds, src + r * ss, (size_t)cols * sizeof(float));
    return MMS_OK;
}

mms_status mms_cpu_l2_normalize(mms_backend *be, mms_tensor *x, mms_error *err) {
    (void)be; (void)err;
    const int64_t D = x->ne[x->ndim - 1], rows = mms_tensor_numel(x) / D;
    float *d = x->data;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t i = 0; i < D; i++) s += (double)d[r * D + i] * d[r * D + i];
        const float inv = (float)(1.0 / sqrt(s));
        for (int64_t i = 0; i < D; i++) d[r * D + i] *= inv;
    }
    return MMS_OK;
}
