/* decoder_config.c -- resolve a causal LM's config.json (or a VLM's text_config) into
 * mms_decoder_config, with transformers v4.47 class defaults for the keys config.json omits. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "decoder.h"

#define TRY(e) do { if ((rc = (e)) != MMS_OK) return rc; } while (0)

typedef struct family_defaults {
    const char *model_type;
    mms_decoder_family family;
    int64_t vocab, hidden, ffn, layers, heads, kv_heads, max_pos;
    double eps;
    const char *act;
    int tie;
} family_defaults;

/* transformers v4.47 defaults (LlamaConfig, MistralConfig, Qwen2Config, OPTConfig) */
static const family_defaults k_families[] = {
    {"llama", MMS_DEC_LLAMA, 32000, 4096, 11008, 32, 32, -1, 2048, 1e-6, "silu", 0},
    {"mistral", MMS_DEC_MISTRAL, 32000, 4096, 14336, 32, 32, 8, 4096 * 32, 1e-6, "silu", 0},
    {"qwen2", MMS_DEC_QWEN2, 151936, 4096, 22016, 32, 32, 32, 32768, 1e-6, "silu", 0},
    {"opt", MMS_DEC_OPT, 50272, 768, 3072, 12, 12, -1, 2048, 1e-5, "relu", 1},
};

static mms_status parse_rope(const mms_json *j, const cJSON *o, const char *what, mms_decoder_config *c,
                             mms_error *err) {
    mms_status rc;
    mms_rope_config *r = &c->rope;
    r->rot_dim = c->block.head_dim;
    r->kind = MMS_ROPE_DEFAULT;
    r->factor = 1.0;
    /* transformers >= 5 writes everything into "rope_parameters" (rope_theta included);
     * older configs have top-level rope_theta and an optional "rope_scaling" */
    const cJSON *rs = mms_json_obj(o, "rope_parameters");
    const char *key = "rope_parameters";
    if (rs) {
        TRY(mms_json_float(j, rs, what, "rope_theta", 10000.0, &r->theta, err));
    } else {
        TRY(mms_json_float(j, o, what, "rope_theta", 10000.0, &r->theta, err));
        rs = mms_json_obj(o, "rope_scaling");
        key = "rope_scaling";
    }
    if (!rs) return MMS_OK;
    char w2[96];
    snprintf(w2, sizeof w2, "%s%s%s", what ? what : "", what ? "." : "", key);
    const char *type = NULL;
    TRY(mms_json_str(j, rs, w2, "rope_type", NULL, &type, err));
    if (!type) TRY(mms_json_str(j, rs, w2, "type", "default", &type, err));
    if (mms_json_obj(rs, "mrope_section"))
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s.mrope_section (multimodal RoPE) is not supported by this decoder", j->path, w2);
    TRY(mms_json_float(j, rs, w2, "factor", 1.0, &r->factor, err));
    if (strcmp(type, "default") == 0) {
        r->kind = MMS_ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        r->kind = MMS_ROPE_LINEAR;
    } else if (strcmp(type, "dynamic") == 0) {
        r->kind = MMS_ROPE_DYNAMIC;
    } else if (strcmp(type, "llama3") == 0) {
        r->kind = MMS_ROPE_LLAMA3;
        TRY(mms_json_float(j, rs, w2, "low_freq_factor", 1.0, &r->low_freq_factor, err));
        TRY(mms_json_float(j, rs, w2, "high_freq_factor", 4.0, &r->high_freq_factor, err));
        TRY(mms_json_int(j, rs, w2, "original_max_position_embeddings", 8192, &r->original_max_pos, err));
        if (r->high_freq_factor <= r->low_freq_factor)
            return mms_error_set(err, MMS_ERR_CONFIG, "%s: %s: high_freq_factor must exceed low_freq_factor", j->path, w2);
    } else {
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s type '%s' is not supported (default, linear, dynamic, llama3)",
                             j->path, w2, type);
    }
    if (r->factor <= 0) return mms_error_set(err, MMS_ERR_CONFIG, "%s: %s.factor must be positive", j->path, w2);
    return MMS_OK;
}

static mms_status opt_int(const mms_json *j, const cJSON *o, const char *what, const char *key, int64_t *out,
                          mms_error *err) {
    /* token ids may be null in config.json */
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (v && cJSON_IsNull(v)) { *out = -1; return MMS_OK; }
    return mms_json_int(j, o, what, key, *out, out, err);
}

