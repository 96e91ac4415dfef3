/* tokenizer_bpe.c -- the CLIP BPE tokenizer of tokenizer.h: vocabulary loading (OpenAI
 * merges file or HF vocab.json + merges.txt), the pre-tokenizer, the merge loop with its
 * word cache, batch encoding to padded rows, and decoding.
 *
 * Symbols are token ids from the start: every byte symbol, "byte</w>" symbol and merge
 * result is a vocabulary entry, so a merge is a lookup (left id, right id) -> (rank,
 * result id) in an integer hash map and no strings are built while encoding. */
#include "tokenizer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text_util.h"

#define SOT_STRING "<|startoftext|>"
#define EOT_STRING "<|endoftext|>"
#define MAX_VOCAB (1 << 24) /* ids above this are refused: they would size the id tables */

/* ==== hashing and the two maps ============================================================ */

/* (left id, right id) -> (rank, result id); open addressing, linear probing. */
typedef struct merge_slot {
    uint64_t key; /* left << 32 | right; MERGE_EMPTY if unused */
    int32_t rank, result;
} merge_slot;
#define MERGE_EMPTY UINT64_MAX

typedef struct merge_map {
    merge_slot *slots; /* (mask + 1,) */
    size_t mask;
} merge_map;

static inline size_t merge_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* The slot holding (left, right), or NULL. Hot: called for every adjacent symbol pair. */
static inline const merge_slot *merge_find(const merge_map *m, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = merge_hash(key, m->mask);; i = (i + 1) & m->mask) {
        const merge_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == MERGE_EMPTY) return NULL;
    }
}

/* ==== the tokenizer ======================================================================= */

/* Direct-mapped cache of encoded short pieces, shared by all threads. Each entry is a
 * seqlock: readers never write shared memory, so threads that keep reading the same hot
 * words ("a", "of") do not bounce cache lines, and a writer that finds an entry busy just
 * skips caching. Fields are atomics read relaxed, the C11 seqlock pattern (H. Boehm, "Can
 * seqlocks get along with programming language memory models?"), so there is no data race. */
#define CACHE_SLOTS 8192
#define CACHE_MAX_PIECE 24 /* bytes; longer pieces are not cached */
#define CACHE_MAX_IDS 6

typedef struct cache_entry {
    _Atomic uint32_t seq;  /* odd while a writer fills the entry */
    uint32_t unused;
    _Atomic uint64_t w[7]; /* w[0] = tag << 32 | len << 8 | n_ids (tag 0 = empty),
                              w[1..3] piece bytes, w[4..6] ids (int32) */
} cache_entry; /* 64 bytes, one cache line */

typedef struct word_cache {
    cache_entry entries[CACHE_SLOTS];
} word_cache;

struct mms_bpe_tokenizer {
    int32_t vocab_size, n_merges, sot_id, eot_id;
    int32_t byte_id[256];     /* first symbols of a piece, by byte value */
    int32_t byte_eow_id[256]; /* its last symbol: "x</w>" */
    char *pool;               /* every vocabulary string, NUL-terminated, back to back */
    int64_t *str_off;         /* (vocab_size,) offset in pool, -1 for an unused id */
    int32_t *str_len;         /* (vocab_size,) */
    uint8_t *bytes;           /* token bytes: the string mapped back through the byte map */
    int64_t *bytes_off;       /* (vocab_size + 1,) token i = bytes[bytes_off[i] .. [i + 1]) */
    int32_t *vocab_slots;     /* (vocab_mask + 1,) string -> id hash set of ids, -1 empty */
    size_t vocab_mask;
    merge_map merges;
    word_cache *cache; /* the only mutable part, thread safe by itself */
};

static int32_t *vocab_slot(const mms_bpe_tokenizer *t, const char *s, size_t n) {
    return mms_str_slot(t->vocab_slots, t->vocab_mask, t->pool, t->str_off, t->str_len, s, n);
}

static int64_t vocab_find(const mms_bpe_tokenizer *t, const char *s, size_t n) { return *vocab_slot(t, s, n); }

/* Insert id under its string; an equal string already there is replaced (the reference's
 * dict(zip(vocab, ids)): the later id wins). */
static void vocab_insert(mms_bpe_tokenizer *t, int32_t id) {
    *vocab_slot(t, t->pool + t->str_off[id], (size_t)t->str_len[id]) = id;
}

