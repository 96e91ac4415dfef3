/* block.c -- loading and running the configurable transformer block (see block.h). */
#include "block.h"
#include "finite.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mms_status mms_load_vector(mms_backend *be, const mms_weights *w, const char *name, int64_t expect_len,
                           mms_tensor *out, mms_error *err) {
    mms_tensor t;
    mms_status rc = mms_weights_get(w, name, &t, err);
    if (rc != MMS_OK) return rc;
    if (expect_len >= 0 && mms_tensor_numel(&t) != expect_len) {
        char buf[64];
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected %lld elements", name,
                           mms_tensor_shape_str(&t, buf, sizeof buf), (long long)expect_len);
    } else {
        rc = mms_vector_prepare(be, &t, out, err);
    }
    mms_tensor_release(&t);
    return rc;
}

mms_status mms_load_linear(mms_backend *be, const mms_weights *w, const char *prefix, int64_t in, int64_t out_dim,
                           int need_bias, mms_dtype dtype, mms_linear *out, mms_error *err) {
    char wn[512], bn[512], buf[64];
    snprintf(wn, sizeof wn, "%s.weight", prefix);
    snprintf(bn, sizeof bn, "%s.bias", prefix);
    mms_tensor tw, tb;
    memset(&tb, 0, sizeof tb);
    mms_status rc = mms_weights_get(w, wn, &tw, err);
    if (rc != MMS_OK) return rc;
    if (tw.ndim != 2 || tw.ne[0] != out_dim || tw.ne[1] != in) {
        rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected (%lld, %lld) from the config", wn,
                           mms_tensor_shape_str(&tw, buf, sizeof buf), (long long)out_dim, (long long)in);
        mms_tensor_release(&tw);
        return rc;
    }
    if (mms_weights_find(w, bn)) {
        rc = mms_weights_get(w, bn, &tb, err);
    } else if (need_bias) {
        rc = mms_error_set(err, MMS_ERR_NOT_FOUND, "tensor '%s' not found in checkpoint", bn);
    }
    if (rc == MMS_OK) rc = mms_linear_prepare(be, &tw, tb.ndim ? &tb : NULL, dtype, out, err);
    mms_tensor_release(&tw);
    mms_tensor_release(&tb);
    return rc;
}

static void fmt_name(char *dst, size_t n, const char *pattern, int layer, const char *suffix) {
    char tmp[448];
    snprintf(tmp, sizeof tmp, pattern, layer);
    snprintf(dst, n, "%s%s", tmp, suffix);
}

/* Is the weight of `pattern` (layer) stored in dtype dt? */
static int stored_as(const mms_weights *w, const char *pattern, int layer, mms_dtype dt) {
    char n[512];
    fmt_name(n, sizeof n, pattern, layer, ".weight");
    const mms_tensor *t = mms_weights_find(w, n);
    return t && t->dtype == dt;
}

mms_status mms_block_load(mms_backend *be, const mms_block_config *cfg, const mms_weights *w,
                          const mms_block_names *nm, int layer, mms_block_weights *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    const int64_t D = cfg->hidden, F = cfg->ffn, A = cfg->n_heads * cfg->head_dim;
    const int64_t KVA = mms_block_kv_heads(cfg) * cfg->head_dim;
    if (nm->qkv_weight && KVA != A)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "packed qkv weights with grouped-query attention are not supported");
    char n1[512], n2[512];
    mms_status rc;
    const int has_bias_norm = cfg->norm == MMS_NORM_LAYER;
