/* backend.h -- the backend interface: every op runs through one of these vtables.
 *
 * An op is declared once in ops.h (shape logic and checks in ops.c); each backend (cpu/,
 * cuda/) implements the kernels behind this small table. Buffers passed to a backend live on
 * its device (host memory for CPU, device memory for CUDA) and are described by mms_tensor.
 * Thread safety: every entry may be called concurrently from several threads with distinct
 * output buffers; backends keep per-thread or per-call scratch internally. */
#ifndef MMS_BACKEND_H
#define MMS_BACKEND_H

#include "mms_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_act {
    MMS_ACT_NONE = 0,
    MMS_ACT_GELU,       /* exact erf GELU                                   */
    MMS_ACT_GELU_TANH,  /* tanh approximation (gelu_pytorch_tanh)           */
    MMS_ACT_QUICK_GELU, /* x * sigmoid(1.702 x) (OpenAI CLIP)               */
    MMS_ACT_RELU,
    MMS_ACT_SILU,       /* x * sigmoid(x)                                   */
} mms_act;

/* Weights of y = x W^T + b, prepared for one backend (mms_linear_prepare in ops.h). */
typedef struct mms_linear {
    mms_tensor w;    /* (out, in) F32 or BF16 on the backend's device                     */
    mms_tensor b;    /* (out,) F32, or ndim == 0 when the layer has no bias               */
} mms_linear;

static inline int64_t mms_linear_in(const mms_linear *L) { return L->w.ne[1]; }
static inline int64_t mms_linear_out(const mms_linear *L) { return L->w.ne[0]; }

/* Fused multi-head attention. q/k/v rows are tokens; head h of token t is the head_dim
 * floats starting at ptr + t*row_stride + h*head_dim (so packed qkv buffers need no copy).
 * out: (batch, n_q, n_heads*head_dim) contiguous, dtype out_dtype (F32 or BF16). */
typedef struct mms_attn_args {
    int64_t batch, n_q, n_kv, n_heads, head_dim;
    const float *q; int64_t q_row, q_batch;     /* strides in elements */
    const float *k; const float *v; int64_t kv_row, kv_batch;
    void *out; mms_dtype out_dtype;
    const int64_t *key_mask; /* (batch, n_kv), 1 = attend; NULL = attend everywhere */
    int causal;              /* query i sees keys j <= i (+ offset n_kv - n_q)        */
    float scale;
    int low_precision;       /* 1: the GEMM path may compute QK^T and PV in bf16 (bf16 models) */
    int64_t n_kv_heads;      /* grouped-query attention: k/v hold this many heads, query head h
                                reads kv head h / (n_heads / n_kv_heads); 0 = n_heads          */
    int64_t window;          /* sliding window (Mistral): query i (at key index i + n_kv - n_q)
                                sees keys j > i + n_kv - n_q - window; 0 = unlimited           */
    const float *rel_bias;   /* relative position bias (T5), on the backend's device, or NULL:
                                (n_heads, 2 * rel_max + 1); query i (position p = i + n_kv - n_q)
                                and key j get + rel_bias[h][rel_max + clamp(j - p, +-rel_max)]
                                added to their scaled score                                     */
    int64_t rel_max;
} mms_attn_args;

/* Attention of new queries over a KV cache (decoders). The cache holds n_kv rows of
 * n_kv_heads*head_dim values (F32 or BF16) for one sequence; query i sits at absolute
 * position p = n_kv - n_q + i and sees keys j <= p (and j > p - window when window > 0).
 * q: (n_q, n_heads*head_dim) F32 rows with stride q_row; out: (n_q, n_heads*head_dim) rows with
 * stride out_row, dtype out_dtype (F32 or BF16). Strides in elements. */
typedef struct mms_kv_attn_args {
    int64_t n_q, n_kv, n_heads, n_kv_heads, head_dim;
    const float *q; int64_t q_row;
    const void *k, *v; mms_dtype kv_dtype; int64_t kv_row;
    void *out; mms_dtype out_dtype; int64_t out_row;
    int64_t window;
    float scale;
    int full;                /* 1: every query sees all n_kv keys (cross-attention)            */
    const float *rel_bias;   /* as in mms_attn_args (query i at position n_kv - n_q + i)       */
    int64_t rel_max;
} mms_kv_attn_args;

typedef struct mms_backend mms_backend;