void mms_bpe_tokenizer_free(mms_bpe_tokenizer *t) {
    if (!t) return;
    mms_free(t->cache);
    mms_free(t->pool);
    mms_free(t->str_off);
    mms_free(t->str_len);
    mms_free(t->bytes);
    mms_free(t->bytes_off);
    mms_free(t->vocab_slots);
    mms_free(t->merges.slots);
    mms_free(t);
}

/* ==== loading ============================================================================= */

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the other 68 take
 * U+0100.. in byte order. Vocabulary strings are written in this alphabet. */
static int byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void byte_map(uint32_t b2u[256], int16_t u2b[0x144]) {
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

/* One "left right" line of a merges file, borrowed from the text. */
typedef struct merge_line {
    const char *a, *b;
    size_t alen, blen, lineno; /* lineno: 1-based, for messages */
} merge_line;

/* Split merges text into lines; skip line 1 if skip_first (OpenAI) or if it starts with
 * "#version" (HF). limit >= 0 stops after that many merges and requires them all.
 * A final newline does not start a line. *lines is mms_malloc'd. */
static mms_status parse_merges(const char *text, size_t len, int skip_first, int32_t limit,
                               merge_line **lines, size_t *n_lines, mms_error *err) {
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

/* Vocabulary entries collected by a constructor: strings back to back in pool. */
typedef struct vocab_build {
    char *pool;       /* owned until handed to the tokenizer */
    size_t pool_len;
    int64_t *offs;    /* (n,) */
    int32_t *lens, *ids;
    size_t n;
} vocab_build;

static void vocab_build_free(vocab_build *v) {
    mms_free(v->pool);
    mms_free(v->offs);
    mms_free(v->lens);
    mms_free(v->ids);
}

static mms_status vocab_build_alloc(vocab_build *v, size_t n, size_t pool_len, mms_error *err) {
    memset(v, 0, sizeof *v);
    v->pool = mms_malloc(pool_len + 1);
    v->offs = mms_malloc((n + 1) * sizeof *v->offs);
    v->lens = mms_malloc((n + 1) * sizeof *v->lens);
    v->ids = mms_malloc((n + 1) * sizeof *v->ids);
    if (!v->pool || !v->offs || !v->lens || !v->ids) {
        vocab_build_free(v);
        return mms_error_set(err, MMS_ERR_NOMEM, "vocabulary: out of memory");
    }
    return MMS_OK;
}

static void vocab_build_add(vocab_build *v, const char *a, size_t alen, const char *b,
                            size_t blen, int32_t id) {
    v->offs[v->n] = (int64_t)v->pool_len;
    memcpy(v->pool + v->pool_len, a, alen);
    if (blen) memcpy(v->pool + v->pool_len + alen, b, blen);
    v->pool_len += alen + blen;
    v->pool[v->pool_len++] = '\0';
    v->lens[v->n] = (int32_t)(alen + blen);
    v->ids[v->n++] = id;
}

/* Finish a tokenizer from its vocabulary (taken over, even on error) and merge lines. */
static mms_status tokenizer_build(vocab_build *v, const merge_line *lines, size_t n_lines,
                                  mms_bpe_tokenizer **out, mms_error *err) {
    mms_status st = MMS_OK;
    mms_bpe_tokenizer *t = mms_calloc(1, sizeof *t);
    char *cat = NULL;
    if (!t) {
        vocab_build_free(v);
        return mms_error_set(err, MMS_ERR_NOMEM, "tokenizer: out of memory");
    }
    int32_t max_id = -1;
    for (size_t i = 0; i < v->n; i++) max_id = v->ids[i] > max_id ? v->ids[i] : max_id;
    t->vocab_size = max_id + 1;
    t->pool = v->pool;
    v->pool = NULL;
    t->str_off = mms_malloc(((size_t)t->vocab_size + 1) * sizeof *t->str_off);
    t->str_len = mms_calloc((size_t)t->vocab_size + 1, sizeof *t->str_len);
    t->vocab_mask = mms_pow2_at_least(2 * v->n) - 1;
    t->vocab_slots = mms_malloc((t->vocab_mask + 1) * sizeof *t->vocab_slots);
    t->bytes = mms_malloc(v->pool_len + 1);
    t->bytes_off = mms_malloc(((size_t)t->vocab_size + 1) * sizeof *t->bytes_off);
    t->cache = mms_calloc(1, sizeof *t->cache);
    if (!t->str_off || !t->str_len || !t->vocab_slots || !t->bytes || !t->bytes_off || !t->cache) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    memset(t->vocab_slots, 0xFF, (t->vocab_mask + 1) * sizeof *t->vocab_slots);
    for (int32_t i = 0; i < t->vocab_size; i++) t->str_off[i] = -1;
    for (size_t i = 0; i < v->n; i++) {
        int32_t id = v->ids[i];
        if (t->str_off[id] >= 0) {
            st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: id %d is given to both '%.100s' and '%.100s'",
                               (int)id, t->pool + t->str_off[id], t->pool + v->offs[i]);
            goto done;
        }
        t->str_off[id] = v->offs[i];
        t->str_len[id] = v->lens[i];
    }
    for (size_t i = 0; i < v->n; i++) vocab_insert(t, v->ids[i]);

    /* Token bytes: each character mapped back through the byte map. A character outside
     * the alphabet (an added token of an HF vocabulary) keeps its UTF-8 bytes. */
    uint32_t b2u[256];
    int16_t u2b[0x144];
    byte_map(b2u, u2b);
    size_t nb = 0;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        t->bytes_off[id] = (int64_t)nb;
        if (t->str_off[id] < 0) continue;
        const uint8_t *s = (const uint8_t *)t->pool + t->str_off[id];
        size_t n = (size_t)t->str_len[id];
        for (size_t j = 0; j < n;) {
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
    t->bytes_off[t->vocab_size] = (int64_t)nb;

    /* Symbols a piece starts from. */
    for (int b = 0; b < 256; b++) {
        char sym[8];
        size_t l = utf8_put(b2u[b], sym);
        t->byte_id[b] = (int32_t)vocab_find(t, sym, l);
        memcpy(sym + l, "</w>", 4);
        t->byte_eow_id[b] = (int32_t)vocab_find(t, sym, l + 4);
        if (t->byte_id[b] < 0 || t->byte_eow_id[b] < 0) {
            st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: byte symbol '%.*s' is missing "
                               "(not a CLIP BPE vocabulary?)",
                               (int)(t->byte_id[b] < 0 ? l : l + 4), sym);
            goto done;
        }
    }
    t->sot_id = (int32_t)vocab_find(t, SOT_STRING, strlen(SOT_STRING));
    t->eot_id = (int32_t)vocab_find(t, EOT_STRING, strlen(EOT_STRING));
    if (t->sot_id < 0 || t->eot_id < 0) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "vocabulary: special token %s is missing",
                           t->sot_id < 0 ? SOT_STRING : EOT_STRING);
        goto done;
    }

    /* Merge ranks. A repeated pair keeps its later rank, as dict(zip(merges, ranks)). */
    t->n_merges = (int32_t)n_lines;
    t->merges.mask = mms_pow2_at_least(2 * n_lines + 1) - 1;
    t->merges.slots = mms_malloc((t->merges.mask + 1) * sizeof *t->merges.slots);
    size_t cat_cap = 64;
    cat = mms_malloc(cat_cap);
    if (!t->merges.slots || !cat) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "merges: out of memory");
        goto done;
    }
    for (size_t i = 0; i <= t->merges.mask; i++) t->merges.slots[i].key = MERGE_EMPTY;
    for (size_t r = 0; r < n_lines; r++) {
        const merge_line *m = &lines[r];
        if (m->alen + m->blen > cat_cap) {
            mms_free(cat);
            cat_cap = 2 * (m->alen + m->blen);
            if (!(cat = mms_malloc(cat_cap))) {
                st = mms_error_set(err, MMS_ERR_NOMEM, "merges: out of memory");
                goto done;
            }
        }
        memcpy(cat, m->a, m->alen);
        memcpy(cat + m->alen, m->b, m->blen);
        int64_t a = vocab_find(t, m->a, m->alen), b = vocab_find(t, m->b, m->blen);
        int64_t res = vocab_find(t, cat, m->alen + m->blen);
        if (a < 0 || b < 0 || res < 0) {
            const char *what = a < 0 ? m->a : b < 0 ? m->b : cat;
            size_t wl = a < 0 ? m->alen : b < 0 ? m->blen : m->alen + m->blen;
            st = mms_error_set(err, MMS_ERR_FORMAT, "merges line %zu: '%.*s' is not in the vocabulary",
                               m->lineno, (int)(wl > 200 ? 200 : wl), what);
            goto done;
        }
        uint64_t key = (uint64_t)a << 32 | (uint64_t)b;
        size_t i = merge_hash(key, t->merges.mask);
        while (t->merges.slots[i].key != MERGE_EMPTY && t->merges.slots[i].key != key)
            i = (i + 1) & t->merges.mask;
        t->merges.slots[i] = (merge_slot){key, (int32_t)r, (int32_t)res};
    }