#define TRY(x) do { if ((rc = (x)) != MMS_OK) goto fail; } while (0)
    {   /* the layer's name for messages: norm1's pattern up to its layer number */
        const char *d = strstr(nm->norm1, "%d");
        int keep = d ? (int)(d - nm->norm1) + 2 : (int)strlen(nm->norm1);
        char pat[128];
        snprintf(pat, sizeof pat, "%.*s", keep, nm->norm1);
        snprintf(out->name, sizeof out->name, pat, layer);
        /* as stored: the same tail cut from the stored name of norm1's weight */
        fmt_name(n1, sizeof n1, nm->norm1, layer, ".weight");
        const char *st = mms_weights_stored_name(w, n1);
        const size_t tail = strlen(n1) - strlen(out->name);
        if (st && strlen(st) > tail) snprintf(out->name, sizeof out->name, "%.*s", (int)(strlen(st) - tail), st);
    }
    fmt_name(n1, sizeof n1, nm->norm1, layer, ".weight");
    TRY(mms_load_vector(be, w, n1, D, &out->norm1_g, err));
    if (has_bias_norm) { fmt_name(n1, sizeof n1, nm->norm1, layer, ".bias"); TRY(mms_load_vector(be, w, n1, D, &out->norm1_b, err)); }
    fmt_name(n1, sizeof n1, nm->norm2, layer, ".weight");
    TRY(mms_load_vector(be, w, n1, D, &out->norm2_g, err));
    if (has_bias_norm) { fmt_name(n1, sizeof n1, nm->norm2, layer, ".bias"); TRY(mms_load_vector(be, w, n1, D, &out->norm2_b, err)); }
    if (nm->qkv_weight) {
        /* packed [q; k; v] as stored */
        mms_tensor tw, tb;
        memset(&tb, 0, sizeof tb);
        fmt_name(n1, sizeof n1, nm->qkv_weight, layer, "");
        TRY(mms_weights_get(w, n1, &tw, err));
        if (tw.ndim != 2 || tw.ne[0] != 3 * A || tw.ne[1] != D) {
            char b[64];
            rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has shape %s, expected (%lld, %lld)", n1,
                               mms_tensor_shape_str(&tw, b, sizeof b), (long long)(3 * A), (long long)D);
            mms_tensor_release(&tw);
            goto fail;
        }
        if (nm->qkv_bias) fmt_name(n2, sizeof n2, nm->qkv_bias, layer, "");
        if (nm->qkv_bias && (mms_weights_find(w, n2) || !nm->q_bias)) {
            rc = mms_weights_get(w, n2, &tb, err);
            if (rc == MMS_OK && mms_tensor_numel(&tb) != 3 * A) rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has the wrong size", n2);
        } else if (nm->q_bias) { /* [q_bias; 0; v_bias] */
            int64_t ne_b[1] = {3 * A};
            rc = mms_tensor_alloc(&tb, MMS_DTYPE_F32, 1, ne_b, err);
            const char *parts[2] = {nm->q_bias, nm->v_bias};
            if (rc == MMS_OK) memset((float *)tb.data + A, 0, (size_t)A * sizeof(float));
            for (int i = 0; i < 2 && rc == MMS_OK; i++) {
                mms_tensor t;
                fmt_name(n2, sizeof n2, parts[i], layer, "");
                rc = mms_weights_get(w, n2, &t, err);
                if (rc != MMS_OK) break;
                if (mms_tensor_numel(&t) != A) rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has the wrong size", n2);
                else rc = mms_convert(t.data, t.dtype, (float *)tb.data + (i ? 2 * A : 0), MMS_DTYPE_F32, A, err);
                mms_tensor_release(&t);
            }
        }
        if (rc == MMS_OK) rc = mms_linear_prepare(be, &tw, tb.ndim ? &tb : NULL, cfg->compute, &out->qkv, err);
        mms_tensor_release(&tw);
        mms_tensor_release(&tb);
        if (rc != MMS_OK) goto fail;
        out->packed_qkv = 1;
    } else if (cfg->compute != MMS_DTYPE_F32 && !stored_as(w, nm->q, layer, cfg->compute)) {
        /* weights get converted anyway: pack q, k, v into one (A + 2 KVA, D) matrix -> one GEMM
         * (weights already stored in the compute dtype stay separate, borrowed from the mmap) */
        const char *parts[3] = {nm->q, nm->k, nm->v};
        const int64_t rows_of[3] = {A, KVA, KVA}, row0[3] = {0, A, A + KVA};
        int64_t ne_w[2] = {A + 2 * KVA, D}, ne_b[1] = {A + 2 * KVA};
        mms_tensor pw, pb;
        memset(&pb, 0, sizeof pb);
        TRY(mms_tensor_alloc(&pw, MMS_DTYPE_F32, 2, ne_w, err));
        rc = mms_tensor_alloc(&pb, MMS_DTYPE_F32, 1, ne_b, err);
        int any_bias = 0;
        for (int i = 0; i < 3 && rc == MMS_OK; i++) {
            mms_tensor t;
            fmt_name(n1, sizeof n1, parts[i], layer, ".weight");
            rc = mms_weights_get(w, n1, &t, err);
            if (rc != MMS_OK) break;
            if (t.ndim != 2 || t.ne[0] != rows_of[i] || t.ne[1] != D) rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has the wrong shape", n1);
            else rc = mms_convert(t.data, t.dtype, (float *)pw.data + row0[i] * D, MMS_DTYPE_F32, rows_of[i] * D, err);
            if (rc == MMS_OK) mms_storage_drop_pages(t.storage, t.data, mms_tensor_nbytes(&t));
            mms_tensor_release(&t);
            fmt_name(n2, sizeof n2, parts[i], layer, ".bias");
            float *bdst = (float *)pb.data + row0[i];
            if (rc == MMS_OK && mms_weights_find(w, n2)) {
                rc = mms_weights_get(w, n2, &t, err);
                if (rc == MMS_OK) {
                    if (mms_tensor_numel(&t) != rows_of[i]) rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor '%s' has the wrong size", n2);
                    else rc = mms_convert(t.data, t.dtype, bdst, MMS_DTYPE_F32, rows_of[i], err);
                    mms_tensor_release(&t);
                }
                any_bias = 1;
            } else {
                memset(bdst, 0, (size_t)rows_of[i] * sizeof(float));
            }
        }
        if (rc == MMS_OK) rc = mms_linear_prepare(be, &pw, any_bias ? &pb : NULL, cfg->compute, &out->qkv, err);
        mms_tensor_release(&pw);
        mms_tensor_release(&pb);
        if (rc != MMS_OK) goto fail;
        out->packed_qkv = 1;
    } else {
        fmt_name(n1, sizeof n1, nm->q, layer, "");
        TRY(mms_load_linear(be, w, n1, D, A, 0, cfg->compute, &out->q, err));
        fmt_name(n1, sizeof n1, nm->k, layer, "");
        TRY(mms_load_linear(be, w, n1, D, KVA, 0, cfg->compute, &out->k, err));
        fmt_name(n1, sizeof n1, nm->v, layer, "");
        TRY(mms_load_linear(be, w, n1, D, KVA, 0, cfg->compute, &out->v, err));
    }
    if (cfg->gated) {
        fmt_name(n1, sizeof n1, nm->gate, layer, "");
        TRY(mms_load_linear(be, w, n1, D, F, 0, cfg->compute, &out->gate, err));
    }
    fmt_name(n1, sizeof n1, nm->o, layer, "");
    TRY(mms_load_linear(be, w, n1, A, D, 0, cfg->compute, &out->o, err));
    fmt_name(n1, sizeof n1, nm->fc1, layer, "");
    TRY(mms_load_linear(be, w, n1, D, F, 0, cfg->compute, &out->fc1, err));
    fmt_name(n1, sizeof n1, nm->fc2, layer, "");
    TRY(mms_load_linear(be, w, n1, F, D, 0, cfg->compute, &out->fc2, err));
    if (cfg->cross_dim > 0 && layer % (cfg->cross_every > 0 ? cfg->cross_every : 1) == 0) {
        const int64_t Dc = cfg->cross_dim;
        if (!nm->xq || !nm->xk || !nm->xv || !nm->xo || !nm->xnorm) {
            rc = mms_error_set(err, MMS_ERR_INTERNAL, "block: cross-attention tensor names missing");
            goto fail;
        }
        fmt_name(n1, sizeof n1, nm->xnorm, layer, ".weight");
        TRY(mms_load_vector(be, w, n1, D, &out->xnorm_g, err));
        if (has_bias_norm) { fmt_name(n1, sizeof n1, nm->xnorm, layer, ".bias"); TRY(mms_load_vector(be, w, n1, D, &out->xnorm_b, err)); }
        fmt_name(n1, sizeof n1, nm->xq, layer, "");
        TRY(mms_load_linear(be, w, n1, D, A, 0, cfg->compute, &out->xq, err));
        fmt_name(n1, sizeof n1, nm->xk, layer, "");
        TRY(mms_load_linear(be, w, n1, Dc, A, 0, cfg->compute, &out->xk, err));
        fmt_name(n1, sizeof n1, nm->xv, layer, "");
        TRY(mms_load_linear(be, w, n1, Dc, A, 0, cfg->compute, &out->xv, err));
        fmt_name(n1, sizeof n1, nm->xo, layer, "");
        TRY(mms_load_linear(be, w, n1, A, D, 0, cfg->compute, &out->xo, err));
        out->has_cross = 1;
    }
