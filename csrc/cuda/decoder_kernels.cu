// decoder_kernels.cu -- the CUDA kernels decoders add to the encoder set (cuda_kernels.cu):
// RMSNorm, rotary embeddings, gated-MLP products, KV-cache row stores and attention over a KV
// cache. Semantics and the order of fp32 operations follow the CPU kernels
// (csrc/cpu/decoder_kernels.c), so the two backends agree to rounding.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_common.cuh"
#include "cuda_kernels.h"

static inline unsigned blocks_for(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

// ---- RMSNorm: y = g * (x * (1 / sqrt(mean(x^2) + eps))), fp32 statistics ------------------------

__global__ void k_rmsnorm(const float *x, const float *g, float eps, void *y, int y_bf16, int64_t dim) {
    __shared__ float sh[32];
    const int64_t r = blockIdx.x;
    const float *xr = x + r * dim;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += xr[i] * xr[i];
    const float inv = 1.0f / sqrtf(block_sum(s, sh) / (float)dim + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) store_out(y, r * dim + i, g[i] * (xr[i] * inv), y_bf16);
}

extern "C" int mms_cu_rmsnorm(const float *x, const float *g, float eps, void *y, int y_bf16, int64_t rows, int64_t dim,
                              void *stream) {
    if (rows <= 0) return 0;
    k_rmsnorm<<<(unsigned)rows, 256, 0, ST(stream)>>>(x, g, eps, y, y_bf16, dim);
    return (int)cudaGetLastError();
}

// ---- rotary embedding (rotate-half) -----------------------------------------------------------
// Positions and frequencies travel by value in the launch (no upload, no synchronization): one
// block per row computes that row's cos/sin once (angle = the fp32 product pos * inv_freq, as
// the CPU and HF compute it), then rotates every head.

struct RopeArgs {
    int64_t pos[MMS_CU_ROPE_ROWS];
    float inv[MMS_CU_ROPE_MAX_ROT / 2];
};

__global__ void k_rope(float *x, int64_t stride, int64_t n_heads, int64_t hd, int half, float factor, const RopeArgs a) {
    __shared__ float cs[MMS_CU_ROPE_MAX_ROT / 2], sn[MMS_CU_ROPE_MAX_ROT / 2];
    const int r = blockIdx.x;
    const float p = (float)a.pos[r];
    for (int d = threadIdx.x; d < half; d += blockDim.x) {
        const float ang = __fmul_rn(p, a.inv[d]); // no contraction: the exact fp32 product
        cs[d] = __fmul_rn(cosf(ang), factor);
        sn[d] = __fmul_rn(sinf(ang), factor);
    }
    __syncthreads();
    float *row = x + (int64_t)r * stride;
    const int64_t n = n_heads * half;
    for (int64_t t = threadIdx.x; t < n; t += blockDim.x) {
        const int64_t h = t / half;
        const int d = (int)(t - h * half);
        float *v = row + h * hd;
        const float x0 = v[d], x1 = v[d + half];
        v[d] = x0 * cs[d] - x1 * sn[d];
        v[d + half] = x1 * cs[d] + x0 * sn[d];
    }
}

extern "C" int mms_cu_rope(float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                           const int64_t *pos_host, const float *inv_freq_host, float attn_factor, void *stream) {
    const int half = (int)(rot_dim / 2);
    if (rot_dim <= 0 || rot_dim > MMS_CU_ROPE_MAX_ROT || rot_dim % 2) return (int)cudaErrorInvalidValue;
    RopeArgs a;
    for (int d = 0; d < half; d++) a.inv[d] = inv_freq_host[d];
    for (int d = half; d < MMS_CU_ROPE_MAX_ROT / 2; d++) a.inv[d] = 0.f;
    for (int64_t r0 = 0; r0 < rows; r0 += MMS_CU_ROPE_ROWS) {
        const int64_t n = rows - r0 < MMS_CU_ROPE_ROWS ? rows - r0 : MMS_CU_ROPE_ROWS;
        for (int64_t r = 0; r < MMS_CU_ROPE_ROWS; r++) a.pos[r] = r < n ? pos_host[r0 + r] : 0;
        k_rope<<<(unsigned)n, 128, 0, ST(stream)>>>(x + r0 * stride, stride, n_heads, head_dim, half, attn_factor, a);
        const int c = (int)cudaGetLastError();
        if (c) return c;
    }
    return 0;
}

// ---- gated MLP product and KV-cache row stores ---------------------------------------------------

__global__ void k_glu(const float *g, int64_t gs, const float *u, int64_t us, int64_t rows, int64_t F, int act, void *out,
                      int out_bf16) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * F) return;
    const int64_t r = i / F, c = i - r * F;
    store_out(out, i, act_apply(g[r * gs + c], act) * u[r * us + c], out_bf16);
}