done:
    mms_free(cat);
    vocab_build_free(v);
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
    mms_status st = parse_merges(merges_text, merges_len, 1, n_merges < 0 ? -1 : n_merges, &lines,
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
    if ((st = vocab_build_alloc(&v, 512 + n_lines + 2, pool, err))) {
        mms_free(lines);
        return st;
    }
    uint32_t b2u[256];
    int16_t u2b[0x144];
    byte_map(b2u, u2b);
    int32_t id = 0;
    for (int eow = 0; eow < 2; eow++)
        for (uint32_t cp = 0; cp < 0x144; cp++) {
            if (u2b[cp] < 0) continue;
            char sym[4];
            size_t l = utf8_put(cp, sym);
            vocab_build_add(&v, sym, l, "</w>", eow ? 4 : 0, id++);
        }
    for (size_t i = 0; i < n_lines; i++)
        vocab_build_add(&v, lines[i].a, lines[i].alen, lines[i].b, lines[i].blen, id++);
    vocab_build_add(&v, SOT_STRING, strlen(SOT_STRING), "", 0, id++);
    vocab_build_add(&v, EOT_STRING, strlen(EOT_STRING), "", 0, id++);
    st = tokenizer_build(&v, lines, n_lines, out, err);
    mms_free(lines);
    return st;
}

