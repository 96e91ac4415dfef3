/* clip_forward.c -- the image and text towers of CLIP / OpenCLIP / SigLIP, built from ops
 * and the shared block. Inputs are processed in chunks of ~CHUNK_TOKENS tokens so activation
 * memory stays bounded for large batches. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clip_internal.h"
#include "finite.h"

#define CHUNK_TOKENS 8192

typedef struct dev_buf { mms_backend *be; void *p; } dev_buf;

static void *dalloc(mms_backend *be, size_t n, void **slot) { return *slot = be->vt->alloc(be, n ? n : 4); }

static mms_tensor dview(const mms_clip *m, void *p, mms_dtype dt, int ndim, int64_t a, int64_t b, int64_t c) {
    int64_t ne[3] = {a, b, c};
    mms_tensor t = mms_tensor_view(p, dt, ndim, ne);
    t.device = m->be->device;
    return t;
}

/* Copy nbytes from backend memory to a host output buffer. */
static mms_status to_host(const mms_clip *m, void *dst, const void *src, size_t nbytes, mms_error *err) {
    return m->be->vt->download(m->be, dst, src, nbytes, err);
}

/* dst (rows, cols) = src rows divided by their L2 norm (host buffers). */
static mms_status normalized_copy(float *dst, const float *src, int64_t rows, int64_t cols, mms_error *err) {
    int64_t ne[2] = {rows, cols};
    memcpy(dst, src, (size_t)(rows * cols) * sizeof(float));
    mms_tensor t = mms_tensor_view(dst, MMS_DTYPE_F32, 2, ne);
    return mms_op_l2_normalize(mms_backend_cpu(), &t, err);
}

/* Frees a call's scratch and buffers; on failure also the outputs. Returns rc. */
static mms_status finish(mms_backend *be, mms_block_scratch *s, void **bufs, int n, mms_outputs *out, mms_status rc) {
    mms_block_scratch_free(be, s);
    for (int i = 0; i < n; i++)
        if (bufs[i]) be->vt->free(be, bufs[i]);
    if (rc != MMS_OK) mms_outputs_release(out);
    return rc;
}

/* Rows [b0, b0+nb) of pixel_values -> x (nb, T, D): patch embedding, class token, positions and
 * the pre-norm (CLIP). pe: (nb, np, D) scratch; px_dev: upload buffer on device backends. */
static mms_status vision_embed(const mms_clip *m, const mms_tensor *px, int64_t b0, int64_t nb, float *x, float *pe,
                               float *px_dev, mms_error *err) {
    const mms_clip_config *c = &m->cfg;
    mms_backend *be = m->be;
    const int64_t D = c->vision.hidden, grid = c->image_size / c->patch_size, np = grid * grid;
    const int64_t cls = c->vision_class_token ? 1 : 0, T = np + cls;
    mms_status rc;
    mms_tensor pxc = *px;
    pxc.ne[0] = nb;
    pxc.data = (char *)px->data + b0 * px->nb[0];
    pxc.storage = NULL;
    if (px_dev) { /* device backends get a contiguous upload */
        size_t per = (size_t)(c->num_channels * c->image_size * c->image_size) * 4;
        if (!mms_tensor_is_contiguous(px)) return mms_error_set(err, MMS_ERR_VALUE, "pixel_values must be contiguous for this device");
        if ((rc = be->vt->upload(be, px_dev, pxc.data, per * (size_t)nb, err)) != MMS_OK) return rc;
        pxc.data = px_dev;
        pxc.device = be->device;
    }
    mms_tensor tpe = dview(m, pe, MMS_DTYPE_F32, 3, nb, np, D);
    if ((rc = mms_op_patch_embed(be, &pxc, (int)c->patch_size, &m->patch, &tpe, err)) != MMS_OK) return rc;
    for (int64_t b = 0; b < nb; b++) {
        float *xb = x + b * T * D;
        if (cls && (rc = mms_op_copy2d(be, xb, D, m->class_emb.data, D, 1, D, err)) != MMS_OK) return rc;
        if ((rc = mms_op_copy2d(be, xb + cls * D, D, pe + b * np * D, D, np, D, err)) != MMS_OK) return rc;
        mms_tensor txb = dview(m, xb, MMS_DTYPE_F32, 2, T, D, 0);
        if ((rc = mms_op_add(be, &txb, &m->vpos, err)) != MMS_OK) return rc;
    }
    mms_tensor tx = dview(m, x, MMS_DTYPE_F32, 3, nb, T, D);
    if (c->vision_pre_norm) return mms_op_layernorm(be, &tx, &m->pre_g, &m->pre_b, c->vision_eps, &tx, err);
    return MMS_OK;
}

