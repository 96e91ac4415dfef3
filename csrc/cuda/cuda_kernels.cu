// cuda_kernels.cu -- the CUDA backend's hand-written kernels (GEMMs go to cuBLAS).
// Correctness-first versions: one block per row / per (batch, head, query); fp32 math.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

__global__ void k_epilogue(const float *acc, const float *bias, const float *res, int act, void *y, int y_bf16,
                           int64_t rows, int64_t cols) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    float v = acc[i];
    if (bias) v += bias[i % cols];
    v = act_apply(v, act);
    if (res) v += res[i];
    if (y_bf16) ((__nv_bfloat16 *)y)[i] = __float2bfloat16(v);
    else ((float *)y)[i] = v;
}

extern "C" int mms_cu_epilogue(const float *acc, const float *bias, const float *residual, int act, void *y, int y_bf16,
                               int64_t rows, int64_t cols, void *stream) {
    int64_t n = rows * cols;
    k_epilogue<<<(unsigned)((n + 255) / 256), 256, 0, ST(stream)>>>(acc, bias, residual, act, y, y_bf16, rows, cols);
    return (int)cudaGetLastError();
}

__global__ void k_to_bf16(const float *x, __nv_bfloat16 *y, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16(x[i]);
}

extern "C" int mms_cu_f32_to_bf16(const float *x, uint16_t *y, int64_t n, void *stream) {
    k_to_bf16<<<(unsigned)((n + 255) / 256), 256, 0, ST(stream)>>>(x, (__nv_bfloat16 *)y, n);
    return (int)cudaGetLastError();
}

__global__ void k_layernorm(const float *x, const float *g, const float *b, float eps, void *y, int y_bf16, int64_t dim) {
    __shared__ float sh[32];
    const float *xr = x + blockIdx.x * dim;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i];
    float mean = block_sum(s, sh) / (float)dim;
    float v = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) { float d = xr[i] - mean; v += d * d; }
    float var = block_sum(v, sh) / (float)dim;
    float inv = rsqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
        float o = (xr[i] - mean) * inv * g[i] + (b ? b[i] : 0.f);
        if (y_bf16) ((__nv_bfloat16 *)y)[blockIdx.x * dim + i] = __float2bfloat16(o);
        else ((float *)y)[blockIdx.x * dim + i] = o;
    }
}

extern "C" int mms_cu_layernorm(const float *x, const float *g, const float *b, float eps, void *y, int y_bf16,
                                int64_t rows, int64_t dim, void *stream) {
    k_layernorm<<<(unsigned)rows, 256, 0, ST(stream)>>>(x, g, b, eps, y, y_bf16, dim);
    return (int)cudaGetLastError();
}

// Key range of query i: keys [lo, hi). Causal: hi = i + (n_kv - n_q) + 1; sliding window
// (window > 0): lo = i + (n_kv - n_q) - window + 1 (as the CPU kernels; applied with or without
// causal). Grouped-query attention: query head h reads kv head h / group.
__device__ __forceinline__ void key_range(int64_t i, int64_t n_q, int64_t n_kv, int causal, int64_t window,
                                          int64_t *lo, int64_t *hi) {
    int64_t e = causal ? i + (n_kv - n_q) + 1 : n_kv;
    if (e > n_kv) e = n_kv;
    if (e < 0) e = 0;
    int64_t s = window > 0 ? i + (n_kv - n_q) - window + 1 : 0;
    if (s < 0) s = 0;
    *lo = s;
    *hi = e;
}

