/* qformer.c -- BLIP-2 Q-Former: config, weights, forward over the learned queries (qformer.h). */
#include "qformer.h"

#include <stdio.h>
#include <string.h>

struct mms_qformer {
    mms_qformer_config cfg;
    mms_backend *be;
    mms_tensor queries;          /* (Q, D) F32 on the backend: layernorm(query_tokens), fixed */
    mms_block_weights *layers;
};

#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)

mms_status mms_qformer_config_parse(const mms_json *j, const cJSON *qc, const char *what, int64_t n_query,
                                    mms_qformer_config *c, mms_error *err) {
    mms_status rc;
    int64_t hidden, inter, nl, nh, freq, enc;
    double eps;
    const char *act;
    memset(c, 0, sizeof *c);
    TRY(mms_json_int(j, qc, what, "hidden_size", 768, &hidden, err));
    TRY(mms_json_int(j, qc, what, "intermediate_size", 3072, &inter, err));
    TRY(mms_json_int(j, qc, what, "num_hidden_layers", 12, &nl, err));
    TRY(mms_json_int(j, qc, what, "num_attention_heads", 12, &nh, err));
    TRY(mms_json_int(j, qc, what, "cross_attention_frequency", 2, &freq, err));
    TRY(mms_json_int(j, qc, what, "encoder_hidden_size", 1408, &enc, err));
    TRY(mms_json_float(j, qc, what, "layer_norm_eps", 1e-12, &eps, err));
    TRY(mms_json_str(j, qc, what, "hidden_act", "gelu", &act, err));
    int a = mms_act_parse(act);
    if (a < 0) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s.hidden_act '%s' is not supported", j->path, what, act);
    if (hidden <= 0 || nh <= 0 || hidden % nh || inter <= 0 || nl <= 0 || nl > 1000 || freq <= 0 || enc <= 0 ||
        n_query <= 0 || n_query > 4096)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: inconsistent %s (hidden %lld, heads %lld, layers %lld, "
                             "cross_attention_frequency %lld, encoder_hidden_size %lld, num_query_tokens %lld)",
                             j->path, what, (long long)hidden, (long long)nh, (long long)nl, (long long)freq,
                             (long long)enc, (long long)n_query);
    mms_block_config *b = &c->block;
    b->hidden = hidden; b->n_heads = nh; b->head_dim = hidden / nh; b->ffn = inter;
    b->norm = MMS_NORM_LAYER; b->norm_eps = (float)eps; b->pre_norm = 0; b->act = (mms_act)a;
    b->cross_dim = enc; b->cross_every = (int)freq;
    c->n_layers = (int)nl;
    c->n_query = n_query;
    return MMS_OK;
}

#define QL(p) "qformer.encoder.layer.%d." p
static const mms_block_names k_names = {
    .norm1 = QL("attention.output.LayerNorm"), .norm2 = QL("output_query.LayerNorm"),
    .q = QL("attention.attention.query"), .k = QL("attention.attention.key"), .v = QL("attention.attention.value"),
    .o = QL("attention.output.dense"), .fc1 = QL("intermediate_query.dense"), .fc2 = QL("output_query.dense"),
    .xnorm = QL("crossattention.output.LayerNorm"), .xq = QL("crossattention.attention.query"),
    .xk = QL("crossattention.attention.key"), .xv = QL("crossattention.attention.value"),
    .xo = QL("crossattention.output.dense"),
};
#undef QL

static mms_status load_queries(mms_qformer *q, const mms_weights *w, mms_error *err) {
    const int64_t Q = q->cfg.n_query, D = q->cfg.block.hidden;
    mms_tensor t, g, b, host;
    mms_status rc = mms_weights_get(w, "query_tokens", &t, err);
    if (rc != MMS_OK) return rc;
    if (mms_tensor_numel(&t) != Q * D || t.ne[t.ndim - 1] != D) {
        char buf[64];
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor 'query_tokens' has shape %s, expected (1, %lld, %lld) from the config",
                           mms_tensor_shape_str(&t, buf, sizeof buf), (long long)Q, (long long)D);
        mms_tensor_release(&t);
        return rc;
    }
    /* layernorm(query_tokens) does not depend on the image: compute it once, on the host */
    int64_t ne[2] = {Q, D};
    memset(&g, 0, sizeof g); memset(&b, 0, sizeof b);
    rc = mms_tensor_alloc(&host, MMS_DTYPE_F32, 2, ne, err);
    if (rc == MMS_OK) rc = mms_convert(t.data, t.dtype, host.data, MMS_DTYPE_F32, Q * D, err);
    mms_tensor_release(&t);
    mms_backend *cpu = mms_backend_cpu();
    if (rc == MMS_OK) rc = mms_load_vector(cpu, w, "qformer.layernorm.weight", D, &g, err);
    if (rc == MMS_OK) rc = mms_load_vector(cpu, w, "qformer.layernorm.bias", D, &b, err);
    if (rc == MMS_OK) rc = mms_op_layernorm(cpu, &host, &g, &b, q->cfg.block.norm_eps, &host, err);
    if (rc == MMS_OK) rc = mms_vector_prepare(q->be, &host, &q->queries, err);
    mms_tensor_release(&g);
    mms_tensor_release(&b);
    mms_tensor_release(&host);
    return rc;
}