/* T5Config (v4.47 defaults): the decoder stack's config; the encoder uses the same block with
 * n_enc_layers layers, no causal mask and no cross-attention (t5.c). */
static mms_status parse_t5(const mms_json *j, const cJSON *o, const char *what, mms_decoder_config *c, mms_error *err) {
    mms_status rc;
    int64_t d_model, d_kv, d_ff, layers, dec_layers, heads;
    double eps;
    const char *ffp;
    TRY(mms_json_int_range(j, o, what, "vocab_size", 32128, 1, MMS_CONFIG_MAX_VOCAB, &c->vocab, err));
    TRY(mms_json_int_range(j, o, what, "d_model", 512, 1, MMS_CONFIG_MAX_DIM, &d_model, err));
    TRY(mms_json_int_range(j, o, what, "d_kv", 64, 1, MMS_CONFIG_MAX_DIM, &d_kv, err));
    TRY(mms_json_int_range(j, o, what, "d_ff", 2048, 1, MMS_CONFIG_MAX_DIM, &d_ff, err));
    TRY(mms_json_int_range(j, o, what, "num_layers", 6, 1, MMS_CONFIG_MAX_LAYERS, &layers, err));
    dec_layers = layers;
    TRY(opt_int(j, o, what, "num_decoder_layers", &dec_layers, err));
    if (dec_layers < 0) dec_layers = layers;
    TRY(mms_json_int_range(j, o, what, "num_heads", 8, 1, MMS_CONFIG_MAX_DIM, &heads, err));
    TRY(mms_json_int(j, o, what, "relative_attention_num_buckets", 32, &c->rel_buckets, err));
    TRY(mms_json_int(j, o, what, "relative_attention_max_distance", 128, &c->rel_max_distance, err));
    TRY(mms_json_float(j, o, what, "layer_norm_epsilon", 1e-6, &eps, err));
    TRY(mms_json_str(j, o, what, "feed_forward_proj", "relu", &ffp, err));
    if (d_model <= 0 || d_kv <= 0 || d_ff <= 0 || layers <= 0 || layers > 1000 || dec_layers <= 0 || dec_layers > 1000 ||
        heads <= 0 || c->vocab <= 0 || c->rel_buckets < 2 || c->rel_max_distance < 2 || c->rel_max_distance > (1 << 20))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: inconsistent T5 config (d_model %lld, d_kv %lld, d_ff %lld, layers %lld/%lld, heads %lld, buckets %lld, max_distance %lld)",
                             j->path, (long long)d_model, (long long)d_kv, (long long)d_ff, (long long)layers,
                             (long long)dec_layers, (long long)heads, (long long)c->rel_buckets, (long long)c->rel_max_distance);
    /* "gated-gelu" -> gated, gelu_new (transformers' special case); "relu"; "gated-silu" ... */
    const char *dash = strrchr(ffp, '-');
    const int gated = strncmp(ffp, "gated-", 6) == 0;
    if ((dash && !gated) || (!dash && gated))
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: feed_forward_proj '%s' (expected ACT or gated-ACT)", j->path, ffp);
    const char *act = dash ? dash + 1 : ffp;
    if (strcmp(ffp, "gated-gelu") == 0) act = "gelu_new";
    int a = mms_act_parse(act);
    if (a < 0) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: feed_forward_proj '%s' is not supported", j->path, ffp);
    mms_block_config *b = &c->block;
    b->hidden = d_model; b->n_heads = heads; b->n_kv_heads = heads; b->head_dim = d_kv; b->ffn = d_ff;
    b->norm = MMS_NORM_RMS; b->norm_eps = (float)eps; b->pre_norm = 1; b->act = (mms_act)a; b->gated = gated;
    b->causal = 1; b->attn_scale = 1.0f; /* T5 folds the 1/sqrt(d) into its initialization */
    b->cross_dim = d_model; b->cross_every = 1;
    c->family = MMS_DEC_T5;
    c->n_layers = (int)dec_layers;
    c->n_enc_layers = (int)layers;
    c->max_pos = 1 << 20; /* relative positions: no trained limit */
    c->final_norm = 1;
    c->rope.kind = MMS_ROPE_NONE;
    TRY(mms_json_bool(j, o, what, "tie_word_embeddings", 1, &c->tie_embeddings, err));
    c->out_scale = c->tie_embeddings ? 1.0f / sqrtf((float)d_model) : 1.0f;
    c->pad_token_id = 0; c->eos_token_id = 1; c->bos_token_id = -1; c->decoder_start_token_id = 0;
    TRY(opt_int(j, o, what, "pad_token_id", &c->pad_token_id, err));
    TRY(opt_int(j, o, what, "eos_token_id", &c->eos_token_id, err));
    TRY(opt_int(j, o, what, "bos_token_id", &c->bos_token_id, err));
    c->decoder_start_token_id = c->pad_token_id;
    TRY(opt_int(j, o, what, "decoder_start_token_id", &c->decoder_start_token_id, err));
    return MMS_OK;
}