mms_status mms_bpe_tokenizer_create_hf(const char *vocab_json, size_t vocab_len,
                                       const char *merges_text, size_t merges_len,
                                       mms_bpe_tokenizer **out, mms_error *err) {
    merge_line *lines = NULL;
    size_t n_lines = 0, n = 0, pool = 0;
    vocab_build v;
    mms_status st;
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(vocab_json, vocab_len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mms_error_set(err, MMS_ERR_FORMAT, "vocab.json: not a JSON object");
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        double d = it->valuedouble;
        if (!cJSON_IsNumber(it) || !(d >= 0 && d < MAX_VOCAB) || d != (double)(int64_t)d) {
            st = mms_error_set(err, MMS_ERR_FORMAT, "vocab.json: the id of '%.200s' is not an "
                               "integer in [0, %d)", it->string, MAX_VOCAB);
            goto done;
        }
        n++;
        pool += strlen(it->string) + 1;
    }
    if ((st = vocab_build_alloc(&v, n, pool, err))) goto done;
    for (const cJSON *it = root->child; it; it = it->next)
        vocab_build_add(&v, it->string, strlen(it->string), "", 0, (int32_t)it->valuedouble);
    cJSON_Delete(root);
    root = NULL;
    if ((st = parse_merges(merges_text, merges_len, 0, -1, &lines, &n_lines, err))) {
        vocab_build_free(&v);
        goto done;
    }
    st = tokenizer_build(&v, lines, n_lines, out, err);
done:
    cJSON_Delete(root);
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

/* ==== properties =========================================================================== */

int64_t mms_bpe_tokenizer_vocab_size(const mms_bpe_tokenizer *t) { return t->vocab_size; }
int64_t mms_bpe_tokenizer_n_merges(const mms_bpe_tokenizer *t) { return t->n_merges; }
int64_t mms_bpe_tokenizer_sot_id(const mms_bpe_tokenizer *t) { return t->sot_id; }
int64_t mms_bpe_tokenizer_eot_id(const mms_bpe_tokenizer *t) { return t->eot_id; }

int64_t mms_bpe_tokenizer_token_to_id(const mms_bpe_tokenizer *t, const char *token, size_t len) {
    return vocab_find(t, token, len);
}

const char *mms_bpe_tokenizer_id_to_token(const mms_bpe_tokenizer *t, int64_t id) {
    if (id < 0 || id >= t->vocab_size || t->str_off[id] < 0) return NULL;
    return t->pool + t->str_off[id];
}

/* ==== pre-tokenizer ========================================================================= */

/* The reference splits with regex.findall of
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * compiled with IGNORECASE. At each position the first alternative that matches wins;
 * where none does (whitespace) the scan moves one character on. IGNORECASE matters for
 * two things even on lowercased text: 's' also matches U+017F (long s, which case-folds
 * to 's'), and U+0345 (combining ypogegrammeni, folding to the letter iota) is rejected by
 * [\p{L}] and by the negated class alike, so it is skipped like whitespace (checked
 * against regex 2022.10.31, the reference's version). */

enum { PIECE_END, PIECE_WORD, PIECE_SOT, PIECE_EOT, PIECE_BAD };

/* Case-insensitive match of the ASCII pattern pat at s[0..n); returns bytes matched or 0. */
static size_t match_ci(const uint8_t *s, size_t n, const char *pat) {
    size_t j = 0;
    for (; *pat; pat++) {
        if (j < n && (s[j] | ((s[j] >= 'A' && s[j] <= 'Z') ? 0x20 : 0)) == (uint8_t)*pat) j++;
        else if (*pat == 's' && j + 1 < n && s[j] == 0xC5 && s[j + 1] == 0xBF) j += 2; /* U+017F */
        else return 0;
    }
    return j;
}

/* Class of the character at s[0..n) (length in *l, 0 if ill-formed); U+0345 -> -1. */
static inline int char_class(const uint8_t *s, size_t n, int *l) {
    if (s[0] < 0x80) {
        *l = 1;
        return (int)mms_unicode_class(s[0]);
    }
    uint32_t cp;
    *l = mms_utf8_next(s, n, &cp);
    if (*l == 0) return MMS_UCLASS_OTHER;
    return cp == 0x345 ? -1 : (int)mms_unicode_class(cp);
}

/* Next piece at or after *pos: [*start, *end) and its kind; *pos moves past it.
 * PIECE_BAD: ill-formed UTF-8 at *pos. */
static int next_piece(const uint8_t *s, size_t n, size_t *pos, size_t *start, size_t *end) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t i = *pos;
    while (i < n) {
        size_t m = 0;
        int kind = PIECE_WORD;
        if (s[i] == '<') {
            if ((m = match_ci(s + i, n - i, SOT_STRING)))
                kind = m == sizeof SOT_STRING - 1 && !memcmp(s + i, SOT_STRING, m) ? PIECE_SOT : kind;
            else if ((m = match_ci(s + i, n - i, EOT_STRING)))
                kind = m == sizeof EOT_STRING - 1 && !memcmp(s + i, EOT_STRING, m) ? PIECE_EOT : kind;
        } else if (s[i] == '\'') {
            for (size_t c = 0; c < sizeof contractions / sizeof *contractions && !m; c++)
                m = match_ci(s + i, n - i, contractions[c]);
        }
        if (!m) {
            int l, cls = char_class(s + i, n - i, &l);
            if (l == 0) {
                *pos = i;
                return PIECE_BAD;
            }
            if (cls == MMS_UCLASS_SPACE || cls == -1) {
                i += (size_t)l;
                continue;
            }
            m = (size_t)l;
            if (cls != MMS_UCLASS_NUMBER) { /* a run of letters, or of "other" characters */
                while (i + m < n) {
                    int c2 = char_class(s + i + m, n - i - m, &l);
                    if (l == 0 || c2 != cls) break; /* a bad byte ends the run; reported next */
                    m += (size_t)l;
                }
            }
        }
        *start = i;
        *end = *pos = i + m;
        return kind;
    }
    *pos = n;
    return PIECE_END;
}

