/* llava.c -- LLaVA 1.5 / NeXT: config, loading, image features, NeXT packing (llava.h). */
#include "llava.h"
#include "finite.h"
#include "mapping.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct mms_llava {
    mms_llava_config cfg;
    mms_backend *be;
    mms_dtype dtype;
    mms_clip *vision;       /* CLIP vision tower, first vision_layers_run layers */
    mms_decoder *lm;
    mms_linear proj1, proj2; /* (Dt, Dv), (Dt, Dt) with biases                  */
    float *newline;         /* (Dt) LLaVA-NeXT image_newline, host F32           */
    int64_t vision_bytes;    mms_mapset maps;        /* files the weights came from (checked per call, mapping.h) */
};

#define TRY(e) do { if ((rc = (e)) != MMS_OK) goto fail; } while (0)

static mms_status parse_config(const mms_json *j, mms_llava_config *c, mms_error *err) {
    mms_status rc;
    const cJSON *root = j->root;
    const char *mt = NULL, *strategy = NULL, *act = NULL;
    memset(c, 0, sizeof *c);
    TRY(mms_json_str(j, root, NULL, "model_type", NULL, &mt, err));
    if (!mt || (strcmp(mt, "llava") != 0 && strcmp(mt, "llava_next") != 0))
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: model_type '%s' is not llava or llava_next", j->path, mt ? mt : "(missing)");
    c->next = strcmp(mt, "llava_next") == 0;
    TRY(mms_json_int(j, root, NULL, "image_token_index", 32000, &c->image_token_id, err));
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_layer");
    if (fl && !cJSON_IsNumber(fl))
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: vision_feature_layer must be one integer (lists of layers are not supported)", j->path);
    int64_t layer = -2; /* an integer a layer index can be (a float-to-int cast of 1e300 is UB) */
    TRY(mms_json_int(j, root, NULL, "vision_feature_layer", -2, &layer, err));
    if (layer < -1000 || layer > 1000)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: vision_feature_layer %lld is out of range", j->path, (long long)layer);
    c->feature_layer = (int)layer;
    TRY(mms_json_str(j, root, NULL, "vision_feature_select_strategy", "default", &strategy, err));
    if (strcmp(strategy, "default") != 0 && strcmp(strategy, "full") != 0)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: vision_feature_select_strategy '%s' (expected 'default' or 'full')", j->path, strategy);
    c->select_full = strcmp(strategy, "full") == 0;
    TRY(mms_json_str(j, root, NULL, "projector_hidden_act", "gelu", &act, err));
    int a = mms_act_parse(act);
    if (a < 0) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: projector_hidden_act '%s' is not supported", j->path, act);
    c->projector_act = (mms_act)a;
    if (c->next) {
        static const int64_t dflt[5][2] = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
        const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "image_grid_pinpoints");
        if (!pp) {
            c->n_pinpoints = 5;
            memcpy(c->pinpoints, dflt, sizeof dflt);
        } else {
            if (!cJSON_IsArray(pp) || cJSON_GetArraySize(pp) < 1 || cJSON_GetArraySize(pp) > MMS_LLAVA_MAX_PINPOINTS)
                return mms_error_set(err, MMS_ERR_CONFIG, "%s: image_grid_pinpoints must be a list of 1..%d [height, width] pairs", j->path, MMS_LLAVA_MAX_PINPOINTS);
            const cJSON *e;
            cJSON_ArrayForEach(e, pp) {
                const cJSON *h = cJSON_GetArrayItem(e, 0), *w = cJSON_GetArrayItem(e, 1);
                if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(h) || !cJSON_IsNumber(w) ||
                    !(h->valuedouble >= 1 && h->valuedouble <= 1 << 20) || !(w->valuedouble >= 1 && w->valuedouble <= 1 << 20))
                    return mms_error_set(err, MMS_ERR_CONFIG, "%s: image_grid_pinpoints entries must be [height, width] positive integers", j->path);
                c->pinpoints[c->n_pinpoints][0] = (int64_t)h->valuedouble;
                c->pinpoints[c->n_pinpoints][1] = (int64_t)w->valuedouble;
                c->n_pinpoints++;
            }
        }
    }
    return MMS_OK;
