/* tokenizer_t5.c -- transformers 5's T5Tokenizer (tokenizer_t5.h): building the vocabulary and
 * the added-token matchers from a loaded SentencePiece model, then per text the added-token
 * split, White_Space + Metaspace pre-tokenizer, unigram Viterbi and batch rows. The charsmap
 * normalizer is tokenizer_t5_norm.c's.
 *
 * Each step mirrors the tokenizers-library routine named in its comment, down to tie-breaks
 * and double sums, because ids must match transformers exactly. */
#include "tokenizer_t5_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_util.h"
#include "tokenizer.h" /* mms_utf8_next, mms_unicode_class */

static const char SPACE_SYMBOL[] = "\xE2\x96\x81"; /* U+2581 '▁' */
#define UNK_PENALTY 10.0                            /* tokenizers' K_UNK_PENALTY */
#define MAX_EXTRA_IDS (1 << 24)

#define NOMEM(what) mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", (what))

/* ==== per-call scratch ======================================================================== */

/* Viterbi: the best path ending at a byte position of a pre-token. */
typedef struct t5_node {
    double score;  /* its total score */
    int64_t start; /* where its last piece starts; -1 = not reached yet */
    int64_t id;    /* that piece (unk_id for an unknown character) */
} t5_node;

/* Growable scratch reused across the texts of a call or a batch thread. */
typedef struct t5_work {
    mms_buf norm;        /* a raw chunk after the normalizer */
    mms_buf word;        /* '▁' + the start of a word that has none */
    t5_node *lat;        /* (lat_cap,) lattice of one pre-token, n + 1 columns */
    size_t lat_cap;
    int64_t *rev;        /* (rev_cap,) one pre-token's ids, last first */
    size_t rev_cap;
    int64_t *ids;        /* (ids_cap,) the text's ids */
    size_t n_ids, ids_cap;
} t5_work;

static void work_free(t5_work *w) {
    mms_buf_free(&w->norm);
    mms_buf_free(&w->word);
    mms_free(w->lat);
    mms_free(w->rev);
    mms_free(w->ids);
    memset(w, 0, sizeof *w);
}


static int ids_push(t5_work *w, int64_t id) {
    if (MMS_GROW(w, ids, ids_cap, w->n_ids + 1)) return -1;
    w->ids[w->n_ids++] = id;
    return 0;
}

/* ==== character helpers ========================================================================== */

/* Is the character at s[0..n) (valid UTF-8, n >= 1) White_Space? Its length goes to *l. */
static int is_space(const char *s, size_t n, size_t *l) {
    uint8_t c = (uint8_t)s[0];
    if (c < 0x80) {
        *l = 1;
        return c == ' ' || (c >= '\t' && c <= '\r');
    }
    uint32_t cp;
    *l = (size_t)mms_utf8_next((const uint8_t *)s, n, &cp);
    return mms_unicode_class(cp) == MMS_UCLASS_SPACE;
}


/* Offset of the first '▁' in s[from..n), or n. */
static size_t find_space_symbol(const char *s, size_t n, size_t from) {
    for (size_t i = from; i + 3 <= n; i++)
        if (s[i] == SPACE_SYMBOL[0] && s[i + 1] == SPACE_SYMBOL[1] && s[i + 2] == SPACE_SYMBOL[2]) return i;
    return n;
}

/* ==== the model: unigram Viterbi ================================================================= */

/* Id of the vocabulary string s[0..n), or -1. */
static int64_t vocab_find(const mms_t5_tokenizer *t, const uint8_t *s, size_t n) {
    int32_t node = 0;
    for (size_t i = 0; i < n && node >= 0; i++) node = sp_trie_child(&t->trie, node, s[i]);
    return node > 0 ? t->trie.piece[node] : -1;
}

/* Unigram::encode_optimized on one pre-token s[0..n) ('▁...'), then fuse_unk: at each
 * character start every vocabulary string the text continues with is an edge, and a start
 * without a one-character string gets an unk edge over its character; ties keep the first
 * candidate (earlier start, then shorter string); scores are summed in double. A run of unk
 * edges becomes the id of the string it spans, or unk_id. The ids are appended to w->ids. */