typedef struct mms_backend_vtable {
    const char *name;
    /* memory on the backend's device */
    void *(*alloc)(mms_backend *be, size_t n);
    void (*free)(mms_backend *be, void *p);
    mms_status (*upload)(mms_backend *be, void *dst, const void *src_host, size_t n, mms_error *err);
    mms_status (*download)(mms_backend *be, void *dst_host, const void *src, size_t n, mms_error *err);
    mms_status (*sync)(mms_backend *be, mms_error *err);
    /* n bytes from src to dst, both on the device (memcpy on the host; stream-ordered on CUDA) */
    mms_status (*copy)(mms_backend *be, void *dst, const void *src, size_t n, mms_error *err);

    /* y (M, N) = act(x (M, K) W^T + b) [+ residual (M, N), F32].  x, y: F32 or BF16. */
    mms_status (*linear)(mms_backend *be, const mms_tensor *x, const mms_linear *L, mms_act act,
                         const mms_tensor *residual, mms_tensor *y, mms_error *err);
    /* y (rows, dim) = layernorm(x) * g + b (b may be NULL); x F32, y F32 or BF16. */
    mms_status (*layernorm)(mms_backend *be, const mms_tensor *x, const float *g, const float *b,
                            float eps, mms_tensor *y, mms_error *err);
    mms_status (*attention)(mms_backend *be, const mms_attn_args *a, mms_error *err);
    /* y (rows, dim) = x * rsqrt(mean(x^2) + eps) * g (RMSNorm, fp32 statistics); x F32, y F32 or BF16. */
    mms_status (*rmsnorm)(mms_backend *be, const mms_tensor *x, const float *g, float eps, mms_tensor *y,
                          mms_error *err);
    /* Rotary position embedding in place, rotate-half convention on each head's first rot_dim
     * values: x (rows, n_heads*head_dim) F32 with row stride `stride` (elements); pos (rows) I64
     * on the host; inv_freq (rot_dim/2) F32 on the host; cos/sin scaled by attn_factor. */
    mms_status (*rope)(mms_backend *be, float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim,
                       int64_t rot_dim, const int64_t *pos, const float *inv_freq, float attn_factor, mms_error *err);
    /* out (rows, F) = act(gate) * up: gate, up (rows, F) F32 with row strides (elements);
     * out contiguous F32 or BF16 (gated MLPs: SwiGLU, GeGLU). */
    mms_status (*glu)(mms_backend *be, const float *gate, int64_t gate_stride, const float *up, int64_t up_stride,
                      int64_t rows, int64_t F, mms_act act, mms_tensor *out, mms_error *err);
    /* dst rows (stride dst_stride, dtype dst_dtype F32/BF16) <- src F32 rows (stride src_stride). */
    mms_status (*store_rows)(mms_backend *be, void *dst, mms_dtype dst_dtype, int64_t dst_stride, const float *src,
                             int64_t src_stride, int64_t rows, int64_t cols, mms_error *err);
    mms_status (*kv_attention)(mms_backend *be, const mms_kv_attn_args *a, mms_error *err);
    /* x (rows, cols) = softmax(x) along rows, in place, F32 (max-subtracted, exact-ish exp) */
    mms_status (*softmax)(mms_backend *be, mms_tensor *x, mms_error *err);
    /* x (n) = act(x) in place, F32 */
    mms_status (*activation)(mms_backend *be, mms_tensor *x, mms_act act, mms_error *err);
    /* y (rows, cols) += v (cols) broadcast over rows when v_rows == 1, else elementwise. F32 */
    mms_status (*add)(mms_backend *be, mms_tensor *y, const mms_tensor *v, mms_error *err);
    /* out (n, dim) F32 = table[ids[i]] ; table F32/F16/BF16 (rows, dim); ids I64 (n) checked */
    mms_status (*embedding)(mms_backend *be, const mms_tensor *table, const mms_tensor *ids,
                            mms_tensor *out, mms_error *err);
    /* out (B, (H/p)*(W/p), C*p*p) F32 from pixels (B, C, H, W) F32; rows ordered (c, ky, kx) */
    mms_status (*im2col)(mms_backend *be, const mms_tensor *pixels, int patch, mms_tensor *out, mms_error *err);
    /* strided 2-D copy: dst (rows, cols) <- src (rows, cols), F32, strides in elements */
    mms_status (*copy2d)(mms_backend *be, float *dst, int64_t dst_stride, const float *src,
                         int64_t src_stride, int64_t rows, int64_t cols, mms_error *err);
    /* x (rows, dim) /= ||x||_2 row-wise, F32 */
    mms_status (*l2_normalize)(mms_backend *be, mms_tensor *x, mms_error *err);
    /* A contiguous host tensor `src` (F32/F16/BF16, e.g. an mmap view) as a tensor of `dtype`
     * (F32 or BF16) on this backend's device, owning one storage reference (release with
     * mms_tensor_release). A host backend that needs no conversion BORROWS src (takes a
     * reference on its storage). */
    mms_status (*tensor_prepare)(mms_backend *be, const mms_tensor *src, mms_dtype dtype, mms_tensor *out,
                                 mms_error *err);
    void (*destroy)(mms_backend *be);
} mms_backend_vtable;

struct mms_backend {
    const mms_backend_vtable *vt;
    mms_device device;
    void *impl; /* backend-private state */
};

/* The process-wide CPU backend (created on first use; never freed). */
mms_backend *mms_backend_cpu(void);
/* The CUDA backend for device 0, or NULL with an error when not built/available. */
mms_backend *mms_backend_cuda(mms_error *err);
/* Does the CPU have AMX-BF16 / AVX512-BF16 (reported, used by oneDNN automatically)? */
int mms_cpu_has_amx(void);
/* Measured memory read bandwidth in bytes/s: `threads` threads (<= 0: mms_get_num_threads())
 * read a buffer of `bytes` (0: 1 GiB, past any L3), 4 streams each; best of `reps` (<= 0: 5)
 * passes; 0 when the buffer cannot be allocated. The roofline for decode GEMV (cpu/membw.c). */
double mms_cpu_measure_read_bw(size_t bytes, int threads, int reps);
/* Release the CPU backend's cache of freed activation buffers. Thread safe. */
void mms_cpu_trim(void);
const char *mms_cpu_isa_name(void); /* "avx512", "avx2" or "scalar": hand-written kernels in use */

#ifdef __cplusplus
}
#endif
#endif
