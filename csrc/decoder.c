/* decoder.c -- loading a causal LM and running it over new tokens with a KV cache (decoder.h). */
#include "decoder.h"
#include "finite.h"
#include "mapping.h"
#include "t5.h"

#include <math.h>
#include <stdio.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#include <string.h>

struct mms_decoder {
    mms_decoder_config cfg;
    mms_backend *be;
    mms_dtype dtype;
    mms_tensor embed;           /* (V, D) on the backend: the mmap view as stored (CPU), else a
                                   device copy (BF16 tables stay BF16, others become F32)          */
    mms_tensor embed_host;      /* (V, D) as stored, borrowed from the mmap: host lookups          */
    mms_tensor pos_embed;       /* (max_pos + offset, D) F32: OPT's learned positions            */
    mms_block_weights *layers;  /* (n_layers)                                                     */
    mms_tensor norm_g, norm_b;  /* (D) final norm                                                 */
    mms_linear lm_head;         /* (V, D)                                                         */
    float *inv_freq;            /* (rot_dim / 2) RoPE frequencies (static kinds)                  */
    mms_tensor rel_bias;        /* T5: (H, 2R+1) relative position bias table on the backend       */
    int64_t mapped_bytes, owned_bytes;
    mms_mapset maps;            /* files the weights came from (checked per call, mapping.h)       */
};

struct mms_decoder_state {
    const mms_decoder *d;
    int64_t n_slots, n_ctx, max_tokens;
    mms_dtype kv_dtype;
    void **k, **v;              /* per layer: (n_slots, n_ctx, KVA) on the backend               */
    int64_t *len;               /* (n_slots) tokens cached                                        */
    mms_block_scratch s;
    float *x;                   /* (max_tokens, D) hidden states                                  */
    float *hn;                  /* (max_tokens, D) final-norm output / gathered last rows         */
    float *logits_dev;          /* (max_tokens, V) on non-host backends only                       */
    int64_t *pos;               /* (max_tokens) host                                              */
    int64_t *ids_tmp;           /* (max_tokens) host                                              */
    int64_t *ids_dev;           /* (max_tokens) token ids on non-host backends                    */
    float *inv_freq;            /* (rot_dim / 2) per-call frequencies (dynamic RoPE)              */
    /* cross-attention decoders (T5): per layer the encoder keys/values of each slot */
    int64_t n_enc_ctx;
    void **xk, **xv;            /* per layer: (n_slots, n_enc_ctx, A) kv_dtype on the backend       */
    int64_t *enc_len;           /* (n_slots) encoder rows set (0 = none)                           */
    int64_t kv_bytes, scratch_bytes;
};

/* ---- RoPE frequencies, computed in fp32 as transformers does ---------------------------- */

static void rope_base_freqs(double theta, int64_t dim, float *out) {
    for (int64_t i = 0; i < dim / 2; i++) {
        const float e = (float)(2 * i) / (float)dim;
        out[i] = 1.0f / powf((float)theta, e);
    }
}