static int viterbi(const mms_t5_tokenizer *t, t5_work *w, const uint8_t *s, size_t n) {
    if (MMS_GROW(w, lat, lat_cap, n + 1) || MMS_GROW(w, rev, rev_cap, n + 1)) return -1;
    t5_node *lat = w->lat; /* (n + 1,) */
    lat[0] = (t5_node){0.0, -1, -1};
    for (size_t i = 1; i <= n; i++) lat[i].start = -1;
    for (size_t i = 0; i < n;) {
        const double base = lat[i].score;
        uint32_t cp;
        const size_t mblen = (size_t)mms_utf8_next(s + i, n - i, &cp);
        int single = 0;
        int32_t node = 0;
        for (size_t k = i; k < n;) { /* hot: one trie step per byte */
            node = sp_trie_child(&t->trie, node, s[k++]);
            if (node < 0) break;
            int32_t id = t->trie.piece[node];
            if (id < 0 || (k < n && (s[k] & 0xC0) == 0x80)) continue; /* not a string ending at a character */
            double cand = t->score[id] + base;
            t5_node *e = &lat[k];
            if (e->start < 0 || cand > e->score) *e = (t5_node){cand, (int64_t)i, id};
            if (k - i == mblen) single = 1;
        }
        if (!single) {
            double cand = t->unk_score + base;
            t5_node *e = &lat[i + mblen];
            if (e->start < 0 || cand > e->score) *e = (t5_node){cand, (int64_t)i, t->unk_id};
        }
        i += mblen;
    }
    size_t nr = 0;
    int64_t end = (int64_t)n, unk_end = -1;
    while (end > 0) {
        const t5_node *e = &lat[end];
        if (e->id == t->unk_id) {
            if (unk_end < 0) unk_end = end;
        } else {
            if (unk_end >= 0) {
                int64_t id = vocab_find(t, s + end, (size_t)(unk_end - end));
                w->rev[nr++] = id >= 0 ? id : t->unk_id;
                unk_end = -1;
            }
            w->rev[nr++] = e->id;
        }
        end = e->start;
    }
    if (unk_end >= 0) {
        int64_t id = vocab_find(t, s, (size_t)unk_end);
        w->rev[nr++] = id >= 0 ? id : t->unk_id;
    }
    if (MMS_GROW(w, ids, ids_cap, w->n_ids + nr)) return -1;
    while (nr) w->ids[w->n_ids++] = w->rev[--nr];
    return 0;
}

/* ==== the pre-tokenizer ============================================================================ */

/* Metaspace(prepend_scheme="always", split=True) on one White_Space-free word: '▁' in front
 * unless it starts with one, then a pre-token starting at each '▁'. */
static int word_ids(const mms_t5_tokenizer *t, t5_work *w, const char *s, size_t n) {
    size_t i = 0;
    if (n < 3 || memcmp(s, SPACE_SYMBOL, 3) != 0) {
        i = find_space_symbol(s, n, 0);
        w->word.n = 0;
        if (mms_buf_put(&w->word, SPACE_SYMBOL, 3) || mms_buf_put(&w->word, s, i) ||
            viterbi(t, w, (const uint8_t *)w->word.p, w->word.n))
            return -1;
    }
    while (i < n) {
        size_t e = find_space_symbol(s, n, i + 3);
        if (viterbi(t, w, (const uint8_t *)s + i, e - i)) return -1;
        i = e;
    }
    return 0;
}

/* WhitespaceSplit on normalized text that holds no added token. */
static mms_status part_ids(const mms_t5_tokenizer *t, t5_work *w, const char *s, size_t n, mms_error *err) {
    size_t i = 0, l;
    while (i < n) {
        while (i < n && is_space(s + i, n - i, &l)) i += l;
        size_t start = i;
        while (i < n && !is_space(s + i, n - i, &l)) i += l;
        if (i > start && word_ids(t, w, s + start, i - start)) return NOMEM("encode");
    }
    return MMS_OK;
}

/* ==== added tokens ================================================================================= */