/* ==== BPE merge loop ========================================================================= */

/* Per-call scratch, grown to the longest piece seen; nothing is allocated per piece. */
typedef struct bpe_work {
    int32_t *id, *next, *prev; /* (cap,) symbol i: token id (-1 once merged away), links */
    int32_t *merged;           /* (cap,) symbols created in the current pass */
    uint64_t *heap;            /* (3 * cap,) rank << 32 | symbol, a binary min-heap */
    size_t cap;
} bpe_work;

static void work_free(bpe_work *w) {
    mms_free(w->id);
    mms_free(w->next);
    mms_free(w->prev);
    mms_free(w->merged);
    mms_free(w->heap);
    memset(w, 0, sizeof *w);
}

static int work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t cap = n < 64 ? 64 : n + n / 2;
    work_free(w);
    w->id = mms_malloc(cap * sizeof *w->id);
    w->next = mms_malloc(cap * sizeof *w->next);
    w->prev = mms_malloc(cap * sizeof *w->prev);
    w->merged = mms_malloc(cap * sizeof *w->merged);
    w->heap = mms_malloc(3 * cap * sizeof *w->heap);
    if (!w->id || !w->next || !w->prev || !w->merged || !w->heap) {
        work_free(w);
        return -1;
    }
    w->cap = cap;
    return 0;
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

