/* llava.h -- LLaVA 1.5 (LlavaForConditionalGeneration) and LLaVA-NeXT / 1.6
 * (LlavaNextForConditionalGeneration): a CLIP vision tower, a two-layer projector and a
 * decoder (decoder.h), loaded from one HF checkpoint directory.
 *
 * The C side computes image features and owns the language model; the caller (mmsuite/llava.py)
 * builds the prompt, places the feature rows at the image tokens and runs generation:
 *     mms_llava_load(dir, MMS_DTYPE_F32, mms_backend_cpu(), &m, &e);
 *     mms_llava_image_features(m, &pixel_values, NULL, NULL, projected, &e);  // (N, n, D)
 *     mms_llava_pack_next(...)            // LLaVA-NeXT: tiles -> unpadded grid + newlines
 *     mms_decoder_embed(mms_llava_decoder(m), ids, L, embeds, &e); ... overwrite image rows ...
 *     mms_decoder_forward(state, ..., embeds, ...);
 * A loaded model is immutable and thread-safe like mms_clip / mms_decoder. */
#ifndef MMS_LLAVA_H
#define MMS_LLAVA_H

#include "clip.h"
#include "decoder.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MMS_LLAVA_MAX_PINPOINTS 64

typedef struct mms_llava_config {
    int next;                     /* LLaVA-NeXT (anyres)                                          */
    int64_t image_token_id;
    int feature_layer;            /* hidden_states index (negative counts from the end)            */
    int vision_layers_run;        /* encoder layers the feature layer needs                        */
    int select_full;              /* "full": keep the CLS row; "default": drop it                  */
    mms_act projector_act;
    int64_t image_size, patch_size, vision_hidden, text_hidden;
    int64_t tokens_per_patch;     /* (S/p)^2 (+1 with "full")                                      */
    int64_t n_pinpoints;
    int64_t pinpoints[MMS_LLAVA_MAX_PINPOINTS][2]; /* (height, width)                              */
    mms_decoder_config text;
} mms_llava_config;

typedef struct mms_llava mms_llava;

/* Load config.json + safetensors (transformers v4 names "language_model.model.*" /
 * "vision_tower.*" or v5 names "model.language_model.*"). dtype: F32 or BF16 compute. */
mms_status mms_llava_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_llava **out, mms_error *err);
/* Same with mms_weights_open_ex flags (MMS_WEIGHTS_IN_MEMORY). */
mms_status mms_llava_load_ex(const char *dir, mms_dtype dtype, mms_backend *be, int weight_flags, mms_llava **out,
                             mms_error *err);
void mms_llava_free(mms_llava *m);
const mms_llava_config *mms_llava_get_config(const mms_llava *m);
const mms_decoder *mms_llava_decoder(const mms_llava *m);
int64_t mms_llava_vision_weight_bytes(const mms_llava *m);

/* pixel_values (N, 3, S, S) F32 (N image patches) -> host outputs, each optional:
 *   layer_full (N, T, Dv): hidden_states[feature_layer] including CLS;
 *   selected (N, n, Dv): after the select strategy; projected (N, n, Dt): projector output. */
mms_status mms_llava_image_features(const mms_llava *m, const mms_tensor *pixel_values, float *layer_full,
                                    float *selected, float *projected, mms_error *err);

/* LLaVA-NeXT packing of one image: projected (1 + gh*gw, n, Dt) host rows of its patches (base
 * first, then the grid tiles row-major) -> out (n + rows * (cols + 1), Dt): the base rows, then
 * the grid as a (gh*s, gw*s) token map (s = S/p) cut to rows [row0, row0+rows) and columns
 * [col0, col0+cols), each row followed by image_newline. Returns the row count in *n_out. */
mms_status mms_llava_pack_next(const mms_llava *m, const float *projected, int64_t gh, int64_t gw, int64_t row0,
                               int64_t rows, int64_t col0, int64_t cols, float *out, int64_t *n_out, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