/* The added token of m at s[i..n) (longest first), or NULL. */
static const t5_added *match_at(const t5_matcher *m, const char *s, size_t n, size_t i) {
    uint8_t b = (uint8_t)s[i];
    for (uint32_t k = m->first[b]; k < m->first[b + 1]; k++) {
        const t5_added *a = &m->tok[k];
        if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) return a;
    }
    return NULL;
}

typedef mms_status (*text_fn)(const mms_t5_tokenizer *t, t5_work *w, const char *s, size_t n, mms_error *err);

/* AddedVocabulary::find_matches on s[0..n): each used match's id goes to w->ids, the text
 * between matches to fn. The scan resumes after a match's own end whether or not it was used
 * (the Aho-Corasick iterator's order); lstrip / rstrip widen a used match over White_Space. */
static mms_status split_added(const mms_t5_tokenizer *t, t5_work *w, const t5_matcher *m, const char *s, size_t n,
                              text_fn fn, mms_error *err) {
    size_t offset = 0; /* end of the last used match */
    mms_status st;
    for (size_t i = 0; m->n && i < n;) {
        const t5_added *a = match_at(m, s, n, i);
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + a->match_len, l;
        i = stop;
        if (a->single_word &&
            ((start > 0 && mms_utf8_ends_with_word(s, start)) || (stop < n && mms_utf8_starts_with_word(s + stop, n - stop))))
            continue;
        if (a->lstrip) {
            size_t j = start;
            while (j > 0) { /* step back one character at a time */
                size_t k = j - 1;
                while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
                if (!is_space(s + k, n - k, &l)) break;
                j = k;
            }
            start = j > offset ? j : offset;
        }
        if (a->rstrip)
            while (stop < n && is_space(s + stop, n - stop, &l)) stop += l;
        if (offset < start && (st = fn(t, w, s + offset, start - offset, err))) return st;
        if (ids_push(w, a->id)) return NOMEM("encode");
        offset = stop;
    }
    return offset < n ? fn(t, w, s + offset, n - offset, err) : MMS_OK;
}

/* A raw chunk between added tokens: normalized, then split at the normalized added tokens. */
static mms_status chunk_ids(const mms_t5_tokenizer *t, t5_work *w, const char *s, size_t n, mms_error *err) {
    if (t->cm.units) {
        mms_status st;
        w->norm.n = 0;
        if ((st = mms_t5_normalize_append(t, s, n, &w->norm, err))) return st;
        s = w->norm.p;
        n = w->norm.n;
    }
    return split_added(t, w, &t->norm, s, n, part_ids, err);
}

/* The ids of text into w->ids (reset first), eos_id last when add_eos. */
static mms_status encode_text(const mms_t5_tokenizer *t, t5_work *w, const char *text, size_t len, int add_eos,
                              mms_error *err) {
    w->n_ids = 0;
    size_t bad = mms_t5_utf8_check(text, len);
    if (bad < len) return mms_error_set(err, MMS_ERR_VALUE, "text is not valid UTF-8 (byte %zu of %zu)", bad, len);
    mms_status st = split_added(t, w, &t->raw, text, len, chunk_ids, err);
    if (st) return st;
    if (add_eos && ids_push(w, t->eos_id)) return NOMEM("encode");
    return MMS_OK;
}

/* ==== creation ======================================================================================= */

mms_t5_params mms_t5_default_params(void) { return (mms_t5_params){100, -1, 2}; }

void mms_t5_tokenizer_free(mms_t5_tokenizer *t) {
    if (!t) return;
    t5_matcher *ms[2] = {&t->raw, &t->norm};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ms[k]->n; i++) mms_free(ms[k]->tok[i].match);
        mms_free(ms[k]->tok);
    }
    mms_free(t->name);
    mms_free(t->score);
    mms_free(t->trie.piece);
    mms_free(t->trie.edge_key);
    mms_free(t->trie.edge_child);
    mms_free(t->cm.units);
    mms_free(t->cm.strings);
    mms_free(t);
}

/* Node for (node, byte) of t's trie, created if absent (capacity is the total string length,
 * so it never runs out). */