/* Static kinds (default, linear, llama3): frequencies fixed at load. */
static void rope_static_freqs(const mms_rope_config *r, float *out) {
    const int64_t half = r->rot_dim / 2;
    rope_base_freqs(r->theta, r->rot_dim, out);
    if (r->kind == MMS_ROPE_LINEAR) {
        for (int64_t i = 0; i < half; i++) out[i] = out[i] / (float)r->factor;
    } else if (r->kind == MMS_ROPE_LLAMA3) {
        const float old = (float)r->original_max_pos, lo = (float)r->low_freq_factor, hi = (float)r->high_freq_factor;
        const float low_wl = old / lo, high_wl = old / hi, f = (float)r->factor;
        for (int64_t i = 0; i < half; i++) {
            const float wl = 2.0f * (float)M_PI / out[i];
            float v = wl > low_wl ? out[i] / f : out[i];
            if (!(wl < high_wl) && !(wl > low_wl)) { /* medium band: interpolate */
                const float sm = (old / wl - lo) / (hi - lo);
                v = (1.0f - sm) * v / f + sm * v;
            }
            out[i] = v;
        }
    }
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct dec_names {
    const char *embed, *pos_embed, *final_norm, *lm_head;
    mms_block_names block;
} dec_names;

#define LL(p) "model.layers.%d." p
static const dec_names k_llama_names = {
    .embed = "model.embed_tokens.weight", .final_norm = "model.norm", .lm_head = "lm_head",
    .block = {.norm1 = LL("input_layernorm"), .norm2 = LL("post_attention_layernorm"), .q = LL("self_attn.q_proj"),
              .k = LL("self_attn.k_proj"), .v = LL("self_attn.v_proj"), .o = LL("self_attn.o_proj"),
              .fc1 = LL("mlp.up_proj"), .fc2 = LL("mlp.down_proj"), .gate = LL("mlp.gate_proj")},
};
#undef LL

#define OL(p) "model.decoder.layers.%d." p
static const dec_names k_opt_names = {
    .embed = "model.decoder.embed_tokens.weight", .pos_embed = "model.decoder.embed_positions.weight",
    .final_norm = "model.decoder.final_layer_norm", .lm_head = "lm_head",
    .block = {.norm1 = OL("self_attn_layer_norm"), .norm2 = OL("final_layer_norm"), .q = OL("self_attn.q_proj"),
              .k = OL("self_attn.k_proj"), .v = OL("self_attn.v_proj"), .o = OL("self_attn.out_proj"),
              .fc1 = OL("fc1"), .fc2 = OL("fc2")},
};
#undef OL

/* T5 decoder stack (T5ForConditionalGeneration names): layer.0 self-attention, layer.1
 * cross-attention (EncDecAttention), layer.2 the feed-forward (gated: wi_0 activated, wi_1). */
#define TL(p) "decoder.block.%d.layer." p
static const dec_names k_t5_gated_names = {
    .embed = "shared.weight", .final_norm = "decoder.final_layer_norm", .lm_head = "lm_head",
    .block = {.norm1 = TL("0.layer_norm"), .norm2 = TL("2.layer_norm"), .q = TL("0.SelfAttention.q"),
              .k = TL("0.SelfAttention.k"), .v = TL("0.SelfAttention.v"), .o = TL("0.SelfAttention.o"),
              .gate = TL("2.DenseReluDense.wi_0"), .fc1 = TL("2.DenseReluDense.wi_1"), .fc2 = TL("2.DenseReluDense.wo"),
              .xnorm = TL("1.layer_norm"), .xq = TL("1.EncDecAttention.q"), .xk = TL("1.EncDecAttention.k"),
              .xv = TL("1.EncDecAttention.v"), .xo = TL("1.EncDecAttention.o")},
};
static const dec_names k_t5_plain_names = {
    .embed = "shared.weight", .final_norm = "decoder.final_layer_norm", .lm_head = "lm_head",
    .block = {.norm1 = TL("0.layer_norm"), .norm2 = TL("2.layer_norm"), .q = TL("0.SelfAttention.q"),
              .k = TL("0.SelfAttention.k"), .v = TL("0.SelfAttention.v"), .o = TL("0.SelfAttention.o"),
              .fc1 = TL("2.DenseReluDense.wi"), .fc2 = TL("2.DenseReluDense.wo"),
              .xnorm = TL("1.layer_norm"), .xq = TL("1.EncDecAttention.q"), .xk = TL("1.EncDecAttention.k"),
              .xv = TL("1.EncDecAttention.v"), .xo = TL("1.EncDecAttention.o")},
};
#undef TL

static mms_status get_shaped(const mms_weights *w, const char *name, int64_t d0, int64_t d1, mms_tensor *t,
                             mms_error *err) {
    mms_status rc = mms_weights_get(w, name, t, err);
    if (rc != MMS_OK) return rc;
    if (t->ndim != 2 || t->ne[0] != d0 || t->ne[1] != d1) {
        char b[64];
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected (%lld, %lld) from the config", name,
                           mms_tensor_shape_str(t, b, sizeof b), (long long)d0, (long long)d1);
        mms_tensor_release(t);
    }
    return rc;
}

static int64_t owned(const mms_tensor *t) {
    return t->storage && !t->storage->is_file_map ? (int64_t)mms_tensor_nbytes(t) : 0;
}

static mms_status load_weights(mms_decoder *d, const mms_weights *w, mms_error *err) {
    const mms_decoder_config *c = &d->cfg;
    const dec_names *nm = c->family == MMS_DEC_OPT ? &k_opt_names
                          : c->family == MMS_DEC_T5 ? (c->block.gated ? &k_t5_gated_names : &k_t5_plain_names)
                                                    : &k_llama_names;
    const int64_t D = c->block.hidden, V = c->vocab;
    mms_status rc;
    char n[256];
#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)
    mms_tensor t;
    TRY(get_shaped(w, nm->embed, V, D, &t, err));
    d->embed_host = t; /* rows are converted per call: keep the table as stored (borrowed) */
    if (d->be->device == MMS_DEVICE_CPU) {
        d->embed = t;
        mms_storage_retain(t.storage);
    } else { /* ids are looked up on the device; bf16 rows widen exactly, like the host lookup */
        TRY(d->be->vt->tensor_prepare(d->be, &t, t.dtype == MMS_DTYPE_BF16 ? MMS_DTYPE_BF16 : MMS_DTYPE_F32, &d->embed,
                                      err));
    }
    if (c->learned_pos) {
        TRY(get_shaped(w, nm->pos_embed, c->max_pos + c->pos_offset, D, &t, err));
        rc = mms_vector_prepare(d->be, &t, &d->pos_embed, err);
        mms_tensor_release(&t);
        if (rc != MMS_OK) return rc;
    }
    d->layers = mms_calloc((size_t)c->n_layers, sizeof(mms_block_weights));
    if (!d->layers) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layers; i++) TRY(mms_block_load(d->be, &c->block, w, &nm->block, i, &d->layers[i], err));
    snprintf(n, sizeof n, "%s.weight", nm->final_norm);
    if (c->final_norm && c->out_scale != 1.0f) {
        /* tied T5: lm_head(norm(x) * d_model^-0.5); the scale is folded into the norm weight */
        mms_tensor g;
        int64_t ne1[1] = {D};
        TRY(mms_weights_get(w, n, &t, err));
        rc = mms_tensor_numel(&t) == D ? mms_tensor_alloc(&g, MMS_DTYPE_F32, 1, ne1, err)
                                       : mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has the wrong size", n);
        if (rc == MMS_OK) {
            rc = mms_convert(t.data, t.dtype, g.data, MMS_DTYPE_F32, D, err);
            for (int64_t i = 0; i < D; i++) ((float *)g.data)[i] *= c->out_scale;
            if (rc == MMS_OK) rc = mms_vector_prepare(d->be, &g, &d->norm_g, err);
            mms_tensor_release(&g);
        }
        mms_tensor_release(&t);
        if (rc != MMS_OK) return rc;
    } else if (c->final_norm) {
        TRY(mms_load_vector(d->be, w, n, D, &d->norm_g, err));
    }
    if (c->family == MMS_DEC_T5) TRY(mms_t5_load_rel_bias(d->be, w, "decoder", c, 0, &d->rel_bias, err));
    if (c->final_norm && c->block.norm == MMS_NORM_LAYER) {
        snprintf(n, sizeof n, "%s.bias", nm->final_norm);
        TRY(mms_load_vector(d->be, w, n, D, &d->norm_b, err));
    }
    snprintf(n, sizeof n, "%s.weight", nm->lm_head);
    if (!c->tie_embeddings && !mms_weights_find(w, n))
        return mms_error_set(err, MMS_ERR_NOT_FOUND, "tensor '%s' not found in the checkpoint and tie_word_embeddings is false", n);
    if (c->tie_embeddings) {
        TRY(get_shaped(w, nm->embed, V, D, &t, err));
        rc = mms_linear_prepare(d->be, &t, NULL, d->dtype, &d->lm_head, err);
        mms_tensor_release(&t);
        if (rc != MMS_OK) return rc;
    } else {
        TRY(mms_load_linear(d->be, w, nm->lm_head, D, V, 0, d->dtype, &d->lm_head, err));
    }
