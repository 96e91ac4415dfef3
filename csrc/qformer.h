/* qformer.h -- the BLIP-2 Q-Former (HF Blip2QFormerModel run on query tokens only): learned
 * queries -> LayerNorm -> BERT-style post-LN layers (self-attention over the queries,
 * cross-attention to the image features every cross_attention_frequency layers, the query
 * feed-forward) on the shared block.
 *
 *     mms_qformer_forward(q, image, B, Te, out, &e);   // image (B, Te, Dc) -> out (B, Q, D)
 *
 * Immutable after load; forward calls may run concurrently (each brings its own buffers). */
#ifndef MMS_QFORMER_H
#define MMS_QFORMER_H

#include "block.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mms_qformer_config {
    mms_block_config block; /* post-norm, LayerNorm eps 1e-12, cross_dim = encoder_hidden_size */
    int n_layers;
    int64_t n_query;        /* num_query_tokens (root config)                                  */
} mms_qformer_config;

typedef struct mms_qformer mms_qformer;

/* qc: the "qformer_config" object; n_query from the root's num_query_tokens. */
mms_status mms_qformer_config_parse(const mms_json *j, const cJSON *qc, const char *what, int64_t n_query,
                                    mms_qformer_config *c, mms_error *err);
/* Weights "qformer.*" and "query_tokens". dtype: F32 or BF16 compute. */
mms_status mms_qformer_load(const mms_weights *w, const mms_qformer_config *c, mms_dtype dtype, mms_backend *be,
                            mms_qformer **out, mms_error *err);
void mms_qformer_free(mms_qformer *q);
const mms_qformer_config *mms_qformer_get_config(const mms_qformer *q);
/* image (B, Te, Dc) F32 host -> out (B, n_query, D) F32 host (last_hidden_state of the queries). */
mms_status mms_qformer_forward(const mms_qformer *q, const float *image, int64_t B, int64_t Te, float *out,
                               mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