static inline void push_pair(const mms_bpe_tokenizer *t, bpe_work *w, size_t *hn, int32_t i) {
    const merge_slot *m = merge_find(&t->merges, w->id[i], w->id[w->next[i]]);
    if (m) heap_push(w->heap, hn, (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)i);
}

/* BPE of one piece s[0..n), n >= 1 (the hot loop). Final ids go to w->id[0..count), the
 * count is returned. Like the reference, each pass takes the lowest-ranked pair present and
 * merges all its non-overlapping occurrences left to right; pairs formed by the pass enter
 * the queue only after it, so the result matches even for merges listed out of order. */
static size_t bpe_piece(const mms_bpe_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_id[s[i]];
        w->next[i] = (int32_t)i + 1;
        w->prev[i] = (int32_t)i - 1;
    }
    w->id[n - 1] = t->byte_eow_id[s[n - 1]];
    w->next[n - 1] = -1;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, w, &hn, (int32_t)i);
    while (hn) {
        uint32_t rank = (uint32_t)(w->heap[0] >> 32);
        size_t n_merged = 0;
        while (hn && (uint32_t)(w->heap[0] >> 32) == rank) {
            int32_t i = (int32_t)(uint32_t)heap_pop(w->heap, &hn);
            int32_t j = w->next[i];
            if (w->id[i] < 0 || j < 0) continue; /* stale: merged away */
            const merge_slot *m = merge_find(&t->merges, w->id[i], w->id[j]);
            if (!m || (uint32_t)m->rank != rank) continue; /* stale: pair changed */
            w->id[i] = m->result;
            w->id[j] = -1;
            w->next[i] = w->next[j];
            if (w->next[j] >= 0) w->prev[w->next[j]] = i;
            w->merged[n_merged++] = i;
        }
        for (size_t k = 0; k < n_merged; k++) {
            int32_t i = w->merged[k];
            if (w->prev[i] >= 0) push_pair(t, w, &hn, w->prev[i]);
            if (w->next[i] >= 0) push_pair(t, w, &hn, i);
        }
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = w->next[i]) w->id[count++] = w->id[i];
    return count;
}

/* ==== encoding =============================================================================== */

/* Ids of piece s[0..n) from its cache entry e into ids; returns their count, or -1 on a
 * miss (or while a writer holds the entry). */
static int cache_get(const cache_entry *e, uint32_t tag, const uint8_t *s, size_t n, int32_t *ids) {
    uint64_t w[7];
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (seq & 1) return -1;
    for (int i = 0; i < 7; i++) w[i] = atomic_load_explicit(&e->w[i], memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq) return -1;
    if ((uint32_t)(w[0] >> 32) != tag || ((w[0] >> 8) & 0xFF) != n || memcmp(&w[1], s, n) != 0) return -1;
    int k = (int)(w[0] & 0xFF);
    memcpy(ids, &w[4], (size_t)k * sizeof *ids);
    return k;
}