static mms_status encode_image(const mms_clip *m, const mms_tensor *px, mms_outputs *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    const mms_clip_config *c = &m->cfg;
    mms_backend *be = m->be;
    char sb[64];
    if (px->ndim != 4 || px->dtype != MMS_DTYPE_F32 || px->ne[1] != c->num_channels || px->ne[2] != c->image_size ||
        px->ne[3] != c->image_size)
        return mms_error_set(err, MMS_ERR_VALUE, "pixel_values: expected float32 (batch, %lld, %lld, %lld), got %s %s",
                             (long long)c->num_channels, (long long)c->image_size, (long long)c->image_size,
                             mms_dtype_name(px->dtype), mms_tensor_shape_str(px, sb, sizeof sb));
    const int64_t B = px->ne[0];
    if (B <= 0) return mms_error_set(err, MMS_ERR_VALUE, "pixel_values: empty batch");
    const int64_t D = c->vision.hidden, P = c->projection_dim, grid = c->image_size / c->patch_size;
    const int64_t np = grid * grid, cls = c->vision_class_token ? 1 : 0, T = np + cls;
    const int siglip = c->kind == MMS_CLIP_SIGLIP;
    int64_t chunk = CHUNK_TOKENS / T;
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    const int64_t F = c->vision.ffn;
    mms_status rc;
    float *hid, *pool, *emb = NULL, *embn;
    int64_t s3[3] = {B, T, D}, s2[2] = {B, D}, sp[2] = {B, P};
    if ((rc = mms_outputs_add(out, "vision_last_hidden_state", MMS_DTYPE_F32, 3, s3, (void **)&hid, err)) ||
        (rc = mms_outputs_add(out, "vision_pooler_output", MMS_DTYPE_F32, 2, s2, (void **)&pool, err)) ||
        (!siglip && (rc = mms_outputs_add(out, "image_embeds_unnormalized", MMS_DTYPE_F32, 2, sp, (void **)&emb, err))) ||
        (rc = mms_outputs_add(out, "image_embeds", MMS_DTYPE_F32, 2, sp, (void **)&embn, err))) {
        mms_outputs_release(out);
        return rc;
    }
    mms_block_scratch s;
    void *bufs[8] = {0};
    float *x, *pe, *px_dev = NULL, *pooled, *tmp, *kv = NULL, *q = NULL, *ffn = NULL;
    if ((rc = mms_block_scratch_alloc(be, &c->vision, chunk * T, &s, err)) != MMS_OK) { mms_outputs_release(out); return rc; }
    x = dalloc(be, (size_t)(chunk * T * D) * 4, &bufs[0]);
    pe = dalloc(be, (size_t)(chunk * np * D) * 4, &bufs[1]);
    pooled = dalloc(be, (size_t)(chunk * (D > P ? D : P)) * 4, &bufs[2]);
    tmp = dalloc(be, (size_t)(chunk * (D > P ? D : P)) * 4, &bufs[3]);
    if (siglip && c->vision_map_head) {
        kv = dalloc(be, (size_t)(chunk * T * 2 * D) * 4, &bufs[4]);
        q = dalloc(be, (size_t)D * 4, &bufs[5]);
        ffn = dalloc(be, (size_t)(chunk * F) * 4, &bufs[6]);
    }
    if (be->device != MMS_DEVICE_CPU) px_dev = dalloc(be, (size_t)(chunk * c->num_channels * c->image_size * c->image_size) * 4, &bufs[7]);
    for (int i = 0; i < 8; i++)
        if ((i < 4 || (i < 7 && siglip && c->vision_map_head) || (i == 7 && px_dev)) && !bufs[i]) {
            rc = mms_error_set(err, MMS_ERR_NOMEM, "encode_image: out of memory for activations");
            goto done;
        }
#define TRY(e) do { if ((rc = (e)) != MMS_OK) goto done; } while (0)
    if (siglip && c->vision_map_head) { /* the probe's query does not depend on the image */
        mms_tensor tp = dview(m, m->probe.data, MMS_DTYPE_F32, 2, 1, D, 0);
        mms_tensor tq = dview(m, q, MMS_DTYPE_F32, 2, 1, D, 0);
        TRY(mms_op_linear(be, &tp, &m->head_q, MMS_ACT_NONE, NULL, &tq, err));
    }
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t nb = B - b0 < chunk ? B - b0 : chunk;
        TRY(vision_embed(m, px, b0, nb, x, pe, px_dev, err));
        mms_tensor tx = dview(m, x, MMS_DTYPE_F32, 3, nb, T, D);
        for (int l = 0; l < c->vision_layers; l++)
            TRY(mms_block_forward(be, &c->vision, &m->vblocks[l], x, nb, T, NULL, &s, err));
        if (c->vision_post_norm_all) TRY(mms_op_layernorm(be, &tx, &m->post_g, &m->post_b, c->vision_eps, &tx, err));
        TRY(to_host(m, hid + b0 * T * D, x, (size_t)(nb * T * D) * 4, err));
        mms_tensor tpool = dview(m, pooled, MMS_DTYPE_F32, 2, nb, D, 0);
        if (!siglip) {
            /* pooled = post_layernorm(last_hidden_state[:, 0]) */
            TRY(mms_op_copy2d(be, tmp, D, x, T * D, nb, D, err));
            mms_tensor ttmp = dview(m, tmp, MMS_DTYPE_F32, 2, nb, D, 0);
            TRY(mms_op_layernorm(be, &ttmp, &m->post_g, &m->post_b, c->vision_eps, &tpool, err));
        } else if (c->vision_map_head) {
            /* MAP head: probe attends over the tokens, then x + mlp(layernorm(x)) */
            mms_tensor tkv = dview(m, kv, MMS_DTYPE_F32, 2, nb * T, 2 * D, 0);
            TRY(mms_op_linear(be, &tx, &m->head_kv, MMS_ACT_NONE, NULL, &tkv, err));
            mms_attn_args a;
            memset(&a, 0, sizeof a);
            a.batch = nb; a.n_q = 1; a.n_kv = T; a.n_heads = c->vision.n_heads; a.head_dim = c->vision.head_dim;
            a.q = q; a.q_row = D; a.q_batch = 0;
            a.k = kv; a.v = kv + D; a.kv_row = 2 * D; a.kv_batch = T * 2 * D;
            a.out = tmp; a.out_dtype = MMS_DTYPE_F32;
            a.scale = 1.0f / sqrtf((float)c->vision.head_dim);
            TRY(mms_op_attention(be, &a, err));
            mms_tensor ta = dview(m, tmp, MMS_DTYPE_F32, 2, nb, D, 0);
            mms_tensor th = dview(m, s.tmp, MMS_DTYPE_F32, 2, nb, D, 0); /* residual */
            TRY(mms_op_linear(be, &ta, &m->head_out, MMS_ACT_NONE, NULL, &th, err));
            TRY(mms_op_layernorm(be, &th, &m->head_ln_g, &m->head_ln_b, c->vision_eps, &ta, err));
            mms_tensor tf = dview(m, ffn, MMS_DTYPE_F32, 2, nb, F, 0);
            TRY(mms_op_linear(be, &ta, &m->head_fc1, c->vision.act, NULL, &tf, err));
            TRY(mms_op_linear(be, &tf, &m->head_fc2, MMS_ACT_NONE, &th, &tpool, err));
        } else {
            TRY(mms_op_copy2d(be, pooled, D, x, T * D, nb, D, err)); /* no head: token 0 */
        }
        TRY(to_host(m, pool + b0 * D, pooled, (size_t)(nb * D) * 4, err));
        if (!siglip) {
            mms_tensor temb = dview(m, tmp, MMS_DTYPE_F32, 2, nb, P, 0);
            TRY(mms_op_linear(be, &tpool, &m->vproj, MMS_ACT_NONE, NULL, &temb, err));
            TRY(to_host(m, emb + b0 * P, tmp, (size_t)(nb * P) * 4, err));
        }
    }
    rc = normalized_copy(embn, siglip ? pool : emb, B, P, err);
