/* t5.c -- T5 relative position buckets and the encoder stack (t5.h). */
#include "t5.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int64_t mms_t5_bucket(int64_t rel, int bidirectional, int64_t num_buckets, int64_t max_distance) {
    int64_t bucket = 0, n = num_buckets, r;
    if (bidirectional) {
        n /= 2;
        if (rel > 0) bucket += n;
        r = rel < 0 ? -rel : rel;
    } else {
        r = rel < 0 ? -rel : 0;
    }
    const int64_t max_exact = n / 2;
    if (r < max_exact) return bucket + r;
    /* float32 as torch computes it: log(r / max_exact) / log(max_distance / max_exact) * (n - max_exact) */
    const float lr = logf((float)r / (float)max_exact);
    const float den = (float)log((double)max_distance / (double)max_exact);
    const float v = lr / den * (float)(n - max_exact);
    int64_t large = max_exact + (int64_t)v;
    if (large > n - 1) large = n - 1;
    return bucket + large;
}

void mms_t5_rel_table(const float *emb, int64_t H, int64_t num_buckets, int64_t max_distance, int bidirectional,
                      float *table) {
    const int64_t R = max_distance, W = 2 * R + 1;
    for (int64_t d = -R; d <= R; d++) {
        const int64_t b = mms_t5_bucket(d, bidirectional, num_buckets, max_distance);
        for (int64_t h = 0; h < H; h++) table[h * W + R + d] = emb[b * H + h];
    }
}

mms_status mms_t5_load_rel_bias(mms_backend *be, const mms_weights *w, const char *stack, const mms_decoder_config *c,
                                int bidirectional, mms_tensor *out, mms_error *err) {
    char n[256];
    snprintf(n, sizeof n, "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight", stack);
    const int64_t H = c->block.n_heads, NB = c->rel_buckets, R = c->rel_max_distance;
    mms_tensor t, emb, tab;
    mms_status rc = mms_weights_get(w, n, &t, err);
    if (rc != MMS_OK) return rc;
    if (t.ndim != 2 || t.ne[0] != NB || t.ne[1] != H) {
        char b[64];
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected (%lld, %lld) from the config", n,
                           mms_tensor_shape_str(&t, b, sizeof b), (long long)NB, (long long)H);
        mms_tensor_release(&t);
        return rc;
    }
    int64_t ne_e[2] = {NB, H}, ne_t[2] = {H, 2 * R + 1};
    memset(&tab, 0, sizeof tab);
    rc = mms_tensor_alloc(&emb, MMS_DTYPE_F32, 2, ne_e, err);
    if (rc == MMS_OK) rc = mms_convert(t.data, t.dtype, emb.data, MMS_DTYPE_F32, NB * H, err);
    if (rc == MMS_OK) rc = mms_tensor_alloc(&tab, MMS_DTYPE_F32, 2, ne_t, err);
    if (rc == MMS_OK) {
        mms_t5_rel_table(emb.data, H, NB, R, bidirectional, tab.data);
        rc = mms_vector_prepare(be, &tab, out, err);
    }
    mms_tensor_release(&t);
    mms_tensor_release(&emb);
    mms_tensor_release(&tab);
    return rc;
}

/* ---- encoder ------------------------------------------------------------------------------- */

struct mms_t5_encoder {
    mms_decoder_config cfg;     /* the T5 config; block used without causal mask / cross-attention */
    mms_block_config block;
    mms_backend *be;
    mms_tensor embed;           /* (V, D) as stored: host lookups (mms_decoder_embed does the same) */
    mms_tensor rel_bias;        /* (H, 2R+1) on the backend                                        */
    mms_block_weights *layers;
    mms_tensor norm_g;
};

#define EL(p) "encoder.block.%d.layer." p
static const mms_block_names k_enc_gated = {
    .norm1 = EL("0.layer_norm"), .norm2 = EL("1.layer_norm"), .q = EL("0.SelfAttention.q"), .k = EL("0.SelfAttention.k"),
    .v = EL("0.SelfAttention.v"), .o = EL("0.SelfAttention.o"), .gate = EL("1.DenseReluDense.wi_0"),
    .fc1 = EL("1.DenseReluDense.wi_1"), .fc2 = EL("1.DenseReluDense.wo"),
};
static const mms_block_names k_enc_plain = {
    .norm1 = EL("0.layer_norm"), .norm2 = EL("1.layer_norm"), .q = EL("0.SelfAttention.q"), .k = EL("0.SelfAttention.k"),
    .v = EL("0.SelfAttention.v"), .o = EL("0.SelfAttention.o"), .fc1 = EL("1.DenseReluDense.wi"),
    .fc2 = EL("1.DenseReluDense.wo"),
};
#undef EL

