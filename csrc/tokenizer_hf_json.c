/* tokenizer_hf_json.c -- reading the pipeline parts of a tokenizer.json (normalizer,
 * pre-tokenizer, decoder, post-processor) into an mms_hf_tokenizer, as HF tokenizers
 * deserializes them, defaults included; a type tokenizer_hf.c does not implement is refused
 * by name (MMS_ERR_UNSUPPORTED). */
#include "tokenizer_hf_json.h"

#include <stdarg.h>
#include <stdio.h>

mms_status mms_hf_fail(mms_error *err, mms_status code, const char *name, const char *at, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mms_error_set(err, code, "%s: %s: %s", name, at, msg);
}

/* A {"String": s} or {"Regex": r} pattern: the string in *s, is_regex set. */
static mms_status read_pattern(mms_hf_tokenizer *t, const cJSON *p, const char *at, const char **s, int *is_regex,
                               mms_error *err) {
    const char *str = jstr(p, "String"), *re = jstr(p, "Regex");
    *s = NULL;
    *is_regex = 0;
    if (!str && !re) return FAIL(MMS_ERR_FORMAT, at, "pattern must be {\"String\": ...} or {\"Regex\": ...}");
    *s = str ? str : re;
    *is_regex = str == NULL;
    return MMS_OK;
}

/* prepend_scheme of a Metaspace (older files: add_prefix_space). */
static mms_status read_prepend(mms_hf_tokenizer *t, const cJSON *o, const char *at, hf_prepend *out, mms_error *err) {
    const char *s = jstr(o, "prepend_scheme");
    if (s) {
        if (!strcmp(s, "always")) *out = HF_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = HF_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = HF_PREPEND_NEVER;
        else return FAIL(MMS_ERR_FORMAT, at, "unknown prepend_scheme '%.50s'", s);
        return MMS_OK;
    }
    int aps = jbool(o, "add_prefix_space", 1);
    if (aps < 0) return FAIL(MMS_ERR_FORMAT, at, "add_prefix_space must be a boolean");
    *out = aps ? HF_PREPEND_ALWAYS : HF_PREPEND_NEVER;
    return MMS_OK;
}

/* Metaspace replacement: one character. */
static mms_status read_replacement(mms_hf_tokenizer *t, const cJSON *o, const char *at, char *out, size_t *len,
                                   mms_error *err) {
    const char *r = jstr(o, "replacement");
    if (!r) r = HF_REPLACEMENT_CHAR;
    uint32_t cp;
    size_t n = strlen(r);
    if (n == 0 || n > 4 || (size_t)mms_utf8_next((const uint8_t *)r, n, &cp) != n)
        return FAIL(MMS_ERR_FORMAT, at, "replacement must be one character");
    memcpy(out, r, n + 1);
    *len = n;
    return MMS_OK;
}

/* ==== normalizer, pre-tokenizer, decoder ===================================================== */

