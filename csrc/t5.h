/* t5.h -- T5 / Flan-T5 pieces shared by the encoder (here) and the decoder stack (decoder.h,
 * family MMS_DEC_T5): relative position buckets and the encoder stack.
 *
 * Relative position bias: block 0 of each stack owns relative_attention_bias (num_buckets, H);
 * the score of query position p and key position j gets bias[bucket(j - p)][h]. Buckets saturate
 * at |j - p| >= max_distance, so one table of 2 * max_distance + 1 offsets per head covers every
 * length (the attention kernels clamp the offset, see mms_attn_args.rel_bias).
 *
 *     mms_t5_encoder_forward(e, embeds, mask, B, L, out, &e);   // (B, L, D) -> (B, L, D)
 */
#ifndef MMS_T5_H
#define MMS_T5_H

#include "decoder.h"

#ifdef __cplusplus
extern "C" {
#endif

/* transformers' T5Attention._relative_position_bucket for rel = key - query (float32 log). */
int64_t mms_t5_bucket(int64_t rel, int bidirectional, int64_t num_buckets, int64_t max_distance);
/* emb (num_buckets, H) F32 -> table (H, 2 * max_distance + 1): table[h][R + d] = emb[bucket(d)][h]. */
void mms_t5_rel_table(const float *emb, int64_t H, int64_t num_buckets, int64_t max_distance, int bidirectional,
                      float *table);
/* Load "<stack>.block.0.layer.0.SelfAttention.relative_attention_bias.weight" as a table on be. */
mms_status mms_t5_load_rel_bias(mms_backend *be, const mms_weights *w, const char *stack, const mms_decoder_config *c,
                                int bidirectional, mms_tensor *out, mms_error *err);

typedef struct mms_t5_encoder mms_t5_encoder;

/* The encoder stack of a T5 checkpoint: "shared.weight", "encoder.*" (rename prefixes for VLMs).
 * c: the T5 config (mms_decoder_config_parse of a t5 config). */
mms_status mms_t5_encoder_load(const mms_weights *w, const mms_decoder_config *c, mms_dtype dtype, mms_backend *be,
                               mms_t5_encoder **out, mms_error *err);
void mms_t5_encoder_free(mms_t5_encoder *e);
/* embeds (B, L, D) F32 host (token embeddings, possibly edited), mask (B, L) I64 (1 = real) or
 * NULL -> out (B, L, D) F32 host: final_layer_norm(encoder stack). */
mms_status mms_t5_encoder_forward(const mms_t5_encoder *e, const float *embeds, const int64_t *mask, int64_t B,
                                  int64_t L, float *out, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