#undef TRY
    /* what the weights cost: converted copies vs pages of the mapping */
    d->owned_bytes = owned(&d->pos_embed) + owned(&d->norm_g) + owned(&d->norm_b) + owned(&d->lm_head.w);
    for (int i = 0; i < c->n_layers; i++) {
        const mms_block_weights *b = &d->layers[i];
        const mms_linear *ls[] = {&b->qkv, &b->q, &b->k, &b->v, &b->o, &b->fc1, &b->fc2, &b->gate,
                                  &b->xq, &b->xk, &b->xv, &b->xo};
        for (size_t k = 0; k < sizeof ls / sizeof ls[0]; k++) d->owned_bytes += owned(&ls[k]->w) + owned(&ls[k]->b);
        d->owned_bytes += owned(&b->norm1_g) + owned(&b->norm2_g) + owned(&b->norm1_b) + owned(&b->norm2_b);
    }
    d->mapped_bytes = mms_weights_bytes(w);
    return MMS_OK;
}

mms_status mms_decoder_load(const mms_weights *w, const mms_decoder_config *cfg, mms_dtype dtype, mms_backend *be,
                            mms_decoder **out, mms_error *err) {
    *out = NULL;
    if (dtype != MMS_DTYPE_F32 && dtype != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_VALUE, "dtype must be float32 or bfloat16, not %s", mms_dtype_name(dtype));
    mms_decoder *d = mms_calloc(1, sizeof *d);
    if (!d) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    d->cfg = *cfg;
    d->cfg.block.compute = dtype;
    d->be = be;
    d->dtype = dtype;
    mms_status rc = MMS_OK;
    if (cfg->rope.kind != MMS_ROPE_NONE) {
        d->inv_freq = mms_malloc((size_t)(cfg->rope.rot_dim / 2 + 1) * sizeof(float));
        if (!d->inv_freq) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
        else rope_static_freqs(&cfg->rope, d->inv_freq);
    }
    if (rc == MMS_OK) rc = load_weights(d, w, err);
    if (rc == MMS_OK) rc = mms_weights_mapset(w, &d->maps, err);
    if (rc != MMS_OK) {
        mms_decoder_free(d);
        return rc;
    }
    *out = d;
    return MMS_OK;
}

void mms_decoder_free(mms_decoder *d) {
    if (!d) return;
    if (d->layers)
        for (int i = 0; i < d->cfg.n_layers; i++) mms_block_release(&d->layers[i]);
    mms_free(d->layers);
    mms_tensor_release(&d->embed);
    mms_tensor_release(&d->embed_host);
    mms_tensor_release(&d->pos_embed);
    mms_tensor_release(&d->norm_g);
    mms_tensor_release(&d->norm_b);
    mms_linear_release(&d->lm_head);
    mms_tensor_release(&d->rel_bias);
    mms_free(d->inv_freq);
    mms_mapset_release(&d->maps);
    mms_free(d);
}

const mms_decoder_config *mms_decoder_get_config(const mms_decoder *d) { return &d->cfg; }
mms_dtype mms_decoder_dtype(const mms_decoder *d) { return d->dtype; }
void mms_decoder_weight_bytes(const mms_decoder *d, int64_t *mapped, int64_t *own) {
    *mapped = d->mapped_bytes;
    *own = d->owned_bytes;
}

/* ---- state ------------------------------------------------------------------------------- */

