/* block.h -- the one configurable transformer block every family uses.
 *
 * A block is: attention (self or, later, cross) + MLP, each with a norm and a residual,
 * arranged pre-norm (CLIP, SigLIP, ViTs, decoders) or post-norm (BERT / Q-Former). Family files
 * only fill a mms_block_config and name their tensors through mms_block_names; nothing in
 * here knows which model it runs. Weights are immutable after load (shareable across threads);
 * every forward call brings its own scratch. */
#ifndef MMS_BLOCK_H
#define MMS_BLOCK_H

#include "ops.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_norm_kind { MMS_NORM_LAYER = 0, MMS_NORM_RMS = 1 } mms_norm_kind;

typedef struct mms_block_config {
    int64_t hidden;     /* D                                                   */
    int64_t n_heads;
    int64_t head_dim;   /* D / n_heads unless the family says otherwise         */
    int64_t ffn;        /* MLP inner size                                       */
    mms_norm_kind norm;
    float norm_eps;
    int pre_norm;       /* 1: x += attn(norm1(x)); x += mlp(norm2(x))
                           0: x = norm1(x + attn(x)); x = norm2(x + mlp(x))     */
    mms_act act;
    int causal;         /* causal self-attention mask                            */
    float attn_scale;   /* 0 -> 1/sqrt(head_dim)                                 */
    mms_dtype compute;  /* weight dtype: F32 or BF16 (activations stay F32)      */
    /* decoders */
    int64_t n_kv_heads; /* grouped-query attention: key/value heads (0 = n_heads) */
    int gated;          /* MLP = fc2(act(gate(x)) * fc1(x)) (SwiGLU); fc1 = up   */
    int64_t window;     /* sliding-window attention (Mistral); 0 = unlimited     */
    /* cross-attention (Q-Former, T5 decoder): after self-attention, queries from x attend over
     * keys/values projected from encoder states of width cross_dim, in layers l with
     * l % cross_every == 0 (cross_dim 0 = none). Its sublayer has its own norm, arranged like
     * the others (pre- or post-norm); it uses the same heads and scale. */
    int64_t cross_dim;
    int cross_every;
} mms_block_config;

static inline int64_t mms_block_kv_heads(const mms_block_config *c) { return c->n_kv_heads ? c->n_kv_heads : c->n_heads; }

/* printf patterns (one %d = layer index) of a block's tensors, without ".weight"/".bias".
 * Either q/k/v (separate projections) or qkv (packed [3D, D] as in nn.MultiheadAttention:
 * then qkv_weight/qkv_bias are full tensor names, e.g. "...attn.in_proj_weight"). */
typedef struct mms_block_names {
    const char *norm1, *norm2;
    const char *q, *k, *v;
    const char *qkv_weight, *qkv_bias;
    const char *o, *fc1, *fc2;
    const char *gate; /* gated MLPs only (cfg->gated) */
    /* cross-attention sublayer (cfg->cross_dim > 0), same conventions */
    const char *xnorm, *xq, *xk, *xv, *xo;
    /* packed qkv without a stored qkv bias: separate q and v biases (k bias = 0), full names
     * (BLIP-2 vision checkpoints written with q_bias / v_bias) */
    const char *q_bias, *v_bias;
} mms_block_names;

typedef struct mms_block_weights {
    mms_tensor norm1_g, norm1_b, norm2_g, norm2_b; /* (D) F32; _b ndim 0 for RMSNorm */
    int packed_qkv;                                /* 1: qkv holds [q; k; v] rows      */
    mms_linear qkv;                                /* (A + 2 KVA, D)                   */
    mms_linear q, k, v;                            /* (A, D), (KVA, D) x2 otherwise    */
    mms_linear o, fc1, fc2;
    mms_linear gate;                               /* (F, D) gated MLPs                */
    int has_cross;                                 /* this layer has cross-attention    */
    mms_tensor xnorm_g, xnorm_b;                   /* (D)                               */
    mms_linear xq, xk, xv, xo;                     /* (A, D), (A, Dc) x2, (D, A)        */
    char name[96];                                 /* checkpoint prefix, e.g. "model.layers.3" */
} mms_block_weights;

/* Load layer `layer` of a block from w according to names, converting to cfg->compute on
 * backend be. Shapes are checked against cfg; errors name the tensor. On failure nothing
 * is left allocated. */
mms_status mms_block_load(mms_backend *be, const mms_block_config *cfg, const mms_weights *w,
                          const mms_block_names *names, int layer, mms_block_weights *out, mms_error *err);
void mms_block_release(mms_block_weights *bw);

/* Per-call scratch sized for up to max_tokens = batch * tokens rows. */
typedef struct mms_block_scratch {
    int64_t max_tokens;
    void *h;    /* (tokens, D)   normed input, compute dtype (F32 size reserved)     */
    float *qkv; /* (tokens, 3D)  F32                                                 */
    void *att;  /* (tokens, D)   attention output                                    */
    void *ffn;  /* (tokens, F)   MLP inner activations                               */
    float *tmp; /* (tokens, D)   F32 ping-pong buffer for residual outputs           */
    float *gu;  /* (tokens, 2F)  F32 gate and up projections (gated MLPs only)         */
    size_t bytes; /* total allocated, for memory reports                                   */
} mms_block_scratch;