static int32_t trie_add_child(sp_trie *t, int32_t node, uint8_t b) {
    uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
    for (size_t i = sp_edge_hash(key, t->mask);; i = (i + 1) & t->mask) {
        if (t->edge_key[i] == key) return t->edge_child[i];
        if (t->edge_key[i] == 0) {
            t->edge_key[i] = key;
            t->edge_child[i] = t->n_nodes;
            t->piece[t->n_nodes] = -1;
            return t->n_nodes++;
        }
    }
}

static void trie_insert(sp_trie *tr, const char *s, size_t n, int32_t id) {
    int32_t node = 0;
    for (size_t j = 0; j < n; j++) node = trie_add_child(tr, node, (uint8_t)s[j]);
    tr->piece[node] = id; /* a later id wins, as in the tokenizers vocabulary map */
}

/* Scores and the trie of the Unigram vocabulary: the pieces, then the sentinels. */
static mms_status build_vocab(mms_t5_tokenizer *t, const mms_sp_tokenizer *sp, int32_t extra_ids, mms_error *err) {
    t->score = mms_malloc((size_t)t->vocab_size * sizeof *t->score);
    if (!t->score) return NOMEM(t->name);
    size_t total = 1;
    double min_score = 0.0;
    for (int32_t i = 0; i < t->vocab_size; i++) {
        size_t len = 0;
        if (i < t->n_pieces) mms_sp_tokenizer_id_to_piece(sp, i, &len);
        else len = (size_t)snprintf(NULL, 0, "<extra_id_%d>", t->vocab_size - 1 - i);
        total += len;
        t->score[i] = i < t->n_pieces ? (double)mms_sp_tokenizer_piece_score(sp, i) : 0.0;
        if (i == 0 || t->score[i] < min_score) min_score = t->score[i];
    }
    if (total > INT32_MAX / 4) return mms_error_set(err, MMS_ERR_VALUE, "%s: vocabulary too long", t->name);
    t->unk_score = min_score - UNK_PENALTY;
    sp_trie *tr = &t->trie;
    tr->mask = mms_pow2_at_least(2 * total) - 1;
    tr->piece = mms_malloc(total * sizeof *tr->piece);
    tr->edge_key = mms_calloc(tr->mask + 1, sizeof *tr->edge_key);
    tr->edge_child = mms_malloc((tr->mask + 1) * sizeof *tr->edge_child);
    if (!tr->piece || !tr->edge_key || !tr->edge_child) return NOMEM(t->name);
    tr->piece[0] = -1;
    tr->n_nodes = 1;
    for (int32_t i = 0; i < t->n_pieces; i++) {
        size_t len;
        const char *p = mms_sp_tokenizer_id_to_piece(sp, i, &len);
        trie_insert(tr, p, len, i);
    }
    for (int32_t k = extra_ids - 1; k >= 0; k--) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "<extra_id_%d>", k);
        trie_insert(tr, buf, (size_t)len, t->vocab_size - 1 - k);
    }
    return MMS_OK;
}

/* A copy of the model's precompiled charsmap (the double array and its strings). */
static mms_status copy_charsmap(mms_t5_tokenizer *t, const mms_sp_tokenizer *sp, mms_error *err) {
    const sp_normalizer *src = &sp->norm;
    if (!src->units) return MMS_OK;
    t->cm.units = mms_malloc((src->n_units + 1) * sizeof *t->cm.units);
    t->cm.strings = mms_malloc(src->strings_len + 1);
    if (!t->cm.units || !t->cm.strings) return NOMEM(t->name);
    memcpy(t->cm.units, src->units, src->n_units * sizeof *t->cm.units);
    memcpy(t->cm.strings, src->strings, src->strings_len);
    t->cm.strings[src->strings_len] = '\0';
    t->cm.n_units = src->n_units;
    t->cm.strings_len = src->strings_len;
    return MMS_OK;
}

/* Matching order of the added tokens: specials first, then by id, then as given. */
typedef struct rank_key {
    const mms_t5_added_token *a;
    size_t index;
} rank_key;

