/* ops.c -- shape/dtype checks and dispatch for every op in ops.h. */
#include "ops.h"

#include <string.h>

#define SHAPE(t, buf) mms_tensor_shape_str((t), (buf), sizeof(buf))

static int is_act_dtype(mms_dtype d) { return d == MMS_DTYPE_F32 || d == MMS_DTYPE_BF16; }

mms_status mms_op_linear(mms_backend *be, const mms_tensor *x, const mms_linear *L, mms_act act,
                         const mms_tensor *residual, mms_tensor *y, mms_error *err) {
    char a[64], b[64];
    if (x->ndim < 1 || x->ne[x->ndim - 1] != mms_linear_in(L) || y->ne[y->ndim - 1] != mms_linear_out(L) ||
        mms_tensor_numel(x) / mms_linear_in(L) != mms_tensor_numel(y) / mms_linear_out(L))
        return mms_error_set(err, MMS_ERR_VALUE, "linear: x %s, y %s do not fit weight (%lld, %lld)", SHAPE(x, a),
                             SHAPE(y, b), (long long)mms_linear_out(L), (long long)mms_linear_in(L));
    if (!is_act_dtype(x->dtype) || !is_act_dtype(y->dtype))
        return mms_error_set(err, MMS_ERR_VALUE, "linear: x and y must be float32 or bfloat16");
    if (residual && (residual->dtype != MMS_DTYPE_F32 || mms_tensor_numel(residual) != mms_tensor_numel(y)))
        return mms_error_set(err, MMS_ERR_VALUE, "linear: residual must be float32 shaped like y");
    return be->vt->linear(be, x, L, act, residual, y, err);
}

mms_status mms_op_layernorm(mms_backend *be, const mms_tensor *x, const mms_tensor *g, const mms_tensor *b,
                            float eps, mms_tensor *y, mms_error *err) {
    int64_t D = x->ne[x->ndim - 1];
    if (x->dtype != MMS_DTYPE_F32 || !is_act_dtype(y->dtype) || mms_tensor_numel(x) != mms_tensor_numel(y) ||
        g->dtype != MMS_DTYPE_F32 || mms_tensor_numel(g) != D || (b && (b->dtype != MMS_DTYPE_F32 || mms_tensor_numel(b) != D)))
        return mms_error_set(err, MMS_ERR_VALUE, "layernorm: shape/dtype mismatch (dim %lld)", (long long)D);
    return be->vt->layernorm(be, x, g->data, b ? b->data : NULL, eps, y, err);
}

mms_status mms_op_attention(mms_backend *be, const mms_attn_args *a, mms_error *err) {
    if (a->batch <= 0 || a->n_q <= 0 || a->n_kv <= 0 || a->n_heads <= 0 || a->head_dim <= 0 || !is_act_dtype(a->out_dtype))
        return mms_error_set(err, MMS_ERR_VALUE, "attention: bad sizes (batch %lld, n_q %lld, n_kv %lld)",
                             (long long)a->batch, (long long)a->n_q, (long long)a->n_kv);
    if (a->rel_bias && a->rel_max < 0) return mms_error_set(err, MMS_ERR_VALUE, "attention: negative rel_max");
    if (a->n_kv_heads < 0 || (a->n_kv_heads && a->n_heads % a->n_kv_heads) || a->window < 0)
        return mms_error_set(err, MMS_ERR_VALUE, "attention: %lld heads cannot share %lld key/value heads",
                             (long long)a->n_heads, (long long)a->n_kv_heads);
    return be->vt->attention(be, a, err);
}