#undef TRY
    return MMS_OK;
fail:
    mms_block_release(out);
    return rc;
}

void mms_block_release(mms_block_weights *bw) {
    mms_tensor_release(&bw->norm1_g);
    mms_tensor_release(&bw->norm1_b);
    mms_tensor_release(&bw->norm2_g);
    mms_tensor_release(&bw->norm2_b);
    mms_tensor_release(&bw->xnorm_g);
    mms_tensor_release(&bw->xnorm_b);
    mms_linear *ls[] = {&bw->qkv, &bw->q, &bw->k, &bw->v, &bw->o, &bw->fc1, &bw->fc2, &bw->gate,
                        &bw->xq, &bw->xk, &bw->xv, &bw->xo};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        mms_linear_release(ls[i]);
    memset(bw, 0, sizeof *bw);
}

mms_status mms_block_scratch_alloc(mms_backend *be, const mms_block_config *cfg, int64_t T, mms_block_scratch *s,
                                   mms_error *err) {
    memset(s, 0, sizeof *s);
    const int64_t D = cfg->hidden, A = cfg->n_heads * cfg->head_dim, F = cfg->ffn;
    const int64_t W = D > A ? D : A;
    s->max_tokens = T;
    const size_t sz[6] = {(size_t)(T * W) * 4, (size_t)(T * 3 * A) * 4, (size_t)(T * A) * 4, (size_t)(T * F) * 4,
                          (size_t)(T * D) * 4, cfg->gated ? (size_t)(T * 2 * F) * 4 : 0};
    s->h = be->vt->alloc(be, sz[0]);
    s->qkv = be->vt->alloc(be, sz[1]);
    s->att = be->vt->alloc(be, sz[2]);
    s->ffn = be->vt->alloc(be, sz[3]);
    s->tmp = be->vt->alloc(be, sz[4]);
    if (cfg->gated) s->gu = be->vt->alloc(be, sz[5]);
    for (int i = 0; i < 6; i++) s->bytes += sz[i];
    if (!s->h || !s->qkv || !s->att || !s->ffn || !s->tmp || (cfg->gated && !s->gu)) {
        mms_block_scratch_free(be, s);
        return mms_error_set(err, MMS_ERR_NOMEM, "out of memory for activations (%lld tokens)", (long long)T);
    }
    return MMS_OK;
}

