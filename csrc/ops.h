/* ops.h -- every compute op, declared once. Each checks shapes/dtypes (returning
 * MMS_ERR_VALUE with the op name and shapes) and dispatches to the backend's kernel.
 * Shapes use NumPy order; all activations are contiguous unless stated. */
#ifndef MMS_OPS_H
#define MMS_OPS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y (M, N) = act(x (M, K) @ L.w^T + L.b) [+ residual (M, N) F32]. */
mms_status mms_op_linear(mms_backend *be, const mms_tensor *x, const mms_linear *L, mms_act act,
                         const mms_tensor *residual, mms_tensor *y, mms_error *err);
/* y (..., D) = (x - mean) / sqrt(var + eps) * g + b, biased variance; g, b (D) F32. */
mms_status mms_op_layernorm(mms_backend *be, const mms_tensor *x, const mms_tensor *g, const mms_tensor *b,
                            float eps, mms_tensor *y, mms_error *err);
mms_status mms_op_attention(mms_backend *be, const mms_attn_args *a, mms_error *err);
/* y (..., D) = x * rsqrt(mean(x^2) + eps) * g; g (D) F32. */
mms_status mms_op_rmsnorm(mms_backend *be, const mms_tensor *x, const mms_tensor *g, float eps, mms_tensor *y,
                          mms_error *err);
/* Rotary embedding in place (see backend.h); pos and inv_freq are host arrays. */
mms_status mms_op_rope(mms_backend *be, float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim,
                       int64_t rot_dim, const int64_t *pos, const float *inv_freq, float attn_factor, mms_error *err);
/* out (rows, F) = act(gate) * up. */
mms_status mms_op_glu(mms_backend *be, const float *gate, int64_t gate_stride, const float *up, int64_t up_stride,
                      int64_t rows, int64_t F, mms_act act, mms_tensor *out, mms_error *err);
mms_status mms_op_store_rows(mms_backend *be, void *dst, mms_dtype dst_dtype, int64_t dst_stride, const float *src,
                             int64_t src_stride, int64_t rows, int64_t cols, mms_error *err);
mms_status mms_op_kv_attention(mms_backend *be, const mms_kv_attn_args *a, mms_error *err);
/* x (..., C) = softmax over the last axis, in place, F32. */
mms_status mms_op_softmax(mms_backend *be, mms_tensor *x, mms_error *err);
mms_status mms_op_activation(mms_backend *be, mms_tensor *x, mms_act act, mms_error *err);
/* y (R, C) += v: v (C) broadcast over rows, or v (R, C). */
mms_status mms_op_add(mms_backend *be, mms_tensor *y, const mms_tensor *v, mms_error *err);
/* out (N, D) = table (V, D)[ids (N)]; ids out of range -> MMS_ERR_VALUE naming the id. */
mms_status mms_op_embedding(mms_backend *be, const mms_tensor *table, const mms_tensor *ids, mms_tensor *out,
                            mms_error *err);
/* Patch-embedding convolution (stride = kernel = patch, no padding) as im2col + linear:
 * out (B, nP, hidden) = patches(pixels (B, C, H, W)) @ conv_w (hidden, C*p*p)^T + bias. */
mms_status mms_op_patch_embed(mms_backend *be, const mms_tensor *pixels, int patch, const mms_linear *conv,
                              mms_tensor *out, mms_error *err);
mms_status mms_op_copy2d(mms_backend *be, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                         int64_t rows, int64_t cols, mms_error *err);
mms_status mms_op_l2_normalize(mms_backend *be, mms_tensor *x, mms_error *err);

/* Weights for mms_op_linear: w (out, in) and optional bias b (out) from host tensors, w in
 * `dtype`, b in F32, on backend be. Nothing is left allocated on failure. */
mms_status mms_linear_prepare(mms_backend *be, const mms_tensor *w, const mms_tensor *b, mms_dtype dtype,
                              mms_linear *out, mms_error *err);
void mms_linear_release(mms_linear *L);
/* A host vector / table as an F32 tensor on backend be. */
mms_status mms_vector_prepare(mms_backend *be, const mms_tensor *src, mms_tensor *out, mms_error *err);

const char *mms_act_name(mms_act a);
/* Parse an HF `hidden_act` string ("gelu", "quick_gelu", "gelu_pytorch_tanh", "relu",
 * "silu"/"swish", "gelu_new", "gelu_fast"); returns -1 when unknown. */
int mms_act_parse(const char *name);

#ifdef __cplusplus
}
#endif
#endif