mms_status mms_decoder_state_new(const mms_decoder *d, int64_t n_slots, int64_t n_ctx, mms_dtype kv_dtype,
                                 int64_t max_tokens, mms_decoder_state **out, mms_error *err) {
    return mms_decoder_state_new_ex(d, n_slots, n_ctx, kv_dtype, max_tokens, 0, out, err);
}

mms_status mms_decoder_state_new_ex(const mms_decoder *d, int64_t n_slots, int64_t n_ctx, mms_dtype kv_dtype,
                                    int64_t max_tokens, int64_t n_enc_ctx, mms_decoder_state **out, mms_error *err) {
    *out = NULL;
    const mms_decoder_config *c = &d->cfg;
    const int cross = c->block.cross_dim > 0;
    if (cross && (n_enc_ctx <= 0 || n_enc_ctx > (1 << 24)))
        return mms_error_set(err, MMS_ERR_VALUE, "decoder state: this decoder attends over encoder states; give their maximum length (got %lld)",
                             (long long)n_enc_ctx);
    if (!cross) n_enc_ctx = 0;
    if (n_slots <= 0 || n_slots > 4096 || n_ctx <= 0 || max_tokens <= 0)
        return mms_error_set(err, MMS_ERR_VALUE, "decoder state: slots (%lld), context (%lld) and step size (%lld) must be positive",
                             (long long)n_slots, (long long)n_ctx, (long long)max_tokens);
    if (kv_dtype != MMS_DTYPE_F32 && kv_dtype != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_VALUE, "kv cache dtype must be float32 or bfloat16");
    if (c->learned_pos && n_ctx > c->max_pos)
        return mms_error_set(err, MMS_ERR_VALUE, "context %lld exceeds the model's %lld learned positions",
                             (long long)n_ctx, (long long)c->max_pos);
    if (max_tokens > n_ctx * n_slots) max_tokens = n_ctx * n_slots;
    mms_backend *be = d->be;
    mms_decoder_state *st = mms_calloc(1, sizeof *st);
    if (!st) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    st->d = d; st->n_slots = n_slots; st->n_ctx = n_ctx; st->kv_dtype = kv_dtype; st->max_tokens = max_tokens;
    st->n_enc_ctx = n_enc_ctx;
    const int64_t D = c->block.hidden, KVA = mms_block_kv_heads(&c->block) * c->block.head_dim;
    const size_t per_layer = (size_t)(n_slots * n_ctx * KVA) * mms_dtype_size(kv_dtype);
    const size_t per_layer_x = (size_t)(n_slots * n_enc_ctx * c->block.n_heads * c->block.head_dim) * mms_dtype_size(kv_dtype);
    mms_status rc = MMS_OK;
    st->k = mms_calloc((size_t)c->n_layers, sizeof(void *));
    st->v = mms_calloc((size_t)c->n_layers, sizeof(void *));
    st->len = mms_calloc((size_t)n_slots, sizeof(int64_t));
    st->pos = mms_malloc((size_t)max_tokens * sizeof(int64_t));
    st->ids_tmp = mms_malloc((size_t)max_tokens * sizeof(int64_t));
    st->inv_freq = mms_malloc((size_t)(c->rope.rot_dim / 2 + 1) * sizeof(float));
    if (!st->k || !st->v || !st->len || !st->pos || !st->ids_tmp || !st->inv_freq) rc = MMS_ERR_NOMEM;
    for (int i = 0; rc == MMS_OK && i < c->n_layers; i++) {
        st->k[i] = be->vt->alloc(be, per_layer);
        st->v[i] = be->vt->alloc(be, per_layer);
        if (!st->k[i] || !st->v[i]) rc = MMS_ERR_NOMEM;
    }
    if (rc == MMS_OK && cross) {
        st->xk = mms_calloc((size_t)c->n_layers, sizeof(void *));
        st->xv = mms_calloc((size_t)c->n_layers, sizeof(void *));
        st->enc_len = mms_calloc((size_t)n_slots, sizeof(int64_t));
        if (!st->xk || !st->xv || !st->enc_len) rc = MMS_ERR_NOMEM;
        for (int i = 0; rc == MMS_OK && i < c->n_layers; i++) {
            if (!d->layers[i].has_cross) continue;
            st->xk[i] = be->vt->alloc(be, per_layer_x);
            st->xv[i] = be->vt->alloc(be, per_layer_x);
            if (!st->xk[i] || !st->xv[i]) rc = MMS_ERR_NOMEM;
        }
    }
    if (rc == MMS_OK) {
        st->x = be->vt->alloc(be, (size_t)(max_tokens * D) * 4);
        st->hn = be->vt->alloc(be, (size_t)(max_tokens * D) * 4);
        if (be->device != MMS_DEVICE_CPU) {
            st->logits_dev = be->vt->alloc(be, (size_t)(max_tokens * c->vocab) * 4);
            st->ids_dev = be->vt->alloc(be, (size_t)max_tokens * sizeof(int64_t));
        }
        if (!st->x || !st->hn || (be->device != MMS_DEVICE_CPU && (!st->logits_dev || !st->ids_dev))) rc = MMS_ERR_NOMEM;
    }
    if (rc != MMS_OK) {
        mms_decoder_state_free(st);
        return mms_error_set(err, MMS_ERR_NOMEM, "out of memory for a KV cache of %lld x %lld tokens (%.1f MiB)",
                             (long long)n_slots, (long long)n_ctx, 2.0 * c->n_layers * per_layer / 1048576.0);
    }
    if ((rc = mms_block_scratch_alloc(be, &c->block, max_tokens, &st->s, err)) != MMS_OK) {
        mms_decoder_state_free(st);
        return rc;
    }
    st->kv_bytes = 2 * (int64_t)(per_layer + per_layer_x) * c->n_layers;
    /* the block scratch + hidden rows (x, hn) + host positions/ids (+ device logits, ids) */
    st->scratch_bytes = (int64_t)st->s.bytes + 2 * max_tokens * D * 4 + 2 * max_tokens * 8 +
                        (st->logits_dev ? max_tokens * c->vocab * 4 + max_tokens * 8 : 0);
    *out = st;
    return MMS_OK;
}