fail:
    return rc;
}

/* Which naming the checkpoint uses: transformers v4 ("language_model.model.*") or v5. */
static int v5_names(const mms_weights *w) {
    return mms_weights_find(w, "model.language_model.embed_tokens.weight") != NULL ||
           mms_weights_find(w, "model.language_model.model.decoder.embed_tokens.weight") != NULL;
}

/* Where the vision tower's tensors live: transformers v4 "vision_tower.vision_model.*", v5
 * "model.vision_tower.vision_model.*", or (transformers 5 saving a tower built as a bare
 * CLIPVisionTransformer) the same without "vision_model.". */
static const char *vision_prefix(const mms_weights *w, int v5) {
    static const char *cands[] = {"vision_tower.vision_model.", "model.vision_tower.vision_model.", "vision_tower.",
                                  "model.vision_tower."};
    char name[96];
    for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
        snprintf(name, sizeof name, "%sembeddings.patch_embedding.weight", cands[i]);
        if (mms_weights_find(w, name) != NULL) return cands[i];
    }
    return v5 ? cands[1] : cands[0]; /* the loader then names the missing tensor */
}

mms_status mms_llava_load(const char *dir, mms_dtype dtype, mms_backend *be, mms_llava **out, mms_error *err) {
    return mms_llava_load_ex(dir, dtype, be, 0, out, err);
}

mms_status mms_llava_load_ex(const char *dir, mms_dtype dtype, mms_backend *be, int weight_flags, mms_llava **out,
                             mms_error *err) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no config.json (is this a checkpoint directory?)", dir);
    mms_json j;
    mms_status rc = mms_json_load(path, &j, err);
    if (rc != MMS_OK) return rc;
    mms_weights *w = NULL;
    mms_llava *m = mms_calloc(1, sizeof *m);
    if (!m) { mms_json_free(&j); return mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); }
    m->be = be;
    m->dtype = dtype;
    mms_llava_config *c = &m->cfg;
    TRY(parse_config(&j, c, err));
    const cJSON *vc = mms_json_obj(j.root, "vision_config"), *tc = mms_json_obj(j.root, "text_config");
    if (!vc || !tc)
        { rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: vision_config and text_config are required", path); goto fail; }
    TRY(mms_decoder_config_parse(&j, tc, "text_config", &c->text, err));
    {
        /* vision layers needed: hidden_states has L + 1 entries, index 0 = embeddings */
        int64_t L;
        TRY(mms_json_int(&j, vc, "vision_config", "num_hidden_layers", 12, &L, err));
        int idx = c->feature_layer >= 0 ? c->feature_layer : (int)L + 1 + c->feature_layer;
        if (idx < 0 || idx > L) {
            rc = mms_error_set(err, MMS_ERR_CONFIG, "%s: vision_feature_layer %d is outside the tower's %lld layers", path,
                               c->feature_layer, (long long)L);
            goto fail;
        }
        c->vision_layers_run = idx;
    }
    TRY(mms_weights_open_ex(dir, NULL, weight_flags, &w, err));
    const int v5 = v5_names(w);
    {
        const char *ren[] = {"vision_model.", vision_prefix(w, v5)};
        TRY(mms_weights_set_renames(w, ren, 1, err));
        TRY(mms_clip_load_vision(w, &j, vc, "vision_config", c->vision_layers_run, dtype, be, &m->vision, err));
    }
    const mms_clip_config *vcfg = mms_clip_get_config(m->vision);
    c->image_size = vcfg->image_size;
    c->patch_size = vcfg->patch_size;
    c->vision_hidden = vcfg->vision.hidden;
    c->text_hidden = c->text.block.hidden;
    c->tokens_per_patch = (c->image_size / c->patch_size) * (c->image_size / c->patch_size) + (c->select_full ? 1 : 0);
    {
        const char *ren[] = {"model.", v5 ? "model.language_model." : "language_model.model.", "lm_head.",
                             v5 ? "lm_head." : "language_model.lm_head."};
        TRY(mms_weights_set_renames(w, ren, 2, err));
        TRY(mms_decoder_load(w, &c->text, dtype, be, &m->lm, err));
    }
    {
        const char *ren[] = {"multi_modal_projector.", v5 ? "model.multi_modal_projector." : "multi_modal_projector.",
                             "image_newline", v5 ? "model.image_newline" : "image_newline"};
        TRY(mms_weights_set_renames(w, ren, 2, err));
        const int64_t Dv = c->vision_hidden, Dt = c->text_hidden;
        TRY(mms_load_linear(be, w, "multi_modal_projector.linear_1", Dv, Dt, 1, dtype, &m->proj1, err));
        TRY(mms_load_linear(be, w, "multi_modal_projector.linear_2", Dt, Dt, 1, dtype, &m->proj2, err));
        if (c->next) {
            mms_tensor t;
            TRY(mms_weights_get(w, "image_newline", &t, err));
            if (mms_tensor_numel(&t) != Dt) {
                rc = mms_error_set(err, MMS_ERR_FORMAT, "tensor 'image_newline' has %lld values, expected %lld",
                                   (long long)mms_tensor_numel(&t), (long long)Dt);
                mms_tensor_release(&t);
                goto fail;
            }
            m->newline = mms_malloc((size_t)Dt * sizeof(float));
            rc = m->newline ? mms_convert(t.data, t.dtype, m->newline, MMS_DTYPE_F32, Dt, err)
                            : mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
            mms_tensor_release(&t);
            if (rc != MMS_OK) goto fail;
        }
    }
    TRY(mms_weights_mapset(w, &m->maps, err));
    mms_weights_close(w);
    mms_json_free(&j);
    *out = m;
    return MMS_OK;
fail:
    mms_error_in_file(err, dir);
    mms_weights_close(w);
    mms_json_free(&j);
    mms_llava_free(m);
    return rc;
}

