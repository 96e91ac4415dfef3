/* clip.c -- CLIP / OpenCLIP / SigLIP: tensor names, loading, and the two towers wired from
 * the shared block. No kernel code lives here. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "clip_internal.h"



/* ---- outputs ------------------------------------------------------------------------ */

void mms_outputs_release(mms_outputs *o) {
    if (!o) return;
    for (int i = 0; i < o->n; i++) mms_tensor_release(&o->items[i].t);
    o->n = 0;
}

mms_status mms_outputs_add(mms_outputs *o, const char *name, mms_dtype dt, int ndim, const int64_t *ne, void **data,
                          mms_error *err) {
    if (o->n >= MMS_MAX_OUTPUTS) return mms_error_set(err, MMS_ERR_INTERNAL, "too many outputs");
    mms_named_tensor *it = &o->items[o->n];
    mms_status rc = mms_tensor_alloc(&it->t, dt, ndim, ne, err);
    if (rc != MMS_OK) return rc;
    snprintf(it->name, sizeof it->name, "%s", name);
    o->n++;
    *data = it->t.data;
    return MMS_OK;
}

const mms_tensor *mms_outputs_find(const mms_outputs *o, const char *name) {
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->items[i].name, name) == 0) return &o->items[i].t;
    return NULL;
}


/* ---- tensor names ---------------------------------------------------------------------- */

typedef struct clip_names {
    const char *patch, *class_emb, *vpos, *pre_ln, *post_ln, *vproj;
    mms_block_names vblock;
    const char *tok, *tpos, *final_ln, *tproj;
    mms_block_names tblock;
    const char *logit_scale, *logit_bias;
    int proj_transposed; /* OpenCLIP stores (D, P) used as x @ proj */
} clip_names;

#define VB(p) "vision_model.encoder.layers.%d." p
#define TB(p) "text_model.encoder.layers.%d." p
static const clip_names k_hf = {
    .patch = "vision_model.embeddings.patch_embedding", .class_emb = "vision_model.embeddings.class_embedding",
    .vpos = "vision_model.embeddings.position_embedding.weight", .pre_ln = "vision_model.pre_layrnorm",
    .post_ln = "vision_model.post_layernorm", .vproj = "visual_projection",
    .vblock = {.norm1 = VB("layer_norm1"), .norm2 = VB("layer_norm2"), .q = VB("self_attn.q_proj"),
               .k = VB("self_attn.k_proj"), .v = VB("self_attn.v_proj"), .o = VB("self_attn.out_proj"),
               .fc1 = VB("mlp.fc1"), .fc2 = VB("mlp.fc2")},
    .tok = "text_model.embeddings.token_embedding.weight", .tpos = "text_model.embeddings.position_embedding.weight",
    .final_ln = "text_model.final_layer_norm", .tproj = "text_projection",
    .tblock = {.norm1 = TB("layer_norm1"), .norm2 = TB("layer_norm2"), .q = TB("self_attn.q_proj"),
               .k = TB("self_attn.k_proj"), .v = TB("self_attn.v_proj"), .o = TB("self_attn.out_proj"),
               .fc1 = TB("mlp.fc1"), .fc2 = TB("mlp.fc2")},
    .logit_scale = "logit_scale", .logit_bias = "logit_bias", .proj_transposed = 0,
};

/* BLIP-2 vision (Blip2VisionModel): packed qkv, "projection" out-proj, (1, T, D) positions. */
static const clip_names k_blip2 = {
    .patch = "vision_model.embeddings.patch_embedding", .class_emb = "vision_model.embeddings.class_embedding",
    .vpos = "vision_model.embeddings.position_embedding", .post_ln = "vision_model.post_layernorm",
    .vblock = {.norm1 = VB("layer_norm1"), .norm2 = VB("layer_norm2"), .qkv_weight = VB("self_attn.qkv.weight"),
               .qkv_bias = VB("self_attn.qkv.bias"), .q_bias = VB("self_attn.q_bias"), .v_bias = VB("self_attn.v_bias"),
               .o = VB("self_attn.projection"), .fc1 = VB("mlp.fc1"), .fc2 = VB("mlp.fc2")},
};
#undef VB
#undef TB

