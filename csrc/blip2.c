/* blip2.c -- BLIP-2: config, loading, image features (blip2.h). */
#include "blip2.h"
#include "finite.h"
#include "mapping.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct mms_blip2 {
    mms_blip2_config cfg;
    mms_backend *be;
    mms_dtype dtype;
    mms_clip *vision;
    mms_qformer *qformer;
    mms_linear proj;            /* (Dt, Dq) with bias */
    mms_decoder *lm;            /* OPT, or the T5 decoder stack */
    mms_t5_encoder *t5enc;      /* T5 only */
    int64_t weight_bytes;    mms_mapset maps;        /* files the weights came from (checked per call, mapping.h) */
};

#define TRY(e) do { if ((rc = (e)) != MMS_OK) goto fail; } while (0)

mms_status mms_blip2_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_blip2 **out, mms_error *err) {
    return mms_blip2_load_ex(dir, dtype, be, 0, out, err);
}

mms_status mms_blip2_load_ex(const char *dir, mms_dtype dtype, mms_backend *be, int weight_flags, mms_blip2 **out,
                             mms_error *err) {
    *out = NULL;
    if (dtype != MMS_DTYPE_F32 && dtype != MMS_DTYPE_BF16)
        return mms_error_set(err, MMS_ERR_VALUE, "dtype must be float32 or bfloat16, not %s", mms_dtype_name(dtype));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no config.json (is this a checkpoint directory?)", dir);
    mms_json j;
    mms_status rc = mms_json_load(path, &j, err);
    if (rc != MMS_OK) return rc;
    mms_weights *w = NULL;
    mms_blip2 *m = mms_calloc(1, sizeof *m);
    if (!m) { mms_json_free(&j); return mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); }
    m->be = be;
    m->dtype = dtype;
    mms_blip2_config *c = &m->cfg;
    const char *mt = NULL;
    TRY(mms_json_str(&j, j.root, NULL, "model_type", NULL, &mt, err));
    if (!mt || strcmp(mt, "blip-2") != 0) {
        rc = mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: model_type '%s' is not blip-2", path, mt ? mt : "(missing)");
        goto fail;
    }
    const cJSON *vc = mms_json_obj(j.root, "vision_config"), *qc = mms_json_obj(j.root, "qformer_config"),
                *tc = mms_json_obj(j.root, "text_config");
    if (!tc) { rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: text_config is required", path); goto fail; }
    TRY(mms_json_int(&j, j.root, NULL, "num_query_tokens", 32, &c->n_query, err));
    {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j.root, "image_token_index");
        c->image_token_id = -1;
        if (it && !cJSON_IsNull(it)) TRY(mms_json_int(&j, j.root, NULL, "image_token_index", -1, &c->image_token_id, err));
    }
    TRY(mms_qformer_config_parse(&j, qc, "qformer_config", c->n_query, &c->qformer, err));
    TRY(mms_decoder_config_parse(&j, tc, "text_config", &c->text, err));
    c->encoder_decoder = c->text.family == MMS_DEC_T5;
    if (!c->encoder_decoder && c->text.family != MMS_DEC_OPT) {
        /* transformers builds any AutoModelForCausalLM here; the checkpoints use OPT or Flan-T5 */
        rc = mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: BLIP-2 with this language model is not supported (OPT and T5)", path);
        goto fail;
    }
    TRY(mms_weights_open_ex(dir, NULL, weight_flags, &w, err));
    TRY(mms_clip_load_blip2_vision(w, &j, vc, "vision_config", dtype, be, &m->vision, err));
    {
        const mms_clip_config *v = mms_clip_get_config(m->vision);
        const int64_t g = v->image_size / v->patch_size;
        c->image_size = v->image_size;
        c->vision_hidden = v->vision.hidden;
        c->vision_tokens = g * g + 1;
    }
    if (c->qformer.block.cross_dim != c->vision_hidden) {
        rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: qformer_config.encoder_hidden_size %lld != vision hidden_size %lld", path,
                           (long long)c->qformer.block.cross_dim, (long long)c->vision_hidden);
        goto fail;
    }
    TRY(mms_qformer_load(w, &c->qformer, dtype, be, &m->qformer, err));
    c->qformer_hidden = c->qformer.block.hidden;
    c->text_hidden = c->text.block.hidden;
    TRY(mms_load_linear(be, w, "language_projection", c->qformer_hidden, c->text_hidden, 1, dtype, &m->proj, err));
    if (c->encoder_decoder) {
        const char *ren[] = {"shared.", "language_model.shared.", "encoder.", "language_model.encoder.",
                             "decoder.", "language_model.decoder.", "lm_head.", "language_model.lm_head."};
        TRY(mms_weights_set_renames(w, ren, 4, err));
        TRY(mms_t5_encoder_load(w, &c->text, dtype, be, &m->t5enc, err));
    } else {
        const char *ren[] = {"model.", "language_model.model.", "lm_head.", "language_model.lm_head."};
        TRY(mms_weights_set_renames(w, ren, 2, err));
    }
    TRY(mms_decoder_load(w, &c->text, dtype, be, &m->lm, err));
    m->weight_bytes = mms_weights_bytes(w);
    TRY(mms_weights_mapset(w, &m->maps, err));
    mms_weights_close(w);
    mms_json_free(&j);
    *out = m;
    return MMS_OK;
