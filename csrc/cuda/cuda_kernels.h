/* cuda_kernels.h -- launchers of the CUDA backend's kernels (cuda_kernels.cu), callable from C.
 * All pointers are device pointers; launches go to `stream` and are asynchronous. Returns 0
 * or a cudaError_t value. */
#ifndef MMS_CUDA_KERNELS_H
#define MMS_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[r, c] (rows, cols) = act(y_f32[r, c] + bias[c]) + residual[r, c]; y written as f32 or bf16 */
int mms_cu_epilogue(const float *acc, const float *bias, const float *residual, int act, void *y, int y_bf16,
                    int64_t rows, int64_t cols, void *stream);
int mms_cu_f32_to_bf16(const float *x, uint16_t *y, int64_t n, void *stream);
int mms_cu_layernorm(const float *x, const float *g, const float *b, float eps, void *y, int y_bf16, int64_t rows,
                     int64_t dim, void *stream);
/* attention: same layout contract as mms_attn_args (strides in elements); kv_heads 0 = heads,
 * window 0 = unlimited */
int mms_cu_attention(int64_t batch, int64_t n_q, int64_t n_kv, int64_t heads, int64_t hd, const float *q,
                     int64_t q_row, int64_t q_batch, const float *k, const float *v, int64_t kv_row, int64_t kv_batch,
                     void *out, int out_bf16, const int64_t *key_mask, int causal, float scale, int64_t kv_heads,
                     int64_t window, void *stream);
int mms_cu_softmax(float *x, int64_t rows, int64_t cols, void *stream);
int mms_cu_activation(float *x, int64_t n, int act, void *stream);
int mms_cu_add(float *y, const float *v, int64_t rows, int64_t cols, int bcast, void *stream);
/* table dtype: 0 f32, 1 f16, 2 bf16 ; bad ids set *bad_flag (device int) to 1 */
int mms_cu_embedding(const void *table, int table_dtype, int64_t dim, const int64_t *ids, int64_t n, int64_t vocab,
                     float *out, int *bad_flag, void *stream);
int mms_cu_im2col(const float *px, int64_t B, int64_t C, int64_t H, int64_t W, int64_t sb, int64_t sc, int64_t sh,
                  int64_t sw, int p, float *out, void *stream);
int mms_cu_copy2d(float *dst, int64_t ds, const float *src, int64_t ss, int64_t rows, int64_t cols, void *stream);
int mms_cu_l2norm(float *x, int64_t rows, int64_t dim, void *stream);

/* ---- decoders (decoder_kernels.cu); contracts as the backend.h entries of the same names ---- */
int mms_cu_rmsnorm(const float *x, const float *g, float eps, void *y, int y_bf16, int64_t rows, int64_t dim,
                   void *stream);
/* pos (rows) and inv_freq (rot_dim / 2) are HOST arrays: passed to the kernels by value, in
 * launches of MMS_CU_ROPE_ROWS rows; rot_dim <= MMS_CU_ROPE_MAX_ROT. */
#define MMS_CU_ROPE_ROWS 128
#define MMS_CU_ROPE_MAX_ROT 512
int mms_cu_rope(float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim, int64_t rot_dim,
                const int64_t *pos_host, const float *inv_freq_host, float attn_factor, void *stream);
int mms_cu_glu(const float *gate, int64_t gate_stride, const float *up, int64_t up_stride, int64_t rows, int64_t F,
               int act, void *out, int out_bf16, void *stream);
int mms_cu_store_rows(void *dst, int dst_bf16, int64_t dst_stride, const float *src, int64_t src_stride, int64_t rows,
                      int64_t cols, void *stream);
/* attention over a KV cache (mms_kv_attn_args); head_dim <= MMS_CU_KV_MAX_HD. Long caches are
 * split over blocks (flash-decoding) with a pooled scratch for the partial results. */
#define MMS_CU_KV_MAX_HD 256
int mms_cu_kv_attention(int64_t n_q, int64_t n_kv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                        const float *q, int64_t q_row, const void *k, const void *v, int kv_bf16, int64_t kv_row,
                        void *out, int out_bf16, int64_t out_row, int64_t window, float scale, int full,
                        void *stream);

#ifdef __cplusplus
}
#endif
#endif