void mms_llava_free(mms_llava *m) {
    if (!m) return;
    mms_clip_free(m->vision);
    mms_decoder_free(m->lm);
    mms_linear_release(&m->proj1);
    mms_linear_release(&m->proj2);
    mms_free(m->newline);
    mms_mapset_release(&m->maps);
    mms_free(m);
}

const mms_llava_config *mms_llava_get_config(const mms_llava *m) { return &m->cfg; }
const mms_decoder *mms_llava_decoder(const mms_llava *m) { return m->lm; }
int64_t mms_llava_vision_weight_bytes(const mms_llava *m) { return mms_clip_weight_bytes(m->vision); }

mms_status mms_llava_image_features(const mms_llava *m, const mms_tensor *px, float *layer_full, float *selected,
                                    float *projected, mms_error *err) {
    const mms_llava_config *c = &m->cfg;
    if (px->ndim != 4) return mms_error_set(err, MMS_ERR_VALUE, "pixel_values must be (patches, 3, H, W)");
    const int64_t N = px->ne[0], Dv = c->vision_hidden, Dt = c->text_hidden;
    const int64_t g = c->image_size / c->patch_size, T = g * g + 1, n = c->tokens_per_patch, skip = T - n;
    mms_backend *be = m->be;
    float *full = layer_full ? layer_full : mms_malloc((size_t)(N * T * Dv) * sizeof(float));
    if (!full) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory for %lld patches' features", (long long)N);
    mms_status rc = mms_clip_vision_hidden(m->vision, px, c->vision_layers_run, full, err);
    float *sel = NULL, *h = NULL, *dv = NULL;
    if (rc == MMS_OK && selected)
        for (int64_t i = 0; i < N; i++) memcpy(selected + i * n * Dv, full + (i * T + skip) * Dv, (size_t)(n * Dv) * sizeof(float));
    if (rc == MMS_OK && projected) {
        /* projector over the selected rows: linear_1 -> act -> linear_2 (on the backend) */
        const int64_t R = N * n;
        sel = be->vt->alloc(be, (size_t)(R * Dv) * 4);
        h = be->vt->alloc(be, (size_t)(R * Dt) * 4);
        dv = be->device != MMS_DEVICE_CPU ? be->vt->alloc(be, (size_t)(R * Dt) * 4) : projected;
        if (!sel || !h || !dv) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory for the projector");
        for (int64_t i = 0; rc == MMS_OK && i < N; i++)
            rc = be->vt->upload(be, sel + i * n * Dv, full + (i * T + skip) * Dv, (size_t)(n * Dv) * 4, err);
        if (rc == MMS_OK) {
            int64_t ne_in[2] = {R, Dv}, ne_h[2] = {R, Dt};
            mms_tensor ti = mms_tensor_view(sel, MMS_DTYPE_F32, 2, ne_in), th = mms_tensor_view(h, MMS_DTYPE_F32, 2, ne_h),
                       to = mms_tensor_view(dv, MMS_DTYPE_F32, 2, ne_h);
            ti.device = th.device = to.device = be->device;
            rc = mms_op_linear(be, &ti, &m->proj1, c->projector_act, NULL, &th, err);
            if (rc == MMS_OK) rc = mms_op_linear(be, &th, &m->proj2, MMS_ACT_NONE, NULL, &to, err);
            if (rc == MMS_OK && dv != projected) rc = be->vt->download(be, projected, dv, (size_t)(R * Dt) * 4, err);
        }
    }
    if (sel) be->vt->free(be, sel);
    if (h) be->vt->free(be, h);
    if (dv && dv != projected) be->vt->free(be, dv);
    if (full != layer_full) mms_free(full);
    if (rc == MMS_OK) rc = mms_mapset_check(&m->maps, err); /* the tower checked before it ran */
    if (rc == MMS_OK && projected && mms_get_finite_mode() != MMS_FINITE_OFF)
        rc = mms_check_finite_host(projected, N * n * Dt, "LLaVA's projected image features", MMS_FINITE_HINT, err);
    return rc;
}