static void cache_put(cache_entry *e, uint32_t tag, const uint8_t *s, size_t n, const int32_t *ids,
                      size_t k) {
    uint64_t w[7] = {(uint64_t)tag << 32 | (uint64_t)n << 8 | k};
    memcpy(&w[1], s, n);
    memcpy(&w[4], ids, k * sizeof *ids);
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&e->seq, &seq, seq + 1, memory_order_relaxed,
                                                              memory_order_relaxed))
        return; /* another writer is here: leave it to them */
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < 7; i++) atomic_store_explicit(&e->w[i], w[i], memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

/* Encode one piece through the cache. */
static void encode_piece(const mms_bpe_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n,
                         mms_id_sink *out) {
    if (n == 1) { /* a lone byte is its own "x</w>" symbol */
        mms_sink_put(out, t->byte_eow_id[s[0]]);
        return;
    }
    cache_entry *e = NULL;
    uint32_t tag = 0;
    if (n <= CACHE_MAX_PIECE) {
        uint64_t h = mms_hash_bytes(s, n);
        int32_t ids[CACHE_MAX_IDS];
        e = &t->cache->entries[h & (CACHE_SLOTS - 1)];
        tag = (uint32_t)(h >> 32) | 1u;
        int k = cache_get(e, tag, s, n, ids);
        if (k >= 0) {
            for (int i = 0; i < k; i++) mms_sink_put(out, ids[i]);
            return;
        }
    }
    size_t count = bpe_piece(t, w, s, n);
    for (size_t i = 0; i < count; i++) mms_sink_put(out, w->id[i]);
    if (e && count <= CACHE_MAX_IDS) cache_put(e, tag, s, n, w->id, count);
}

/* Encode text into out with scratch w (reserved to >= 64). */
static mms_status encode_text(const mms_bpe_tokenizer *t, bpe_work *w, const char *text,
                              size_t len, mms_id_sink *out, mms_error *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0, a, b;
    for (;;) {
        if (out->stop_at_cap && out->n >= out->cap) return MMS_OK;
        int kind = next_piece(s, len, &pos, &a, &b);
        if (kind == PIECE_END) return MMS_OK;
        if (kind == PIECE_BAD)
            return mms_error_set(err, MMS_ERR_VALUE, "text is not valid UTF-8 at byte %zu", pos);
        if (kind == PIECE_SOT || kind == PIECE_EOT) {
            mms_sink_put(out, kind == PIECE_SOT ? t->sot_id : t->eot_id);
            continue;
        }
        if (b - a > w->cap && work_reserve(w, b - a))
            return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory (piece of %zu bytes)", b - a);
        encode_piece(t, w, s + a, b - a, out);
    }
}

mms_status mms_bpe_tokenizer_encode_into(const mms_bpe_tokenizer *t, const char *text,
                                         size_t len, int64_t *ids, size_t cap, size_t *n_ids,
                                         mms_error *err) {
    bpe_work w = {0};
    mms_id_sink out = {ids, ids ? cap : 0, 0, 0};
    if (work_reserve(&w, 64)) return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory");
    mms_status st = encode_text(t, &w, text, len, &out, err);
    work_free(&w);
    *n_ids = out.n;
    return st;
}

mms_status mms_bpe_tokenizer_encode(const mms_bpe_tokenizer *t, const char *text, size_t len,
                                    int64_t **ids, size_t *n_ids, mms_error *err) {
    /* Captions rarely need more than one id per 3 bytes; retry once with the exact size. */
    size_t cap = len / 3 + 16, n = 0;
    *ids = NULL;
    *n_ids = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t *buf = mms_malloc((cap ? cap : 1) * sizeof *buf);
        if (!buf) return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory");
        mms_status st = mms_bpe_tokenizer_encode_into(t, text, len, buf, cap, &n, err);
        if (st) {
            mms_free(buf);
            return st;
        }
        if (n <= cap) {
            *ids = buf;
            *n_ids = n;
            return MMS_OK;
        }
        mms_free(buf);
        cap = n;
    }
    return mms_error_set(err, MMS_ERR_INTERNAL, "encode: length changed between two passes");
}

mms_bpe_batch_params mms_bpe_batch_default_params(void) {
    return (mms_bpe_batch_params){.context_length = 77, .truncate = 1, .pad_id = 0,
                                  .add_special = 1, .n_threads = 0};
}

/* One row (context_length,) of a batch; returns the untruncated length through *total. */
static mms_status encode_row(const mms_bpe_tokenizer *t, bpe_work *w, const char *text,
                             size_t len, const mms_bpe_batch_params *p, int need_total,
                             int64_t *row, int64_t *mask, int64_t *total, mms_error *err) {
    int64_t L = p->context_length, sp = p->add_special ? 1 : 0;
    if (sp) row[0] = t->sot_id;
    mms_id_sink out = {row + sp, (size_t)(L - sp), 0, !need_total};
    mms_status st = encode_text(t, w, text, len, &out, err);
    if (st) return st;
    int64_t n = (int64_t)out.n + 2 * sp;
    mms_batch_row_end(row, mask, L, n, sp, t->eot_id, p->pad_id);
    *total = n;
    return MMS_OK;
}

