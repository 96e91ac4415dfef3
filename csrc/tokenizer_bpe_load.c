/* tokenizer_bpe_load.c -- building byte-level BPE models (tokenizer_bpe_internal.h): merge
 * lines, vocabulary entries, the string -> id hash and the (left, right) -> merge map, shared
 * by the CLIP and the GPT-2 / HF loaders; then the CLIP tokenizer's constructors (tokenizer.h):
 * OpenAI's merges file or HF vocab.json + merges.txt. */
#include "tokenizer_bpe_internal.h"

#include <stdio.h>

/* ==== byte map and merges text ============================================================ */

static int byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

void mms_bpe_byte_map(uint32_t b2u[256], int16_t u2b[0x144]) {
    int k = 0;
    for (int i = 0; i < 0x144; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        b2u[b] = byte_is_printable(b) ? (uint32_t)b : 0x100u + (uint32_t)k++;
        u2b[b2u[b]] = (int16_t)b;
    }
}

static size_t utf8_put(uint32_t cp, char *out) { /* cp < 0x800 here */
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

mms_status mms_bpe_parse_merges(const char *text, size_t len, int skip_first, int32_t limit, merge_line **lines,
                                size_t *n_lines, mms_error *err) {
    size_t cap = 0, n = 0, lineno = 0, pos = 0;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    if (limit >= 0 && cap > (size_t)limit) cap = (size_t)limit; /* OpenAI's file has 5x more lines */
    merge_line *out = mms_malloc((cap + 1) * sizeof *out);
    if (!out) return mms_error_set(err, MMS_ERR_NOMEM, "merges: out of memory");
    while (pos < len && (limit < 0 || n < (size_t)limit)) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        lineno++;
        if (ll && line[ll - 1] == '\r') ll--;
        if (lineno == 1 && (skip_first || (ll >= 8 && memcmp(line, "#version", 8) == 0))) continue;
        /* Fields are separated by spaces or tabs, as Python's str.split() sees them here. */
        const char *f[3];
        size_t fl[3], nf = 0;
        for (size_t j = 0; j < ll;) {
            while (j < ll && (line[j] == ' ' || line[j] == '\t')) j++;
            if (j == ll) break;
            size_t s = j;
            while (j < ll && line[j] != ' ' && line[j] != '\t') j++;
            if (nf < 3) {
                f[nf] = line + s;
                fl[nf] = j - s;
            }
            nf++;
        }
        if (nf != 2) {
            mms_free(out);
            return mms_error_set(err, MMS_ERR_FORMAT,
                                 "merges line %zu: expected two symbols separated by a space, "
                                 "found %zu field(s)", lineno, nf);
        }
        out[n++] = (merge_line){f[0], f[1], fl[0], fl[1], lineno};
    }
    if (limit >= 0 && n < (size_t)limit) {
        mms_free(out);
        return mms_error_set(err, MMS_ERR_FORMAT, "merges: expected %d merges, the text has %zu",
                             (int)limit, n);
    }
    *lines = out;
    *n_lines = n;
    return MMS_OK;
}

/* ==== vocabulary entries ===================================================================== */

void mms_vocab_build_free(vocab_build *v) {
    mms_free(v->pool);
    mms_free(v->offs);
    mms_free(v->lens);
    mms_free(v->ids);
    memset(v, 0, sizeof *v);
}

mms_status mms_vocab_build_alloc(vocab_build *v, size_t n, size_t pool_len, mms_error *err) {
    memset(v, 0, sizeof *v);
    v->pool = mms_malloc(pool_len + 1);
    v->offs = mms_malloc((n + 1) * sizeof *v->offs);
    v->lens = mms_malloc((n + 1) * sizeof *v->lens);
    v->ids = mms_malloc((n + 1) * sizeof *v->ids);
    if (!v->pool || !v->offs || !v->lens || !v->ids) {
        mms_vocab_build_free(v);
        return mms_error_set(err, MMS_ERR_NOMEM, "vocabulary: out of memory");
    }
    return MMS_OK;
}

void mms_vocab_build_add(vocab_build *v, const char *a, size_t alen, const char *b, size_t blen, int32_t id) {
    v->offs[v->n] = (int64_t)v->pool_len;
    memcpy(v->pool + v->pool_len, a, alen);
    if (blen) memcpy(v->pool + v->pool_len + alen, b, blen);
    v->pool_len += alen + blen;
    v->pool[v->pool_len++] = '\0';
    v->lens[v->n] = (int32_t)(alen + blen);
    v->ids[v->n++] = id;
}