mms_status mms_hf_read_normalizer(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err) {
    if (jnull(o)) return MMS_OK;
    const char *type = jstr(o, "type");
    if (!type) return FAIL(MMS_ERR_FORMAT, at, "normalizer without a \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "normalizers");
        if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, at, "Sequence without a \"normalizers\" list");
        for (const cJSON *it = list->child; it; it = it->next) {
            mms_status st = mms_hf_read_normalizer(t, it, at, err);
            if (st) return st;
        }
        return MMS_OK;
    }
    hf_norm n = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(o, "prepend");
        if (!p) return FAIL(MMS_ERR_FORMAT, at, "Prepend without a \"prepend\" string");
        n.kind = HF_NORM_PREPEND;
        n.alen = strlen(p);
        n.a = dup_n(p, n.alen);
        if (!n.a) return NOMEM();
    } else if (!strcmp(type, "Replace")) {
        const char *pat, *content = jstr(o, "content");
        int is_regex;
        mms_status st = read_pattern(t, jget(o, "pattern"), at, &pat, &is_regex, err);
        if (st) return st;
        if (is_regex)
            return FAIL(MMS_ERR_UNSUPPORTED, at, "Replace with the regex '%.100s' is not supported (only string "
                        "patterns)", pat);
        if (!content) return FAIL(MMS_ERR_FORMAT, at, "Replace without a \"content\" string");
        n.kind = HF_NORM_REPLACE;
        n.alen = strlen(pat);
        n.blen = strlen(content);
        n.a = dup_n(pat, n.alen);
        n.b = dup_n(content, n.blen);
        if (!n.a || !n.b) {
            mms_free(n.a);
            mms_free(n.b);
            return NOMEM();
        }
    } else if (!strcmp(type, "Lowercase")) {
        n.kind = HF_NORM_LOWERCASE;
    } else if (!strcmp(type, "NFC")) {
        n.kind = HF_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        n.kind = HF_NORM_NFD;
    } else if (!strcmp(type, "Strip")) {
        n.kind = HF_NORM_STRIP;
        n.left = jbool(o, "strip_left", 1);
        n.right = jbool(o, "strip_right", 1);
        if (n.left < 0 || n.right < 0) return FAIL(MMS_ERR_FORMAT, at, "Strip flags must be booleans");
    } else {
        return FAIL(MMS_ERR_UNSUPPORTED, at, "normalizer type '%.50s' is not supported (supported: Sequence, "
                    "Prepend, Replace, NFC, NFD, Lowercase, Strip)", type);
    }
    if (grow_one((void **)&t->norm, &t->n_norm, sizeof *t->norm)) {
        mms_free(n.a);
        mms_free(n.b);
        return NOMEM();
    }
    t->norm[t->n_norm - 1] = n;
    return MMS_OK;
}

static mms_status read_behavior(mms_hf_tokenizer *t, const cJSON *o, const char *at, hf_behavior *out,
                                mms_error *err) {
    static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *b = jstr(o, "behavior");
    if (!b) return FAIL(MMS_ERR_FORMAT, at, "Split without a \"behavior\"");
    for (int i = 0; i < 5; i++)
        if (!strcmp(b, names[i])) {
            *out = (hf_behavior)i;
            return MMS_OK;
        }
    return FAIL(MMS_ERR_FORMAT, at, "unknown Split behavior '%.50s'", b);
}

mms_status mms_hf_read_pre(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err) {
    if (jnull(o)) return MMS_OK;
    const char *type = jstr(o, "type");
    if (!type) return FAIL(MMS_ERR_FORMAT, at, "pre-tokenizer without a \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "pretokenizers");
        if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, at, "Sequence without a \"pretokenizers\" list");
        for (const cJSON *it = list->child; it; it = it->next) {
            mms_status st = mms_hf_read_pre(t, it, at, err);
            if (st) return st;
        }
        return MMS_OK;
    }
    hf_pre p = {0};
    mms_status st = MMS_OK;
    if (!strcmp(type, "ByteLevel")) {
        p.kind = HF_PRE_BYTELEVEL;
        p.add_prefix_space = jbool(o, "add_prefix_space", 1);
        p.use_regex = jbool(o, "use_regex", 1);
        if (p.add_prefix_space < 0 || p.use_regex < 0)
            return FAIL(MMS_ERR_FORMAT, at, "ByteLevel flags must be booleans");
    } else if (!strcmp(type, "Metaspace")) {
        p.kind = HF_PRE_METASPACE;
        p.split = jbool(o, "split", 1);
        if (p.split < 0) return FAIL(MMS_ERR_FORMAT, at, "Metaspace split must be a boolean");
        if ((st = read_replacement(t, o, at, p.repl, &p.repl_len, err)) ||
            (st = read_prepend(t, o, at, &p.prepend, err)))
            return st;
    } else if (!strcmp(type, "Split")) {
        const char *pat;
        int is_regex;
        p.kind = HF_PRE_SPLIT;
        if ((st = read_pattern(t, jget(o, "pattern"), at, &pat, &is_regex, err)) ||
            (st = read_behavior(t, o, at, &p.behavior, err)))
            return st;
        p.invert = jbool(o, "invert", 0);
        if (p.invert < 0) return FAIL(MMS_ERR_FORMAT, at, "Split invert must be a boolean");
        p.pattern = -1;
        if (is_regex) {
            p.pattern = mms_split_pattern_find(pat, strlen(pat));
            if (p.pattern < 0)
                return FAIL(MMS_ERR_UNSUPPORTED, at, "Split regex '%.300s' is not supported (known patterns: GPT-2, "
                            "Llama 3, Qwen2)", pat);
        } else {
            p.str_len = strlen(pat);
            if (!(p.str = dup_n(pat, p.str_len))) return NOMEM();
        }
    } else if (!strcmp(type, "Digits")) {
        p.kind = HF_PRE_DIGITS;
        p.individual_digits = jbool(o, "individual_digits", 0);
        if (p.individual_digits < 0) return FAIL(MMS_ERR_FORMAT, at, "Digits individual_digits must be a boolean");
    } else {
        return FAIL(MMS_ERR_UNSUPPORTED, at, "pre-tokenizer type '%.50s' is not supported (supported: Sequence, "
                    "ByteLevel, Metaspace, Split, Digits)", type);
    }
    if (grow_one((void **)&t->pre, &t->n_pre, sizeof *t->pre)) {
        mms_free(p.str);
        return NOMEM();
    }
    t->pre[t->n_pre - 1] = p;
    return MMS_OK;
}

