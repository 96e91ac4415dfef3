/* decoder.h -- causal language models (Llama, Mistral, Qwen2, OPT) on the shared block, with a
 * KV cache. One implementation, configured per family from config.json.
 *
 * Usage:
 *     mms_decoder *d; mms_decoder_state *st; mms_error e;
 *     mms_weights_open(dir, NULL, &w, &e);  mms_json_load(".../config.json", &j, &e);
 *     mms_decoder_load(w, &j, NULL, MMS_DTYPE_BF16, mms_backend_cpu(), &d, &e);
 *     mms_decoder_state_new(d, 1, 2048, MMS_DTYPE_BF16, 512, &st, &e);   // 1 slot, 2048 tokens
 *     int64_t slot = 0, n = prompt_len;
 *     mms_decoder_forward(st, 1, &slot, &n, prompt_ids, NULL, 0, logits, &e);  // prefill
 *     ... then one token per step with n = 1 ...
 *     mms_decoder_state_free(st); mms_decoder_free(d);
 *
 * Model vs state: a loaded mms_decoder is immutable (weights borrowed from the mmap when stored
 * in the compute dtype) and may serve any number of states concurrently; a mms_decoder_state
 * (KV cache for n_slots sequences, scratch, positions) belongs to one caller at a time. Nothing
 * is allocated in the token loop. */
#ifndef MMS_DECODER_H
#define MMS_DECODER_H

#include "block.h"
#include "config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_decoder_family {
    MMS_DEC_LLAMA = 0, /* also Vicuna, TinyLlama, Llama 2/3                                */
    MMS_DEC_MISTRAL,   /* Llama + sliding window                                           */
    MMS_DEC_QWEN2,     /* Llama + q/k/v biases                                             */
    MMS_DEC_OPT,       /* learned positions (offset 2), LayerNorm, ReLU, biases             */
    MMS_DEC_T5,        /* T5 / Flan-T5 decoder stack: relative position bias, RMS norm, no
                          biases or scaling, cross-attention to the encoder (t5.h)          */
} mms_decoder_family;

typedef enum mms_rope_kind {
    MMS_ROPE_NONE = 0, /* no rotary embedding (OPT)                                        */
    MMS_ROPE_DEFAULT,
    MMS_ROPE_LINEAR,   /* positions / factor                                                */
    MMS_ROPE_DYNAMIC,  /* NTK: base grows once a call's positions pass max_position_embeddings */
    MMS_ROPE_LLAMA3,   /* Llama 3.1 frequency-band scaling                                  */
} mms_rope_kind;

typedef struct mms_rope_config {
    mms_rope_kind kind;
    double theta, factor, low_freq_factor, high_freq_factor;
    int64_t original_max_pos; /* llama3: original_max_position_embeddings */
    int64_t rot_dim;          /* rotated values per head (= head_dim)     */
} mms_rope_config;

typedef struct mms_decoder_config {
    mms_decoder_family family;
    mms_block_config block; /* per-layer config (norm, heads, kv heads, gated MLP, window) */
    int n_layers;
    int64_t vocab, max_pos;
    mms_rope_config rope;
    int learned_pos;        /* OPT: embed_positions, row = position + pos_offset           */
    int64_t pos_offset;
    int tie_embeddings;     /* lm_head = embed_tokens                                       */
    int final_norm;         /* norm before lm_head (all but post-LN OPT)                    */
    int64_t bos_token_id, eos_token_id, pad_token_id; /* -1 when absent                    */
    /* T5 */
    int n_enc_layers;            /* encoder stack depth (num_layers)                              */
    int64_t rel_buckets, rel_max_distance; /* relative_attention_num_buckets / max_distance      */
    float out_scale;             /* hidden * out_scale before lm_head (tied T5: d_model^-0.5) or 1 */
    int64_t decoder_start_token_id;
} mms_decoder_config;

typedef struct mms_decoder mms_decoder;
typedef struct mms_decoder_state mms_decoder_state;