mms_status mms_vocab_build_json(const cJSON *obj, const char *what, vocab_build *v, mms_error *err) {
    size_t n = 0, pool = 0;
    memset(v, 0, sizeof *v);
    if (!cJSON_IsObject(obj)) return mms_error_set(err, MMS_ERR_FORMAT, "%s: not a JSON object", what);
    for (const cJSON *it = obj->child; it; it = it->next) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || !(d >= 0 && d < MAX_VOCAB) || d != (double)(int64_t)d)
            return mms_error_set(err, MMS_ERR_FORMAT, "%s: the id of '%.200s' is not an integer in [0, %d)", what,
                                 it->string, MAX_VOCAB);
        n++;
        pool += strlen(it->string) + 1;
    }
    mms_status st = mms_vocab_build_alloc(v, n, pool, err);
    if (st) return st;
    for (const cJSON *it = obj->child; it; it = it->next)
        mms_vocab_build_add(v, it->string, strlen(it->string), "", 0, (int32_t)it->valuedouble);
    return MMS_OK;
}

/* ==== the model ================================================================================ */

void mms_bpe_model_free(bpe_model *m) {
    mms_free(m->pool);
    mms_free(m->str_off);
    mms_free(m->str_len);
    mms_free(m->vocab_slots);
    mms_free(m->merges.slots);
    mms_free(m->merges.result_of);
    memset(m, 0, sizeof *m);
}

/* "what: " in front of a message when there is a what. */
#define WHAT_FMT "%s%s"
#define WHAT_ARGS(w) (w) ? (w) : "", (w) ? ": " : ""

static mms_status build_merges(bpe_model *m, const merge_line *lines, size_t n_lines, const char *what,
                               mms_error *err) {
    m->n_merges = (int32_t)n_lines;
    m->merges.mask = mms_pow2_at_least(2 * n_lines + 1) - 1;
    m->merges.slots = mms_malloc((m->merges.mask + 1) * sizeof *m->merges.slots);
    m->merges.result_of = mms_malloc((n_lines + 1) * sizeof *m->merges.result_of);
    size_t cat_cap = 64;
    char *cat = mms_malloc(cat_cap);
    mms_status st = MMS_OK;
    if (!m->merges.slots || !m->merges.result_of || !cat) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "merges: out of memory");
        goto done;
    }
    for (size_t i = 0; i <= m->merges.mask; i++) m->merges.slots[i].key = MERGE_EMPTY;
    for (size_t r = 0; r < n_lines; r++) {
        const merge_line *ml = &lines[r];
        if (ml->alen + ml->blen > cat_cap) {
            mms_free(cat);
            cat_cap = 2 * (ml->alen + ml->blen);
            if (!(cat = mms_malloc(cat_cap))) {
                st = mms_error_set(err, MMS_ERR_NOMEM, "merges: out of memory");
                goto done;
            }
        }
        memcpy(cat, ml->a, ml->alen);
        memcpy(cat + ml->alen, ml->b, ml->blen);
        int64_t a = vocab_find(m, ml->a, ml->alen), b = vocab_find(m, ml->b, ml->blen);
        int64_t res = vocab_find(m, cat, ml->alen + ml->blen);
        if (a < 0 || b < 0 || res < 0) {
            const char *bad = a < 0 ? ml->a : b < 0 ? ml->b : cat;
            size_t wl = a < 0 ? ml->alen : b < 0 ? ml->blen : ml->alen + ml->blen;
            st = mms_error_set(err, MMS_ERR_FORMAT, WHAT_FMT "merges line %zu: '%.*s' is not in the vocabulary",
                               WHAT_ARGS(what), ml->lineno, (int)(wl > 200 ? 200 : wl), bad);
            goto done;
        }
        uint64_t key = (uint64_t)a << 32 | (uint64_t)b;
        size_t i = merge_hash(key, m->merges.mask);
        while (m->merges.slots[i].key != MERGE_EMPTY && m->merges.slots[i].key != key) i = (i + 1) & m->merges.mask;
        m->merges.slots[i] = (merge_slot){key, (int32_t)r, (int32_t)res};
        m->merges.result_of[r] = (int32_t)res;
    }
done:
    mms_free(cat);
    return st;
}