mms_status mms_hf_read_decoder(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err) {
    if (jnull(o)) return MMS_OK;
    t->has_decoder = 1;
    const char *type = jstr(o, "type");
    if (!type) return FAIL(MMS_ERR_FORMAT, at, "decoder without a \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "decoders");
        if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, at, "Sequence without a \"decoders\" list");
        for (const cJSON *it = list->child; it; it = it->next) {
            mms_status st = mms_hf_read_decoder(t, it, at, err);
            if (st) return st;
        }
        return MMS_OK;
    }
    hf_dec d = {0};
    mms_status st = MMS_OK;
    const char *a = NULL, *b = NULL; /* strings d keeps copies of */
    char repl[8];                    /* Metaspace replacement, copied below */
    size_t rl;
    if (!strcmp(type, "ByteLevel")) {
        d.kind = HF_DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        d.kind = HF_DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d.kind = HF_DEC_FUSE;
    } else if (!strcmp(type, "Metaspace")) {
        d.kind = HF_DEC_METASPACE;
        if ((st = read_replacement(t, o, at, repl, &rl, err)) || (st = read_prepend(t, o, at, &d.prepend, err)))
            return st;
        a = repl;
    } else if (!strcmp(type, "Replace")) {
        int is_regex;
        d.kind = HF_DEC_REPLACE;
        if ((st = read_pattern(t, jget(o, "pattern"), at, &a, &is_regex, err))) return st;
        if (is_regex)
            return FAIL(MMS_ERR_UNSUPPORTED, at, "Replace decoder with the regex '%.100s' is not supported", a);
        if (!(b = jstr(o, "content"))) return FAIL(MMS_ERR_FORMAT, at, "Replace without a \"content\" string");
    } else if (!strcmp(type, "Strip")) {
        int64_t start, stop;
        d.kind = HF_DEC_STRIP;
        a = jstr(o, "content");
        uint32_t cp;
        if (!a || !*a || (size_t)mms_utf8_next((const uint8_t *)a, strlen(a), &cp) != strlen(a) ||
            jint(jget(o, "start"), 0, 1 << 20, &start) || jint(jget(o, "stop"), 0, 1 << 20, &stop))
            return FAIL(MMS_ERR_FORMAT, at, "Strip needs a one-character \"content\" and integer \"start\", \"stop\"");
        d.start = (int)start;
        d.stop = (int)stop;
    } else {
        return FAIL(MMS_ERR_UNSUPPORTED, at, "decoder type '%.50s' is not supported (supported: Sequence, ByteLevel, "
                    "Metaspace, Replace, ByteFallback, Fuse, Strip)", type);
    }
    if (a) {
        d.alen = strlen(a);
        if (!(d.a = dup_n(a, d.alen))) return NOMEM();
    }
    if (b) {
        d.blen = strlen(b);
        if (!(d.b = dup_n(b, d.blen))) {
            mms_free(d.a);
            return NOMEM();
        }
    }
    if (grow_one((void **)&t->dec, &t->n_dec, sizeof *t->dec)) {
        mms_free(d.a);
        mms_free(d.b);
        return NOMEM();
    }
    t->dec[t->n_dec - 1] = d;
    return MMS_OK;
}

