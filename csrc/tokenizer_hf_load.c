/* tokenizer_hf_load.c -- building an mms_hf_tokenizer (tokenizer_hf.h) from a tokenizer.json
 * or the GPT-2 file layouts: the BPE model, the added tokens and their matchers, the id
 * tables; the pipeline parts are read by tokenizer_hf_json.c. Every key is read as HF
 * tokenizers deserializes it; a feature tokenizer_hf.c does not implement is refused by name,
 * so a tokenizer that loads never gives silently different ids. */
#include "tokenizer_hf_json.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

/* ==== freeing ================================================================================ */

void mms_hf_tokenizer_free(mms_hf_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_norm; i++) {
        mms_free(t->norm[i].a);
        mms_free(t->norm[i].b);
    }
    for (size_t i = 0; i < t->n_pre; i++) mms_free(t->pre[i].str);
    for (size_t i = 0; i < t->n_dec; i++) {
        mms_free(t->dec[i].a);
        mms_free(t->dec[i].b);
    }
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].match != t->added[i].content) mms_free(t->added[i].match);
        mms_free(t->added[i].content);
    }
    mms_free(t->norm);
    mms_free(t->pre);
    mms_free(t->dec);
    mms_free(t->added);
    mms_free(t->raw.idx);
    mms_free(t->normalized.idx);
    mms_free(t->added_of_id);
    mms_free(t->prefix);
    mms_free(t->suffix);
    mms_bpe_model_free(&t->bpe);
    mms_free(t->name);
    mms_free(t);
}

/* ==== model ======================================================================================= */

/* The merges of a BPE model: "a b" strings or [a, b] pairs, borrowed from the JSON. */
static mms_status read_merges(mms_hf_tokenizer *t, const cJSON *list, merge_line **lines, size_t *n_lines,
                              mms_error *err) {
    *lines = NULL;
    *n_lines = 0;
    if (jnull(list)) return MMS_OK;
    if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, "model.merges", "not a list");
    size_t n = (size_t)cJSON_GetArraySize(list), k = 0;
    merge_line *out = mms_malloc((n + 1) * sizeof *out);
    if (!out) return NOMEM();
    for (const cJSON *it = list->child; it; it = it->next, k++) {
        merge_line m = {0};
        m.lineno = k + 1;
        if (cJSON_IsString(it)) { /* the legacy form: exactly one space */
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) m = (merge_line){s, sp + 1, (size_t)(sp - s), strlen(sp + 1), k + 1};
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            const char *a = it->child->valuestring, *b = it->child->next->valuestring;
            m = (merge_line){a, b, strlen(a), strlen(b), k + 1};
        }
        if (!m.a) {
            mms_free(out);
            return FAIL(MMS_ERR_FORMAT, "model.merges", "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", k + 1);
        }
        out[k] = m;
    }
    *lines = out;
    *n_lines = k;
    return MMS_OK;
}