mms_status mms_block_scratch_alloc(mms_backend *be, const mms_block_config *cfg, int64_t max_tokens,
                                   mms_block_scratch *s, mms_error *err);
void mms_block_scratch_free(mms_backend *be, mms_block_scratch *s);

/* What the cross-attention sublayer attends over in one call: the rows of x form n_seqs
 * sequences (n_rows[i] rows each, in order); sequence i sees kv_len[i] keys starting at row
 * kv_off[i] of k / v (rows of A = n_heads*head_dim values, stride kv_row elements, F32 or BF16,
 * on the backend), projected beforehand with mms_block_cross_kv. No mask: pass only real rows. */
typedef struct mms_block_cross {
    int64_t n_seqs;
    const int64_t *n_rows, *kv_off, *kv_len;
    const void *k, *v;
    mms_dtype kv_dtype;
    int64_t kv_row;
} mms_block_cross;

/* Keys and values of the cross-attention of layer bw: enc (n, cross_dim) F32 rows on the
 * backend -> k, v (n, A) F32 on the backend. */
mms_status mms_block_cross_kv(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                              const float *enc, int64_t n, float *k, float *v, mms_error *err);

/* Options of a forward over whole sequences. */
typedef struct mms_block_opts {
    const int64_t *key_mask;      /* (batch, tokens) I64, 1 = real token, or NULL              */
    const float *rel_bias;        /* (n_heads, 2 rel_max + 1) relative position bias or NULL     */
    int64_t rel_max;              /*   (see mms_attn_args), on the backend                       */
    const mms_block_cross *cross; /* layers with cross-attention: what they attend over          */
} mms_block_opts;

/* x: (batch, tokens, D) F32, updated in place (via s->tmp). key_mask: (batch, tokens) I64,
 * 1 = real token, or NULL. */
mms_status mms_block_forward(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                             float *x, int64_t batch, int64_t tokens, const int64_t *key_mask,
                             mms_block_scratch *s, mms_error *err);
mms_status mms_block_forward_ex(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                                float *x, int64_t batch, int64_t tokens, const mms_block_opts *opts,
                                mms_block_scratch *s, mms_error *err);

/* ---- decoders: forward over new tokens with a KV cache (block_decode.c) ---- */

/* The new tokens of one call: x holds the rows of n_seqs sequences one after another;
 * sequence s has n_new[s] rows and past[s] tokens already in its cache slot slot[s]. */
typedef struct mms_block_seqs {
    int64_t n_seqs;
    const int64_t *n_new;      /* (n_seqs)                                                */
    const int64_t *past;       /* (n_seqs)                                                */
    const int64_t *slot;       /* (n_seqs) cache slot                                     */
    const int64_t *pos;        /* (M) position id of each row (RoPE)                      */
    const float *inv_freq;     /* (rot_dim / 2) RoPE frequencies, NULL = no RoPE           */
    int64_t rot_dim;
    float rope_factor;         /* cos/sin scale (1 unless the RoPE kind says otherwise)    */
    const float *rel_bias;     /* relative position bias (T5) or NULL, see mms_attn_args   */
    int64_t rel_max;
    const mms_block_cross *cross; /* cross-attention inputs (layers that have it)          */
} mms_block_seqs;

/* One layer's KV cache: k, v (n_slots, n_ctx, KVA) in dtype (F32/BF16) on the backend. */
typedef struct mms_block_kv {
    void *k, *v;
    mms_dtype dtype;
    int64_t n_ctx;
} mms_block_kv;

/* x (M, D) F32 updated in place; the new keys/values are written to kv at [past, past+n_new)
 * of each sequence's slot (the caller checked past + n_new <= n_ctx). Pre- or post-norm. */
mms_status mms_block_forward_cached(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                                    float *x, const mms_block_seqs *seqs, const mms_block_kv *kv,
                                    mms_block_scratch *s, mms_error *err);

/* The pieces both forwards share (family files rarely need them): q/k/v of x's rows into the
 * scratch (after norm1 for pre-norm blocks; pointers and row strides returned), and the rest of
 * the block once s->att holds the attention output: x = MLP part(cross part(o(att) + x)), the
 * cross part only in layers with cross-attention (cross must then be given). */
mms_status mms_block_qkv(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, const float *x,
                         int64_t M, mms_block_scratch *s, float **q, float **k, float **v, int64_t *q_row,
                         int64_t *kv_row, mms_error *err);
mms_status mms_block_finish(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, float *x,
                            int64_t M, const mms_block_cross *cross, mms_block_scratch *s, mms_error *err);

/* norm1/norm2/final norms: LayerNorm or RMSNorm per cfg->norm (b ignored for RMS). */
mms_status mms_block_norm(mms_backend *be, const mms_block_config *cfg, const mms_tensor *x, const mms_tensor *g,
                          const mms_tensor *b, mms_tensor *y, mms_error *err);

/* Load (D) norm weight/bias "<prefix>.weight" / "<prefix>.bias" (bias optional when
 * allow_no_bias). Shared helper for family files. */
mms_status mms_load_vector(mms_backend *be, const mms_weights *w, const char *name, int64_t expect_len,
                           mms_tensor *out, mms_error *err);
mms_status mms_load_linear(mms_backend *be, const mms_weights *w, const char *prefix, int64_t in, int64_t out_dim,
                           int need_bias, mms_dtype dtype, mms_linear *out, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