mms_status mms_qformer_load(const mms_weights *w, const mms_qformer_config *c, mms_dtype dtype, mms_backend *be,
                            mms_qformer **out, mms_error *err) {
    *out = NULL;
    mms_qformer *q = mms_calloc(1, sizeof *q);
    if (!q) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    q->cfg = *c;
    q->cfg.block.compute = dtype;
    q->be = be;
    mms_status rc = load_queries(q, w, err);
    if (rc == MMS_OK) {
        q->layers = mms_calloc((size_t)c->n_layers, sizeof(mms_block_weights));
        if (!q->layers) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    }
    for (int l = 0; rc == MMS_OK && l < c->n_layers; l++)
        rc = mms_block_load(be, &q->cfg.block, w, &k_names, l, &q->layers[l], err);
    if (rc != MMS_OK) {
        mms_qformer_free(q);
        return rc;
    }
    *out = q;
    return MMS_OK;
}

void mms_qformer_free(mms_qformer *q) {
    if (!q) return;
    if (q->layers)
        for (int l = 0; l < q->cfg.n_layers; l++) mms_block_release(&q->layers[l]);
    mms_free(q->layers);
    mms_tensor_release(&q->queries);
    mms_free(q);
}

const mms_qformer_config *mms_qformer_get_config(const mms_qformer *q) { return &q->cfg; }

#undef TRY
mms_status mms_qformer_forward(const mms_qformer *q, const float *image, int64_t B, int64_t Te, float *out,
                               mms_error *err) {
    const mms_qformer_config *c = &q->cfg;
    const mms_block_config *bc = &c->block;
    mms_backend *be = q->be;
    const int64_t Q = c->n_query, D = bc->hidden, Dc = bc->cross_dim, A = bc->n_heads * bc->head_dim;
    if (B <= 0 || Te <= 0) return mms_error_set(err, MMS_ERR_VALUE, "qformer: empty image features (%lld x %lld)", (long long)B, (long long)Te);
    mms_block_scratch s;
    mms_status rc = mms_block_scratch_alloc(be, bc, B * Q, &s, err);
    if (rc != MMS_OK) return rc;
    float *x = be->vt->alloc(be, (size_t)(B * Q * D) * 4);
    float *enc = be->vt->alloc(be, (size_t)(B * Te * Dc) * 4);
    float *k = be->vt->alloc(be, (size_t)(B * Te * A) * 4);
    float *v = be->vt->alloc(be, (size_t)(B * Te * A) * 4);
    int64_t *rows = mms_malloc((size_t)B * 3 * sizeof(int64_t));
    if (!x || !enc || !k || !v || !rows) rc = mms_error_set(err, MMS_ERR_NOMEM, "qformer: out of memory for %lld images", (long long)B);
    for (int64_t b = 0; rc == MMS_OK && b < B; b++)
        rc = mms_op_copy2d(be, x + b * Q * D, D, q->queries.data, D, Q, D, err);
    if (rc == MMS_OK) rc = be->vt->upload(be, enc, image, (size_t)(B * Te * Dc) * 4, err);
    mms_block_cross cr;
    memset(&cr, 0, sizeof cr);
    if (rc == MMS_OK) {
        for (int64_t b = 0; b < B; b++) { rows[b] = Q; rows[B + b] = b * Te; rows[2 * B + b] = Te; }
        cr.n_seqs = B; cr.n_rows = rows; cr.kv_off = rows + B; cr.kv_len = rows + 2 * B;
        cr.k = k; cr.v = v; cr.kv_dtype = MMS_DTYPE_F32; cr.kv_row = A;
    }
    mms_block_opts o;
    memset(&o, 0, sizeof o);
    o.cross = &cr;
    for (int l = 0; rc == MMS_OK && l < c->n_layers; l++) {
        if (q->layers[l].has_cross) rc = mms_block_cross_kv(be, bc, &q->layers[l], enc, B * Te, k, v, err);
        if (rc == MMS_OK) rc = mms_block_forward_ex(be, bc, &q->layers[l], x, B, Q, &o, &s, err);
    }
    if (rc == MMS_OK) rc = be->vt->download(be, out, x, (size_t)(B * Q * D) * 4, err);
    mms_block_scratch_free(be, &s);
    void *bufs[] = {x, enc, k, v};
    for (size_t i = 0; i < 4; i++)
        if (bufs[i]) be->vt->free(be, bufs[i]);
    mms_free(rows);
    return rc;
}