static int rank_cmp(const void *x, const void *y) {
    const rank_key *p = x, *q = y;
    if (p->a->special != q->a->special) return p->a->special ? -1 : 1;
    if (p->a->id != q->a->id) return p->a->id < q->a->id ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

/* Order of rank_key pointers: by content (length, then bytes), then the earlier rank first. */
static int content_cmp(const void *x, const void *y) {
    const rank_key *p = *(const rank_key *const *)x, *q = *(const rank_key *const *)y;
    if (p->a->len != q->a->len) return p->a->len < q->a->len ? -1 : 1;
    int c = p->a->len ? memcmp(p->a->content, q->a->content, p->a->len) : 0;
    if (c) return c;
    return p < q ? -1 : p > q;
}

static int same_content(const mms_t5_added_token *a, const mms_t5_added_token *b) {
    return a->len == b->len && (!a->len || memcmp(a->content, b->content, a->len) == 0);
}

/* Sort key of a matcher entry: first byte, longest first, then rank (entries arrive in rank
 * order, so their position is it). */
typedef struct match_key {
    uint32_t first;
    size_t len, pos;
} match_key;

static int match_cmp(const void *x, const void *y) {
    const match_key *p = x, *q = y;
    if (p->first != q->first) return p->first < q->first ? -1 : 1;
    if (p->len != q->len) return p->len > q->len ? -1 : 1;
    return p->pos < q->pos ? -1 : p->pos > q->pos;
}

/* Sort m's entries (in rank order on entry) into matching order and index them by first byte. */
static mms_status index_matcher(mms_t5_tokenizer *t, t5_matcher *m, mms_error *err) {
    match_key *keys = mms_malloc((m->n + 1) * sizeof *keys);
    t5_added *sorted = mms_malloc((m->n + 1) * sizeof *sorted);
    if (!keys || !sorted) {
        mms_free(keys);
        mms_free(sorted);
        return NOMEM(t->name);
    }
    for (size_t i = 0; i < m->n; i++) keys[i] = (match_key){(uint8_t)m->tok[i].match[0], m->tok[i].match_len, i};
    qsort(keys, m->n, sizeof *keys, match_cmp);
    for (size_t i = 0; i < m->n; i++) sorted[i] = m->tok[keys[i].pos];
    mms_free(m->tok);
    m->tok = sorted;
    size_t k = 0;
    for (uint32_t b = 0; b <= 256; b++) {
        while (k < m->n && keys[k].first < b) k++;
        m->first[b] = (uint32_t)k;
    }
    mms_free(keys);
    return MMS_OK;
}

/* The raw and normalized matchers of the added tokens (AddedVocabulary::refresh_added_tokens:
 * one pattern per distinct content, in matching order; a normalized one as its normalized
 * form, the first token of a pattern winning). */
static mms_status build_matchers(mms_t5_tokenizer *t, const mms_t5_added_token *added, size_t n, mms_error *err) {
    for (size_t i = 0; i < n; i++) {
        const mms_t5_added_token *a = &added[i];
        if (a->id < 0)
            return mms_error_set(err, MMS_ERR_VALUE, "%s: added token %zu has id %lld", t->name, i, (long long)a->id);
        if (a->len && (!a->content || mms_t5_utf8_check(a->content, a->len) != a->len))
            return mms_error_set(err, MMS_ERR_VALUE, "%s: added token %zu (id %lld) is not UTF-8", t->name, i,
                                 (long long)a->id);
    }
    mms_status st = MMS_OK;
    rank_key *rank = mms_malloc((n + 1) * sizeof *rank);
    const rank_key **by_content = mms_malloc((n + 1) * sizeof *by_content);
    uint8_t *dup = mms_calloc(n + 1, 1);
    t->raw.tok = mms_calloc(n + 1, sizeof *t->raw.tok);
    t->norm.tok = mms_calloc(n + 1, sizeof *t->norm.tok);
    mms_buf buf = {0};
    if (!rank || !by_content || !dup || !t->raw.tok || !t->norm.tok) {
        st = NOMEM(t->name);
        goto done;
    }
    for (size_t i = 0; i < n; i++) rank[i] = (rank_key){&added[i], i};
    qsort(rank, n, sizeof *rank, rank_cmp);
    for (size_t i = 0; i < n; i++) by_content[i] = &rank[i];
    qsort(by_content, n, sizeof *by_content, content_cmp);
    for (size_t i = 1; i < n; i++) /* a later token of the same content is never matched */
        if (same_content(by_content[i - 1]->a, by_content[i]->a)) dup[by_content[i] - rank] = 1;
    for (size_t i = 0; i < n; i++) {
        const mms_t5_added_token *a = rank[i].a;
        if (dup[i] || a->len == 0) continue;
        buf.n = 0;
        if (a->normalized) {
            if ((st = mms_t5_normalize_append(t, a->content, a->len, &buf, err))) goto done;
        } else if (mms_buf_put(&buf, a->content, a->len)) {
            st = NOMEM(t->name);
            goto done;
        }
        if (buf.n == 0) continue;
        t5_matcher *m = a->normalized ? &t->norm : &t->raw;
        t5_added *e = &m->tok[m->n];
        if (!(e->match = mms_malloc(buf.n))) {
            st = NOMEM(t->name);
            goto done;
        }
        memcpy(e->match, buf.p, buf.n);
        e->match_len = buf.n;
        e->id = a->id;
        e->lstrip = a->lstrip != 0;
        e->rstrip = a->rstrip != 0;
        e->single_word = a->single_word != 0;
        m->n++;
    }
    if ((st = index_matcher(t, &t->raw, err)) || (st = index_matcher(t, &t->norm, err))) goto done;
done:
    mms_free(rank);
    mms_free(by_content);
    mms_free(dup);
    mms_buf_free(&buf);
    return st;
}

mms_status mms_t5_tokenizer_create(const mms_sp_tokenizer *sp, const mms_t5_added_token *added, size_t n_added,
                                   mms_t5_params params, mms_t5_tokenizer **out, mms_error *err) {
    if (!out) return mms_error_set(err, MMS_ERR_VALUE, "mms_t5_tokenizer_create: out is NULL");
    *out = NULL;
    if (!sp || (n_added && !added))
        return mms_error_set(err, MMS_ERR_VALUE, "mms_t5_tokenizer_create: no %s", sp ? "added tokens" : "model");
    mms_sp_info info = mms_sp_tokenizer_info(sp);
    if (info.model_type != MMS_SP_MODEL_TYPE_UNIGRAM)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: T5Tokenizer needs a unigram SentencePiece model, not bpe",
                             sp->name);
    if (params.extra_ids < 0 || params.extra_ids > MAX_EXTRA_IDS)
        return mms_error_set(err, MMS_ERR_VALUE, "%s: extra_ids must be in [0, %d], not %lld", sp->name,
                             MAX_EXTRA_IDS, (long long)params.extra_ids);
    mms_t5_tokenizer *t = mms_calloc(1, sizeof *t);
    if (!t || !(t->name = mms_strdup(sp->name))) {
        mms_free(t);
        return mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", sp->name);
    }
    mms_status st;
    t->n_pieces = (int32_t)info.vocab_size;
    t->vocab_size = t->n_pieces + (int32_t)params.extra_ids;
    t->unk_id = params.unk_id;
    t->eos_id = params.eos_id;
    if ((st = build_vocab(t, sp, (int32_t)params.extra_ids, err))) goto fail;
    if (t->eos_id == -1 && (t->eos_id = vocab_find(t, (const uint8_t *)"</s>", 4)) < 0) {
        st = mms_error_set(err, MMS_ERR_VALUE, "%s: no </s> piece for the EOS id", t->name);
        goto fail;
    }
    if (t->eos_id < 0 || t->eos_id >= t->vocab_size || t->unk_id < 0 || t->unk_id >= t->vocab_size) {
        st = mms_error_set(err, MMS_ERR_VALUE, "%s: eos_id %lld and unk_id %lld must be ids of the %d pieces and "
                           "sentinels", t->name, (long long)t->eos_id, (long long)t->unk_id, t->vocab_size);
        goto fail;
    }
    if ((st = copy_charsmap(t, sp, err)) || (st = build_matchers(t, added, n_added, err))) goto fail;
    *out = t;
    return MMS_OK;
fail:
    mms_t5_tokenizer_free(t);
    return st;
}