#undef TRY
done:
    return finish(be, &s, bufs, 8, out, rc);
}

static mms_status encode_text(const mms_clip *m, const mms_tensor *ids, const mms_tensor *mask, mms_outputs *out,
                               mms_error *err) {
    memset(out, 0, sizeof *out);
    const mms_clip_config *c = &m->cfg;
    mms_backend *be = m->be;
    char sb[64], sb2[64];
    if (ids->ndim != 2 || ids->dtype != MMS_DTYPE_I64 || !mms_tensor_is_contiguous(ids))
        return mms_error_set(err, MMS_ERR_VALUE, "input_ids: expected a contiguous int64 (batch, tokens) array, got %s %s",
                             mms_dtype_name(ids->dtype), mms_tensor_shape_str(ids, sb, sizeof sb));
    const int64_t B = ids->ne[0], T = ids->ne[1];
    if (B <= 0 || T <= 0) return mms_error_set(err, MMS_ERR_VALUE, "input_ids: empty batch %s", mms_tensor_shape_str(ids, sb, sizeof sb));
    if (T > c->max_positions)
        return mms_error_set(err, MMS_ERR_VALUE, "input_ids: %lld tokens exceed the model's context length %lld (truncate the text)",
                             (long long)T, (long long)c->max_positions);
    if (mask && (mask->ndim != 2 || mask->dtype != MMS_DTYPE_I64 || mask->ne[0] != B || mask->ne[1] != T || !mms_tensor_is_contiguous(mask)))
        return mms_error_set(err, MMS_ERR_VALUE, "attention_mask: expected int64 %s like input_ids, got %s %s",
                             mms_tensor_shape_str(ids, sb, sizeof sb), mms_dtype_name(mask->dtype), mms_tensor_shape_str(mask, sb2, sizeof sb2));
    const int64_t D = c->text.hidden, P = c->projection_dim;
    const int siglip = c->kind == MMS_CLIP_SIGLIP;
    const int64_t *idd = ids->data, *md = mask ? mask->data : NULL;
    for (int64_t i = 0; i < B * T; i++)
        if (idd[i] < 0 || idd[i] >= c->vocab_size)
            return mms_error_set(err, MMS_ERR_VALUE, "input_ids[%lld, %lld] = %lld is outside the vocabulary [0, %lld)",
                                 (long long)(i / T), (long long)(i % T), (long long)idd[i], (long long)c->vocab_size);
    mms_status rc;
    float *hid, *pool, *emb = NULL, *embn;
    int64_t *pidx;
    int64_t s3[3] = {B, T, D}, s2[2] = {B, D}, sp[2] = {B, P}, s1[1] = {B};
    if ((rc = mms_outputs_add(out, "text_last_hidden_state", MMS_DTYPE_F32, 3, s3, (void **)&hid, err)) ||
        (rc = mms_outputs_add(out, "text_pool_index", MMS_DTYPE_I64, 1, s1, (void **)&pidx, err)) ||
        (rc = mms_outputs_add(out, "text_pooler_output", MMS_DTYPE_F32, 2, siglip ? sp : s2, (void **)&pool, err)) ||
        (!siglip && (rc = mms_outputs_add(out, "text_embeds_unnormalized", MMS_DTYPE_F32, 2, sp, (void **)&emb, err))) ||
        (rc = mms_outputs_add(out, "text_embeds", MMS_DTYPE_F32, 2, sp, (void **)&embn, err))) {
        mms_outputs_release(out);
        return rc;
    }
    /* pooled position per text */
    for (int64_t b = 0; b < B; b++) {
        const int64_t *r = idd + b * T;
        int64_t k = 0;
        if (c->pool == MMS_POOL_LAST) k = T - 1;
        else if (c->pool == MMS_POOL_ARGMAX) { for (int64_t t = 1; t < T; t++) if (r[t] > r[k]) k = t; }
        else { k = 0; for (int64_t t = 0; t < T; t++) if (r[t] == c->eos_token_id) { k = t; break; } }
        pidx[b] = k;
    }
    int64_t chunk = CHUNK_TOKENS / T;
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    mms_block_scratch s;
    void *bufs[5] = {0};
    if ((rc = mms_block_scratch_alloc(be, &c->text, chunk * T, &s, err)) != MMS_OK) { mms_outputs_release(out); return rc; }
    float *x = dalloc(be, (size_t)(chunk * T * D) * 4, &bufs[0]);
    float *pooled = dalloc(be, (size_t)(chunk * (D > P ? D : P)) * 4, &bufs[1]);
    float *proj = dalloc(be, (size_t)(chunk * P) * 4, &bufs[2]);
    int64_t *ids_dev = dalloc(be, (size_t)(chunk * T) * 8, &bufs[3]);
    int64_t *mask_dev = md ? dalloc(be, (size_t)(chunk * T) * 8, &bufs[4]) : NULL;
    if (!x || !pooled || !proj || !ids_dev || (md && !mask_dev)) {
        rc = mms_error_set(err, MMS_ERR_NOMEM, "encode_text: out of memory for activations");
        goto done;
    }
#define TRY(e) do { if ((rc = (e)) != MMS_OK) goto done; } while (0)
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t nb = B - b0 < chunk ? B - b0 : chunk;
        TRY(be->vt->upload(be, ids_dev, idd + b0 * T, (size_t)(nb * T) * 8, err));
        if (md) TRY(be->vt->upload(be, mask_dev, md + b0 * T, (size_t)(nb * T) * 8, err));
        int64_t ne1[1] = {nb * T};
        mms_tensor tids = mms_tensor_view(ids_dev, MMS_DTYPE_I64, 1, ne1);
        tids.device = be->device;
        mms_tensor tx = dview(m, x, MMS_DTYPE_F32, 3, nb, T, D);
        TRY(mms_op_embedding(be, &m->tok_emb, &tids, &tx, err));
        mms_tensor tpos = m->tpos;
        tpos.ndim = 2; tpos.ne[0] = T; tpos.ne[1] = D;
        for (int64_t b = 0; b < nb; b++) {
            mms_tensor txb = dview(m, x + b * T * D, MMS_DTYPE_F32, 2, T, D, 0);
            TRY(mms_op_add(be, &txb, &tpos, err));
        }
        for (int l = 0; l < c->text_layers; l++)
            TRY(mms_block_forward(be, &c->text, &m->tblocks[l], x, nb, T, mask_dev, &s, err));
        TRY(mms_op_layernorm(be, &tx, &m->final_g, &m->final_b, c->text_eps, &tx, err));
        TRY(to_host(m, hid + b0 * T * D, x, (size_t)(nb * T * D) * 4, err));
        for (int64_t b = 0; b < nb; b++)
            TRY(mms_op_copy2d(be, pooled + b * D, D, x + (b * T + pidx[b0 + b]) * D, D, 1, D, err));
        mms_tensor tpool = dview(m, pooled, MMS_DTYPE_F32, 2, nb, D, 0);
        mms_tensor tproj = dview(m, proj, MMS_DTYPE_F32, 2, nb, P, 0);
        TRY(mms_op_linear(be, &tpool, &m->tproj, MMS_ACT_NONE, NULL, &tproj, err));
        if (siglip) TRY(to_host(m, pool + b0 * P, proj, (size_t)(nb * P) * 4, err));
        else {
            TRY(to_host(m, pool + b0 * D, pooled, (size_t)(nb * D) * 4, err));
            TRY(to_host(m, emb + b0 * P, proj, (size_t)(nb * P) * 4, err));
        }
    }
    rc = normalized_copy(embn, siglip ? pool : emb, B, P, err);