mms_status mms_bpe_model_build(bpe_model *m, vocab_build *v, const merge_line *lines, size_t n_lines,
                               const char *what, mms_error *err) {
    mms_status st = MMS_OK;
    memset(m, 0, sizeof *m);
    int32_t max_id = -1;
    for (size_t i = 0; i < v->n; i++) max_id = v->ids[i] > max_id ? v->ids[i] : max_id;
    m->vocab_size = max_id + 1;
    m->pool = v->pool;
    v->pool = NULL;
    m->str_off = mms_malloc(((size_t)m->vocab_size + 1) * sizeof *m->str_off);
    m->str_len = mms_calloc((size_t)m->vocab_size + 1, sizeof *m->str_len);
    m->vocab_mask = mms_pow2_at_least(2 * v->n) - 1;
    m->vocab_slots = mms_malloc((m->vocab_mask + 1) * sizeof *m->vocab_slots);
    if (!m->str_off || !m->str_len || !m->vocab_slots) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "vocabulary: out of memory");
        goto done;
    }
    memset(m->vocab_slots, 0xFF, (m->vocab_mask + 1) * sizeof *m->vocab_slots);
    for (int32_t i = 0; i < m->vocab_size; i++) m->str_off[i] = -1;
    for (size_t i = 0; i < v->n; i++) {
        int32_t id = v->ids[i];
        if (m->str_off[id] >= 0) {
            st = mms_error_set(err, MMS_ERR_FORMAT, WHAT_FMT "vocabulary: id %d is given to both '%.100s' and '%.100s'",
                               WHAT_ARGS(what), (int)id, m->pool + m->str_off[id], m->pool + v->offs[i]);
            goto done;
        }
        m->str_off[id] = v->offs[i];
        m->str_len[id] = v->lens[i];
    }
    /* An equal string already there is replaced: the later id wins, as dict(zip(...)). */
    for (size_t i = 0; i < v->n; i++) *vocab_slot(m, m->pool + v->offs[i], (size_t)v->lens[i]) = v->ids[i];
    st = build_merges(m, lines, n_lines, what, err);
done:
    mms_vocab_build_free(v);
    if (st) mms_bpe_model_free(m);
    return st;
}

/* ==== the CLIP tokenizer ======================================================================== */

void mms_bpe_tokenizer_free(mms_bpe_tokenizer *t) {
    if (!t) return;
    mms_bpe_model_free(&t->m);
    mms_free(t->cache);
    mms_free(t->bytes);
    mms_free(t->bytes_off);
    mms_free(t);
}

/* Finish a CLIP tokenizer from its vocabulary (taken over, even on error) and merge lines:
 * token bytes, start symbols, SOT/EOT. */
static mms_status tokenizer_build(vocab_build *v, const merge_line *lines, size_t n_lines,
                                  mms_bpe_tokenizer **out, mms_error *err) {
    mms_bpe_tokenizer *t = mms_calloc(1, sizeof *t);
    if (!t) {
        mms_vocab_build_free(v);
        return mms_error_set(err, MMS_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t pool_len = v->pool_len;
    mms_status st = mms_bpe_model_build(&t->m, v, lines, n_lines, NULL, err);
    if (st) {
        mms_free(t);
        return st;
    }
    const bpe_model *m = &t->m;
    t->bytes = mms_malloc(pool_len + 1);
    t->bytes_off = mms_malloc(((size_t)m->vocab_size + 1) * sizeof *t->bytes_off);
    t->cache = mms_calloc(1, sizeof *t->cache);
    if (!t->bytes || !t->bytes_off || !t->cache) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    /* Token bytes: each character mapped back through the byte map. A character outside
     * the alphabet (an added token of an HF vocabulary) keeps its UTF-8 bytes. */
    uint32_t b2u[256];
    int16_t u2b[0x144];
    mms_bpe_byte_map(b2u, u2b);
    size_t nb = 0;
    for (int32_t id = 0; id < m->vocab_size; id++) {
        t->bytes_off[id] = (int64_t)nb;
        size_t n;
        const uint8_t *s = (const uint8_t *)bpe_model_token(m, id, &n);
        for (size_t j = 0; s && j < n;) {
            uint32_t cp;
            int l = mms_utf8_next(s + j, n - j, &cp);
            if (l == 0) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: token %d is not valid UTF-8", (int)id);
                goto done;
            }
            if (cp < 0x144 && u2b[cp] >= 0) t->bytes[nb++] = (uint8_t)u2b[cp];
            else for (int k = 0; k < l; k++) t->bytes[nb++] = s[j + (size_t)k];
            j += (size_t)l;
        }
    }
    t->bytes_off[m->vocab_size] = (int64_t)nb;

    /* Symbols a piece starts from. */
    for (int b = 0; b < 256; b++) {
        char sym[8];
        size_t l = utf8_put(b2u[b], sym);
        t->byte_id[b] = (int32_t)vocab_find(m, sym, l);
        memcpy(sym + l, "</w>", 4);
        t->byte_eow_id[b] = (int32_t)vocab_find(m, sym, l + 4);
        if (t->byte_id[b] < 0 || t->byte_eow_id[b] < 0) {
            st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: byte symbol '%.*s' is missing "
                               "(not a CLIP BPE vocabulary?)",
                               (int)(t->byte_id[b] < 0 ? l : l + 4), sym);
            goto done;
        }
    }
    t->sot_id = (int32_t)vocab_find(m, SOT_STRING, strlen(SOT_STRING));
    t->eot_id = (int32_t)vocab_find(m, EOT_STRING, strlen(EOT_STRING));
    if (t->sot_id < 0 || t->eot_id < 0)
        st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: special token %s is missing",
                           t->sot_id < 0 ? SOT_STRING : EOT_STRING);