static mms_status read_model(mms_hf_tokenizer *t, const cJSON *m, mms_error *err) {
    const char *at = "model";
    if (!cJSON_IsObject(m)) return FAIL(MMS_ERR_FORMAT, at, "no \"model\" object");
    const char *type = jstr(m, "type");
    if (type ? strcmp(type, "BPE") != 0 : !jget(m, "merges"))
        return FAIL(MMS_ERR_UNSUPPORTED, at, "model type '%.50s' is not supported (only BPE)", type ? type : "?");
    const cJSON *dropout = jget(m, "dropout");
    if (!jnull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return FAIL(MMS_ERR_UNSUPPORTED, at, "BPE dropout is not supported");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = jget(m, affixes[i]);
        if (!jnull(v) && !(cJSON_IsString(v) && !v->valuestring[0]))
            return FAIL(MMS_ERR_UNSUPPORTED, at, "BPE %s is not supported", affixes[i]);
    }
    t->byte_fallback = jbool(m, "byte_fallback", 0);
    t->fuse_unk = jbool(m, "fuse_unk", 0);
    t->ignore_merges = jbool(m, "ignore_merges", 0);
    if (t->byte_fallback < 0 || t->fuse_unk < 0 || t->ignore_merges < 0)
        return FAIL(MMS_ERR_FORMAT, at, "byte_fallback, fuse_unk and ignore_merges must be booleans");
    const cJSON *unk = jget(m, "unk_token");
    if (!jnull(unk) && !cJSON_IsString(unk)) return FAIL(MMS_ERR_FORMAT, at, "unk_token must be a string or null");
    char what[300];
    snprintf(what, sizeof what, "%s: model.vocab", t->name);
    vocab_build v;
    mms_status st = mms_vocab_build_json(jget(m, "vocab"), what, &v, err);
    if (st) return st;
    merge_line *lines;
    size_t n_lines;
    if ((st = read_merges(t, jget(m, "merges"), &lines, &n_lines, err))) {
        mms_vocab_build_free(&v);
        return st;
    }
    snprintf(what, sizeof what, "%s: model", t->name);
    st = mms_bpe_model_build(&t->bpe, &v, lines, n_lines, what, err);
    mms_free(lines);
    if (st) return st;
    t->unk_id = -1;
    if (cJSON_IsString(unk)) {
        t->unk_id = (int32_t)vocab_find(&t->bpe, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return FAIL(MMS_ERR_FORMAT, at, "unk_token '%.100s' is not in the vocabulary", unk->valuestring);
    }
    return MMS_OK;
}

/* ==== added tokens ================================================================================== */

static int64_t find_added(const mms_hf_tokenizer *t, const char *s, size_t n) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return (int64_t)i;
    return -1;
}

static mms_status add_token(mms_hf_tokenizer *t, const char *content, int64_t id, int special, int lstrip,
                            int rstrip, int single_word, int normalized, mms_error *err) {
    size_t len = strlen(content);
    if (len == 0 || find_added(t, content, len) >= 0) return MMS_OK; /* HF ignores these */
    if (grow_one((void **)&t->added, &t->n_added, sizeof *t->added)) return NOMEM();
    hf_added *a = &t->added[t->n_added - 1];
    *a = (hf_added){(int32_t)id, dup_n(content, len), len, NULL, 0, (uint8_t)special, (uint8_t)lstrip,
                    (uint8_t)rstrip, (uint8_t)single_word, (uint8_t)normalized};
    if (!a->content) {
        t->n_added--;
        return NOMEM();
    }
    a->match = a->content;
    a->match_len = len;
    if (id >= t->vocab_size) t->vocab_size = (int32_t)id + 1;
    return MMS_OK;
}

static mms_status read_added(mms_hf_tokenizer *t, const cJSON *list, mms_error *err) {
    if (jnull(list)) return MMS_OK;
    if (!cJSON_IsArray(list)) return FAIL(MMS_ERR_FORMAT, "added_tokens", "not a list");
    size_t k = 0;
    for (const cJSON *it = list->child; it; it = it->next, k++) {
        int64_t id;
        const char *content = jstr(it, "content");
        int special = jbool(it, "special", 0);
        int flags[4] = {jbool(it, "lstrip", 0), jbool(it, "rstrip", 0), jbool(it, "single_word", 0),
                        jbool(it, "normalized", !special)};
        if (!content || jint(jget(it, "id"), 0, MAX_VOCAB - 1, &id) || special < 0 || flags[0] < 0 || flags[1] < 0 ||
            flags[2] < 0 || flags[3] < 0)
            return FAIL(MMS_ERR_FORMAT, "added_tokens", "entry %zu needs \"id\", \"content\" and boolean flags", k);
        mms_status st = add_token(t, content, id, special, flags[0], flags[1], flags[2], flags[3], err);
        if (st) return st;
    }
    return MMS_OK;
}

/* Sort key of a matcher entry: by first byte, longest first, then specials before the
 * others in file order (HF's pattern order). */
typedef struct match_key {
    uint32_t first, neg_len, order, idx;
} match_key;