extern "C" int mms_cu_glu(const float *gate, int64_t gate_stride, const float *up, int64_t up_stride, int64_t rows,
                          int64_t F, int act, void *out, int out_bf16, void *stream) {
    if (rows * F <= 0) return 0;
    k_glu<<<blocks_for(rows * F, 256), 256, 0, ST(stream)>>>(gate, gate_stride, up, up_stride, rows, F, act, out, out_bf16);
    return (int)cudaGetLastError();
}

__global__ void k_store_rows(void *dst, int dst_bf16, int64_t ds, const float *src, int64_t ss, int64_t rows,
                             int64_t cols) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int64_t r = i / cols, c = i - r * cols;
    store_out(dst, r * ds + c, src[r * ss + c], dst_bf16);
}

extern "C" int mms_cu_store_rows(void *dst, int dst_bf16, int64_t dst_stride, const float *src, int64_t src_stride,
                                 int64_t rows, int64_t cols, void *stream) {
    if (rows * cols <= 0) return 0;
    k_store_rows<<<blocks_for(rows * cols, 256), 256, 0, ST(stream)>>>(dst, dst_bf16, dst_stride, src, src_stride, rows,
                                                                       cols);
    return (int)cudaGetLastError();
}

// ---- attention over a KV cache ----------------------------------------------------------------
// Grid (query, kv head x head-group chunk, key split). A block = KV_WARPS warps handles up to
// KV_GMAX query heads sharing one kv head, so each cached row is read once per group; lanes
// split head_dim (lane + 32 t), warps take keys round-robin with an online softmax per head;
// the warps' partial (max, sum, acc) merge in shared memory. Long caches are split over blocks
// (flash-decoding): each split writes its partial result and k_kv_combine merges them, so a
// single decode query still spreads over many SMs.

#define KV_WARPS 4
#define KV_GMAX 8

struct KvArgs {
    int64_t n_q, n_kv, n_heads, G, hd;
    const float *q;
    int64_t q_row;
    const void *k, *v;
    int64_t kv_row;
    void *out;
    int64_t out_row;
    int64_t window, chunk;
    float scale;
    int kv_bf16, out_bf16, nsplit, gz, full;
    float *part_m, *part_l, *part_acc; // (n_q, n_heads, nsplit) [x hd] when nsplit > 1
};

