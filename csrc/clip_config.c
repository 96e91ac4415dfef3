/* clip_config.c -- resolve CLIP / SigLIP / OpenCLIP configs into mms_clip_config, applying
 * transformers v4.47 class defaults for keys config.json omits. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clip_internal.h"

#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)

/* siglip: 0 CLIP, 1 SigLIP, 2 BLIP-2 (class defaults differ) */
static mms_status tower(const mms_json *j, const cJSON *o, const char *what, int siglip, int text,
                        mms_block_config *b, int *layers, float *eps_out, mms_error *err) {
    mms_status rc;
    int64_t hidden, inter, nl, nh;
    double eps;
    const char *act;
    const int blip2 = siglip == 2;
    if (blip2) siglip = 0;
    const int64_t D = MMS_CONFIG_MAX_DIM;
    TRY(mms_json_int_range(j, o, what, "hidden_size", blip2 ? 1408 : siglip ? 768 : (text ? 512 : 768), 1, D, &hidden, err));
    TRY(mms_json_int_range(j, o, what, "intermediate_size", blip2 ? 6144 : siglip ? 3072 : (text ? 2048 : 3072), 1, D, &inter, err));
    TRY(mms_json_int_range(j, o, what, "num_hidden_layers", blip2 ? 39 : 12, 1, MMS_CONFIG_MAX_LAYERS, &nl, err));
    TRY(mms_json_int_range(j, o, what, "num_attention_heads", blip2 ? 16 : siglip ? 12 : (text ? 8 : 12), 1, D, &nh, err));
    TRY(mms_json_float(j, o, what, "layer_norm_eps", siglip || blip2 ? 1e-6 : 1e-5, &eps, err));
    TRY(mms_json_str(j, o, what, "hidden_act", blip2 ? "gelu" : siglip ? "gelu_pytorch_tanh" : "quick_gelu", &act, err));
    int a = mms_act_parse(act);
    if (a < 0) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s.hidden_act '%s' is not supported", j->path, what, act);
    if (hidden <= 0 || inter <= 0 || nl <= 0 || nh <= 0 || hidden % nh || nl > 1000)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: %s: hidden_size %lld must be a positive multiple of num_attention_heads %lld (layers %lld)",
                             j->path, what, (long long)hidden, (long long)nh, (long long)nl);
    memset(b, 0, sizeof *b);
    b->hidden = hidden;
    b->n_heads = nh;
    b->head_dim = hidden / nh;
    b->ffn = inter;
    b->norm = MMS_NORM_LAYER;
    b->norm_eps = (float)eps;
    b->pre_norm = 1;
    b->act = (mms_act)a;
    *layers = (int)nl;
    *eps_out = (float)eps;
    return MMS_OK;
}

/* Sub-config `key` of the root: absent or null -> NULL (the class defaults apply); any other
 * non-object is a broken config. */
static mms_status section(const mms_json *j, const char *key, const cJSON **out, mms_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->root, key);
    *out = cJSON_IsObject(v) ? v : NULL;
    if (v && !*out && !cJSON_IsNull(v))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: key '%s' must be an object", j->path, key);
    return MMS_OK;
}

mms_status mms_clip_config_from_hf(const mms_json *j, mms_clip_config *c, mms_error *err) {
    mms_status rc;
    const char *mt = NULL;
    TRY(mms_json_str(j, j->root, NULL, "model_type", NULL, &mt, err));
    if (!mt) return mms_error_set(err, MMS_ERR_CONFIG, "%s: missing key 'model_type'", j->path);
    int siglip;
    if (strcmp(mt, "clip") == 0) siglip = 0;
    else if (strcmp(mt, "siglip") == 0) siglip = 1;
    else return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: model_type '%s' is not a contrastive model mmsuite supports (clip, siglip)", j->path, mt);
    memset(c, 0, sizeof *c);
    c->kind = siglip ? MMS_CLIP_SIGLIP : MMS_CLIP_HF;
    const cJSON *vc, *tc;
    TRY(section(j, "vision_config", &vc, err));
    TRY(section(j, "text_config", &tc, err));
    TRY(tower(j, vc, "vision_config", siglip, 0, &c->vision, &c->vision_layers, &c->vision_eps, err));
    TRY(tower(j, tc, "text_config", siglip, 1, &c->text, &c->text_layers, &c->text_eps, err));
    TRY(mms_json_int_range(j, vc, "vision_config", "image_size", 224, 1, MMS_CONFIG_MAX_DIM, &c->image_size, err));
    TRY(mms_json_int_range(j, vc, "vision_config", "patch_size", siglip ? 16 : 32, 1, MMS_CONFIG_MAX_DIM, &c->patch_size, err));
    TRY(mms_json_int_range(j, vc, "vision_config", "num_channels", 3, 1, 4, &c->num_channels, err));
    TRY(mms_json_int_range(j, tc, "text_config", "vocab_size", siglip ? 32000 : 49408, 1, MMS_CONFIG_MAX_VOCAB, &c->vocab_size, err));
    TRY(mms_json_int_range(j, tc, "text_config", "max_position_embeddings", siglip ? 64 : 77, 1, MMS_CONFIG_MAX_DIM, &c->max_positions, err));
    TRY(mms_json_int(j, tc, "text_config", "eos_token_id", siglip ? 2 : 49407, &c->eos_token_id, err));
    TRY(mms_json_int(j, tc, "text_config", "pad_token_id", 1, &c->pad_token_id, err));
    TRY(mms_json_int(j, tc, "text_config", "bos_token_id", siglip ? 1 : 49406, &c->bos_token_id, err));
    if (c->patch_size <= 0 || c->image_size <= 0 || c->image_size % c->patch_size)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: vision_config.image_size %lld is not a multiple of patch_size %lld",
                             j->path, (long long)c->image_size, (long long)c->patch_size);
    if (siglip) {
        int use_head;
        TRY(mms_json_bool(j, vc, "vision_config", "vision_use_head", 1, &use_head, err));
        c->projection_dim = c->vision.hidden;
        c->vision_post_norm_all = 1;
        c->vision_map_head = use_head;
        c->pool = MMS_POOL_LAST;
        c->text_causal = 0;
        if (c->text.hidden != c->vision.hidden)
            return mms_error_set(err, MMS_ERR_CONFIG, "%s: SigLIP text hidden_size %lld != vision hidden_size %lld",
                                 j->path, (long long)c->text.hidden, (long long)c->vision.hidden);
    } else {
        TRY(mms_json_int_range(j, j->root, NULL, "projection_dim", 512, 1, MMS_CONFIG_MAX_DIM, &c->projection_dim, err));
        c->vision_class_token = 1;
        c->vision_pre_norm = 1;
        c->pool = c->eos_token_id == 2 ? MMS_POOL_ARGMAX : MMS_POOL_FIRST_EOS;
        c->text_causal = 1;
    }
    c->text.causal = c->text_causal;
    return MMS_OK;
}