static int match_key_cmp(const void *a, const void *b) {
    const match_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->neg_len != y->neg_len) return x->neg_len < y->neg_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static mms_status build_matcher(mms_hf_tokenizer *t, hf_matcher *m, int normalized, mms_error *err) {
    match_key *keys = mms_malloc((t->n_added + 1) * sizeof *keys);
    m->idx = mms_malloc((t->n_added + 1) * sizeof *m->idx);
    if (!keys || !m->idx) {
        mms_free(keys);
        return NOMEM();
    }
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++) {
        const hf_added *a = &t->added[i];
        if (a->normalized != normalized || a->match_len == 0) continue;
        keys[n++] = (match_key){(uint8_t)a->match[0], (uint32_t)(UINT32_MAX - a->match_len),
                                (uint32_t)(a->special ? i : t->n_added + i), (uint32_t)i};
    }
    qsort(keys, n, sizeof *keys, match_key_cmp);
    for (size_t i = 0; i < n; i++) m->idx[i] = (int32_t)keys[i].idx;
    m->n = n;
    size_t k = 0;
    for (uint32_t b = 0; b <= 256; b++) {
        while (k < n && keys[k].first < b) k++;
        m->first[b] = (uint32_t)k;
    }
    mms_free(keys);
    return MMS_OK;
}

/* ==== finishing ====================================================================================== */

/* Options' special tokens, normalized match strings, id tables, matchers and the template. */
static mms_status finish(mms_hf_tokenizer *t, const mms_hf_options *o, mms_error *err) {
    mms_status st;
    if (t->bpe.vocab_size > t->vocab_size) t->vocab_size = t->bpe.vocab_size;
    for (int32_t i = 0; i < t->bpe.vocab_size; i++) t->model_vocab_size += t->bpe.str_off[i] >= 0;
    for (size_t i = 0; i < o->n_special_tokens; i++) {
        const char *c = o->special_tokens[i];
        if (!c || find_added(t, c, strlen(c)) >= 0) continue;
        int64_t id = vocab_find(&t->bpe, c, strlen(c));
        if ((st = add_token(t, c, id >= 0 ? id : t->vocab_size, 1, 0, 0, 0, 0, err))) return st;
    }
    /* Normalized added tokens are searched in normalized text, as their normalized form. */
    mms_buf out = {0}, t1 = {0}, t2 = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        hf_added *a = &t->added[i];
        if (!a->normalized || !t->n_norm) continue;
        out.n = 0;
        if (mms_hf_normalize(t, a->content, a->len, &out, &t1, &t2) || !(a->match = dup_n(out.p, out.n))) {
            a->match = a->content;
            mms_buf_free(&out);
            mms_buf_free(&t1);
            mms_buf_free(&t2);
            return NOMEM();
        }
        a->match_len = out.n;
    }
    mms_buf_free(&out);
    mms_buf_free(&t1);
    mms_buf_free(&t2);
    t->added_of_id = mms_malloc(((size_t)t->vocab_size + 1) * sizeof *t->added_of_id);
    if (!t->added_of_id) return NOMEM();
    for (int32_t i = 0; i < t->vocab_size; i++) t->added_of_id[i] = -1;
    for (size_t i = t->n_added; i-- > 0;) t->added_of_id[t->added[i].id] = (int32_t)i;
    for (uint32_t cp = 0; cp < HF_CHAR_TABLE; cp++) {
        char c[4];
        size_t l = mms_utf8_encode(cp, c);
        t->char_id[cp] = (int32_t)vocab_find(&t->bpe, c, l);
    }
    uint32_t b2u[256];
    mms_bpe_byte_map(b2u, t->char_byte);
    for (int b = 0; b < 256; b++) t->byte_char_len[b] = (uint8_t)mms_utf8_encode(b2u[b], t->byte_char[b]);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_token[b] = (int32_t)vocab_find(&t->bpe, name, 6);
    }
    if ((st = build_matcher(t, &t->raw, 0, err)) || (st = build_matcher(t, &t->normalized, 1, err))) return st;
    if (o->override_post_processor || !t->has_post) {
        int64_t ids[2];
        const char *toks[2] = {o->add_bos ? o->bos_token : NULL, o->add_eos ? o->eos_token : NULL};
        for (int k = 0; k < 2; k++) {
            ids[k] = -1;
            if (!toks[k]) continue;
            int64_t a = find_added(t, toks[k], strlen(toks[k]));
            ids[k] = a >= 0 ? t->added[a].id : vocab_find(&t->bpe, toks[k], strlen(toks[k]));
            if (ids[k] < 0)
                return mms_error_set(err, MMS_ERR_VALUE, "%s: %s token '%.100s' has no id", t->name,
                                     k ? "eos" : "bos", toks[k]);
        }
        t->n_prefix = t->n_suffix = 0;
        if (append_ids(&t->prefix, &t->n_prefix, ids, ids[0] >= 0) ||
            append_ids(&t->suffix, &t->n_suffix, ids + 1, ids[1] >= 0))
            return NOMEM();
    }
    return MMS_OK;
}