template <int DT> // values per lane: head_dim <= 32 * DT
__global__ void __launch_bounds__(KV_WARPS * 32) k_kv_attn(const KvArgs a) {
    extern __shared__ float smem[]; // acc [KV_WARPS][KV_GMAX][hd], then m, l [KV_WARPS][KV_GMAX]
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t i = blockIdx.x, kvh = blockIdx.y / a.gz, g0 = (int64_t)(blockIdx.y % a.gz) * KV_GMAX;
    const int GB = (int)(a.G - g0 < KV_GMAX ? a.G - g0 : KV_GMAX);
    const int split = blockIdx.z;
    const int64_t hd = a.hd;
    // absolute position of the query (cross-attention: every key is visible)
    const int64_t p = a.full ? a.n_kv - 1 : a.n_kv - a.n_q + i;
    int64_t lo = !a.full && a.window > 0 ? p - a.window + 1 : 0;
    if (lo < 0) lo = 0;
    const int64_t s0 = lo + (int64_t)split * a.chunk;
    const int64_t s1 = s0 + a.chunk < p + 1 ? s0 + a.chunk : p + 1;

    float q[KV_GMAX][DT], acc[KV_GMAX][DT], m[KV_GMAX], l[KV_GMAX];
#pragma unroll
    for (int g = 0; g < KV_GMAX; g++) {
        m[g] = -INFINITY;
        l[g] = 0.f;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            const int64_t d = lane + 32 * t;
            q[g][t] = (g < GB && d < hd) ? a.q[i * a.q_row + (kvh * a.G + g0 + g) * hd + d] : 0.f;
            acc[g][t] = 0.f;
        }
    }
    for (int64_t j = s0 + w; j < s1; j += KV_WARPS) {
        const int64_t base = j * a.kv_row + kvh * hd;
        float kr[DT], vr[DT];
#pragma unroll
        for (int t = 0; t < DT; t++) {
            const int64_t d = lane + 32 * t;
            kr[t] = d < hd ? load_kv(a.k, base + d, a.kv_bf16) : 0.f;
            vr[t] = d < hd ? load_kv(a.v, base + d, a.kv_bf16) : 0.f;
        }
#pragma unroll
        for (int g = 0; g < KV_GMAX; g++) {
            if (g < GB) {
                float dot = 0.f;
#pragma unroll
                for (int t = 0; t < DT; t++) dot += q[g][t] * kr[t];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffff, dot, o);
                const float sc = dot * a.scale;
                const float mn = fmaxf(m[g], sc);
                const float corr = expf(m[g] - mn); // 0 while m is -inf
                const float pj = expf(sc - mn);
                l[g] = l[g] * corr + pj;
#pragma unroll
                for (int t = 0; t < DT; t++) acc[g][t] = acc[g][t] * corr + pj * vr[t];
                m[g] = mn;
            }
        }
    }
    float *sacc = smem, *sm = smem + KV_WARPS * KV_GMAX * hd, *sl = sm + KV_WARPS * KV_GMAX;
#pragma unroll
    for (int g = 0; g < KV_GMAX; g++) {
        if (g < GB) {
#pragma unroll
            for (int t = 0; t < DT; t++) {
                const int64_t d = lane + 32 * t;
                if (d < hd) sacc[(w * KV_GMAX + g) * hd + d] = acc[g][t];
            }
            if (lane == 0) {
                sm[w * KV_GMAX + g] = m[g];
                sl[w * KV_GMAX + g] = l[g];
            }
        }
    }
    __syncthreads();
    for (int64_t idx = threadIdx.x; idx < GB * hd; idx += blockDim.x) {
        const int g = (int)(idx / hd);
        const int64_t d = idx - g * hd;
        float M = -INFINITY, L = 0.f, A = 0.f;
        for (int ww = 0; ww < KV_WARPS; ww++) M = fmaxf(M, sm[ww * KV_GMAX + g]);
        for (int ww = 0; ww < KV_WARPS; ww++) {
            const float mw = sm[ww * KV_GMAX + g];
            if (mw == -INFINITY) continue; // a warp (or the whole split) without keys
            const float f = expf(mw - M);
            L += sl[ww * KV_GMAX + g] * f;
            A += sacc[(ww * KV_GMAX + g) * hd + d] * f;
        }
        const int64_t head = kvh * a.G + g0 + g;
        if (a.nsplit == 1) {
            store_out(a.out, i * a.out_row + head * hd + d, L > 0.f ? A / L : 0.f, a.out_bf16);
        } else {
            const int64_t pi = (i * a.n_heads + head) * a.nsplit + split;
            a.part_acc[pi * hd + d] = A;
            if (d == 0) {
                a.part_m[pi] = M;
                a.part_l[pi] = L;
            }
        }
    }
}