void mms_decoder_state_free(mms_decoder_state *st) {
    if (!st) return;
    mms_backend *be = st->d->be;
    for (int i = 0; i < st->d->cfg.n_layers; i++) {
        if (st->k && st->k[i]) be->vt->free(be, st->k[i]);
        if (st->v && st->v[i]) be->vt->free(be, st->v[i]);
        if (st->xk && st->xk[i]) be->vt->free(be, st->xk[i]);
        if (st->xv && st->xv[i]) be->vt->free(be, st->xv[i]);
    }
    mms_free(st->k);
    mms_free(st->v);
    mms_free(st->xk);
    mms_free(st->xv);
    mms_free(st->enc_len);
    mms_free(st->len);
    mms_free(st->pos);
    mms_free(st->ids_tmp);
    mms_free(st->inv_freq);
    if (st->x) be->vt->free(be, st->x);
    if (st->hn) be->vt->free(be, st->hn);
    if (st->logits_dev) be->vt->free(be, st->logits_dev);
    if (st->ids_dev) be->vt->free(be, st->ids_dev);
    mms_block_scratch_free(be, &st->s);
    mms_free(st);
}

int64_t mms_decoder_state_len(const mms_decoder_state *st, int64_t slot) {
    return slot >= 0 && slot < st->n_slots ? st->len[slot] : -1;
}
int64_t mms_decoder_state_slots(const mms_decoder_state *st) { return st->n_slots; }
int64_t mms_decoder_state_ctx(const mms_decoder_state *st) { return st->n_ctx; }
void mms_decoder_state_bytes(const mms_decoder_state *st, int64_t *kv, int64_t *scratch) {
    *kv = st->kv_bytes;
    *scratch = st->scratch_bytes;
}

mms_status mms_decoder_state_truncate(mms_decoder_state *st, int64_t slot, int64_t n, mms_error *err) {
    if (slot < 0 || slot >= st->n_slots) return mms_error_set(err, MMS_ERR_VALUE, "slot %lld out of range [0, %lld)", (long long)slot, (long long)st->n_slots);
    if (n < 0 || n > st->len[slot]) return mms_error_set(err, MMS_ERR_VALUE, "cannot truncate slot %lld (%lld tokens) to %lld", (long long)slot, (long long)st->len[slot], (long long)n);
    st->len[slot] = n;
    return MMS_OK;
}

mms_status mms_decoder_state_copy(mms_decoder_state *st, int64_t src, int64_t dst, mms_error *err) {
    if (src < 0 || src >= st->n_slots || dst < 0 || dst >= st->n_slots)
        return mms_error_set(err, MMS_ERR_VALUE, "slot out of range [0, %lld)", (long long)st->n_slots);
    if (src == dst) return MMS_OK;
    const mms_decoder_config *c = &st->d->cfg;
    mms_backend *be = st->d->be;
    const int64_t KVA = mms_block_kv_heads(&c->block) * c->block.head_dim;
    const size_t row = (size_t)KVA * mms_dtype_size(st->kv_dtype), n = (size_t)st->len[src] * row;
    if (!be->vt->copy)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "copying cache slots is not implemented on the %s backend", be->vt->name);
    for (int i = 0; i < c->n_layers; i++) {
        mms_status rc = be->vt->copy(be, (char *)st->k[i] + (size_t)(dst * st->n_ctx) * row,
                                     (char *)st->k[i] + (size_t)(src * st->n_ctx) * row, n, err);
        if (rc == MMS_OK)
            rc = be->vt->copy(be, (char *)st->v[i] + (size_t)(dst * st->n_ctx) * row,
                              (char *)st->v[i] + (size_t)(src * st->n_ctx) * row, n, err);
        if (rc != MMS_OK) return rc;
    }
    if (st->enc_len) { /* cross-attention keys/values travel with the sequence */
        const int64_t A = c->block.n_heads * c->block.head_dim;
        const size_t xrow = (size_t)A * mms_dtype_size(st->kv_dtype), xn = (size_t)st->enc_len[src] * xrow;
        for (int i = 0; i < c->n_layers; i++) {
            if (!st->xk[i]) continue;
            mms_status rc = be->vt->copy(be, (char *)st->xk[i] + (size_t)(dst * st->n_enc_ctx) * xrow,
                                         (char *)st->xk[i] + (size_t)(src * st->n_enc_ctx) * xrow, xn, err);
            if (rc == MMS_OK)
                rc = be->vt->copy(be, (char *)st->xv[i] + (size_t)(dst * st->n_enc_ctx) * xrow,
                                  (char *)st->xv[i] + (size_t)(src * st->n_enc_ctx) * xrow, xn, err);
            if (rc != MMS_OK) return rc;
        }
        st->enc_len[dst] = st->enc_len[src];
    }
    st->len[dst] = st->len[src];
    return MMS_OK;
}