#define OV(p) "visual.transformer.resblocks.%d." p
#define OT(p) "transformer.resblocks.%d." p
static const clip_names k_openclip = {
    .patch = "visual.conv1", .class_emb = "visual.class_embedding", .vpos = "visual.positional_embedding",
    .pre_ln = "visual.ln_pre", .post_ln = "visual.ln_post", .vproj = "visual.proj",
    .vblock = {.norm1 = OV("ln_1"), .norm2 = OV("ln_2"), .qkv_weight = OV("attn.in_proj_weight"),
               .qkv_bias = OV("attn.in_proj_bias"), .o = OV("attn.out_proj"), .fc1 = OV("mlp.c_fc"),
               .fc2 = OV("mlp.c_proj")},
    .tok = "token_embedding.weight", .tpos = "positional_embedding", .final_ln = "ln_final", .tproj = "text_projection",
    .tblock = {.norm1 = OT("ln_1"), .norm2 = OT("ln_2"), .qkv_weight = OT("attn.in_proj_weight"),
               .qkv_bias = OT("attn.in_proj_bias"), .o = OT("attn.out_proj"), .fc1 = OT("mlp.c_fc"),
               .fc2 = OT("mlp.c_proj")},
    .logit_scale = "logit_scale", .logit_bias = "logit_bias", .proj_transposed = 1,
};
#undef OV
#undef OT

/* ---- loading helpers --------------------------------------------------------------------- */

static mms_status get_shaped(const mms_weights *w, const char *name, int64_t d0, int64_t d1, mms_tensor *t,
                             mms_error *err) {
    mms_status rc = mms_weights_get(w, name, t, err);
    if (rc != MMS_OK) return rc;
    int64_t n = mms_tensor_numel(t);
    if ((d1 < 0 && n != d0) || (d1 >= 0 && (t->ndim < 2 || t->ne[t->ndim - 1] != d1 || n != d0 * d1))) {
        char b[64];
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected %lld x %lld from the config", name,
                           mms_tensor_shape_str(t, b, sizeof b), (long long)d0, (long long)(d1 < 0 ? 1 : d1));
        mms_tensor_release(t);
    }
    return rc;
}

static mms_status load_vec(mms_clip *m, const mms_weights *w, const char *name, int64_t len, mms_tensor *out,
                           mms_error *err) {
    mms_tensor t;
    mms_status rc = get_shaped(w, name, len, -1, &t, err);
    if (rc != MMS_OK) return rc;
    rc = mms_vector_prepare(m->be, &t, out, err);
    mms_tensor_release(&t);
    return rc;
}

static mms_status load_norm(mms_clip *m, const mms_weights *w, const char *prefix, int64_t D, mms_tensor *g,
                            mms_tensor *b, mms_error *err) {
    char n[256];
    snprintf(n, sizeof n, "%s.weight", prefix);
    mms_status rc = load_vec(m, w, n, D, g, err);
    if (rc != MMS_OK) return rc;
    snprintf(n, sizeof n, "%s.bias", prefix);
    return load_vec(m, w, n, D, b, err);
}

/* A (D, P) matrix used as x @ M -> transposed copy in linear layout (P, D). */
static mms_status load_transposed(mms_clip *m, const mms_weights *w, const char *name, int64_t D, int64_t P,
                                  mms_linear *out, mms_error *err) {
    mms_tensor t, tt;
    mms_status rc = get_shaped(w, name, D, P, &t, err);
    if (rc != MMS_OK) return rc;
    int64_t ne[2] = {P, D};
    rc = mms_tensor_alloc(&tt, MMS_DTYPE_F32, 2, ne, err);
    if (rc == MMS_OK) {
        float *row = mms_malloc((size_t)P * sizeof(float));
        if (!row) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < D && rc == MMS_OK; i++) {
            rc = mms_convert((const char *)t.data + i * t.nb[0], t.dtype, row, MMS_DTYPE_F32, P, err);
            for (int64_t p = 0; p < P && rc == MMS_OK; p++) ((float *)tt.data)[p * D + i] = row[p];
        }
        mms_free(row);
        if (rc == MMS_OK) rc = mms_linear_prepare(m->be, &tt, NULL, m->dtype, out, err);
        mms_tensor_release(&tt);
    }
    mms_tensor_release(&t);
    return rc;
}

static mms_status load_scalar(const mms_weights *w, const char *name, int required, float *out, mms_error *err) {
    const mms_tensor *t = mms_weights_find(w, name);
    if (!t) {
        if (required) return mms_error_set(err, MMS_ERR_NOT_FOUND, "tensor '%s' not found in checkpoint", name);
        return MMS_OK;
    }
    if (mms_tensor_numel(t) != 1) return mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' must hold one value", name);
    return mms_convert(t->data, t->dtype, out, MMS_DTYPE_F32, 1, err);
}