void mms_block_scratch_free(mms_backend *be, mms_block_scratch *s) {
    void *p[] = {s->h, s->qkv, s->att, s->ffn, s->tmp, s->gu};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i]) be->vt->free(be, p[i]);
    memset(s, 0, sizeof *s);
}

mms_status mms_block_norm(mms_backend *be, const mms_block_config *cfg, const mms_tensor *x, const mms_tensor *g,
                          const mms_tensor *b, mms_tensor *y, mms_error *err) {
    if (cfg->norm == MMS_NORM_RMS) return mms_op_rmsnorm(be, x, g, cfg->norm_eps, y, err);
    return mms_op_layernorm(be, x, g, b && b->ndim ? b : NULL, cfg->norm_eps, y, err);
}

static mms_tensor dev_view(mms_backend *be, void *p, mms_dtype dt, int64_t rows, int64_t cols) {
    int64_t ne[2] = {rows, cols};
    mms_tensor t = mms_tensor_view(p, dt, 2, ne);
    t.device = be->device;
    return t;
}

/* The MLP input h (M, D) compute dtype -> out (M, D) F32 = mlp(h) + residual. */
static mms_status block_mlp(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                            const mms_tensor *h, const mms_tensor *residual, mms_tensor *out, mms_block_scratch *s,
                            mms_error *err) {
    const int64_t M = mms_tensor_numel(h) / cfg->hidden, F = cfg->ffn;
    mms_tensor tffn = dev_view(be, s->ffn, cfg->compute, M, F);
    mms_status rc;
    if (cfg->gated) { /* SwiGLU: fc2(act(gate h) * fc1 h) */
        mms_tensor tg = dev_view(be, s->gu, MMS_DTYPE_F32, M, F), tu = dev_view(be, s->gu + M * F, MMS_DTYPE_F32, M, F);
        /* the activation runs as the gate GEMM's fused (vectorized) epilogue; glu only multiplies */
        if ((rc = mms_op_linear(be, h, &bw->gate, cfg->act, NULL, &tg, err)) != MMS_OK ||
            (rc = mms_op_linear(be, h, &bw->fc1, MMS_ACT_NONE, NULL, &tu, err)) != MMS_OK ||
            (rc = mms_op_glu(be, s->gu, F, s->gu + M * F, F, M, F, MMS_ACT_NONE, &tffn, err)) != MMS_OK)
            return rc;
    } else if ((rc = mms_op_linear(be, h, &bw->fc1, cfg->act, NULL, &tffn, err)) != MMS_OK) {
        return rc;
    }
    return mms_op_linear(be, &tffn, &bw->fc2, MMS_ACT_NONE, residual, out, err);
}