#undef TRY
done:
    return finish(be, &s, bufs, 5, out, rc);
}

static mms_status vision_hidden(const mms_clip *m, const mms_tensor *px, int n_layers, int post_norm, float *out,
                                mms_error *err);

/* OUTPUTS / LAYERS finite modes: every float output scanned for NaN / Inf (finite.h). */
static mms_status check_outputs(const mms_outputs *o, mms_error *err) {
    if (mms_get_finite_mode() == MMS_FINITE_OFF) return MMS_OK;
    for (int i = 0; i < o->n; i++) {
        const mms_tensor *t = &o->items[i].t;
        if (t->dtype != MMS_DTYPE_F32) continue;
        char what[96];
        snprintf(what, sizeof what, "the output '%s'", o->items[i].name);
        mms_status rc = mms_check_finite_host(t->data, mms_tensor_numel(t), what, MMS_FINITE_HINT, err);
        if (rc != MMS_OK) return rc;
    }
    return MMS_OK;
}

/* After a computation returned rc: the files checked again, then the outputs; on any failure
 * the outputs are released. */
static mms_status after_call(const mms_clip *m, mms_status rc, mms_outputs *out, mms_error *err) {
    if (rc == MMS_OK) rc = mms_mapset_check(&m->maps, err);
    if (rc == MMS_OK) rc = check_outputs(out, err);
    if (rc != MMS_OK) mms_outputs_release(out);
    return rc;
}