/* Rows [r0, r0+n) of a packed (3D, D) in_proj weight/bias as one linear. */
static mms_status load_rows(mms_clip *m, const mms_weights *w, const char *wname, const char *bname, int64_t r0,
                            int64_t n, int64_t D, mms_linear *out, mms_error *err) {
    mms_tensor tw, tb;
    mms_status rc = get_shaped(w, wname, 3 * D, D, &tw, err);
    if (rc != MMS_OK) return rc;
    rc = get_shaped(w, bname, 3 * D, -1, &tb, err);
    if (rc != MMS_OK) { mms_tensor_release(&tw); return rc; }
    mms_tensor sw = tw, sb = tb;
    sw.ndim = 2; sw.ne[0] = n; sw.ne[1] = D; sw.nb[1] = (int64_t)mms_dtype_size(tw.dtype); sw.nb[0] = D * sw.nb[1];
    sw.data = (char *)tw.data + r0 * sw.nb[0];
    sb.ndim = 1; sb.ne[0] = n; sb.nb[0] = (int64_t)mms_dtype_size(tb.dtype);
    sb.data = (char *)tb.data + r0 * sb.nb[0];
    rc = mms_linear_prepare(m->be, &sw, &sb, m->dtype, out, err);
    mms_tensor_release(&tw);
    mms_tensor_release(&tb);
    return rc;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static mms_status load_weights(mms_clip *m, const mms_weights *w, const clip_names *nm, mms_error *err) {
    const mms_clip_config *c = &m->cfg;
    const int64_t Dv = c->vision.hidden, Dt = c->text.hidden, P = c->projection_dim, p = c->patch_size;
    const int64_t grid = c->image_size / p, Tv = grid * grid + (c->vision_class_token ? 1 : 0);
    mms_status rc;
    char n[256];
#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)
    TRY(mms_weights_mapset(w, &m->maps, err));
    /* patch embedding: conv weight (D, C, p, p) viewed as a (D, C*p*p) linear */
    {
        mms_tensor cw, cb;
        memset(&cb, 0, sizeof cb);
        snprintf(n, sizeof n, "%s.weight", nm->patch);
        TRY(mms_weights_get(w, n, &cw, err));
        if (cw.ndim != 4 || cw.ne[0] != Dv || cw.ne[1] != c->num_channels || cw.ne[2] != p || cw.ne[3] != p) {
            char b[64];
            rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected (%lld, %lld, %lld, %lld) from the config",
                               n, mms_tensor_shape_str(&cw, b, sizeof b), (long long)Dv, (long long)c->num_channels,
                               (long long)p, (long long)p);
            mms_tensor_release(&cw);
            return rc;
        }
        int64_t ne2[2] = {Dv, c->num_channels * p * p};
        mms_tensor flat = mms_tensor_view(cw.data, cw.dtype, 2, ne2);
        flat.storage = cw.storage;
        snprintf(n, sizeof n, "%s.bias", nm->patch);
        if (mms_weights_find(w, n)) rc = get_shaped(w, n, Dv, -1, &cb, err);
        if (rc == MMS_OK) rc = mms_linear_prepare(m->be, &flat, cb.ndim ? &cb : NULL, m->dtype, &m->patch, err);
        mms_tensor_release(&cw);
        mms_tensor_release(&cb);
        if (rc != MMS_OK) return rc;
    }
    if (c->vision_class_token) TRY(load_vec(m, w, nm->class_emb, Dv, &m->class_emb, err));
    {
        mms_tensor t;
        TRY(get_shaped(w, nm->vpos, Tv, Dv, &t, err));
        rc = mms_vector_prepare(m->be, &t, &m->vpos, err);
        mms_tensor_release(&t);
        if (rc != MMS_OK) return rc;
    }
    if (c->vision_pre_norm) TRY(load_norm(m, w, nm->pre_ln, Dv, &m->pre_g, &m->pre_b, err));
    if (!c->vision_only || c->vision_post_norm_all) TRY(load_norm(m, w, nm->post_ln, Dv, &m->post_g, &m->post_b, err));
    m->vblocks = mms_calloc((size_t)c->vision_layers + 1, sizeof(mms_block_weights));
    m->tblocks = mms_calloc((size_t)c->text_layers + 1, sizeof(mms_block_weights));
    if (!m->vblocks || !m->tblocks) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->vision_layers; i++) TRY(mms_block_load(m->be, &c->vision, w, &nm->vblock, i, &m->vblocks[i], err));
    if (c->vision_only) return MMS_OK;
    if (c->kind == MMS_CLIP_SIGLIP) {
        if (c->vision_map_head) {
            TRY(load_vec(m, w, "vision_model.head.probe", Dv, &m->probe, err));
            TRY(load_rows(m, w, "vision_model.head.attention.in_proj_weight", "vision_model.head.attention.in_proj_bias", 0, Dv, Dv, &m->head_q, err));
            TRY(load_rows(m, w, "vision_model.head.attention.in_proj_weight", "vision_model.head.attention.in_proj_bias", Dv, 2 * Dv, Dv, &m->head_kv, err));
            TRY(mms_load_linear(m->be, w, "vision_model.head.attention.out_proj", Dv, Dv, 1, m->dtype, &m->head_out, err));
            TRY(load_norm(m, w, "vision_model.head.layernorm", Dv, &m->head_ln_g, &m->head_ln_b, err));
            TRY(mms_load_linear(m->be, w, "vision_model.head.mlp.fc1", Dv, c->vision.ffn, 1, m->dtype, &m->head_fc1, err));
            TRY(mms_load_linear(m->be, w, "vision_model.head.mlp.fc2", c->vision.ffn, Dv, 1, m->dtype, &m->head_fc2, err));
        }
    } else if (nm->proj_transposed) {
        TRY(load_transposed(m, w, nm->vproj, Dv, P, &m->vproj, err));
    } else {
        TRY(mms_load_linear(m->be, w, nm->vproj, Dv, P, 0, m->dtype, &m->vproj, err));
    }
    /* text tower */
    {
        mms_tensor t;
        TRY(get_shaped(w, nm->tok, c->vocab_size, Dt, &t, err));
        if (m->be->device == MMS_DEVICE_CPU) {
            m->tok_emb = t; /* rows are converted per call: keep the table as stored (borrowed) */
        } else {
            rc = mms_vector_prepare(m->be, &t, &m->tok_emb, err);
            mms_tensor_release(&t);
            if (rc != MMS_OK) return rc;
        }
        TRY(get_shaped(w, nm->tpos, c->max_positions, Dt, &t, err));
        rc = mms_vector_prepare(m->be, &t, &m->tpos, err);
        mms_tensor_release(&t);
        if (rc != MMS_OK) return rc;
    }
    for (int i = 0; i < c->text_layers; i++) TRY(mms_block_load(m->be, &c->text, w, &nm->tblock, i, &m->tblocks[i], err));
    TRY(load_norm(m, w, nm->final_ln, Dt, &m->final_g, &m->final_b, err));
    if (c->kind == MMS_CLIP_SIGLIP) TRY(mms_load_linear(m->be, w, "text_model.head", Dt, P, 1, m->dtype, &m->tproj, err));
    else if (nm->proj_transposed) TRY(load_transposed(m, w, nm->tproj, Dt, P, &m->tproj, err));
    else TRY(mms_load_linear(m->be, w, nm->tproj, Dt, P, 0, m->dtype, &m->tproj, err));
    TRY(load_scalar(w, nm->logit_scale, 1, &m->logit_scale, err));
    TRY(load_scalar(w, nm->logit_bias, c->kind == MMS_CLIP_SIGLIP, &m->logit_bias, err));
