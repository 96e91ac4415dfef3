/* block_decode.c -- the shared block run over new tokens with a KV cache (decoders).
 *
 * The rows of one call belong to several sequences of different lengths, packed one after
 * another (no padding): the projections and the MLP run once over all rows, only attention is
 * per sequence. A sequence with an empty cache attends over its own fresh keys (the fused /
 * GEMM attention kernels, fastest for long prompts); one that continues a cache attends over
 * the cache (kv_attention), which also covers single-token decoding. */
#include <math.h>
#include <string.h>

#include "block.h"

mms_status mms_block_forward_cached(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                                    float *x, const mms_block_seqs *sq, const mms_block_kv *kv,
                                    mms_block_scratch *s, mms_error *err) {
    int64_t M = 0;
    for (int64_t i = 0; i < sq->n_seqs; i++) M += sq->n_new[i];
    if (M > s->max_tokens) return mms_error_set(err, MMS_ERR_INTERNAL, "block scratch too small (%lld rows)", (long long)M);
    if (M == 0) return MMS_OK;
    const int64_t H = cfg->n_heads, KVH = mms_block_kv_heads(cfg), hd = cfg->head_dim;
    const int64_t A = H * hd, KVA = KVH * hd;
    const float scale = cfg->attn_scale > 0 ? cfg->attn_scale : 1.0f / sqrtf((float)hd);
    const size_t kvsz = mms_dtype_size(kv->dtype);
    float *q, *k, *v;
    int64_t q_row, kv_row;
    mms_status rc;
#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)
    TRY(mms_block_qkv(be, cfg, bw, x, M, s, &q, &k, &v, &q_row, &kv_row, err));
    if (sq->inv_freq) {
        TRY(mms_op_rope(be, q, M, q_row, H, hd, sq->rot_dim, sq->pos, sq->inv_freq, sq->rope_factor, err));
        TRY(mms_op_rope(be, k, M, kv_row, KVH, hd, sq->rot_dim, sq->pos, sq->inv_freq, sq->rope_factor, err));
    }
    int64_t r0 = 0;
    for (int64_t i = 0; i < sq->n_seqs; r0 += sq->n_new[i], i++) {
        const int64_t n = sq->n_new[i], past = sq->past[i];
        if (n == 0) continue;
        const size_t slot_off = (size_t)(sq->slot[i] * kv->n_ctx + past) * (size_t)KVA * kvsz;
        /* append this sequence's new keys / values to its cache slot */
        TRY(mms_op_store_rows(be, (char *)kv->k + slot_off, kv->dtype, KVA, k + r0 * kv_row, kv_row, n, KVA, err));
        TRY(mms_op_store_rows(be, (char *)kv->v + slot_off, kv->dtype, KVA, v + r0 * kv_row, kv_row, n, KVA, err));
        void *out = (char *)s->att + (size_t)(r0 * A) * mms_dtype_size(cfg->compute);
        if (past == 0 && n > 1) {
            mms_attn_args a;
            memset(&a, 0, sizeof a);
            a.batch = 1; a.n_q = n; a.n_kv = n; a.n_heads = H; a.head_dim = hd;
            a.n_kv_heads = KVH; a.window = cfg->window;
            a.q = q + r0 * q_row; a.q_row = q_row; a.q_batch = n * q_row;
            a.k = k + r0 * kv_row; a.v = v + r0 * kv_row; a.kv_row = kv_row; a.kv_batch = n * kv_row;
            a.out = out; a.out_dtype = cfg->compute;
            a.causal = 1; a.scale = scale;
            a.low_precision = cfg->compute == MMS_DTYPE_BF16;
            a.rel_bias = sq->rel_bias; a.rel_max = sq->rel_max;
            TRY(mms_op_attention(be, &a, err));
        } else {
            mms_kv_attn_args a;
            memset(&a, 0, sizeof a);
            a.n_q = n; a.n_kv = past + n; a.n_heads = H; a.n_kv_heads = KVH; a.head_dim = hd;
            a.q = q + r0 * q_row; a.q_row = q_row;
            const size_t base = (size_t)(sq->slot[i] * kv->n_ctx) * (size_t)KVA * kvsz;
            a.k = (char *)kv->k + base; a.v = (char *)kv->v + base; a.kv_dtype = kv->dtype; a.kv_row = KVA;
            a.out = out; a.out_dtype = cfg->compute; a.out_row = A;
            a.window = cfg->window; a.scale = scale;
            a.rel_bias = sq->rel_bias; a.rel_max = sq->rel_max;
            TRY(mms_op_kv_attention(be, &a, err));
        }
    }
#undef TRY
    return mms_block_finish(be, cfg, bw, x, M, sq->cross, s, err);
}