mms_status mms_decoder_state_set_encoder(mms_decoder_state *st, int64_t slot, const float *enc, int64_t n,
                                         mms_error *err) {
    const mms_decoder *d = st->d;
    const mms_decoder_config *c = &d->cfg;
    mms_backend *be = d->be;
    if (!st->enc_len) return mms_error_set(err, MMS_ERR_VALUE, "set_encoder: this decoder has no cross-attention");
    if (slot < 0 || slot >= st->n_slots) return mms_error_set(err, MMS_ERR_VALUE, "slot %lld out of range [0, %lld)", (long long)slot, (long long)st->n_slots);
    if (n <= 0 || n > st->n_enc_ctx)
        return mms_error_set(err, MMS_ERR_VALUE, "set_encoder: %lld encoder rows (the state holds 1 to %lld per slot)",
                             (long long)n, (long long)st->n_enc_ctx);
    const int64_t Dc = c->block.cross_dim, A = c->block.n_heads * c->block.head_dim;
    float *e = be->vt->alloc(be, (size_t)(n * Dc) * 4);
    float *k = be->vt->alloc(be, (size_t)(n * A) * 4), *v = be->vt->alloc(be, (size_t)(n * A) * 4);
    mms_status rc = e && k && v ? be->vt->upload(be, e, enc, (size_t)(n * Dc) * 4, err)
                                : mms_error_set(err, MMS_ERR_NOMEM, "set_encoder: out of memory for %lld rows", (long long)n);
    const size_t off = (size_t)(slot * st->n_enc_ctx * A) * mms_dtype_size(st->kv_dtype);
    for (int i = 0; rc == MMS_OK && i < c->n_layers; i++) {
        if (!st->xk[i]) continue;
        rc = mms_block_cross_kv(be, &c->block, &d->layers[i], e, n, k, v, err);
        if (rc == MMS_OK) rc = mms_op_store_rows(be, (char *)st->xk[i] + off, st->kv_dtype, A, k, A, n, A, err);
        if (rc == MMS_OK) rc = mms_op_store_rows(be, (char *)st->xv[i] + off, st->kv_dtype, A, v, A, n, A, err);
    }
    if (e) be->vt->free(be, e);
    if (k) be->vt->free(be, k);
    if (v) be->vt->free(be, v);
    st->enc_len[slot] = rc == MMS_OK ? n : 0;
    return rc;
}

/* ---- forward ----------------------------------------------------------------------------- */

mms_status mms_decoder_embed(const mms_decoder *d, const int64_t *ids, int64_t n, float *out, mms_error *err) {
    const int64_t D = d->cfg.block.hidden;
    int64_t ne1[1] = {n}, ne2[2] = {n, D};
    mms_tensor ti = mms_tensor_view((void *)ids, MMS_DTYPE_I64, 1, ne1);
    mms_tensor to = mms_tensor_view(out, MMS_DTYPE_F32, 2, ne2);
    if (d->embed_host.device != MMS_DEVICE_CPU)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "host embedding lookup needs the table on the CPU");
    mms_status rc = mms_mapset_check(&d->maps, err);
    if (rc == MMS_OK) rc = mms_op_embedding(mms_backend_cpu(), &d->embed_host, &ti, &to, err);
    if (rc == MMS_OK) rc = mms_mapset_check(&d->maps, err);
    if (rc == MMS_OK && mms_get_finite_mode() != MMS_FINITE_OFF)
        rc = mms_check_finite_host(out, n * D, "the token embeddings", MMS_FINITE_HINT, err);
    return rc;
}

/* RoPE frequencies for a call whose largest position is max_pos_in_call. */
static const float *call_freqs(mms_decoder_state *st, int64_t max_pos_in_call) {
    const mms_decoder *d = st->d;
    const mms_rope_config *r = &d->cfg.rope;
    if (r->kind != MMS_ROPE_DYNAMIC) return d->inv_freq;
    const int64_t seq_len = max_pos_in_call + 1;
    if (seq_len <= d->cfg.max_pos) return d->inv_freq;
    /* NTK-aware: base * ((factor * seq_len / max_pos) - (factor - 1)) ^ (dim / (dim - 2)) */
    const double dim = (double)r->rot_dim;
    const double base = r->theta * pow(r->factor * (double)seq_len / (double)d->cfg.max_pos - (r->factor - 1.0), dim / (dim - 2.0));
    rope_base_freqs(base, r->rot_dim, st->inv_freq);
    return st->inv_freq;
}