mms_status mms_block_cross_kv(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                              const float *enc, int64_t n, float *k, float *v, mms_error *err) {
    if (!bw->has_cross) return mms_error_set(err, MMS_ERR_INTERNAL, "block: this layer has no cross-attention");
    const int64_t A = cfg->n_heads * cfg->head_dim;
    mms_tensor te = dev_view(be, (void *)enc, MMS_DTYPE_F32, n, cfg->cross_dim);
    mms_tensor tk = dev_view(be, k, MMS_DTYPE_F32, n, A), tv = dev_view(be, v, MMS_DTYPE_F32, n, A);
    mms_status rc = mms_op_linear(be, &te, &bw->xk, MMS_ACT_NONE, NULL, &tk, err);
    return rc != MMS_OK ? rc : mms_op_linear(be, &te, &bw->xv, MMS_ACT_NONE, NULL, &tv, err);
}

/* Cross-attention of rows h (M, D) (normed for pre-norm blocks) -> s->att, per sequence. */
static mms_status block_cross_attend(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw,
                                     const mms_tensor *h, int64_t M, const mms_block_cross *cr, mms_block_scratch *s,
                                     mms_error *err) {
    const int64_t H = cfg->n_heads, hd = cfg->head_dim, A = H * hd;
    mms_tensor tq = dev_view(be, s->qkv, MMS_DTYPE_F32, M, A);
    mms_status rc = mms_op_linear(be, h, &bw->xq, MMS_ACT_NONE, NULL, &tq, err);
    if (rc != MMS_OK) return rc;
    const size_t kvsz = mms_dtype_size(cr->kv_dtype), osz = mms_dtype_size(cfg->compute);
    int64_t r0 = 0;
    for (int64_t i = 0; i < cr->n_seqs; r0 += cr->n_rows[i], i++) {
        if (cr->n_rows[i] == 0) continue;
        if (r0 + cr->n_rows[i] > M || cr->kv_len[i] <= 0)
            return mms_error_set(err, MMS_ERR_VALUE, "cross-attention: sequence %lld has %lld rows and %lld keys",
                                 (long long)i, (long long)cr->n_rows[i], (long long)cr->kv_len[i]);
        mms_kv_attn_args a;
        memset(&a, 0, sizeof a);
        a.n_q = cr->n_rows[i]; a.n_kv = cr->kv_len[i]; a.n_heads = H; a.n_kv_heads = H; a.head_dim = hd;
        a.q = s->qkv + r0 * A; a.q_row = A;
        a.k = (const char *)cr->k + (size_t)(cr->kv_off[i] * cr->kv_row) * kvsz;
        a.v = (const char *)cr->v + (size_t)(cr->kv_off[i] * cr->kv_row) * kvsz;
        a.kv_dtype = cr->kv_dtype; a.kv_row = cr->kv_row;
        a.out = (char *)s->att + (size_t)(r0 * A) * osz; a.out_dtype = cfg->compute; a.out_row = A;
        a.scale = cfg->attn_scale > 0 ? cfg->attn_scale : 1.0f / sqrtf((float)hd);
        a.full = 1;
        if ((rc = mms_op_kv_attention(be, &a, err)) != MMS_OK) return rc;
    }
    if (r0 != M) return mms_error_set(err, MMS_ERR_VALUE, "cross-attention: sequences cover %lld of %lld rows", (long long)r0, (long long)M);
    return MMS_OK;
}

