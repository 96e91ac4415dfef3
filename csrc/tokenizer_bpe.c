/* tokenizer_bpe.c -- the CLIP BPE tokenizer of tokenizer.h: the pre-tokenizer, BPE of a piece
 * with its word cache, batch encoding to padded rows, and decoding (loading lives in
 * tokenizer_bpe_load.c, the merge loop shared with the GPT-2 / HF tokenizers in bpe_merge.c).
 *
 * Symbols are token ids from the start: every byte symbol, "byte</w>" symbol and merge
 * result is a vocabulary entry, so a merge is a lookup (left id, right id) -> (rank,
 * result id) in an integer hash map and no strings are built while encoding. */
#include "tokenizer_bpe_internal.h"

#include "pretok.h"

/* ==== properties =========================================================================== */

int64_t mms_bpe_tokenizer_vocab_size(const mms_bpe_tokenizer *t) { return t->m.vocab_size; }
int64_t mms_bpe_tokenizer_n_merges(const mms_bpe_tokenizer *t) { return t->m.n_merges; }
int64_t mms_bpe_tokenizer_sot_id(const mms_bpe_tokenizer *t) { return t->sot_id; }
int64_t mms_bpe_tokenizer_eot_id(const mms_bpe_tokenizer *t) { return t->eot_id; }

int64_t mms_bpe_tokenizer_token_to_id(const mms_bpe_tokenizer *t, const char *token, size_t len) {
    return vocab_find(&t->m, token, len);
}

const char *mms_bpe_tokenizer_id_to_token(const mms_bpe_tokenizer *t, int64_t id) {
    return bpe_model_token(&t->m, id, NULL);
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

/* Class of the character at s[0..n) (length in *l, 0 if ill-formed); U+0345 -> -1. */
static inline int char_class(const uint8_t *s, size_t n, int *l) {
    uint32_t cp;
    int cls = mms_pretok_class(s, n, l, &cp);
    return *l && cp == 0x345 ? -1 : cls;
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
            if ((m = mms_pretok_match_ci(s + i, n - i, SOT_STRING)))
                kind = m == sizeof SOT_STRING - 1 && !memcmp(s + i, SOT_STRING, m) ? PIECE_SOT : kind;
            else if ((m = mms_pretok_match_ci(s + i, n - i, EOT_STRING)))
                kind = m == sizeof EOT_STRING - 1 && !memcmp(s + i, EOT_STRING, m) ? PIECE_EOT : kind;
        } else if (s[i] == '\'') {
            for (size_t c = 0; c < sizeof contractions / sizeof *contractions && !m; c++)
                m = mms_pretok_match_ci(s + i, n - i, contractions[c]);
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

/* ==== BPE ================================================================================== */

/* BPE of one piece s[0..n), n >= 1: its bytes as symbols, "</w>" on the last one, merged as
 * the reference does (BPE_MERGE_PASS). Final ids go to w->id[0..count), the count is
 * returned. */
static size_t bpe_piece(const mms_bpe_tokenizer *t, bpe_work *w, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++) w->id[i] = t->byte_id[s[i]];
    w->id[n - 1] = t->byte_eow_id[s[n - 1]];
    return mms_bpe_merge(&t->m.merges, w, n, BPE_MERGE_PASS);
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
        if (b - a > w->cap && mms_bpe_work_reserve(w, b - a))
            return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory (piece of %zu bytes)", b - a);
        encode_piece(t, w, s + a, b - a, out);
    }
}

mms_status mms_bpe_tokenizer_encode_into(const mms_bpe_tokenizer *t, const char *text,
                                         size_t len, int64_t *ids, size_t cap, size_t *n_ids,
                                         mms_error *err) {
    bpe_work w = {0};
    mms_id_sink out = {ids, ids ? cap : 0, 0, 0};
    if (mms_bpe_work_reserve(&w, 64)) return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory");
    mms_status st = encode_text(t, &w, text, len, &out, err);
    mms_bpe_work_free(&w);
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
        int ok = mms_bpe_work_reserve(&w, 64) == 0;
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
        mms_bpe_work_free(&w);
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
        if (id < 0 || id >= t->m.vocab_size || t->m.str_off[id] < 0)
            return mms_error_set(err, MMS_ERR_VALUE, "decode: id %lld at position %zu is not in the "
                                 "vocabulary [0, %d)", (long long)id, i, (int)t->m.vocab_size);
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