/* ==== properties and encoding ============================================================================ */

mms_t5_info mms_t5_tokenizer_info(const mms_t5_tokenizer *t) {
    return (mms_t5_info){t->n_pieces, t->vocab_size, t->vocab_size - t->n_pieces, t->eos_id, t->unk_id,
                         t->cm.units != NULL};
}

mms_status mms_t5_tokenizer_normalize(const mms_t5_tokenizer *t, const char *text, size_t len, char **out,
                                      size_t *out_len, mms_error *err) {
    *out = NULL;
    *out_len = 0;
    size_t bad = mms_t5_utf8_check(text, len);
    if (bad < len) return mms_error_set(err, MMS_ERR_VALUE, "text is not valid UTF-8 (byte %zu of %zu)", bad, len);
    mms_buf b = {0};
    mms_status st = mms_t5_normalize_append(t, text, len, &b, err);
    if (!st && mms_buf_reserve(&b, 1)) st = NOMEM("normalize");
    if (st) {
        mms_buf_free(&b);
        return st;
    }
    b.p[b.n] = '\0';
    *out = b.p;
    *out_len = b.n;
    return MMS_OK;
}

mms_status mms_t5_tokenizer_encode_into(const mms_t5_tokenizer *t, const char *text, size_t len, int add_eos,
                                        int64_t *ids, size_t cap, size_t *n_ids, mms_error *err) {
    t5_work w = {0};
    mms_status st = encode_text(t, &w, text, len, add_eos, err);
    if (!st) {
        size_t k = w.n_ids < cap ? w.n_ids : cap;
        if (k) memcpy(ids, w.ids, k * sizeof *ids);
        *n_ids = w.n_ids;
    }
    work_free(&w);
    return st;
}