/* The public entry points: the weights' files are checked before and after the computation
 * (mapping.h), so a result computed while a file changed under the mapping is an error; then
 * the outputs are checked for NaN / Inf. */
mms_status mms_clip_encode_image(const mms_clip *m, const mms_tensor *px, mms_outputs *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    mms_status rc = mms_mapset_check(&m->maps, err);
    if (rc == MMS_OK) rc = encode_image(m, px, out, err);
    return after_call(m, rc, out, err);
}

mms_status mms_clip_encode_text(const mms_clip *m, const mms_tensor *ids, const mms_tensor *mask, mms_outputs *out,
                                mms_error *err) {
    memset(out, 0, sizeof *out);
    mms_status rc = mms_mapset_check(&m->maps, err);
    if (rc == MMS_OK) rc = encode_text(m, ids, mask, out, err);
    return after_call(m, rc, out, err);
}

mms_status mms_clip_vision_hidden(const mms_clip *m, const mms_tensor *px, int n_layers, float *out, mms_error *err) {
    return vision_hidden(m, px, n_layers, 0, out, err);
}

mms_status mms_clip_vision_last_hidden(const mms_clip *m, const mms_tensor *px, float *out, mms_error *err) {
    if (!m->cfg.vision_post_norm_all || !m->post_g.ndim)
        return mms_error_set(err, MMS_ERR_VALUE, "vision tower: this model has no post-norm over all tokens");
    return vision_hidden(m, px, m->cfg.vision_layers, 1, out, err);
}