/* One chunk: rows of sequences [0, n_seqs) with n_new[i] rows each (sum <= max_tokens). */
static mms_status forward_chunk(mms_decoder_state *st, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                                const int64_t *ids, const float *embeds, int logits_all, float *logits,
                                mms_error *err) {
    const mms_decoder *d = st->d;
    const mms_decoder_config *c = &d->cfg;
    mms_backend *be = d->be;
    const int64_t D = c->block.hidden, V = c->vocab;
    int64_t M = 0, maxpos = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        for (int64_t t = 0; t < n_new[i]; t++) st->pos[M + t] = st->len[slots[i]] + t;
        M += n_new[i];
        if (n_new[i] && st->len[slots[i]] + n_new[i] - 1 > maxpos) maxpos = st->len[slots[i]] + n_new[i] - 1;
    }
    mms_status rc;
#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)
    /* input rows */
    if (ids) {
        int64_t ne1[1] = {M}, ne2[2] = {M, D};
        const int64_t *ids_be = ids; /* the lookup reads ids on the backend's device */
        if (st->ids_dev) {
            TRY(be->vt->upload(be, st->ids_dev, ids, (size_t)M * sizeof(int64_t), err));
            ids_be = st->ids_dev;
        }
        mms_tensor ti = mms_tensor_view((void *)ids_be, MMS_DTYPE_I64, 1, ne1);
        mms_tensor tx = mms_tensor_view(st->x, MMS_DTYPE_F32, 2, ne2);
        ti.device = tx.device = be->device;
        TRY(mms_op_embedding(be, &d->embed, &ti, &tx, err));
    } else {
        TRY(be->vt->upload(be, st->x, embeds, (size_t)(M * D) * 4, err));
    }
    if (c->learned_pos) { /* OPT: x += embed_positions[pos + 2]; a sequence's positions are consecutive */
        int64_t r = 0;
        for (int64_t i = 0; i < n_seqs; r += n_new[i], i++) {
            if (n_new[i] == 0) continue;
            int64_t ne[2] = {n_new[i], D};
            mms_tensor rows = mms_tensor_view(st->x + r * D, MMS_DTYPE_F32, 2, ne);
            mms_tensor pe = mms_tensor_view((float *)d->pos_embed.data + (st->pos[r] + c->pos_offset) * D, MMS_DTYPE_F32, 2, ne);
            rows.device = pe.device = be->device;
            TRY(mms_op_add(be, &rows, &pe, err));
        }
    }
    int64_t past[256], *pastv = n_seqs <= 256 ? past : mms_malloc((size_t)n_seqs * sizeof(int64_t));
    if (!pastv) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n_seqs; i++) pastv[i] = st->len[slots[i]];
    mms_block_seqs sq = {.n_seqs = n_seqs, .n_new = n_new, .past = pastv, .slot = slots, .pos = st->pos, .rope_factor = 1.0f};
    if (c->rope.kind != MMS_ROPE_NONE) {
        sq.inv_freq = call_freqs(st, maxpos);
        sq.rot_dim = c->rope.rot_dim;
    }
    if (d->rel_bias.ndim) {
        sq.rel_bias = d->rel_bias.data;
        sq.rel_max = c->rel_max_distance;
    }
    /* cross-attention: each sequence attends over its slot's encoder rows */
    int64_t *xoff = NULL;
    mms_block_cross cr;
    memset(&cr, 0, sizeof cr);
    rc = MMS_OK;
    if (st->enc_len) {
        xoff = mms_malloc((size_t)n_seqs * 2 * sizeof(int64_t));
        if (!xoff) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; rc == MMS_OK && i < n_seqs; i++) {
            xoff[i] = slots[i] * st->n_enc_ctx;
            xoff[n_seqs + i] = st->enc_len[slots[i]];
            if (!xoff[n_seqs + i])
                rc = mms_error_set(err, MMS_ERR_VALUE, "slot %lld has no encoder states (set_encoder first)", (long long)slots[i]);
        }
        cr.n_seqs = n_seqs; cr.n_rows = n_new; cr.kv_off = xoff; cr.kv_len = xoff + n_seqs;
        cr.kv_dtype = st->kv_dtype; cr.kv_row = c->block.n_heads * c->block.head_dim;
        sq.cross = &cr;
    }
    for (int l = 0; l < c->n_layers && rc == MMS_OK; l++) {
        mms_block_kv kv = {st->k[l], st->v[l], st->kv_dtype, st->n_ctx};
        if (st->enc_len) { cr.k = st->xk[l]; cr.v = st->xv[l]; }
        rc = mms_block_forward_cached(be, &c->block, &d->layers[l], st->x, &sq, &kv, &st->s, err);
    }
    mms_free(xoff);
    if (pastv != past) mms_free(pastv);
    if (rc != MMS_OK) return rc;
    for (int64_t i = 0; i < n_seqs; i++) st->len[slots[i]] += n_new[i];
    if (!logits) return MMS_OK;
    /* final norm + lm_head over all rows, or over each sequence's last row */
    int64_t R = M;
    const float *src = st->x;
    if (!logits_all) {
        int64_t r = 0, k = 0;
        for (int64_t i = 0; i < n_seqs; i++) {
            r += n_new[i];
            if (n_new[i]) TRY(mms_op_copy2d(be, st->hn + k * D, D, st->x + (r - 1) * D, D, 1, D, err));
            k += n_new[i] ? 1 : 0;
        }
        R = k;
        src = st->hn;
    }
    int64_t ne2[2] = {R, D}, nel[2] = {R, V};
    mms_tensor tin = mms_tensor_view((void *)src, MMS_DTYPE_F32, 2, ne2);
    /* the normed rows go to s.h (compute dtype, sized for max_tokens rows) */
    mms_tensor th = mms_tensor_view(st->s.h, c->block.compute, 2, ne2);
    tin.device = th.device = be->device;
    if (c->final_norm) TRY(mms_block_norm(be, &c->block, &tin, &d->norm_g, &d->norm_b, &th, err));
    else th = tin; /* post-LN OPT: the last block's output goes to lm_head as is */
    mms_tensor tl = mms_tensor_view(st->logits_dev ? st->logits_dev : logits, MMS_DTYPE_F32, 2, nel);
    tl.device = be->device;
    TRY(mms_op_linear(be, &th, &d->lm_head, MMS_ACT_NONE, NULL, &tl, err));
    if (st->logits_dev) TRY(be->vt->download(be, logits, st->logits_dev, (size_t)(R * V) * 4, err));