mms_status mms_clip_config_from_openclip(const mms_json *j, mms_clip_config *c, mms_error *err) {
    mms_status rc;
    const cJSON *mc = mms_json_obj(j->root, "model_cfg");
    if (!mc) return mms_error_set(err, MMS_ERR_CONFIG, "%s: missing object 'model_cfg'", j->path);
    const cJSON *vc = mms_json_obj(mc, "vision_cfg"), *tc = mms_json_obj(mc, "text_cfg");
    if (!vc || !tc) return mms_error_set(err, MMS_ERR_CONFIG, "%s: model_cfg needs vision_cfg and text_cfg", j->path);
    memset(c, 0, sizeof *c);
    c->kind = MMS_CLIP_OPENCLIP;
    int quick = 0;
    TRY(mms_json_bool(j, mc, "model_cfg", "quick_gelu", 0, &quick, err));
    TRY(mms_json_int_req(j, mc, "model_cfg", "embed_dim", &c->projection_dim, err));
    if (c->projection_dim <= 0 || c->projection_dim > MMS_CONFIG_MAX_DIM)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: key 'model_cfg.embed_dim' = %lld is out of range (expected 1 .. %lld)",
                             j->path, (long long)c->projection_dim, (long long)MMS_CONFIG_MAX_DIM);
    /* vision */
    int64_t width, layers, head_width, psize, isize;
    double ratio;
    const int64_t D = MMS_CONFIG_MAX_DIM;
    TRY(mms_json_int_range(j, vc, "model_cfg.vision_cfg", "width", 768, 1, D, &width, err));
    TRY(mms_json_int_range(j, vc, "model_cfg.vision_cfg", "layers", 12, 1, MMS_CONFIG_MAX_LAYERS, &layers, err));
    TRY(mms_json_int_range(j, vc, "model_cfg.vision_cfg", "head_width", 64, 1, D, &head_width, err));
    TRY(mms_json_float(j, vc, "model_cfg.vision_cfg", "mlp_ratio", 4.0, &ratio, err));
    TRY(mms_json_int_range(j, vc, "model_cfg.vision_cfg", "patch_size", 16, 1, D, &psize, err));
    TRY(mms_json_int_range(j, vc, "model_cfg.vision_cfg", "image_size", 224, 1, D, &isize, err));
    if (!(ratio > 0 && ratio <= 64))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: key 'model_cfg.vision_cfg.mlp_ratio' = %g is out of range (expected > 0 .. 64)", j->path, ratio);
    const char *unsupported[] = {"timm_model_name", "attentional_pool", "no_ln_pre", "output_tokens"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(vc, unsupported[i]);
        if (x && !cJSON_IsNull(x) && !cJSON_IsFalse(x))
            return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: vision_cfg.%s is not supported yet", j->path, unsupported[i]);
    }
    if (width <= 0 || head_width <= 0 || width % head_width || layers <= 0 || psize <= 0 || isize % psize)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: inconsistent vision_cfg (width %lld, head_width %lld, image %lld, patch %lld)",
                             j->path, (long long)width, (long long)head_width, (long long)isize, (long long)psize);
    mms_block_config *v = &c->vision;
    v->hidden = width; v->n_heads = width / head_width; v->head_dim = head_width;
    v->ffn = (int64_t)(width * ratio); v->norm = MMS_NORM_LAYER; v->norm_eps = 1e-5f; v->pre_norm = 1;
    v->act = quick ? MMS_ACT_QUICK_GELU : MMS_ACT_GELU;
    c->vision_layers = (int)layers;
    c->image_size = isize; c->patch_size = psize; c->num_channels = 3;
    c->vision_class_token = 1; c->vision_pre_norm = 1; c->vision_eps = 1e-5f;
    /* text */
    int64_t twidth, theads, tlayers, ctx, vocab;
    TRY(mms_json_int_range(j, tc, "model_cfg.text_cfg", "width", 512, 1, D, &twidth, err));
    TRY(mms_json_int_range(j, tc, "model_cfg.text_cfg", "heads", 8, 1, D, &theads, err));
    TRY(mms_json_int_range(j, tc, "model_cfg.text_cfg", "layers", 12, 1, MMS_CONFIG_MAX_LAYERS, &tlayers, err));
    TRY(mms_json_int_range(j, tc, "model_cfg.text_cfg", "context_length", 77, 1, D, &ctx, err));
    TRY(mms_json_int_range(j, tc, "model_cfg.text_cfg", "vocab_size", 49408, 1, MMS_CONFIG_MAX_VOCAB, &vocab, err));
    TRY(mms_json_float(j, tc, "model_cfg.text_cfg", "mlp_ratio", 4.0, &ratio, err));
    if (!(ratio > 0 && ratio <= 64))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: key 'model_cfg.text_cfg.mlp_ratio' = %g is out of range (expected > 0 .. 64)", j->path, ratio);
    const char *pool = "argmax";
    TRY(mms_json_str(j, tc, "model_cfg.text_cfg", "pool_type", "argmax", &pool, err));
    const cJSON *hf = cJSON_GetObjectItemCaseSensitive(tc, "hf_model_name");
    if (hf && !cJSON_IsNull(hf))
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: text_cfg.hf_model_name (HF text towers) is not supported yet", j->path);
    if (twidth <= 0 || theads <= 0 || twidth % theads || tlayers <= 0 || ctx <= 0 || vocab <= 0)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: inconsistent text_cfg", j->path);
    mms_block_config *t = &c->text;
    t->hidden = twidth; t->n_heads = theads; t->head_dim = twidth / theads;
    t->ffn = (int64_t)(twidth * ratio); t->norm = MMS_NORM_LAYER; t->norm_eps = 1e-5f; t->pre_norm = 1;
    t->act = v->act; t->causal = 1;
    c->text_layers = (int)tlayers;
    c->vocab_size = vocab; c->max_positions = ctx; c->text_causal = 1; c->text_eps = 1e-5f;
    c->eos_token_id = vocab - 1; c->bos_token_id = vocab - 2; c->pad_token_id = 0;
    if (strcmp(pool, "argmax") == 0) c->pool = MMS_POOL_ARGMAX;
    else if (strcmp(pool, "last") == 0) c->pool = MMS_POOL_LAST;
    else return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: text_cfg.pool_type '%s' is not supported", j->path, pool);
    return MMS_OK;
}