mms_status mms_llava_pack_next(const mms_llava *m, const float *projected, int64_t gh, int64_t gw, int64_t row0,
                               int64_t rows, int64_t col0, int64_t cols, float *out, int64_t *n_out, mms_error *err) {
    const mms_llava_config *c = &m->cfg;
    const int64_t Dt = c->text_hidden, s = c->image_size / c->patch_size, n = c->tokens_per_patch;
    if (!c->next || !m->newline) return mms_error_set(err, MMS_ERR_VALUE, "pack_next: not a LLaVA-NeXT model");
    if (c->select_full) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "pack_next: the 'full' select strategy has no square token grid");
    if (gh < 1 || gw < 1 || row0 < 0 || col0 < 0 || rows < 0 || cols < 0 || row0 + rows > gh * s || col0 + cols > gw * s)
        return mms_error_set(err, MMS_ERR_VALUE, "pack_next: rows [%lld, +%lld) x cols [%lld, +%lld) do not fit a %lldx%lld grid of %lld tokens",
                             (long long)row0, (long long)rows, (long long)col0, (long long)cols, (long long)gh, (long long)gw, (long long)s);
    memcpy(out, projected, (size_t)(n * Dt) * sizeof(float)); /* base image */
    float *o = out + n * Dt;
    for (int64_t r = row0; r < row0 + rows; r++) {
        const int64_t ti = r / s, y = r % s;
        for (int64_t col = col0; col < col0 + cols; col++) {
            const int64_t tj = col / s, x = col % s;
            const float *src = projected + ((1 + ti * gw + tj) * n + y * s + x) * Dt;
            memcpy(o, src, (size_t)Dt * sizeof(float));
            o += Dt;
        }
        memcpy(o, m->newline, (size_t)Dt * sizeof(float));
        o += Dt;
    }
    *n_out = n + rows * (cols + 1);
    return MMS_OK;
}
