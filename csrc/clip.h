/* clip.h -- contrastive image-text models: CLIP (HF CLIPModel), OpenCLIP checkpoints and
 * SigLIP (HF SiglipModel), all run by the shared transformer block.
 *
 * Usage:
 *     mms_clip *m; mms_error e;
 *     if (mms_clip_load("path/to/checkpoint", MMS_DTYPE_F32, mms_backend_cpu(), &m, &e)) { ... e.msg ... }
 *     mms_outputs out;
 *     mms_clip_encode_image(m, &pixel_values, &out, &e);   // (B, 3, S, S) float32
 *     ... mms_outputs_find(&out, "image_embeds") ...
 *     mms_outputs_release(&out);
 *     mms_clip_free(m);
 *
 * A loaded model is immutable: encode calls may run concurrently from any number of threads
 * (each call allocates its own activations). Weights used as stored borrow the mmap. */
#ifndef MMS_CLIP_H
#define MMS_CLIP_H

#include "block.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_clip_kind {
    MMS_CLIP_HF = 0, MMS_CLIP_OPENCLIP = 1, MMS_CLIP_SIGLIP = 2,
    MMS_CLIP_BLIP2 = 3, /* BLIP-2 vision tower (vision_only): packed qkv, post_layernorm on all tokens */
} mms_clip_kind;

typedef enum mms_text_pool {
    MMS_POOL_ARGMAX = 0,    /* argmax(input_ids) (legacy CLIP configs: eos_token_id == 2; OpenCLIP) */
    MMS_POOL_FIRST_EOS = 1, /* first position where input_ids == eos_token_id                     */
    MMS_POOL_LAST = 2,      /* always position T-1 (SigLIP)                                         */
} mms_text_pool;

/* Everything the model needs from its config, resolved with transformers' defaults. */
typedef struct mms_clip_config {
    mms_clip_kind kind;
    mms_block_config vision, text;
    int vision_layers, text_layers;
    int64_t image_size, patch_size, num_channels;
    int64_t vocab_size, max_positions;
    int64_t eos_token_id, pad_token_id, bos_token_id;
    mms_text_pool pool;
    int64_t projection_dim;   /* embedding size of image_embeds / text_embeds */
    int vision_class_token;   /* CLIP: CLS token prepended                          */
    int vision_pre_norm;      /* CLIP: pre_layrnorm before the encoder               */
    int vision_post_norm_all; /* SigLIP: post_layernorm on every token                */
    int vision_map_head;      /* SigLIP: attention-pooling head                      */
    int text_causal;
    float vision_eps, text_eps;
    int vision_only;          /* a VLM's vision tower: no text tower, projection or post-norm */
} mms_clip_config;

typedef struct mms_clip mms_clip;

/* One named output tensor (host memory, owns a storage reference). */
typedef struct mms_named_tensor {
    char name[48];
    mms_tensor t;
} mms_named_tensor;

#define MMS_MAX_OUTPUTS 16
typedef struct mms_outputs {
    int n;
    mms_named_tensor items[MMS_MAX_OUTPUTS];
} mms_outputs;

void mms_outputs_release(mms_outputs *o);
const mms_tensor *mms_outputs_find(const mms_outputs *o, const char *name);

/* Load a checkpoint directory: config.json + model.safetensors (or sharded index) for
 * CLIPModel / SiglipModel, or open_clip_config.json + open_clip_model.safetensors.
 * dtype: MMS_DTYPE_F32 or MMS_DTYPE_BF16 (GEMM weights converted once; norms, embeddings
 * and attention stay fp32). Errors name the file and key/tensor; nothing leaks on failure. */
mms_status mms_clip_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err);
void mms_clip_free(mms_clip *m);

const mms_clip_config *mms_clip_get_config(const mms_clip *m);
float mms_clip_logit_scale(const mms_clip *m); /* raw parameter (logits use exp of it) */
float mms_clip_logit_bias(const mms_clip *m);  /* SigLIP; 0 otherwise                  */
mms_dtype mms_clip_dtype(const mms_clip *m);
int64_t mms_clip_weight_bytes(const mms_clip *m); /* bytes of weights held (mapped + converted) */

/* pixel_values (B, C, S, S) F32 host, any strides -> outputs (host):
 *   vision_last_hidden_state (B, T, D), vision_pooler_output (B, D),
 *   image_embeds_unnormalized (B, P) [CLIP/OpenCLIP], image_embeds (B, P) L2-normalized. */
mms_status mms_clip_encode_image(const mms_clip *m, const mms_tensor *pixel_values, mms_outputs *out, mms_error *err);

/* input_ids (B, T) I64, attention_mask (B, T) I64 or NULL -> outputs (host):
 *   text_last_hidden_state (B, T, D), text_pool_index (B) I64, text_pooler_output (B, D),
 *   text_embeds_unnormalized (B, P) [CLIP/OpenCLIP], text_embeds (B, P). */
mms_status mms_clip_encode_text(const mms_clip *m, const mms_tensor *input_ids, const mms_tensor *attention_mask,
                                mms_outputs *out, mms_error *err);

/* ---- vision towers of VLMs (LLaVA) ---- */

/* Load only a CLIP vision tower: config object `vc` of j (e.g. "vision_config"), weights named
 * "vision_model.*" in w (use mms_weights_set_renames for prefixes), only the first n_layers
 * encoder layers (the layers a VLM's feature layer needs). */
mms_status mms_clip_load_vision(const mms_weights *w, const mms_json *j, const cJSON *vc, const char *what,
                                int n_layers, mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err);
/* Load a BLIP-2 vision tower (Blip2VisionModel, weights "vision_model.*") from config object vc. */
mms_status mms_clip_load_blip2_vision(const mms_weights *w, const mms_json *j, const cJSON *vc, const char *what,
                                      mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err);
/* BLIP-2 last_hidden_state: every layer, then post_layernorm on all tokens: (B, T, D) host. */
mms_status mms_clip_vision_last_hidden(const mms_clip *m, const mms_tensor *pixel_values, float *out, mms_error *err);
/* Hidden states after n_layers encoder layers (0 = the pre-normed embeddings), no post-norm:
 * pixel_values (B, C, S, S) F32 -> out (B, T, D) F32 host (T includes the class token). */
mms_status mms_clip_vision_hidden(const mms_clip *m, const mms_tensor *pixel_values, int n_layers, float *out,
                                  mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