#define NEED(entry, opname)                                                                                    \
    do {                                                                                                       \
        if (!be->vt->entry)                                                                                    \
            return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s is not implemented on the %s backend", opname,     \
                                 be->vt->name);                                                                \
    } while (0)

mms_status mms_op_rmsnorm(mms_backend *be, const mms_tensor *x, const mms_tensor *g, float eps, mms_tensor *y,
                          mms_error *err) {
    int64_t D = x->ne[x->ndim - 1];
    if (x->dtype != MMS_DTYPE_F32 || !is_act_dtype(y->dtype) || mms_tensor_numel(x) != mms_tensor_numel(y) ||
        g->dtype != MMS_DTYPE_F32 || mms_tensor_numel(g) != D)
        return mms_error_set(err, MMS_ERR_VALUE, "rmsnorm: shape/dtype mismatch (dim %lld)", (long long)D);
    NEED(rmsnorm, "rmsnorm");
    return be->vt->rmsnorm(be, x, g->data, eps, y, err);
}

mms_status mms_op_rope(mms_backend *be, float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim,
                       int64_t rot_dim, const int64_t *pos, const float *inv_freq, float attn_factor, mms_error *err) {
    if (rows < 0 || n_heads <= 0 || head_dim <= 0 || rot_dim <= 0 || rot_dim > head_dim || rot_dim % 2 ||
        stride < n_heads * head_dim)
        return mms_error_set(err, MMS_ERR_VALUE, "rope: bad sizes (heads %lld, head_dim %lld, rot_dim %lld)",
                             (long long)n_heads, (long long)head_dim, (long long)rot_dim);
    if (rows == 0) return MMS_OK;
    NEED(rope, "rope");
    return be->vt->rope(be, x, rows, stride, n_heads, head_dim, rot_dim, pos, inv_freq, attn_factor, err);
}

mms_status mms_op_glu(mms_backend *be, const float *gate, int64_t gate_stride, const float *up, int64_t up_stride,
                      int64_t rows, int64_t F, mms_act act, mms_tensor *out, mms_error *err) {
    if (!is_act_dtype(out->dtype) || mms_tensor_numel(out) != rows * F || gate_stride < F || up_stride < F)
        return mms_error_set(err, MMS_ERR_VALUE, "glu: output must hold %lld x %lld float32/bfloat16 values",
                             (long long)rows, (long long)F);
    if (rows == 0) return MMS_OK;
    NEED(glu, "glu");
    return be->vt->glu(be, gate, gate_stride, up, up_stride, rows, F, act, out, err);
}

mms_status mms_op_store_rows(mms_backend *be, void *dst, mms_dtype dst_dtype, int64_t dst_stride, const float *src,
                             int64_t src_stride, int64_t rows, int64_t cols, mms_error *err) {
    if (!is_act_dtype(dst_dtype) || dst_stride < cols || src_stride < cols)
        return mms_error_set(err, MMS_ERR_VALUE, "store_rows: bad strides or dtype");
    if (rows == 0) return MMS_OK;
    NEED(store_rows, "store_rows");
    return be->vt->store_rows(be, dst, dst_dtype, dst_stride, src, src_stride, rows, cols, err);
}

mms_status mms_op_kv_attention(mms_backend *be, const mms_kv_attn_args *a, mms_error *err) {
    if (a->n_q <= 0 || a->n_kv <= 0 || (!a->full && a->n_kv < a->n_q) || (a->rel_bias && a->rel_max < 0) || a->n_heads <= 0 || a->head_dim <= 0 || a->n_kv_heads <= 0 ||
        a->n_heads % a->n_kv_heads || !is_act_dtype(a->kv_dtype) || !is_act_dtype(a->out_dtype) || a->window < 0)
        return mms_error_set(err, MMS_ERR_VALUE, "kv_attention: bad sizes (n_q %lld, n_kv %lld, heads %lld/%lld)",
                             (long long)a->n_q, (long long)a->n_kv, (long long)a->n_heads, (long long)a->n_kv_heads);
    NEED(kv_attention, "kv_attention");
    return be->vt->kv_attention(be, a, err);
}

mms_status mms_op_softmax(mms_backend *be, mms_tensor *x, mms_error *err) {
    if (x->dtype != MMS_DTYPE_F32 || x->ndim < 1 || !mms_tensor_is_contiguous(x))
        return mms_error_set(err, MMS_ERR_VALUE, "softmax: contiguous float32 only");
    if (mms_tensor_numel(x) == 0) return MMS_OK;
    return be->vt->softmax(be, x, err);
}

mms_status mms_op_activation(mms_backend *be, mms_tensor *x, mms_act act, mms_error *err) {
    if (x->dtype != MMS_DTYPE_F32) return mms_error_set(err, MMS_ERR_VALUE, "activation: float32 only");
    if (act == MMS_ACT_NONE) return MMS_OK;
    return be->vt->activation(be, x, act, err);
}

mms_status mms_op_add(mms_backend *be, mms_tensor *y, const mms_tensor *v, mms_error *err) {
    int64_t C = y->ne[y->ndim - 1];
    int64_t nv = mms_tensor_numel(v);
    if (y->dtype != MMS_DTYPE_F32 || v->dtype != MMS_DTYPE_F32 || (nv != C && nv != mms_tensor_numel(y)))
        return mms_error_set(err, MMS_ERR_VALUE, "add: operand of %lld elements does not broadcast to rows of %lld",
                             (long long)nv, (long long)C);
    return be->vt->add(be, y, v, err);
}

mms_status mms_op_embedding(mms_backend *be, const mms_tensor *table, const mms_tensor *ids, mms_tensor *out,
                            mms_error *err) {
    if (table->ndim != 2 || ids->dtype != MMS_DTYPE_I64 || out->dtype != MMS_DTYPE_F32 ||
        mms_tensor_numel(out) != mms_tensor_numel(ids) * table->ne[1])
        return mms_error_set(err, MMS_ERR_VALUE, "embedding: shape/dtype mismatch");
    return be->vt->embedding(be, table, ids, out, err);
}

mms_status mms_op_patch_embed(mms_backend *be, const mms_tensor *pixels, int patch, const mms_linear *conv,
                              mms_tensor *out, mms_error *err) {
    char a[64];
    if (pixels->ndim != 4 || pixels->dtype != MMS_DTYPE_F32 || patch <= 0 || pixels->ne[2] % patch ||
        pixels->ne[3] % patch || pixels->ne[1] * patch * patch != mms_linear_in(conv))
        return mms_error_set(err, MMS_ERR_VALUE, "patch_embed: pixel_values %s do not fit patch %d / conv in=%lld",
                             SHAPE(pixels, a), patch, (long long)mms_linear_in(conv));
    int64_t B = pixels->ne[0], np = (pixels->ne[2] / patch) * (pixels->ne[3] / patch);
    int64_t ne[3] = {B, np, mms_linear_in(conv)};
    size_t bytes = (size_t)(B * np * mms_linear_in(conv)) * sizeof(float);
    void *buf = be->vt->alloc(be, bytes);
    if (!buf) return mms_error_set(err, MMS_ERR_NOMEM, "patch_embed: out of memory (%zu bytes)", bytes);
    mms_tensor cols = mms_tensor_view(buf, MMS_DTYPE_F32, 3, ne);
    cols.device = be->device;
    mms_status rc = be->vt->im2col(be, pixels, patch, &cols, err);
    if (rc == MMS_OK) rc = mms_op_linear(be, &cols, conv, MMS_ACT_NONE, NULL, out, err);
    be->vt->free(be, buf);
    return rc;
}

mms_status mms_op_copy2d(mms_backend *be, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                         int64_t rows, int64_t cols, mms_error *err) {
    if (rows < 0 || cols < 0) return mms_error_set(err, MMS_ERR_VALUE, "copy2d: negative size");
    return be->vt->copy2d(be, dst, dst_stride, src, src_stride, rows, cols, err);
}

mms_status mms_op_l2_normalize(mms_backend *be, mms_tensor *x, mms_error *err) {
    if (x->dtype != MMS_DTYPE_F32) return mms_error_set(err, MMS_ERR_VALUE, "l2_normalize: float32 only");
    return be->vt->l2_normalize(be, x, err);
}

mms_status mms_linear_prepare(mms_backend *be, const mms_tensor *w, const mms_tensor *b, mms_dtype dtype,
                              mms_linear *out, mms_error *err) {
    memset(out, 0, sizeof *out);
    if (w->ndim != 2) return mms_error_set(err, MMS_ERR_VALUE, "linear weight must be 2-D");
    if (b && b->ndim && mms_tensor_numel(b) != w->ne[0])
        return mms_error_set(err, MMS_ERR_VALUE, "bias has %lld elements, expected %lld",
                             (long long)mms_tensor_numel(b), (long long)w->ne[0]);
    mms_status rc = be->vt->tensor_prepare(be, w, dtype, &out->w, err);
    if (rc == MMS_OK && b && b->ndim) rc = be->vt->tensor_prepare(be, b, MMS_DTYPE_F32, &out->b, err);
    if (rc != MMS_OK) mms_linear_release(out);
    return rc;
}

void mms_linear_release(mms_linear *L) {
    mms_tensor_release(&L->w);
    mms_tensor_release(&L->b);
}

mms_status mms_vector_prepare(mms_backend *be, const mms_tensor *src, mms_tensor *out, mms_error *err) {
    return be->vt->tensor_prepare(be, src, MMS_DTYPE_F32, out, err);
}

const char *mms_act_name(mms_act a) {
    static const char *n[] = {"none", "gelu", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu"};
    return (unsigned)a < sizeof n / sizeof n[0] ? n[a] : "?";
}

int mms_act_parse(const char *name) {
    static const struct { const char *s; mms_act a; } k[] = {
        {"gelu", MMS_ACT_GELU},          {"quick_gelu", MMS_ACT_QUICK_GELU},
        {"gelu_pytorch_tanh", MMS_ACT_GELU_TANH}, {"gelu_new", MMS_ACT_GELU_TANH},
        {"gelu_fast", MMS_ACT_GELU_TANH}, {"relu", MMS_ACT_RELU},
        {"silu", MMS_ACT_SILU},          {"swish", MMS_ACT_SILU},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(name, k[i].s) == 0) return (int)k[i].a;
    return -1;
}