#undef TRY
    return MMS_OK;
}

mms_status mms_clip_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err) {
    *out = NULL;
    if (dtype != MMS_DTYPE_F32 && dtype != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_VALUE, "dtype must be float32 or bfloat16, not %s", mms_dtype_name(dtype));
    char path[4096];
    mms_json j;
    mms_status rc;
    int openclip = 0;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!file_exists(path)) {
        snprintf(path, sizeof path, "%s/open_clip_config.json", dir);
        if (!file_exists(path))
            return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no config.json or open_clip_config.json (is this a checkpoint directory?)", dir);
        openclip = 1;
    }
    if ((rc = mms_json_load(path, &j, err)) != MMS_OK) return rc;
    mms_clip *m = mms_calloc(1, sizeof *m);
    if (!m) { mms_json_free(&j); return mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); }
    m->be = be;
    m->dtype = dtype;
    rc = openclip ? mms_clip_config_from_openclip(&j, &m->cfg, err) : mms_clip_config_from_hf(&j, &m->cfg, err);
    mms_json_free(&j);
    if (rc != MMS_OK) { mms_free(m); return rc; }
    m->cfg.vision.compute = m->cfg.text.compute = dtype;
    mms_weights *w = NULL;
    rc = mms_weights_open(dir, openclip ? "open_clip_model.safetensors" : NULL, &w, err);
    if (rc == MMS_OK) {
        rc = load_weights(m, w, openclip ? &k_openclip : &k_hf, err);
        m->weight_bytes = mms_weights_bytes(w);
        mms_weights_close(w); /* tensors keep their mapping alive */
    }
    if (rc != MMS_OK) {
        mms_error_in_file(err, dir);
        mms_clip_free(m);
        return rc;
    }
    *out = m;
    return MMS_OK;
}