static mms_status finish(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, float *x,
                         int64_t M, const mms_block_cross *cross, mms_block_scratch *s, mms_error *err) {
    const int64_t D = cfg->hidden, A = cfg->n_heads * cfg->head_dim;
    const mms_dtype cd = cfg->compute;
    mms_tensor tx = dev_view(be, x, MMS_DTYPE_F32, M, D);
    mms_tensor th = dev_view(be, s->h, cd, M, D);
    mms_tensor ttmp = dev_view(be, s->tmp, MMS_DTYPE_F32, M, D);
    mms_tensor tatt = dev_view(be, s->att, cd, M, A);
    mms_status rc;
    if (bw->has_cross && !cross) return mms_error_set(err, MMS_ERR_VALUE, "block: a cross-attention layer needs encoder states");
#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)
    /* tmp = o(att) + x */
    TRY(mms_op_linear(be, &tatt, &bw->o, MMS_ACT_NONE, &tx, &ttmp, err));
    if (cfg->pre_norm && bw->has_cross) {
        /* x = xo(cross(normx(tmp))) + tmp; tmp = mlp(norm2(x)) + x; x = tmp */
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->xnorm_g, &bw->xnorm_b, &th, err));
        TRY(block_cross_attend(be, cfg, bw, &th, M, cross, s, err));
        TRY(mms_op_linear(be, &tatt, &bw->xo, MMS_ACT_NONE, &ttmp, &tx, err));
        TRY(mms_block_norm(be, cfg, &tx, &bw->norm2_g, &bw->norm2_b, &th, err));
        TRY(block_mlp(be, cfg, bw, &th, &tx, &ttmp, s, err));
        TRY(mms_op_copy2d(be, x, D, s->tmp, D, M, D, err));
    } else if (cfg->pre_norm) {
        /* x = mlp(norm2(tmp)) + tmp */
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->norm2_g, &bw->norm2_b, &th, err));
        TRY(block_mlp(be, cfg, bw, &th, &ttmp, &tx, s, err));
    } else if (bw->has_cross) {
        /* x = norm1(tmp); tmp = xo(cross(x)) + x; x = normx(tmp); then the MLP part */
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->norm1_g, &bw->norm1_b, &tx, err));
        TRY(block_cross_attend(be, cfg, bw, &tx, M, cross, s, err));
        TRY(mms_op_linear(be, &tatt, &bw->xo, MMS_ACT_NONE, &tx, &ttmp, err));
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->xnorm_g, &bw->xnorm_b, &tx, err));
        TRY(block_mlp(be, cfg, bw, &tx, &tx, &ttmp, s, err));
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->norm2_g, &bw->norm2_b, &tx, err));
    } else {
        /* post-norm: x = norm1(tmp); tmp = mlp(x) + x; x = norm2(tmp) */
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->norm1_g, &bw->norm1_b, &tx, err));
        TRY(block_mlp(be, cfg, bw, &tx, &tx, &ttmp, s, err));
        TRY(mms_block_norm(be, cfg, &ttmp, &bw->norm2_g, &bw->norm2_b, &tx, err));
    }
#undef TRY
    return MMS_OK;
}

/* Every block path ends here; in the LAYERS debug mode its output is scanned for NaN / Inf. */
mms_status mms_block_finish(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, float *x,
                            int64_t M, const mms_block_cross *cross, mms_block_scratch *s, mms_error *err) {
    mms_status rc = finish(be, cfg, bw, x, M, cross, s, err);
    if (rc != MMS_OK || mms_get_finite_mode() < MMS_FINITE_LAYERS) return rc;
    char what[160];
    snprintf(what, sizeof what, "the output of layer %s", bw->name[0] ? bw->name : "?");
    return mms_check_finite(be, x, M * cfg->hidden, what, NULL, err);
}