mms_status mms_t5_tokenizer_encode(const mms_t5_tokenizer *t, const char *text, size_t len, int add_eos,
                                   int64_t **ids, size_t *n_ids, mms_error *err) {
    t5_work w = {0};
    *ids = NULL;
    *n_ids = 0;
    mms_status st = encode_text(t, &w, text, len, add_eos, err);
    if (!st && !w.ids && !(w.ids = mms_malloc(sizeof *w.ids))) st = NOMEM("encode"); /* never NULL */
    if (st) {
        work_free(&w);
        return st;
    }
    *ids = w.ids;
    *n_ids = w.n_ids;
    w.ids = NULL;
    work_free(&w);
    return MMS_OK;
}

/* ==== batches ================================================================================================ */

mms_t5_batch_params mms_t5_batch_default_params(void) { return (mms_t5_batch_params){512, 1, 0, 1, 0}; }

typedef struct t5_batch {
    const mms_t5_tokenizer *t;
    const char *const *texts;
    const size_t *lens;
    mms_t5_batch_params p;
    int64_t *ids, *mask; /* (n, context_length) each; mask may be NULL */
} t5_batch;

static mms_status batch_row(const void *ctx, void *work, int64_t i, int64_t *total, mms_error *e) {
    const t5_batch *b = ctx;
    t5_work *w = work;
    mms_status st = encode_text(b->t, w, b->texts[i], b->lens[i], 0, e);
    if (st) return st;
    const int64_t L = b->p.context_length;
    int64_t *row = b->ids + i * L, m = (int64_t)w->n_ids;
    if (m) memcpy(row, w->ids, (size_t)(m < L ? m : L) * sizeof *row);
    *total = m + (b->p.add_eos != 0);
    mms_batch_row_end(row, b->mask ? b->mask + i * L : NULL, L, *total, b->p.add_eos, b->t->eos_id, b->p.pad_id);
    return MMS_OK;
}

static void batch_work_free(void *w) { work_free(w); }

mms_status mms_t5_tokenizer_encode_batch(const mms_t5_tokenizer *t, const char *const *texts, const size_t *lens,
                                         int64_t n, mms_t5_batch_params params, int64_t *ids, int64_t *mask,
                                         int64_t *n_tokens, mms_error *err) {
    if (n < 0 || params.context_length < 1 || (n > 0 && (!texts || !lens || !ids)))
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: bad arguments (n %lld, context_length %lld)",
                             (long long)n, (long long)params.context_length);
    t5_batch b = {t, texts, lens, params, ids, mask};
    return mms_batch_run(n, params.n_threads, sizeof(t5_work), batch_work_free, batch_row, &b, params.truncate,
                         params.context_length, n_tokens, err);
}