static mms_status vision_hidden(const mms_clip *m, const mms_tensor *px, int n_layers, int post_norm, float *out,
                                mms_error *err) {
    const mms_clip_config *c = &m->cfg;
    mms_backend *be = m->be;
    char sb[64];
    if (px->ndim != 4 || px->dtype != MMS_DTYPE_F32 || px->ne[1] != c->num_channels || px->ne[2] != c->image_size ||
        px->ne[3] != c->image_size)
        return mms_error_set(err, MMS_ERR_VALUE, "pixel_values: expected float32 (patches, %lld, %lld, %lld), got %s %s",
                             (long long)c->num_channels, (long long)c->image_size, (long long)c->image_size,
                             mms_dtype_name(px->dtype), mms_tensor_shape_str(px, sb, sizeof sb));
    if (n_layers < 0 || n_layers > c->vision_layers)
        return mms_error_set(err, MMS_ERR_VALUE, "vision tower: %d layers requested, %d loaded", n_layers, c->vision_layers);
    const int64_t B = px->ne[0], D = c->vision.hidden, grid = c->image_size / c->patch_size;
    const int64_t np = grid * grid, T = np + (c->vision_class_token ? 1 : 0);
    if (B <= 0) return mms_error_set(err, MMS_ERR_VALUE, "pixel_values: empty batch");
    int64_t chunk = CHUNK_TOKENS / T;
    if (chunk < 1) chunk = 1;
    if (chunk > B) chunk = B;
    mms_block_scratch s;
    void *bufs[3] = {0};
    mms_status rc = mms_mapset_check(&m->maps, err);
    if (rc != MMS_OK) return rc;
    if ((rc = mms_block_scratch_alloc(be, &c->vision, chunk * T, &s, err)) != MMS_OK) return rc;
    float *x = dalloc(be, (size_t)(chunk * T * D) * 4, &bufs[0]);
    float *pe = dalloc(be, (size_t)(chunk * np * D) * 4, &bufs[1]);
    float *px_dev = be->device != MMS_DEVICE_CPU ? dalloc(be, (size_t)(chunk * c->num_channels * c->image_size * c->image_size) * 4, &bufs[2]) : NULL;
    if (!x || !pe || (be->device != MMS_DEVICE_CPU && !px_dev)) {
        rc = mms_error_set(err, MMS_ERR_NOMEM, "vision tower: out of memory for activations");
    }
    for (int64_t b0 = 0; rc == MMS_OK && b0 < B; b0 += chunk) {
        const int64_t nb = B - b0 < chunk ? B - b0 : chunk;
        rc = vision_embed(m, px, b0, nb, x, pe, px_dev, err);
        for (int l = 0; rc == MMS_OK && l < n_layers; l++)
            rc = mms_block_forward(be, &c->vision, &m->vblocks[l], x, nb, T, NULL, &s, err);
        if (rc == MMS_OK && post_norm) {
            mms_tensor tx = dview(m, x, MMS_DTYPE_F32, 3, nb, T, D);
            rc = mms_op_layernorm(be, &tx, &m->post_g, &m->post_b, c->vision_eps, &tx, err);
        }
        if (rc == MMS_OK) rc = to_host(m, out + b0 * T * D, x, (size_t)(nb * T * D) * 4, err);
    }
    mms_block_scratch_free(be, &s);
    for (int i = 0; i < 3; i++)
        if (bufs[i]) be->vt->free(be, bufs[i]);
    if (rc == MMS_OK) rc = mms_mapset_check(&m->maps, err);
    if (rc == MMS_OK && mms_get_finite_mode() != MMS_FINITE_OFF)
        rc = mms_check_finite_host(out, B * T * D, "the vision tower's hidden states", MMS_FINITE_HINT, err);
    return rc;
}