fail:
    mms_error_in_file(err, dir);
    mms_weights_close(w);
    mms_json_free(&j);
    mms_blip2_free(m);
    return rc;
}

void mms_blip2_free(mms_blip2 *m) {
    if (!m) return;
    mms_clip_free(m->vision);
    mms_qformer_free(m->qformer);
    mms_linear_release(&m->proj);
    mms_decoder_free(m->lm);
    mms_t5_encoder_free(m->t5enc);
    mms_mapset_release(&m->maps);
    mms_free(m);
}

const mms_blip2_config *mms_blip2_get_config(const mms_blip2 *m) { return &m->cfg; }
const mms_decoder *mms_blip2_decoder(const mms_blip2 *m) { return m->lm; }
const mms_t5_encoder *mms_blip2_t5_encoder(const mms_blip2 *m) { return m->t5enc; }
int64_t mms_blip2_weight_bytes(const mms_blip2 *m) { return m->weight_bytes; }

#undef TRY
mms_status mms_blip2_image_features(const mms_blip2 *m, const mms_tensor *px, float *vision, float *qformer,
                                    float *projected, mms_error *err) {
    const mms_blip2_config *c = &m->cfg;
    mms_backend *be = m->be;
    if (px->ndim != 4) return mms_error_set(err, MMS_ERR_VALUE, "pixel_values must be (images, 3, H, W)");
    const int64_t B = px->ne[0], Tv = c->vision_tokens, Dv = c->vision_hidden, Q = c->n_query;
    const int64_t Dq = c->qformer_hidden, Dt = c->text_hidden;
    float *vis = vision ? vision : mms_malloc((size_t)(B * Tv * Dv) * sizeof(float));
    float *qf = qformer ? qformer : mms_malloc((size_t)(B * Q * Dq) * sizeof(float));
    mms_status rc = vis && qf ? MMS_OK : mms_error_set(err, MMS_ERR_NOMEM, "out of memory for %lld images' features", (long long)B);
    if (rc == MMS_OK) rc = mms_clip_vision_last_hidden(m->vision, px, vis, err);
    if (rc == MMS_OK) rc = mms_qformer_forward(m->qformer, vis, B, Tv, qf, err);
    float *din = NULL, *dout = NULL;
    if (rc == MMS_OK) { /* language projection on the backend */
        const int64_t R = B * Q;
        din = be->vt->alloc(be, (size_t)(R * Dq) * 4);
        dout = be->device != MMS_DEVICE_CPU ? be->vt->alloc(be, (size_t)(R * Dt) * 4) : projected;
        rc = din && dout ? be->vt->upload(be, din, qf, (size_t)(R * Dq) * 4, err)
                         : mms_error_set(err, MMS_ERR_NOMEM, "out of memory for the projection");
        if (rc == MMS_OK) {
            int64_t ne_i[2] = {R, Dq}, ne_o[2] = {R, Dt};
            mms_tensor ti = mms_tensor_view(din, MMS_DTYPE_F32, 2, ne_i), to = mms_tensor_view(dout, MMS_DTYPE_F32, 2, ne_o);
            ti.device = to.device = be->device;
            rc = mms_op_linear(be, &ti, &m->proj, MMS_ACT_NONE, NULL, &to, err);
            if (rc == MMS_OK && dout != projected) rc = be->vt->download(be, projected, dout, (size_t)(R * Dt) * 4, err);
        }
    }
    if (din) be->vt->free(be, din);
    if (dout && dout != projected) be->vt->free(be, dout);
    if (vis != vision) mms_free(vis);
    if (qf != qformer) mms_free(qf);
    if (rc == MMS_OK) rc = mms_mapset_check(&m->maps, err); /* the tower checked before it ran */
    if (rc == MMS_OK && projected && mms_get_finite_mode() != MMS_FINITE_OFF)
        rc = mms_check_finite_host(projected, B * Q * Dt, "BLIP-2's projected image features", MMS_FINITE_HINT, err);
    return rc;
}