mms_status mms_bpe_tokenizer_encode_batch(const mms_bpe_tokenizer *t, const char *const *texts,
                                          const size_t *lens, int64_t n, mms_bpe_batch_params p,
                                          int64_t *ids, int64_t *mask, int64_t *n_tokens,
                                          mms_error *err) {
    if (n < 0 || p.context_length < (p.add_special ? 2 : 1))
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: need n >= 0 and context_length >= %d, "
                             "got n=%lld, context_length=%lld", p.add_special ? 2 : 1, (long long)n,
                             (long long)p.context_length);
    if (n == 0) return MMS_OK;
    int64_t *totals = n_tokens ? n_tokens : mms_malloc((size_t)n * sizeof *totals);
    if (!totals) return mms_error_set(err, MMS_ERR_NOMEM, "encode_batch: out of memory");
    int need_total = n_tokens != NULL || !p.truncate;
    int64_t L = p.context_length, bad = n; /* first failing text */
    int nomem = 0;
    mms_error bad_err = {MMS_OK, ""};
    int nt = p.n_threads > 0 ? p.n_threads : mms_get_num_threads();
    if (nt < 1 || n < 64) nt = 1; /* a team costs more than a few captions */
#pragma omp parallel num_threads(nt)
    {
        bpe_work w = {0};
        int ok = work_reserve(&w, 64) == 0;
        if (!ok) {
#pragma omp atomic write
            nomem = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (int64_t i = 0; i < n; i++) {
            if (!ok) continue;
            mms_error e;
            mms_status st = encode_row(t, &w, texts[i], lens[i], &p, need_total, ids + i * L,
                                       mask ? mask + i * L : NULL, &totals[i], &e);
            if (st) mms_batch_note_error(i, &e, &bad, &bad_err);
        }
        work_free(&w);
    }
    mms_status st = nomem ? mms_error_set(err, MMS_ERR_NOMEM, "encode_batch: out of memory")
                          : mms_batch_status(n, bad, &bad_err, p.truncate, totals, L, err);
    if (!n_tokens) mms_free(totals);
    return st;
}

/* ==== decoding ================================================================================ */

mms_status mms_bpe_tokenizer_decode(const mms_bpe_tokenizer *t, const int64_t *ids, size_t n,
                                    int skip_special, char **text, size_t *len, mms_error *err) {
    *text = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t id = ids[i];
        if (id < 0 || id >= t->vocab_size || t->str_off[id] < 0)
            return mms_error_set(err, MMS_ERR_VALUE, "decode: id %lld at position %zu is not in the "
                                 "vocabulary [0, %d)", (long long)id, i, (int)t->vocab_size);
        total += (size_t)(t->bytes_off[id + 1] - t->bytes_off[id]);
    }
    uint8_t *raw = mms_malloc(total + 1);
    char *out = mms_malloc(3 * total + 1);
    if (!raw || !out) {
        mms_free(raw);
        mms_free(out);
        return mms_error_set(err, MMS_ERR_NOMEM, "decode: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && (ids[i] == t->sot_id || ids[i] == t->eot_id)) continue;
        size_t l = (size_t)(t->bytes_off[ids[i] + 1] - t->bytes_off[ids[i]]);
        memcpy(raw + m, t->bytes + t->bytes_off[ids[i]], l);
        m += l;
    }
    /* The reference replaces "</w>" after UTF-8 decoding, so the marker's bytes also end an
     * ill-formed sequence before it; "</w>" is ASCII, so replacing on bytes is the same. */
    size_t k = mms_utf8_sanitize(raw, m, (uint8_t *)out), o = 0;
    mms_free(raw);
    for (size_t i = 0; i < k;) {
        if (out[i] == '<' && i + 4 <= k && memcmp(out + i, "</w>", 4) == 0) {
            out[o++] = ' ';
            i += 4;
        } else {
            out[o++] = out[i++];
        }
    }
    out[o] = '\0';
    *text = out;
    *len = o;
    return MMS_OK;
}