mms_hf_options mms_hf_default_options(void) { return (mms_hf_options){0}; }

static mms_hf_tokenizer *new_tokenizer(const char *name, mms_error *err) {
    mms_hf_tokenizer *t = mms_calloc(1, sizeof *t);
    if (t && !(t->name = mms_strdup(name))) {
        mms_free(t);
        t = NULL;
    }
    if (!t) mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
    else t->unk_id = -1;
    return t;
}

/* ==== constructors =================================================================================== */

mms_status mms_hf_tokenizer_create_json(const char *json, size_t len, const char *name, const mms_hf_options *opts,
                                        mms_hf_tokenizer **out, mms_error *err) {
    mms_hf_options dflt = mms_hf_default_options();
    *out = NULL;
    mms_hf_tokenizer *t = new_tokenizer(name ? name : "tokenizer.json", err);
    if (!t) return MMS_ERR_NOMEM;
    /* JSON is UTF-8 (HF's reader refuses anything else); cJSON would copy stray bytes into tokens,
     * which decoders without a byte-level step would then hand out as text */
    mms_status st;
    cJSON *root = NULL;
    const char *end = NULL;
    size_t at = 0;
    for (uint32_t cp; at < len;) {
        int l = mms_utf8_next((const uint8_t *)json + at, len - at, &cp);
        if (!l) break;
        at += (size_t)l;
    }
    if (at < len) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: not UTF-8 (byte %zu)", t->name, at);
        goto done;
    }
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: not a valid JSON object (error near byte %ld)", t->name,
                           root || !end ? 0L : (long)(end - json));
        goto done;
    }
    if ((st = read_model(t, jget(root, "model"), err)) ||
        (st = mms_hf_read_normalizer(t, jget(root, "normalizer"), "normalizer", err)) ||
        (st = mms_hf_read_pre(t, jget(root, "pre_tokenizer"), "pre_tokenizer", err)) ||
        (st = mms_hf_read_decoder(t, jget(root, "decoder"), "decoder", err)) ||
        (st = mms_hf_read_post(t, jget(root, "post_processor"), "post_processor", err)) ||
        (st = read_added(t, jget(root, "added_tokens"), err)))
        goto done;
    t->merge_mode = BPE_MERGE_ONE;
    st = finish(t, opts ? opts : &dflt, err);
done:
    cJSON_Delete(root);
    if (st) mms_hf_tokenizer_free(t);
    else *out = t;
    return st;
}