// grid (query, head): merge the splits' partial softmax results
__global__ void k_kv_combine(const KvArgs a) {
    const int64_t i = blockIdx.x, head = blockIdx.y, base = (i * a.n_heads + head) * a.nsplit;
    float M = -INFINITY;
    for (int s = 0; s < a.nsplit; s++) M = fmaxf(M, a.part_m[base + s]);
    for (int64_t d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float L = 0.f, A = 0.f;
        for (int s = 0; s < a.nsplit; s++) {
            const float ms = a.part_m[base + s];
            if (ms == -INFINITY) continue;
            const float f = expf(ms - M);
            L += a.part_l[base + s] * f;
            A += a.part_acc[(base + s) * a.hd + d] * f;
        }
        store_out(a.out, i * a.out_row + head * a.hd + d, L > 0.f ? A / L : 0.f, a.out_bf16);
    }
}

extern "C" int mms_cu_kv_attention(int64_t n_q, int64_t n_kv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                                   const float *q, int64_t q_row, const void *k, const void *v, int kv_bf16,
                                   int64_t kv_row, void *out, int out_bf16, int64_t out_row, int64_t window, float scale,
                                   int full, void *stream) {
    if (head_dim <= 0 || head_dim > MMS_CU_KV_MAX_HD || n_kv_heads <= 0 || n_heads % n_kv_heads || n_q <= 0 ||
        n_kv <= 0 || (!full && n_kv < n_q))
        return (int)cudaErrorInvalidValue;
    KvArgs a = {};
    a.n_q = n_q; a.n_kv = n_kv; a.n_heads = n_heads; a.G = n_heads / n_kv_heads; a.hd = head_dim;
    a.q = q; a.q_row = q_row; a.k = k; a.v = v; a.kv_row = kv_row; a.kv_bf16 = kv_bf16;
    a.out = out; a.out_row = out_row; a.out_bf16 = out_bf16; a.window = full ? 0 : window; a.scale = scale;
    a.full = full;
    a.gz = (int)((a.G + KV_GMAX - 1) / KV_GMAX);
    // keys one query can see at most, split so that the grid has >= ~256 blocks, >= 32 keys each
    const int64_t range = window > 0 && window < n_kv ? window : n_kv;
    const int64_t base_blocks = n_q * n_kv_heads * a.gz;
    int64_t ns = (range + 31) / 32, want = (256 + base_blocks - 1) / base_blocks;
    if (ns > want) ns = want;
    if (ns > 64) ns = 64;
    if (ns < 1) ns = 1;
    a.chunk = (range + ns - 1) / ns;
    ns = (range + a.chunk - 1) / a.chunk;
    a.nsplit = (int)ns;
    void *scratch = NULL;
    int c = 0;
    if (ns > 1) {
        const size_t np = (size_t)(n_q * n_heads * ns);
        c = (int)cudaMallocAsync(&scratch, np * (size_t)(2 + head_dim) * sizeof(float), ST(stream));
        if (c) return c;
        a.part_m = (float *)scratch;
        a.part_l = a.part_m + np;
        a.part_acc = a.part_l + np;
    }
    dim3 grid((unsigned)n_q, (unsigned)(n_kv_heads * a.gz), (unsigned)ns);
    const size_t smem = (size_t)(KV_WARPS * KV_GMAX * head_dim + 2 * KV_WARPS * KV_GMAX) * sizeof(float);
    if (head_dim <= 32) k_kv_attn<1><<<grid, KV_WARPS * 32, smem, ST(stream)>>>(a);
    else if (head_dim <= 64) k_kv_attn<2><<<grid, KV_WARPS * 32, smem, ST(stream)>>>(a);
    else if (head_dim <= 128) k_kv_attn<4><<<grid, KV_WARPS * 32, smem, ST(stream)>>>(a);
    else k_kv_attn<8><<<grid, KV_WARPS * 32, smem, ST(stream)>>>(a);
    c = (int)cudaGetLastError();
    if (!c && ns > 1) {
        k_kv_combine<<<dim3((unsigned)n_q, (unsigned)n_heads), 128, 0, ST(stream)>>>(a);
        c = (int)cudaGetLastError();
    }
    if (scratch) cudaFreeAsync(scratch, ST(stream));
    return c;
}