mms_status mms_decoder_config_parse(const mms_json *j, const cJSON *o, const char *what, mms_decoder_config *c,
                                    mms_error *err) {
    mms_status rc;
    memset(c, 0, sizeof *c);
    c->out_scale = 1.0f;
    c->decoder_start_token_id = -1;
    const char *mt = NULL;
    TRY(mms_json_str(j, o, what, "model_type", NULL, &mt, err));
    if (!mt) return mms_error_set(err, MMS_ERR_CONFIG, "%s: %s%smodel_type is missing", j->path, what ? what : "", what ? "." : "");
    if (strcmp(mt, "t5") == 0) return parse_t5(j, o, what, c, err);
    const family_defaults *f = NULL;
    for (size_t i = 0; i < sizeof k_families / sizeof k_families[0]; i++)
        if (strcmp(mt, k_families[i].model_type) == 0) f = &k_families[i];
    if (!f)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: language model type '%s' is not supported (llama, mistral, qwen2, opt)",
                             j->path, mt);
    c->family = f->family;
    mms_block_config *b = &c->block;
    int64_t hidden, ffn, layers, heads, kv, head_dim;
    double eps;
    const char *act;
    const int opt = f->family == MMS_DEC_OPT;
    TRY(mms_json_int_range(j, o, what, "vocab_size", f->vocab, 1, MMS_CONFIG_MAX_VOCAB, &c->vocab, err));
    TRY(mms_json_int_range(j, o, what, "hidden_size", f->hidden, 1, MMS_CONFIG_MAX_DIM, &hidden, err));
    TRY(mms_json_int_range(j, o, what, opt ? "ffn_dim" : "intermediate_size", f->ffn, 1, MMS_CONFIG_MAX_DIM, &ffn, err));
    TRY(mms_json_int_range(j, o, what, "num_hidden_layers", f->layers, 1, MMS_CONFIG_MAX_LAYERS, &layers, err));
    TRY(mms_json_int_range(j, o, what, "num_attention_heads", f->heads, 1, MMS_CONFIG_MAX_DIM, &heads, err));
    TRY(mms_json_int_range(j, o, what, "max_position_embeddings", f->max_pos, 1, MMS_CONFIG_MAX_POSITIONS, &c->max_pos, err));
    TRY(mms_json_str(j, o, what, opt ? "activation_function" : "hidden_act", f->act, &act, err));
    if (heads <= 0 || hidden <= 0 || ffn <= 0 || layers <= 0 || layers > 1000 || c->vocab <= 0)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: hidden_size, intermediate size, layers, heads and vocab_size must be positive", j->path);
    /* kv heads: absent or null -> num_attention_heads (Llama); Mistral's default is 8 */
    const cJSON *kvj = o ? cJSON_GetObjectItemCaseSensitive(o, "num_key_value_heads") : NULL;
    if (!kvj || cJSON_IsNull(kvj)) kv = f->kv_heads > 0 ? f->kv_heads : heads;
    else TRY(mms_json_int(j, o, what, "num_key_value_heads", heads, &kv, err));
    const cJSON *hdj = o ? cJSON_GetObjectItemCaseSensitive(o, "head_dim") : NULL;
    if (!hdj || cJSON_IsNull(hdj)) {
        if (hidden % heads) return mms_error_set(err, MMS_ERR_CONFIG, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", j->path, (long long)hidden, (long long)heads);
        head_dim = hidden / heads;
    } else {
        TRY(mms_json_int_range(j, o, what, "head_dim", hidden / heads, 1, MMS_CONFIG_MAX_DIM, &head_dim, err));
    }
    if (kv <= 0 || heads % kv || head_dim <= 0 || head_dim % 2)
        return mms_error_set(err, MMS_ERR_CONFIG, "%s: %lld attention heads cannot share %lld key/value heads (head_dim %lld)",
                             j->path, (long long)heads, (long long)kv, (long long)head_dim);
    int a = mms_act_parse(act);
    if (a < 0) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: activation '%s' is not supported", j->path, act);
    b->hidden = hidden; b->n_heads = heads; b->n_kv_heads = kv; b->head_dim = head_dim; b->ffn = ffn;
    b->act = (mms_act)a; b->causal = 1; b->pre_norm = 1;
    c->n_layers = (int)layers;
    if (opt) {
        int before, bias = 1, affine = 1;
        int64_t proj;
        TRY(mms_json_bool(j, o, what, "do_layer_norm_before", 1, &before, err));
        TRY(mms_json_bool(j, o, what, "enable_bias", 1, &bias, err));
        TRY(mms_json_bool(j, o, what, "layer_norm_elementwise_affine", 1, &affine, err));
        TRY(mms_json_int(j, o, what, "word_embed_proj_dim", hidden, &proj, err));
        if (!bias || !affine || proj != hidden)
            return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: OPT variants without biases/affine norms or with word_embed_proj_dim != hidden_size are not supported", j->path);
        int removed;
        TRY(mms_json_bool(j, o, what, "_remove_final_layer_norm", 0, &removed, err));
        b->pre_norm = before;
        c->final_norm = before && !removed; /* HF builds final_layer_norm only for pre-LN OPT */
        b->norm = MMS_NORM_LAYER;
        b->norm_eps = 1e-5f;
        b->gated = 0;
        c->learned_pos = 1;
        c->pos_offset = 2;
        c->rope.kind = MMS_ROPE_NONE;
    } else {
        TRY(mms_json_float(j, o, what, "rms_norm_eps", f->eps, &eps, err));
        c->final_norm = 1;
        b->norm = MMS_NORM_RMS;
        b->norm_eps = (float)eps;
        b->gated = 1;
        int bias_attn = 0, bias_mlp = 0;
        TRY(mms_json_bool(j, o, what, "attention_bias", 0, &bias_attn, err));
        TRY(mms_json_bool(j, o, what, "mlp_bias", 0, &bias_mlp, err));
        (void)bias_attn; (void)bias_mlp; /* biases are picked up from the checkpoint when present */
        TRY(parse_rope(j, o, what, c, err));
        if (f->family == MMS_DEC_MISTRAL) {
            const cJSON *sw = o ? cJSON_GetObjectItemCaseSensitive(o, "sliding_window") : NULL;
            int64_t win = 4096;
            if (sw && cJSON_IsNull(sw)) win = 0;
            else TRY(mms_json_int(j, o, what, "sliding_window", 4096, &win, err));
            b->window = win > 0 ? win : 0;
        } else if (f->family == MMS_DEC_QWEN2) {
            int use = 0;
            TRY(mms_json_bool(j, o, what, "use_sliding_window", 0, &use, err));
            if (use) return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: Qwen2 use_sliding_window (per-layer windows) is not supported", j->path);
        }
    }
    TRY(mms_json_bool(j, o, what, "tie_word_embeddings", f->tie, &c->tie_embeddings, err));
    c->bos_token_id = opt ? 2 : 1;
    c->eos_token_id = 2;
    c->pad_token_id = opt ? 1 : -1;
    TRY(opt_int(j, o, what, "bos_token_id", &c->bos_token_id, err));
    TRY(opt_int(j, o, what, "pad_token_id", &c->pad_token_id, err));
    /* eos may be a list (Llama 3); the first id is reported here, Python reads the full list */
    const cJSON *eos = o ? cJSON_GetObjectItemCaseSensitive(o, "eos_token_id") : NULL;
    if (eos && cJSON_IsArray(eos)) {
        const cJSON *e0 = cJSON_GetArrayItem(eos, 0);
        /* (the range check: casting 1e67 to int64 is undefined behaviour) */
        c->eos_token_id = e0 && cJSON_IsNumber(e0) && fabs(e0->valuedouble) <= 9e15 ? (int64_t)e0->valuedouble : -1;
    } else {
        TRY(opt_int(j, o, what, "eos_token_id", &c->eos_token_id, err));
    }
    return MMS_OK;
}