mms_status mms_block_qkv(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, const float *x,
                         int64_t M, mms_block_scratch *s, float **q, float **k, float **v, int64_t *q_row,
                         int64_t *kv_row, mms_error *err) {
    const int64_t D = cfg->hidden, A = cfg->n_heads * cfg->head_dim, KVA = mms_block_kv_heads(cfg) * cfg->head_dim;
    const mms_dtype cd = cfg->compute;
    mms_tensor tx = dev_view(be, (void *)x, MMS_DTYPE_F32, M, D);
    mms_tensor th = dev_view(be, s->h, cd, M, D);
    mms_status rc;
    const mms_tensor *attn_in = &tx; /* post-norm: the linear op converts F32 inputs for bf16 weights */
    if (cfg->pre_norm) {
        if ((rc = mms_block_norm(be, cfg, &tx, &bw->norm1_g, &bw->norm1_b, &th, err)) != MMS_OK) return rc;
        attn_in = &th;
    }
    if (bw->packed_qkv) {
        const int64_t R = A + 2 * KVA;
        mms_tensor tq = dev_view(be, s->qkv, MMS_DTYPE_F32, M, R);
        if ((rc = mms_op_linear(be, attn_in, &bw->qkv, MMS_ACT_NONE, NULL, &tq, err)) != MMS_OK) return rc;
        *q = s->qkv; *k = s->qkv + A; *v = s->qkv + A + KVA;
        *q_row = *kv_row = R;
    } else {
        mms_tensor tq = dev_view(be, s->qkv, MMS_DTYPE_F32, M, A);
        mms_tensor tk = dev_view(be, s->qkv + M * A, MMS_DTYPE_F32, M, KVA);
        mms_tensor tv = dev_view(be, s->qkv + M * (A + KVA), MMS_DTYPE_F32, M, KVA);
        if ((rc = mms_op_linear(be, attn_in, &bw->q, MMS_ACT_NONE, NULL, &tq, err)) != MMS_OK ||
            (rc = mms_op_linear(be, attn_in, &bw->k, MMS_ACT_NONE, NULL, &tk, err)) != MMS_OK ||
            (rc = mms_op_linear(be, attn_in, &bw->v, MMS_ACT_NONE, NULL, &tv, err)) != MMS_OK)
            return rc;
        *q = s->qkv; *k = s->qkv + M * A; *v = s->qkv + M * (A + KVA);
        *q_row = A; *kv_row = KVA;
    }
    return MMS_OK;
}

mms_status mms_block_forward(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, float *x,
                             int64_t batch, int64_t tokens, const int64_t *key_mask, mms_block_scratch *s,
                             mms_error *err) {
    mms_block_opts o;
    memset(&o, 0, sizeof o);
    o.key_mask = key_mask;
    return mms_block_forward_ex(be, cfg, bw, x, batch, tokens, &o, s, err);
}

mms_status mms_block_forward_ex(mms_backend *be, const mms_block_config *cfg, const mms_block_weights *bw, float *x,
                                int64_t batch, int64_t tokens, const mms_block_opts *opts, mms_block_scratch *s,
                                mms_error *err) {
    const int64_t M = batch * tokens;
    const int64_t *key_mask = opts->key_mask;
    if (M > s->max_tokens) return mms_error_set(err, MMS_ERR_INTERNAL, "block scratch too small");
    mms_status rc;
    mms_attn_args a;
    memset(&a, 0, sizeof a);
    float *q, *k, *v;
    if ((rc = mms_block_qkv(be, cfg, bw, x, M, s, &q, &k, &v, &a.q_row, &a.kv_row, err)) != MMS_OK) return rc;
    a.q = q; a.k = k; a.v = v;
    a.batch = batch; a.n_q = tokens; a.n_kv = tokens;
    a.n_heads = cfg->n_heads; a.head_dim = cfg->head_dim;
    a.n_kv_heads = cfg->n_kv_heads; a.window = cfg->window;
    a.q_batch = a.q_row * tokens; a.kv_batch = a.kv_row * tokens;
    a.out = s->att; a.out_dtype = cfg->compute;
    a.key_mask = key_mask; a.causal = cfg->causal;
    a.scale = cfg->attn_scale > 0 ? cfg->attn_scale : 1.0f / sqrtf((float)cfg->head_dim);
    a.low_precision = cfg->compute == MMS_DTYPE_BF16;
    a.rel_bias = opts->rel_bias; a.rel_max = opts->rel_max;
    if ((rc = mms_op_attention(be, &a, err)) != MMS_OK) return rc;
    return mms_block_finish(be, cfg, bw, x, M, opts->cross, s, err);
}