// one block per (query, head, batch); scores for all keys in shared memory
__global__ void k_attention(int64_t n_q, int64_t n_kv, int64_t heads, int64_t hd, const float *q, int64_t q_row,
                            int64_t q_batch, const float *k, const float *v, int64_t kv_row, int64_t kv_batch, void *out,
                            int out_bf16, const int64_t *mask, int causal, float scale, int64_t group, int64_t window) {
    extern __shared__ float sm[];
    __shared__ float red[32];
    float *s = sm;           // (n_kv)
    float *qs = sm + n_kv;   // (hd)
    const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvo = (h / group) * hd;
    const float *qi = q + b * q_batch + i * q_row + h * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qi[d];
    __syncthreads();
    int64_t kbeg, kend;
    key_range(i, n_q, n_kv, causal, window, &kbeg, &kend);
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n_kv; j += blockDim.x) {
        float sc = -INFINITY;
        if (j >= kbeg && j < kend && (!mask || mask[b * n_kv + j])) {
            const float *kj = k + b * kv_batch + j * kv_row + kvo;
            float acc = 0.f;
            for (int64_t d = 0; d < hd; d++) acc += qs[d] * kj[d];
            sc = acc * scale;
        }
        s[j] = sc;
        mx = fmaxf(mx, sc);
    }
    mx = block_max(mx, red);
    float sum = 0.f;
    for (int64_t j = threadIdx.x; j < n_kv; j += blockDim.x) {
        float e = (mx == -INFINITY || s[j] == -INFINITY) ? 0.f : __expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    const float inv = sum > 0.f ? 1.0f / sum : 0.f;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.f;
        for (int64_t j = kbeg; j < kend; j++) {
            float p = s[j];
            if (p != 0.f) acc += p * v[b * kv_batch + j * kv_row + kvo + d];
        }
        int64_t o = ((b * n_q + i) * heads + h) * hd + d;
        if (out_bf16) ((__nv_bfloat16 *)out)[o] = __float2bfloat16(acc * inv);
        else ((float *)out)[o] = acc * inv;
    }
}

// Tiled attention: one thread per query (TQ queries per block), K/V tiles of TK keys staged in
// shared memory, scores of a tile kept in registers, online softmax with one rescale per tile.
// HD is the register capacity for head_dim (runtime hd <= HD). Tiles outside the block's key
// range (causal end, sliding-window start) are skipped.
template <int HD, int TQ, int TK>
__global__ void k_attention_tiled(int64_t n_q, int64_t n_kv, int64_t heads, int64_t hd, const float *q, int64_t q_row,
                                  int64_t q_batch, const float *k, const float *v, int64_t kv_row, int64_t kv_batch,
                                  void *out, int out_bf16, const int64_t *mask, int causal, float scale, int64_t group,
                                  int64_t window) {
    __shared__ float Ks[TK][HD];
    __shared__ float Vs[TK][HD];
    __shared__ int Ms[TK];
    const int64_t h = blockIdx.y, b = blockIdx.z, kvo = (h / group) * hd;
    const int64_t i = (int64_t)blockIdx.x * TQ + threadIdx.x;
    const bool active = i < n_q;
    float qr[HD], acc[HD];
    #pragma unroll
    for (int d = 0; d < HD; d++) {
        qr[d] = (active && d < hd) ? q[b * q_batch + i * q_row + h * hd + d] * scale : 0.f;
        acc[d] = 0.f;
    }
    int64_t kbeg, kend, blo, bhi, tmp;
    key_range(i, n_q, n_kv, causal, window, &kbeg, &kend);
    const int64_t first = (int64_t)blockIdx.x * TQ, last = first + TQ - 1 < n_q - 1 ? first + TQ - 1 : n_q - 1;
    key_range(first, n_q, n_kv, causal, window, &blo, &tmp);  // smallest start: the block's first query
    key_range(last, n_q, n_kv, causal, window, &tmp, &bhi);   // largest end: its last query
    float m = -INFINITY, l = 0.f;
    for (int64_t j0 = blo / TK * TK; j0 < bhi; j0 += TK) {
        __syncthreads();
        for (int t = threadIdx.x; t < TK * HD; t += TQ) {
            int jj = t / HD, d = t % HD;
            int64_t j = j0 + jj;
            bool ok = j < n_kv && d < hd;
            Ks[jj][d] = ok ? k[b * kv_batch + j * kv_row + kvo + d] : 0.f;
            Vs[jj][d] = ok ? v[b * kv_batch + j * kv_row + kvo + d] : 0.f;
        }
        for (int t = threadIdx.x; t < TK; t += TQ) {
            int64_t j = j0 + t;
            Ms[t] = j < n_kv && (!mask || mask[b * n_kv + j]);
        }
        __syncthreads();
        if (!active) continue;
        float sc[TK];
        float tmax = -INFINITY;
        #pragma unroll
        for (int jj = 0; jj < TK; jj++) {
            float s = 0.f;
            #pragma unroll
            for (int d = 0; d < HD; d++) s += qr[d] * Ks[jj][d];
            const int64_t j = j0 + jj;
            bool ok = Ms[jj] && j < kend && j >= kbeg;
            sc[jj] = ok ? s : -INFINITY;
            tmax = fmaxf(tmax, sc[jj]);
        }
        if (tmax == -INFINITY) continue;
        float mnew = fmaxf(m, tmax);
        float corr = m == -INFINITY ? 0.f : __expf(m - mnew);
        l *= corr;
        #pragma unroll
        for (int d = 0; d < HD; d++) acc[d] *= corr;
        #pragma unroll
        for (int jj = 0; jj < TK; jj++) {
            float p = sc[jj] == -INFINITY ? 0.f : __expf(sc[jj] - mnew);
            l += p;
            #pragma unroll
            for (int d = 0; d < HD; d++) acc[d] += p * Vs[jj][d];
        }
        m = mnew;
    }
    if (!active) return;
    const float inv = l > 0.f ? 1.0f / l : 0.f;
    #pragma unroll
    for (int d = 0; d < HD; d++) {
        if (d < hd) {
            int64_t o = ((b * n_q + i) * heads + h) * hd + d;
            if (out_bf16) ((__nv_bfloat16 *)out)[o] = __float2bfloat16(acc[d] * inv);
            else ((float *)out)[o] = acc[d] * inv;
        }
    }
}