/* Resolve the text config: `obj` is the config object (the root, or "text_config" of a VLM),
 * with transformers v4.47 class defaults for omitted keys. Unsupported model types or RoPE
 * kinds -> MMS_ERR_UNSUPPORTED naming the file and key. */
mms_status mms_decoder_config_parse(const mms_json *j, const cJSON *obj, const char *what, mms_decoder_config *c,
                                    mms_error *err);

/* Load the weights named as in *ForCausalLM ("model.layers.%d...", "lm_head.weight"; use
 * mms_weights_set_renames for VLM prefixes). dtype: F32 or BF16 compute. */
mms_status mms_decoder_load(const mms_weights *w, const mms_decoder_config *cfg, mms_dtype dtype, mms_backend *be,
                            mms_decoder **out, mms_error *err);
void mms_decoder_free(mms_decoder *d);
const mms_decoder_config *mms_decoder_get_config(const mms_decoder *d);
mms_dtype mms_decoder_dtype(const mms_decoder *d);
/* Bytes of weights: borrowed from the checkpoint mapping, and converted copies owned. */
void mms_decoder_weight_bytes(const mms_decoder *d, int64_t *mapped, int64_t *owned);

/* A state with a KV cache of n_slots sequences x n_ctx tokens (kv_dtype F32 or BF16) and
 * scratch for max_tokens rows per forward step (longer inputs are processed in chunks). */
mms_status mms_decoder_state_new(const mms_decoder *d, int64_t n_slots, int64_t n_ctx, mms_dtype kv_dtype,
                                 int64_t max_tokens, mms_decoder_state **out, mms_error *err);
void mms_decoder_state_free(mms_decoder_state *st);
/* Same with room for n_enc_ctx encoder rows per slot (decoders with cross-attention: T5). */
mms_status mms_decoder_state_new_ex(const mms_decoder *d, int64_t n_slots, int64_t n_ctx, mms_dtype kv_dtype,
                                    int64_t max_tokens, int64_t n_enc_ctx, mms_decoder_state **out, mms_error *err);
/* Cross-attention decoders: the encoder output a slot attends over, enc (n, cross_dim) F32 host
 * rows (only real tokens); its keys/values are projected once per layer and cached. */
mms_status mms_decoder_state_set_encoder(mms_decoder_state *st, int64_t slot, const float *enc, int64_t n,
                                         mms_error *err);
/* Tokens in a slot's cache. */
int64_t mms_decoder_state_len(const mms_decoder_state *st, int64_t slot);
/* Forget all but the first n tokens of a slot (n = 0 resets it). */
mms_status mms_decoder_state_truncate(mms_decoder_state *st, int64_t slot, int64_t n, mms_error *err);
/* dst's cache becomes a copy of src's (beam search). */
mms_status mms_decoder_state_copy(mms_decoder_state *st, int64_t src, int64_t dst, mms_error *err);
/* Bytes held by the state: KV cache and scratch. */
void mms_decoder_state_bytes(const mms_decoder_state *st, int64_t *kv_bytes, int64_t *scratch_bytes);
int64_t mms_decoder_state_slots(const mms_decoder_state *st);
int64_t mms_decoder_state_ctx(const mms_decoder_state *st);

/* One forward step over new tokens of n_seqs sequences (slots distinct), packed row after row:
 * sequence i contributes n_new[i] rows, taken from ids (M) I64 or, when ids is NULL, from
 * embeds (M, D) F32 (host). Each sequence continues its slot's cache (positions continue from
 * its length). logits (host, F32): (M, V) when logits_all, else (n_seqs, V) for each sequence's
 * last new row; may be NULL to only fill the cache. A sequence that would pass n_ctx ->
 * MMS_ERR_VALUE before anything is computed. */
mms_status mms_decoder_forward(mms_decoder_state *st, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                               const int64_t *ids, const float *embeds, int logits_all, float *logits,
                               mms_error *err);
/* Token embeddings (n, D) F32 of ids (the rows a VLM edits before mms_decoder_forward). */
mms_status mms_decoder_embed(const mms_decoder *d, const int64_t *ids, int64_t n, float *out, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