/* ==== post-processor ============================================================================ */

/* Wrap the current template in [pre] $A [post] (a later processor of a Sequence wraps the
 * output of the earlier ones). */
static mms_status wrap_template(mms_hf_tokenizer *t, const int64_t *pre, size_t npre, const int64_t *post,
                                size_t npost, mms_error *err) {
    int64_t *p = NULL;
    size_t n = 0;
    if (append_ids(&p, &n, pre, npre) || append_ids(&p, &n, t->prefix, t->n_prefix)) {
        mms_free(p);
        return NOMEM();
    }
    mms_free(t->prefix);
    t->prefix = p;
    t->n_prefix = n;
    if (append_ids(&t->suffix, &t->n_suffix, post, npost)) return NOMEM();
    return MMS_OK;
}

/* ["token", id] of RobertaProcessing / BertProcessing. */
static int pair_id(const cJSON *v, int64_t *id) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child)) return -1;
    return jint(v->child->next, 0, MAX_VOCAB, id);
}

static mms_status read_template(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err) {
    const cJSON *single = jget(o, "single"), *specials = jget(o, "special_tokens");
    if (!cJSON_IsArray(single)) return FAIL(MMS_ERR_FORMAT, at, "TemplateProcessing without a \"single\" list");
    int64_t pre[64], post[64];
    size_t npre = 0, npost = 0;
    int seen_a = 0;
    for (const cJSON *it = single->child; it; it = it->next) {
        const cJSON *sp = jget(it, "SpecialToken"), *seq = jget(it, "Sequence");
        if (seq) {
            const char *which = jstr(seq, "id");
            if (!which || strcmp(which, "A") || seen_a)
                return FAIL(MMS_ERR_UNSUPPORTED, at, "a single-sequence template must hold $A exactly once");
            seen_a = 1;
            continue;
        }
        const char *name = jstr(sp, "id");
        const cJSON *tok = name ? jget(specials, name) : NULL, *ids = jget(tok, "ids");
        if (!name || !cJSON_IsArray(ids))
            return FAIL(MMS_ERR_FORMAT, at, "template piece without a known special token (%.100s)", name ? name : "?");
        for (const cJSON *v = ids->child; v; v = v->next) {
            int64_t id;
            if (jint(v, 0, MAX_VOCAB, &id) || (seen_a ? npost : npre) >= 64)
                return FAIL(MMS_ERR_FORMAT, at, "special token %.100s: bad ids", name);
            if (seen_a) post[npost++] = id;
            else pre[npre++] = id;
        }
    }
    if (!seen_a) return FAIL(MMS_ERR_UNSUPPORTED, at, "a single-sequence template must hold $A exactly once");
    return wrap_template(t, pre, npre, post, npost, err);
}

mms_status mms_hf_read_post(mms_hf_tokenizer *t, const cJSON *o, const char *at, mms_error *err) {
    if (jnull(o)) return MMS_OK;
    t->has_post = 1;
    const char *type = jstr(o, "type");
    if (!type) return FAIL(MMS_ERR_FORMAT, at, "post-processor without a \"type\"");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = jget(o, "processors");
        if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, at, "Sequence without a \"processors\" list");
        for (const cJSON *it = list->child; it; it = it->next) {
            mms_status st = mms_hf_read_post(t, it, at, err);
            if (st) return st;
        }
        return MMS_OK;
    }
    if (!strcmp(type, "ByteLevel")) return MMS_OK; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) return read_template(t, o, at, err);
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int64_t cls, sep;
        if (pair_id(jget(o, "cls"), &cls) || pair_id(jget(o, "sep"), &sep))
            return FAIL(MMS_ERR_FORMAT, at, "%s needs \"cls\" and \"sep\" as [token, id]", type);
        return wrap_template(t, &cls, 1, &sep, 1, err);
    }
    return FAIL(MMS_ERR_UNSUPPORTED, at, "post-processor type '%.50s' is not supported (supported: "
                "TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence)", type);
}