mms_status mms_clip_vision_config(const mms_json *j, const cJSON *vc, const char *what, mms_clip_config *c,
                                  mms_error *err) {
    mms_status rc;
    const char *mt = NULL;
    TRY(mms_json_str(j, vc, what, "model_type", "clip_vision_model", &mt, err));
    const int blip2 = strcmp(mt, "blip_2_vision_model") == 0;
    if (strcmp(mt, "clip_vision_model") != 0 && strcmp(mt, "clip") != 0 && !blip2)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s.model_type '%s': only CLIP and BLIP-2 vision towers are supported here",
                             j->path, what, mt);
    memset(c, 0, sizeof *c);
    c->kind = blip2 ? MMS_CLIP_BLIP2 : MMS_CLIP_HF;
    TRY(tower(j, vc, what, blip2 ? 2 : 0, 0, &c->vision, &c->vision_layers, &c->vision_eps, err));
    if (blip2) {
        int qkv_bias;
        TRY(mms_json_bool(j, vc, what, "qkv_bias", 1, &qkv_bias, err));
        c->vision_post_norm_all = 1;
    }
    TRY(mms_json_int_range(j, vc, what, "image_size", 224, 1, MMS_CONFIG_MAX_DIM, &c->image_size, err));
    TRY(mms_json_int_range(j, vc, what, "patch_size", blip2 ? 14 : 32, 1, MMS_CONFIG_MAX_DIM, &c->patch_size, err));
    TRY(mms_json_int_range(j, vc, what, "num_channels", 3, 1, 4, &c->num_channels, err));
    if (c->patch_size <= 0 || c->image_size <= 0 || c->image_size % c->patch_size)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: %s.image_size %lld is not a multiple of patch_size %lld",
                             j->path, what, (long long)c->image_size, (long long)c->patch_size);
    c->vision_class_token = 1;
    c->vision_pre_norm = !blip2;
    c->vision_only = 1;
    return MMS_OK;
}