#undef TRY
    return MMS_OK;
}

static mms_status forward(mms_decoder_state *st, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                          const int64_t *ids, const float *embeds, int logits_all, float *logits, mms_error *err) {
    const mms_decoder_config *c = &st->d->cfg;
    const int64_t D = c->block.hidden, V = c->vocab;
    if (n_seqs <= 0 || (!ids && !embeds))
        return mms_error_set(err, MMS_ERR_VALUE, "decoder forward: no sequences or no input");
    int64_t M = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        if (slots[i] < 0 || slots[i] >= st->n_slots)
            return mms_error_set(err, MMS_ERR_VALUE, "sequence %lld: slot %lld out of range [0, %lld)", (long long)i,
                                 (long long)slots[i], (long long)st->n_slots);
        for (int64_t k = 0; k < i; k++)
            if (slots[k] == slots[i]) return mms_error_set(err, MMS_ERR_VALUE, "slot %lld given twice in one step", (long long)slots[i]);
        if (n_new[i] < 1 || st->len[slots[i]] + n_new[i] > st->n_ctx)
            return mms_error_set(err, MMS_ERR_VALUE, "sequence %lld: %lld cached + %lld new tokens exceed the context of %lld tokens",
                                 (long long)i, (long long)st->len[slots[i]], (long long)n_new[i], (long long)st->n_ctx);
        M += n_new[i];
    }
    if (ids) {
        for (int64_t r = 0; r < M; r++)
            if (ids[r] < 0 || ids[r] >= V)
                return mms_error_set(err, MMS_ERR_VALUE, "token id %lld at row %lld is outside the vocabulary [0, %lld)",
                                     (long long)ids[r], (long long)r, (long long)V);
    }
    /* dynamic RoPE: a call's frequencies follow its largest position, so sequences past the
     * trained length run one at a time (each as if alone, like HF with a batch of one) */
    int solo = 0;
    if (c->rope.kind == MMS_ROPE_DYNAMIC && n_seqs > 1)
        for (int64_t i = 0; i < n_seqs; i++)
            if (st->len[slots[i]] + n_new[i] > c->max_pos) solo = 1;
    if (M <= st->max_tokens && !solo) return forward_chunk(st, n_seqs, slots, n_new, ids, embeds, logits_all, logits, err);
    /* too many rows for one step: run each sequence in chunks of max_tokens rows */
    int64_t r0 = 0, out_row = 0;
    for (int64_t i = 0; i < n_seqs; i++) {
        for (int64_t t = 0; t < n_new[i]; t += st->max_tokens) {
            int64_t n = n_new[i] - t < st->max_tokens ? n_new[i] - t : st->max_tokens;
            const int last = t + n == n_new[i];
            float *lg = NULL;
            if (logits && logits_all) lg = logits + (out_row + t) * V;
            else if (logits && last) lg = logits + i * V;
            mms_status rc = forward_chunk(st, 1, &slots[i], &n, ids ? ids + r0 + t : NULL,
                                          embeds ? embeds + (r0 + t) * D : NULL, logits_all, lg, err);
            if (rc != MMS_OK) return rc;
        }
        r0 += n_new[i];
        out_row += n_new[i];
    }
    return MMS_OK;
}

/* The weights' files are checked before and after the step (mapping.h). */
mms_status mms_decoder_forward(mms_decoder_state *st, int64_t n_seqs, const int64_t *slots, const int64_t *n_new,
                               const int64_t *ids, const float *embeds, int logits_all, float *logits,
                               mms_error *err) {
    mms_status rc = mms_mapset_check(&st->d->maps, err);
    if (rc == MMS_OK) rc = forward(st, n_seqs, slots, n_new, ids, embeds, logits_all, logits, err);
    if (rc == MMS_OK) rc = mms_mapset_check(&st->d->maps, err);
    if (rc == MMS_OK && logits && mms_get_finite_mode() != MMS_FINITE_OFF) {
        int64_t rows = n_seqs;
        if (logits_all)
            for (int64_t i = rows = 0; i < n_seqs; i++) rows += n_new[i];
        rc = mms_check_finite_host(logits, rows * st->d->cfg.vocab, "the language model's logits", MMS_FINITE_HINT, err);
    }
    return rc;
}