extern "C" int mms_cu_attention(int64_t batch, int64_t n_q, int64_t n_kv, int64_t heads, int64_t hd, const float *q,
                                int64_t q_row, int64_t q_batch, const float *k, const float *v, int64_t kv_row,
                                int64_t kv_batch, void *out, int out_bf16, const int64_t *key_mask, int causal,
                                float scale, int64_t kv_heads, int64_t window, void *stream) {
    const int64_t group = kv_heads > 0 ? heads / kv_heads : 1;
    if (hd <= 128 && n_q > 1) {
        if (hd <= 32) {
            dim3 g((unsigned)((n_q + 63) / 64), (unsigned)heads, (unsigned)batch);
            k_attention_tiled<32, 64, 32><<<g, 64, 0, ST(stream)>>>(n_q, n_kv, heads, hd, q, q_row, q_batch, k, v, kv_row,
                                                                    kv_batch, out, out_bf16, key_mask, causal, scale,
                                                                    group, window);
        } else if (hd <= 64) {
            dim3 g((unsigned)((n_q + 63) / 64), (unsigned)heads, (unsigned)batch);
            k_attention_tiled<64, 64, 32><<<g, 64, 0, ST(stream)>>>(n_q, n_kv, heads, hd, q, q_row, q_batch, k, v, kv_row,
                                                                    kv_batch, out, out_bf16, key_mask, causal, scale,
                                                                    group, window);
        } else {
            dim3 g((unsigned)((n_q + 31) / 32), (unsigned)heads, (unsigned)batch);
            k_attention_tiled<128, 32, 16><<<g, 32, 0, ST(stream)>>>(n_q, n_kv, heads, hd, q, q_row, q_batch, k, v, kv_row,
                                                                     kv_batch, out, out_bf16, key_mask, causal, scale,
                                                                     group, window);
        }
        return (int)cudaGetLastError();
    }
    dim3 grid((unsigned)n_q, (unsigned)heads, (unsigned)batch);
    size_t shmem = (size_t)(n_kv + hd) * sizeof(float);
    if (shmem > 48 * 1024) {
        int c = (int)cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shmem);
        if (c) return c;
    }
    k_attention<<<grid, 128, shmem, ST(stream)>>>(n_q, n_kv, heads, hd, q, q_row, q_batch, k, v, kv_row, kv_batch, out,
                                                  out_bf16, key_mask, causal, scale, group, window);
    return (int)cudaGetLastError();
}

__global__ void k_softmax(float *x, int64_t cols) {
    __shared__ float sh[32];
    float *r = x + blockIdx.x * cols;
    float mx = -INFINITY;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) mx = fmaxf(mx, r[i]);
    mx = block_max(mx, sh);
    float sum = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) { float e = expf(r[i] - mx); r[i] = e; sum += e; }
    sum = block_sum(sum, sh);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) r[i] /= sum;
}