/* n_layers < 0: all of them */
static mms_status load_vision(const mms_weights *w, const mms_json *j, const cJSON *vc, const char *what,
                              int n_layers, int blip2, mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err) {
    *out = NULL;
    mms_clip *m = mms_calloc(1, sizeof *m);
    if (!m) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    m->be = be;
    m->dtype = dtype;
    mms_status rc = mms_clip_vision_config(j, vc, what, &m->cfg, err);
    if (rc == MMS_OK && (m->cfg.kind == MMS_CLIP_BLIP2) != blip2)
        rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: %s is not a %s vision tower", j->path, what, blip2 ? "BLIP-2" : "CLIP");
    if (rc == MMS_OK && n_layers < 0) n_layers = m->cfg.vision_layers;
    if (rc == MMS_OK && (n_layers < 0 || n_layers > m->cfg.vision_layers))
        rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: the vision tower has %d layers, %d needed", j->path,
                           m->cfg.vision_layers, n_layers);
    if (rc == MMS_OK) {
        m->cfg.vision_layers = n_layers;
        m->cfg.vision.compute = dtype;
        rc = load_weights(m, w, blip2 ? &k_blip2 : &k_hf, err);
    }
    if (rc != MMS_OK) {
        mms_clip_free(m);
        return rc;
    }
    *out = m;
    return MMS_OK;
}

mms_status mms_clip_load_vision(const mms_weights *w, const mms_json *j, const cJSON *vc, const char *what,
                                int n_layers, mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err) {
    if (n_layers < 0) return mms_error_set(err, MMS_ERR_VALUE, "vision tower: negative layer count");
    return load_vision(w, j, vc, what, n_layers, 0, dtype, be, out, err);
}

mms_status mms_clip_load_blip2_vision(const mms_weights *w, const mms_json *j, const cJSON *vc, const char *what,
                                      mms_dtype dtype, mms_backend *be, mms_clip **out, mms_error *err) {
    return load_vision(w, j, vc, what, -1, 1, dtype, be, out, err);
}

void mms_clip_free(mms_clip *m) {
    if (!m) return;
    if (m->vblocks) for (int i = 0; i < m->cfg.vision_layers; i++) mms_block_release(&m->vblocks[i]);
    if (m->tblocks) for (int i = 0; i < m->cfg.text_layers; i++) mms_block_release(&m->tblocks[i]);
    mms_free(m->vblocks);
    mms_free(m->tblocks);
    mms_linear *ls[] = {&m->patch, &m->vproj, &m->head_q, &m->head_kv, &m->head_out, &m->head_fc1, &m->head_fc2, &m->tproj};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        mms_linear_release(ls[i]); /* NULL-safe on unloaded parts */
    mms_tensor *ts[] = {&m->class_emb, &m->vpos, &m->pre_g, &m->pre_b, &m->post_g, &m->post_b, &m->probe,
                        &m->head_ln_g, &m->head_ln_b, &m->tok_emb, &m->tpos, &m->final_g, &m->final_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) mms_tensor_release(ts[i]);
    mms_mapset_release(&m->maps);
    mms_free(m);
}

const mms_clip_config *mms_clip_get_config(const mms_clip *m) { return &m->cfg; }
float mms_clip_logit_scale(const mms_clip *m) { return m->logit_scale; }
float mms_clip_logit_bias(const mms_clip *m) { return m->logit_bias; }
mms_dtype mms_clip_dtype(const mms_clip *m) { return m->dtype; }
int64_t mms_clip_weight_bytes(const mms_clip *m) { return m->weight_bytes; }