done:
    if (st != MMS_OK) {
        mms_bpe_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MMS_OK;
}

mms_status mms_bpe_tokenizer_create_openai(const char *merges_text, size_t merges_len,
                                           int32_t n_merges, mms_bpe_tokenizer **out,
                                           mms_error *err) {
    merge_line *lines;
    size_t n_lines;
    vocab_build v;
    *out = NULL;
    mms_status st = mms_bpe_parse_merges(merges_text, merges_len, 1, n_merges < 0 ? -1 : n_merges, &lines,
                                         &n_lines, err);
    if (st) return st;
    if (n_lines > MAX_VOCAB) {
        mms_free(lines);
        return mms_error_set(err, MMS_ERR_FORMAT, "merges: %zu merges is too many", n_lines);
    }
    /* Ids as the reference builds them: bytes, bytes + "</w>", merges, specials. The byte
     * symbols go in increasing code point order, which is the map's order (bs list). */
    size_t pool = 256 * 2 * (2 + 1) + 256 * 4 + sizeof SOT_STRING + sizeof EOT_STRING;
    for (size_t i = 0; i < n_lines; i++) pool += lines[i].alen + lines[i].blen + 1;
    if ((st = mms_vocab_build_alloc(&v, 512 + n_lines + 2, pool, err))) {
        mms_free(lines);
        return st;
    }
    uint32_t b2u[256];
    int16_t u2b[0x144];
    mms_bpe_byte_map(b2u, u2b);
    int32_t id = 0;
    for (int eow = 0; eow < 2; eow++)
        for (uint32_t cp = 0; cp < 0x144; cp++) {
            if (u2b[cp] < 0) continue;
            char sym[4];
            size_t l = utf8_put(cp, sym);
            mms_vocab_build_add(&v, sym, l, "</w>", eow ? 4 : 0, id++);
        }
    for (size_t i = 0; i < n_lines; i++)
        mms_vocab_build_add(&v, lines[i].a, lines[i].alen, lines[i].b, lines[i].blen, id++);
    mms_vocab_build_add(&v, SOT_STRING, strlen(SOT_STRING), "", 0, id++);
    mms_vocab_build_add(&v, EOT_STRING, strlen(EOT_STRING), "", 0, id++);
    st = tokenizer_build(&v, lines, n_lines, out, err);
    mms_free(lines);
    return st;
}

mms_status mms_bpe_tokenizer_create_hf(const char *vocab_json, size_t vocab_len,
                                       const char *merges_text, size_t merges_len,
                                       mms_bpe_tokenizer **out, mms_error *err) {
    merge_line *lines = NULL;
    size_t n_lines = 0;
    vocab_build v;
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(vocab_json, vocab_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mms_error_set(err, MMS_ERR_FORMAT, "vocab.json: not a JSON object");
    }
    mms_status st = mms_vocab_build_json(root, "vocab.json", &v, err);
    cJSON_Delete(root);
    if (st) return st;
    if ((st = mms_bpe_parse_merges(merges_text, merges_len, 0, -1, &lines, &n_lines, err))) {
        mms_vocab_build_free(&v);
        return st;
    }
    st = tokenizer_build(&v, lines, n_lines, out, err);
    mms_free(lines);
    return st;
}

mms_status mms_bpe_tokenizer_load_hf(const char *vocab_json_path, const char *merges_path,
                                     mms_bpe_tokenizer **out, mms_error *err) {
    char *vocab = NULL, *merges = NULL;
    size_t vl, ml;
    *out = NULL;
    mms_status st = mms_read_whole_file(vocab_json_path, &vocab, &vl, err);
    if (!st) st = mms_read_whole_file(merges_path, &merges, &ml, err);
    if (!st) st = mms_bpe_tokenizer_create_hf(vocab, vl, merges, ml, out, err);
    mms_free(vocab);
    mms_free(merges);
    return st;
}
