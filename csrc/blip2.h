/* blip2.h -- BLIP-2 (HF Blip2ForConditionalGeneration): a BLIP-2 vision tower (clip.h), the
 * Q-Former (qformer.h), the language projection, and the language model: OPT (decoder.h) or
 * Flan-T5 (t5.h encoder + decoder.h T5 decoder stack), all from one checkpoint directory.
 *
 * The C side computes the image embeddings and owns the language model; mmsuite/blip2.py builds
 * the inputs (image-token rows overwritten, or the queries prepended for legacy configs) and runs
 * generation with the decoder state API:
 *     mms_blip2_load(dir, MMS_DTYPE_BF16, mms_backend_cpu(), &m, &e);
 *     mms_blip2_image_features(m, &pixel_values, NULL, NULL, projected, &e);   // (B, Q, Dt)
 *     OPT:  mms_decoder_embed + overwrite rows + mms_decoder_forward(...)
 *     T5:   mms_t5_encoder_forward(embeds) -> mms_decoder_state_set_encoder -> mms_decoder_forward
 * A loaded model is immutable and thread-safe. */
#ifndef MMS_BLIP2_H
#define MMS_BLIP2_H

#include "clip.h"
#include "decoder.h"
#include "qformer.h"
#include "t5.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mms_blip2_config {
    int64_t n_query;          /* num_query_tokens                                                   */
    int64_t image_token_id;   /* image_token_index, or -1 (legacy: queries prepended to the text)    */
    int encoder_decoder;      /* language model is T5 (use_decoder_only_language_model false)        */
    int64_t image_size, vision_hidden, vision_tokens, qformer_hidden, text_hidden;
    mms_qformer_config qformer;
    mms_decoder_config text;  /* OPT decoder, or the T5 config (decoder stack + n_enc_layers)          */
} mms_blip2_config;

typedef struct mms_blip2 mms_blip2;

mms_status mms_blip2_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_blip2 **out, mms_error *err);
/* weight_flags: mms_weights_open_ex flags (MMS_WEIGHTS_IN_MEMORY). */
mms_status mms_blip2_load_ex(const char *dir, mms_dtype dtype, mms_backend *be, int weight_flags, mms_blip2 **out,
                             mms_error *err);
void mms_blip2_free(mms_blip2 *m);
const mms_blip2_config *mms_blip2_get_config(const mms_blip2 *m);
const mms_decoder *mms_blip2_decoder(const mms_blip2 *m);        /* OPT, or T5's decoder stack     */
const mms_t5_encoder *mms_blip2_t5_encoder(const mms_blip2 *m);  /* NULL for OPT                   */
int64_t mms_blip2_weight_bytes(const mms_blip2 *m);              /* checkpoint bytes mapped        */

/* pixel_values (B, 3, S, S) F32 -> host outputs, each optional except projected:
 *   vision (B, Tv, Dv): vision last_hidden_state (post_layernorm); qformer (B, Q, Dq);
 *   projected (B, Q, Dt): language_projection(qformer). */
mms_status mms_blip2_image_features(const mms_blip2 *m, const mms_tensor *pixel_values, float *vision, float *qformer,
                                    float *projected, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