static mms_status create_gpt2(const char *vocab_json, size_t vocab_len, const char *merges, size_t merges_len,
                              const char *vocab_name, const char *merges_name, const mms_hf_options *opts,
                              mms_hf_tokenizer **out, mms_error *err) {
    mms_hf_options dflt = mms_hf_default_options();
    *out = NULL;
    mms_hf_tokenizer *t = new_tokenizer(merges_name, err);
    if (!t) return MMS_ERR_NOMEM;
    merge_line *lines = NULL;
    size_t n_lines = 0;
    vocab_build v;
    mms_status st;
    cJSON *root = cJSON_ParseWithLength(vocab_json, vocab_len);
    if (!root || !cJSON_IsObject(root)) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: not a JSON object", vocab_name);
        goto done;
    }
    if ((st = mms_vocab_build_json(root, vocab_name, &v, err))) goto done;
    if ((st = mms_bpe_parse_merges(merges, merges_len, 0, -1, &lines, &n_lines, err))) {
        mms_vocab_build_free(&v);
        mms_error_prefix(err, "%s", merges_name);
        goto done;
    }
    if ((st = mms_bpe_model_build(&t->bpe, &v, lines, n_lines, merges_name, err))) goto done;
    /* openai/gpt-2's pipeline: the GPT-2 regex and byte map, merges pass by pass, bytes back. */
    t->merge_mode = BPE_MERGE_PASS;
    if (grow_one((void **)&t->pre, &t->n_pre, sizeof *t->pre) ||
        grow_one((void **)&t->dec, &t->n_dec, sizeof *t->dec)) {
        st = NOMEM();
        goto done;
    }
    t->pre[0] = (hf_pre){.kind = HF_PRE_BYTELEVEL, .add_prefix_space = opts && opts->add_prefix_space, .use_regex = 1};
    t->dec[0] = (hf_dec){.kind = HF_DEC_BYTELEVEL};
    t->has_decoder = 1;
    st = finish(t, opts ? opts : &dflt, err);
done:
    cJSON_Delete(root);
    mms_free(lines);
    if (st) mms_hf_tokenizer_free(t);
    else *out = t;
    return st;
}

mms_status mms_hf_tokenizer_create_gpt2(const char *vocab_json, size_t vocab_len, const char *merges,
                                        size_t merges_len, const char *name, const mms_hf_options *opts,
                                        mms_hf_tokenizer **out, mms_error *err) {
    if (!name) name = "gpt2";
    return create_gpt2(vocab_json, vocab_len, merges, merges_len, name, name, opts, out, err);
}

mms_status mms_hf_tokenizer_load_gpt2(const char *vocab_path, const char *merges_path, const mms_hf_options *opts,
                                      mms_hf_tokenizer **out, mms_error *err) {
    char *vocab = NULL, *merges = NULL;
    size_t vl, ml;
    *out = NULL;
    mms_status st = mms_read_whole_file(vocab_path, &vocab, &vl, err);
    if (!st) st = mms_read_whole_file(merges_path, &merges, &ml, err);
    if (!st) st = create_gpt2(vocab, vl, merges, ml, vocab_path, merges_path, opts, out, err);
    mms_free(vocab);
    mms_free(merges);
    return st;
}

static int is_file(const char *dir, const char *name, char *path, size_t cap) {
    struct stat sb;
    snprintf(path, cap, "%s/%s", dir, name);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

mms_status mms_hf_tokenizer_load(const char *path, const mms_hf_options *opts, mms_hf_tokenizer **out,
                                 mms_error *err) {
    struct stat sb;
    *out = NULL;
    if (stat(path, &sb) != 0)
        return mms_error_set(err, errno == ENOENT ? MMS_ERR_NOT_FOUND : MMS_ERR_IO, "%s: %s", path, strerror(errno));
    char a[4096], b[4096];
    const char *json_path = path;
    if (S_ISDIR(sb.st_mode)) {
        if (!is_file(path, "tokenizer.json", a, sizeof a)) {
            static const char *const layouts[2][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
            for (int k = 0; k < 2; k++)
                if (is_file(path, layouts[k][0], a, sizeof a) && is_file(path, layouts[k][1], b, sizeof b))
                    return mms_hf_tokenizer_load_gpt2(a, b, opts, out, err);
            return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no tokenizer.json, vocab.json + merges.txt or "
                                 "encoder.json + vocab.bpe in this directory", path);
        }
        json_path = a;
    }
    char *json = NULL;
    size_t len;
    mms_status st = mms_read_whole_file(json_path, &json, &len, err);
    if (!st) st = mms_hf_tokenizer_create_json(json, len, json_path, opts, out, err);
    mms_free(json);
    return st;
}