extern "C" int mms_cu_softmax(float *x, int64_t rows, int64_t cols, void *stream) {
    k_softmax<<<(unsigned)rows, 256, 0, ST(stream)>>>(x, cols);
    return (int)cudaGetLastError();
}

__global__ void k_act(float *x, int64_t n, int act) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = act_apply(x[i], act);
}

extern "C" int mms_cu_activation(float *x, int64_t n, int act, void *stream) {
    k_act<<<(unsigned)((n + 255) / 256), 256, 0, ST(stream)>>>(x, n, act);
    return (int)cudaGetLastError();
}

__global__ void k_add(float *y, const float *v, int64_t rows, int64_t cols, int bcast) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * cols) y[i] += bcast ? v[i % cols] : v[i];
}

extern "C" int mms_cu_add(float *y, const float *v, int64_t rows, int64_t cols, int bcast, void *stream) {
    int64_t n = rows * cols;
    k_add<<<(unsigned)((n + 255) / 256), 256, 0, ST(stream)>>>(y, v, rows, cols, bcast);
    return (int)cudaGetLastError();
}

__global__ void k_embed(const void *table, int dt, int64_t dim, const int64_t *ids, int64_t n, int64_t vocab, float *out,
                        int *bad) {
    int64_t r = blockIdx.x;
    int64_t id = ids[r];
    if (id < 0 || id >= vocab) {
        if (threadIdx.x == 0) *bad = 1;
        return;
    }
    for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
        int64_t o = id * dim + d;
        float v = dt == 0 ? ((const float *)table)[o]
                          : dt == 1 ? __half2float(((const __half *)table)[o]) : __bfloat162float(((const __nv_bfloat16 *)table)[o]);
        out[r * dim + d] = v;
    }
}

extern "C" int mms_cu_embedding(const void *table, int table_dtype, int64_t dim, const int64_t *ids, int64_t n,
                                int64_t vocab, float *out, int *bad_flag, void *stream) {
    k_embed<<<(unsigned)n, 128, 0, ST(stream)>>>(table, table_dtype, dim, ids, n, vocab, out, bad_flag);
    return (int)cudaGetLastError();
}

__global__ void k_im2col(const float *px, int64_t C, int64_t H, int64_t W, int64_t sb, int64_t sc, int64_t sh,
                         int64_t sw, int p, float *out, int64_t total) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int64_t cols = C * p * p, gw = W / p, gh = H / p;
    int64_t col = i % cols, row = i / cols;
    int64_t kx = col % p, ky = (col / p) % p, c = col / (p * p);
    int64_t pxi = row % gw, py = (row / gw) % gh, b = row / (gw * gh);
    out[i] = px[b * sb + c * sc + (py * p + ky) * sh + (pxi * p + kx) * sw];
}

extern "C" int mms_cu_im2col(const float *px, int64_t B, int64_t C, int64_t H, int64_t W, int64_t sb, int64_t sc,
                             int64_t sh, int64_t sw, int p, float *out, void *stream) {
    int64_t total = B * (H / p) * (W / p) * C * p * p;
    k_im2col<<<(unsigned)((total + 255) / 256), 256, 0, ST(stream)>>>(px, C, H, W, sb, sc, sh, sw, p, out, total);
    return (int)cudaGetLastError();
}

extern "C" int mms_cu_copy2d(float *dst, int64_t ds, const float *src, int64_t ss, int64_t rows, int64_t cols, void *stream) {
    return (int)cudaMemcpy2DAsync(dst, (size_t)ds * 4, src, (size_t)ss * 4, (size_t)cols * 4, (size_t)rows,
                                  cudaMemcpyDeviceToDevice, ST(stream));
}

__global__ void k_l2norm(float *x, int64_t dim) {
    __shared__ float sh[32];
    float *r = x + blockIdx.x * dim;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += r[i] * r[i];
    float inv = rsqrtf(block_sum(s, sh));
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) r[i] *= inv;
}

extern "C" int mms_cu_l2norm(float *x, int64_t rows, int64_t dim, void *stream) {
    k_l2norm<<<(unsigned)rows, 256, 0, ST(stream)>>>(x, dim);
    return (int)cudaGetLastError();
}