mms_status mms_t5_encoder_load(const mms_weights *w, const mms_decoder_config *c, mms_dtype dtype, mms_backend *be,
                               mms_t5_encoder **out, mms_error *err) {
    *out = NULL;
    if (c->family != MMS_DEC_T5) return mms_error_set(err, MMS_ERR_CONFIG, "t5 encoder: not a T5 config");
    mms_t5_encoder *e = mms_calloc(1, sizeof *e);
    if (!e) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    e->cfg = *c;
    e->block = c->block;
    e->block.causal = 0;
    e->block.cross_dim = 0;
    e->block.compute = dtype;
    e->be = be;
    const int64_t D = c->block.hidden;
    mms_status rc = mms_weights_get(w, "shared.weight", &e->embed, err);
    if (rc == MMS_OK && (e->embed.ndim != 2 || e->embed.ne[0] != c->vocab || e->embed.ne[1] != D))
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor 'shared.weight' does not match vocab_size %lld x d_model %lld",
                           (long long)c->vocab, (long long)D);
    if (rc == MMS_OK) rc = mms_t5_load_rel_bias(be, w, "encoder", c, 1, &e->rel_bias, err);
    if (rc == MMS_OK) {
        e->layers = mms_calloc((size_t)c->n_enc_layers, sizeof(mms_block_weights));
        if (!e->layers) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; rc == MMS_OK && l < c->n_enc_layers; l++)
        rc = mms_block_load(be, &e->block, w, c->block.gated ? &k_enc_gated : &k_enc_plain, l, &e->layers[l], err);
    if (rc == MMS_OK) rc = mms_load_vector(be, w, "encoder.final_layer_norm.weight", D, &e->norm_g, err);
    if (rc != MMS_OK) {
        mms_t5_encoder_free(e);
        return rc;
    }
    *out = e;
    return MMS_OK;
}

void mms_t5_encoder_free(mms_t5_encoder *e) {
    if (!e) return;
    if (e->layers)
        for (int l = 0; l < e->cfg.n_enc_layers; l++) mms_block_release(&e->layers[l]);
    mms_free(e->layers);
    mms_tensor_release(&e->embed);
    mms_tensor_release(&e->rel_bias);
    mms_tensor_release(&e->norm_g);
    mms_free(e);
}

mms_status mms_t5_encoder_forward(const mms_t5_encoder *e, const float *embeds, const int64_t *mask, int64_t B,
                                  int64_t L, float *out, mms_error *err) {
    mms_backend *be = e->be;
    const int64_t D = e->block.hidden, M = B * L;
    if (B <= 0 || L <= 0) return mms_error_set(err, MMS_ERR_VALUE, "t5 encoder: empty input (%lld x %lld)", (long long)B, (long long)L);
    mms_block_scratch s;
    mms_status rc = mms_block_scratch_alloc(be, &e->block, M, &s, err);
    if (rc != MMS_OK) return rc;
    float *x = be->vt->alloc(be, (size_t)(M * D) * 4);
    int64_t *mask_dev = NULL;
    if (!x) rc = mms_error_set(err, MMS_ERR_NOMEM, "t5 encoder: out of memory for %lld rows", (long long)M);
    if (rc == MMS_OK) rc = be->vt->upload(be, x, embeds, (size_t)(M * D) * 4, err);
    if (rc == MMS_OK && mask && be->device != MMS_DEVICE_CPU) {
        mask_dev = be->vt->alloc(be, (size_t)M * sizeof(int64_t));
        rc = mask_dev ? be->vt->upload(be, mask_dev, mask, (size_t)M * sizeof(int64_t), err)
                      : mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    }
    mms_block_opts o;
    memset(&o, 0, sizeof o);
    o.key_mask = mask_dev ? mask_dev : mask;
    o.rel_bias = e->rel_bias.data;
    o.rel_max = e->cfg.rel_max_distance;
    for (int l = 0; rc == MMS_OK && l < e->cfg.n_enc_layers; l++)
        rc = mms_block_forward_ex(be, &e->block, &e->layers[l], x, B, L, &o, &s, err);
    if (rc == MMS_OK) {
        int64_t ne[2] = {M, D};
        mms_tensor tx = mms_tensor_view(x, MMS_DTYPE_F32, 2, ne);
        tx.device = be->device;
        rc = mms_block_norm(be, &e->block, &tx, &e->norm_g, NULL, &tx, err);
    }
    if (rc == MMS_OK) rc = be->vt->download(be, out, x, (size_t)(M * D) * 4, err);
    if (x) be->vt->free(be, x);
    if (mask_dev) be->vt->free(be, mask_dev);
    mms_block_scratch_free(be, &s);
    return rc;
}
