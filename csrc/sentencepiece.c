/* sentencepiece.c -- what a loaded SentencePiece model does with text (sentencepiece.h):
 * the normalizer (precompiled charsmap, whitespace rules), the BPE and unigram encoders,
 * unknown pieces to byte pieces or unk, batch encoding into padded rows, and decoding.
 * Loading is sentencepiece_model.c's job.
 *
 * Each function mirrors the google/sentencepiece routine named in its comment, down to
 * tie-breaks and float rounding, because ids must match the library's exactly. */
#include "sentencepiece_internal.h"

#include <string.h>

#include "text_util.h"
#include "tokenizer.h" /* mms_utf8_next */

static const char SPACE_SYMBOL[] = "\xE2\x96\x81"; /* U+2581 '▁' */
static const char REPLACEMENT[] = "\xEF\xBF\xBD";  /* U+FFFD */
#define UNK_PENALTY 10.0f                           /* unigram: unknown char = min score - 10 */
#define MAX_CHARSMAP_RESULTS 32                     /* Normalizer::kMaxTrieResultsSize */

/* ==== per-call scratch ======================================================================== */

/* A piece the model produced: its id and its bytes in the normalized text. */
typedef struct sp_seg {
    int32_t id, start, len;
} sp_seg;

/* Unigram: best path ending at a byte position. */
typedef struct sp_best {
    float score;   /* total score of the best path ending here */
    int32_t start; /* where its last piece starts; -1 = not reached yet */
    int32_t id;    /* that piece */
} sp_best;

/* BPE: one symbol of the linked list. */
typedef struct sp_sym {
    int32_t start, len;  /* bytes in the normalized text; len 0 once merged into its left */
    int32_t prev, next;  /* neighbours, -1 at the ends */
    int32_t node;        /* trie node spelling the symbol, -1 if no piece starts with it */
    int32_t freeze;      /* a user-defined piece: never merged */
} sp_sym;

/* BPE: a candidate merge of symbols left and right into the piece at trie node `node`. */
typedef struct sp_pair {
    float score;
    int32_t left, right, size, node;
} sp_pair;

/* BPE: how an UNUSED piece was formed (the library's rev_merge; the last record wins). */
typedef struct sp_rev {
    int32_t node, left_len;
} sp_rev;

/* Growable scratch reused across the texts of a batch; nothing is allocated per piece. */
typedef struct sp_work {
    char *norm;          /* (norm_cap,) normalized text */
    size_t norm_len, norm_cap;
    sp_seg *seg;         /* (seg_cap,) model output */
    size_t n_seg, seg_cap;
    sp_best *best;       /* (best_cap,) unigram lattice columns */
    size_t best_cap;
    sp_sym *sym;         /* (sym_cap,) BPE symbols */
    size_t sym_cap;
    sp_pair *heap;       /* (heap_cap,) BPE agenda, a binary max-heap */
    size_t n_heap, heap_cap;
    sp_rev *rev;         /* (rev_cap,) */
    size_t n_rev, rev_cap;
    int32_t *stack;      /* (stack_cap,) pairs (start, len) to resegment */
    size_t stack_cap;
} sp_work;

static void work_free(sp_work *w) {
    mms_free(w->norm);
    mms_free(w->seg);
    mms_free(w->best);
    mms_free(w->sym);
    mms_free(w->heap);
    mms_free(w->rev);
    mms_free(w->stack);
    memset(w, 0, sizeof *w);
}


static int norm_put(sp_work *w, const char *s, size_t n) {
    if (MMS_GROW(w, norm, norm_cap, w->norm_len + n + 1)) return -1;
    memcpy(w->norm + w->norm_len, s, n);
    w->norm_len += n;
    return 0;
}

static int seg_put(sp_work *w, int32_t id, int32_t start, int32_t len) {
    if (MMS_GROW(w, seg, seg_cap, w->n_seg + 1)) return -1;
    w->seg[w->n_seg++] = (sp_seg){id, start, len};
    return 0;
}

/* ==== normalizer ================================================================================ */

/* Length of the longest user-defined piece at s[0..n), 0 if none (PrefixMatcher). */
static size_t user_defined_prefix(const mms_sp_tokenizer *t, const uint8_t *s, size_t n) {
    size_t best = 0;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        node = sp_trie_child(&t->trie, node, s[i]);
        if (node < 0) break;
        int32_t id = t->trie.piece[node];
        if (id >= 0 && t->type[id] == MMS_SP_PIECE_TYPE_USER_DEFINED) best = i + 1;
    }
    return best;
}

/* Normalizer::NormalizePrefix: the replacement of the longest rule matching at s[0..n)
 * (n >= 1) into *out / *out_len, and the input bytes it consumes into *used. A user-defined
 * piece stays as it is; without a rule one UTF-8 character is copied, or U+FFFD is given
 * for one ill-formed byte. */
static mms_status norm_prefix(const mms_sp_tokenizer *t, const sp_normalizer *nz, const uint8_t *s, size_t n,
                              const char **out, size_t *out_len, size_t *used, mms_error *err) {
    if (nz->match_user_defined) {
        size_t m = user_defined_prefix(t, s, n);
        if (m) {
            *out = (const char *)s;
            *out_len = *used = m;
            return MMS_OK;
        }
    }
    if (nz->units) {
        /* DoubleArray::commonPrefixSearch, every index checked: the blob comes from a file. */
        const uint32_t *u = nz->units;
        size_t nu = nz->n_units, longest = 0;
        uint32_t value = 0, pos = sp_da_offset(u[0]);
        int found = 0;
        for (size_t i = 0; i < n; i++) {
            pos ^= s[i];
            if (pos >= nu) break;
            uint32_t unit = u[pos];
            if (sp_da_label(unit) != s[i]) break;
            pos ^= sp_da_offset(unit);
            if (sp_da_has_leaf(unit)) {
                if (pos >= nu) break;
                if (found++ < MAX_CHARSMAP_RESULTS) {
                    longest = i + 1;
                    value = sp_da_value(u[pos]);
                }
            }
        }
        if (longest) {
            if (value >= nz->strings_len)
                return mms_error_set(err, MMS_ERR_FORMAT, "%s: precompiled_charsmap: replacement at %u is "
                                     "outside its %zu bytes of strings", t->name, value, nz->strings_len);
            *out = nz->strings + value; /* NUL-terminated: strings[strings_len] is a NUL */
            *out_len = strlen(*out);
            *used = longest;
            return MMS_OK;
        }
    }
    uint32_t cp;
    int l = mms_utf8_next(s, n, &cp);
    if (l == 0) {
        *out = REPLACEMENT;
        *out_len = 3;
        *used = 1;
    } else {
        *out = (const char *)s;
        *out_len = *used = (size_t)l;
    }
    return MMS_OK;
}

static int put_ws(sp_work *w, const sp_normalizer *nz) {
    return nz->escape_whitespaces ? norm_put(w, SPACE_SYMBOL, 3) : norm_put(w, " ", 1);
}

/* Normalizer::Normalize into w->norm / w->norm_len (NUL-terminated). */
static mms_status normalize(const mms_sp_tokenizer *t, const sp_normalizer *nz, const uint8_t *s, size_t n,
                            sp_work *w, mms_error *err) {
    const char *r;
    size_t rl, used;
    mms_status st;
    w->norm_len = 0;
    if (MMS_GROW(w, norm, norm_cap, 3 * n + 8)) goto nomem;
    w->norm[0] = '\0';
    if (n == 0) return MMS_OK;
    if (nz->remove_extra_whitespaces) { /* leading spaces, as normalized */
        while (n) {
            if ((st = norm_prefix(t, nz, s, n, &r, &rl, &used, err))) return st;
            if (rl != 1 || r[0] != ' ') break;
            s += used;
            n -= used;
        }
        if (n == 0) return MMS_OK;
    }
    if (!nz->treat_whitespace_as_suffix && nz->add_dummy_prefix && put_ws(w, nz)) goto nomem;
    int is_prev_space = nz->remove_extra_whitespaces;
    while (n) {
        if ((st = norm_prefix(t, nz, s, n, &r, &rl, &used, err))) return st;
        while (is_prev_space && rl && r[0] == ' ') { /* a run of spaces keeps its first */
            r++;
            rl--;
        }
        if (rl) {
            if (MMS_GROW(w, norm, norm_cap, w->norm_len + 3 * rl + 8)) goto nomem;
            for (size_t i = 0; i < rl; i++) {
                if (nz->escape_whitespaces && r[i] == ' ') {
                    memcpy(w->norm + w->norm_len, SPACE_SYMBOL, 3);
                    w->norm_len += 3;
                } else {
                    w->norm[w->norm_len++] = r[i];
                }
            }
            is_prev_space = r[rl - 1] == ' ';
        }
        s += used;
        n -= used;
        if (!nz->remove_extra_whitespaces) is_prev_space = 0;
    }
    if (nz->remove_extra_whitespaces) { /* trailing spaces */
        const char *sp = nz->escape_whitespaces ? SPACE_SYMBOL : " ";
        size_t sl = nz->escape_whitespaces ? 3 : 1;
        while (w->norm_len >= sl && memcmp(w->norm + w->norm_len - sl, sp, sl) == 0) w->norm_len -= sl;
    }
    if (nz->treat_whitespace_as_suffix && nz->add_dummy_prefix && put_ws(w, nz)) goto nomem;
    if (w->norm_len > INT32_MAX / 2)
        return mms_error_set(err, MMS_ERR_VALUE, "text too long (%zu bytes after normalization)", w->norm_len);
    if (MMS_GROW(w, norm, norm_cap, w->norm_len + 1)) goto nomem;
    w->norm[w->norm_len] = '\0';
    return MMS_OK;
nomem:
    return mms_error_set(err, MMS_ERR_NOMEM, "normalize: out of memory");
}

/* ==== unigram ===================================================================================== */

/* unigram::Model::EncodeOptimized: Viterbi over byte positions of the normalized text. At
 * each character start, every piece the text continues with is a candidate edge; a start
 * with no one-character piece also gets an unk edge over its character. Ties keep the
 * first candidate (earlier start, then shorter piece), and scores are summed in float as
 * the library does (user-defined pieces, scored length * max_score - 0.1, in double). */
static mms_status unigram_encode(const mms_sp_tokenizer *t, sp_work *w) {
    const uint8_t *s = (const uint8_t *)w->norm;
    size_t n = w->norm_len;
    w->n_seg = 0;
    if (n == 0) return MMS_OK;
    if (MMS_GROW(w, best, best_cap, n + 1)) return MMS_ERR_NOMEM;
    sp_best *best = w->best;
    for (size_t i = 0; i <= n; i++) best[i] = (sp_best){0.0f, -1, -1};
    const float unk_score = t->min_score - UNK_PENALTY;
    for (size_t start = 0; start < n;) {
        const float base = best[start].score;
        const size_t mblen = sp_char_len(s + start, n - start);
        int has_single = 0;
        int32_t node = 0;
        for (size_t k = start; k < n;) {
            node = sp_trie_child(&t->trie, node, s[k++]);
            if (node < 0) break;
            int32_t id = t->trie.piece[node];
            if (id < 0 || t->type[id] == MMS_SP_PIECE_TYPE_UNUSED) continue;
            size_t length = k - start;
            sp_best *target = &best[k];
            if (t->type[id] == MMS_SP_PIECE_TYPE_USER_DEFINED) {
                double cand = ((double)((float)length * t->max_score) - 0.1) + (double)base;
                if (target->start < 0 || cand > (double)target->score)
                    *target = (sp_best){(float)cand, (int32_t)start, id};
            } else {
                float cand = t->score[id] + base;
                if (target->start < 0 || cand > target->score) *target = (sp_best){cand, (int32_t)start, id};
            }
            if (length == mblen) has_single = 1;
        }
        if (!has_single) {
            sp_best *target = &best[start + mblen];
            float cand = unk_score + base;
            if (target->start < 0 || cand > target->score) *target = (sp_best){cand, (int32_t)start, t->unk_piece};
        }
        start += mblen;
    }
    size_t count = 0;
    for (int32_t end = (int32_t)n; end > 0; end = best[end].start) count++;
    if (MMS_GROW(w, seg, seg_cap, count)) return MMS_ERR_NOMEM;
    w->n_seg = count;
    for (int32_t end = (int32_t)n; end > 0; end = best[end].start)
        w->seg[--count] = (sp_seg){best[end].id, best[end].start, end - best[end].start};
    return MMS_OK;
}

/* ==== BPE ============================================================================================= */

/* The library's priority_queue order: higher score first, then the leftmost pair. */
static inline int pair_less(const sp_pair *a, const sp_pair *b) {
    return a->score < b->score || (a->score == b->score && a->left > b->left);
}

static int heap_push(sp_work *w, sp_pair p) {
    if (MMS_GROW(w, heap, heap_cap, w->n_heap + 1)) return -1;
    size_t i = w->n_heap++;
    while (i > 0 && pair_less(&w->heap[(i - 1) / 2], &p)) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = p;
    return 0;
}

static sp_pair heap_pop(sp_work *w) {
    sp_pair top = w->heap[0], v = w->heap[--w->n_heap];
    size_t i = 0, n = w->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&w->heap[c], &w->heap[c + 1])) c++;
        if (!pair_less(&v, &w->heap[c])) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = v;
    return top;
}

/* MaybeAddNewSymbolPair: queue the merge of l and r if their concatenation is a piece. */
static int bpe_maybe_add(const mms_sp_tokenizer *t, sp_work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    const sp_sym *a = &w->sym[l], *b = &w->sym[r];
    if (a->freeze || b->freeze || a->node < 0) return 0;
    const uint8_t *s = (const uint8_t *)w->norm + b->start;
    int32_t node = a->node;
    for (int32_t i = 0; i < b->len && node >= 0; i++) node = sp_trie_child(&t->trie, node, s[i]);
    if (node < 0) return 0;
    int32_t id = t->trie.piece[node];
    if (id < 0) return 0;
    if (heap_push(w, (sp_pair){t->score[id], l, r, a->len + b->len, node})) return -1;
    if (t->type[id] == MMS_SP_PIECE_TYPE_UNUSED) {
        if (MMS_GROW(w, rev, rev_cap, w->n_rev + 1)) return -1;
        w->rev[w->n_rev++] = (sp_rev){node, a->len};
    }
    return 0;
}

/* Piece id of norm[start, start + len): the library's PieceToId (unk if none). */
static int32_t piece_id_at(const mms_sp_tokenizer *t, const sp_work *w, int32_t start, int32_t len) {
    int32_t id = mms_sp_piece_lookup(t, w->norm + start, (size_t)len);
    return id >= 0 ? id : t->unk_piece;
}

/* The library's `resegment`: an UNUSED piece is split back into the two symbols it was
 * last formed from, recursively (an explicit stack: pieces can be long). */
static int bpe_resegment(const mms_sp_tokenizer *t, sp_work *w, int32_t start, int32_t len) {
    size_t top = 0;
    if (MMS_GROW(w, stack, stack_cap, 2)) return -1;
    w->stack[top++] = start;
    w->stack[top++] = len;
    while (top) {
        int32_t l = w->stack[--top], s = w->stack[--top];
        int32_t id = piece_id_at(t, w, s, l);
        int32_t split = -1;
        if (t->type[id] == MMS_SP_PIECE_TYPE_UNUSED) {
            int32_t node = 0;
            for (int32_t i = 0; i < l && node >= 0; i++) node = sp_trie_child(&t->trie, node, (uint8_t)w->norm[s + i]);
            for (size_t k = w->n_rev; k-- > 0;)
                if (w->rev[k].node == node) {
                    split = w->rev[k].left_len;
                    break;
                }
        }
        if (split <= 0 || split >= l) {
            if (seg_put(w, id, s, l)) return -1;
            continue;
        }
        if (MMS_GROW(w, stack, stack_cap, top + 4)) return -1;
        w->stack[top++] = s + split; /* right half after the left one */
        w->stack[top++] = l - split;
        w->stack[top++] = s;
        w->stack[top++] = split;
    }
    return 0;
}

/* bpe::Model::SampleEncode without dropout: characters (and user-defined pieces, frozen)
 * as symbols, then repeatedly the queued pair with the highest score (leftmost on ties) is
 * merged if both symbols are still as they were when it was queued. */
static mms_status bpe_encode(const mms_sp_tokenizer *t, sp_work *w) {
    const uint8_t *s = (const uint8_t *)w->norm;
    size_t n = w->norm_len;
    w->n_seg = w->n_heap = w->n_rev = 0;
    if (n == 0) return MMS_OK;
    if (MMS_GROW(w, sym, sym_cap, n)) return MMS_ERR_NOMEM;
    int32_t count = 0;
    for (size_t pos = 0; pos < n;) {
        size_t len = t->has_user_defined ? user_defined_prefix(t, s + pos, n - pos) : 0;
        int freeze = len > 0;
        if (!len) len = sp_char_len(s + pos, n - pos);
        int32_t node = -1;
        if (!freeze) {
            node = 0;
            for (size_t i = 0; i < len && node >= 0; i++) node = sp_trie_child(&t->trie, node, s[pos + i]);
        }
        w->sym[count] = (sp_sym){(int32_t)pos, (int32_t)len, count - 1, -1, node, freeze};
        if (count > 0) w->sym[count - 1].next = count;
        count++;
        pos += len;
    }
    for (int32_t i = 1; i < count; i++)
        if (bpe_maybe_add(t, w, i - 1, i)) return MMS_ERR_NOMEM;
    while (w->n_heap) {
        sp_pair top = heap_pop(w);
        sp_sym *a = &w->sym[top.left], *b = &w->sym[top.right];
        if (a->len == 0 || b->len == 0 || a->len + b->len != top.size) continue; /* stale */
        a->len += b->len;
        a->node = top.node;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = top.left;
        b->len = 0;
        if (bpe_maybe_add(t, w, a->prev, top.left) || bpe_maybe_add(t, w, top.left, a->next)) return MMS_ERR_NOMEM;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next)
        if (bpe_resegment(t, w, w->sym[i].start, w->sym[i].len)) return MMS_ERR_NOMEM;
    return MMS_OK;
}

/* ==== encoding ========================================================================================= */

/* SentencePieceProcessor::Encode up to the model's output: normalize, then segment into
 * w->seg. */
static mms_status segment_text(const mms_sp_tokenizer *t, sp_work *w, const char *text, size_t len, mms_error *err) {
    mms_status st = normalize(t, &t->norm, (const uint8_t *)text, len, w, err);
    if (st) return st;
    st = t->model_type == MMS_SP_MODEL_TYPE_BPE ? bpe_encode(t, w) : unigram_encode(t, w);
    if (st) return mms_error_set(err, st, "encode: out of memory (text of %zu bytes)", len);
    return MMS_OK;
}

/* Ids of the segments (PopulateSentencePieceText): an unknown piece becomes its bytes as
 * byte pieces (byte_fallback), or one unk stands for a run of unknown pieces. */
static void put_ids(const mms_sp_tokenizer *t, const sp_work *w, mms_id_sink *out) {
    int prev_unk = 0;
    for (size_t i = 0; i < w->n_seg; i++) {
        const sp_seg *g = &w->seg[i];
        int is_unk = t->type[g->id] == MMS_SP_PIECE_TYPE_UNKNOWN;
        if (is_unk && t->byte_fallback) {
            for (int32_t k = 0; k < g->len; k++) mms_sink_put(out, t->byte_id[(uint8_t)w->norm[g->start + k]]);
        } else if (!(is_unk && prev_unk)) {
            mms_sink_put(out, g->id);
        }
        prev_unk = is_unk;
    }
}

static mms_status encode_text(const mms_sp_tokenizer *t, sp_work *w, const char *text, size_t len, mms_id_sink *out,
                              mms_error *err) {
    mms_status st = segment_text(t, w, text, len, err);
    if (!st) put_ids(t, w, out);
    return st;
}

mms_status mms_sp_tokenizer_normalize(const mms_sp_tokenizer *t, const char *text, size_t len, char **out,
                                      size_t *out_len, mms_error *err) {
    sp_work w = {0};
    *out = NULL;
    *out_len = 0;
    mms_status st = normalize(t, &t->norm, (const uint8_t *)text, len, &w, err);
    if (!st) {
        *out = w.norm; /* NUL-terminated by normalize */
        *out_len = w.norm_len;
        w.norm = NULL;
    }
    work_free(&w);
    return st;
}

mms_status mms_sp_tokenizer_encode_into(const mms_sp_tokenizer *t, const char *text, size_t len, int64_t *ids,
                                        size_t cap, size_t *n_ids, mms_error *err) {
    sp_work w = {0};
    mms_id_sink out = {ids, ids ? cap : 0, 0, 0};
    mms_status st = encode_text(t, &w, text, len, &out, err);
    work_free(&w);
    *n_ids = out.n;
    return st;
}

mms_status mms_sp_tokenizer_encode(const mms_sp_tokenizer *t, const char *text, size_t len, int64_t **ids,
                                   size_t *n_ids, mms_error *err) {
    sp_work w = {0};
    *ids = NULL;
    *n_ids = 0;
    mms_status st = segment_text(t, &w, text, len, err);
    if (!st) {
        mms_id_sink count = {NULL, 0, 0, 0}; /* count, then fill: the segments stay in w */
        put_ids(t, &w, &count);
        int64_t *buf = mms_malloc((count.n ? count.n : 1) * sizeof *buf);
        if (!buf) {
            st = mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory");
        } else {
            mms_id_sink out = {buf, count.n, 0, 0};
            put_ids(t, &w, &out);
            *ids = buf;
            *n_ids = out.n;
        }
    }
    work_free(&w);
    return st;
}

mms_sp_batch_params mms_sp_batch_default_params(void) {
    return (mms_sp_batch_params){.context_length = 64, .truncate = 1, .pad_id = 0, .add_bos = 0, .add_eos = 0,
                                 .n_threads = 0};
}

/* One row (context_length,): [BOS] ids [EOS], cut to the row (EOS kept last), padded. */
static mms_status encode_row(const mms_sp_tokenizer *t, sp_work *w, const char *text, size_t len,
                             const mms_sp_batch_params *p, int64_t *row, int64_t *mask, int64_t *total,
                             mms_error *err) {
    int64_t L = p->context_length, nb = p->add_bos ? 1 : 0, ne = p->add_eos ? 1 : 0;
    if (nb) row[0] = t->bos_id;
    mms_id_sink out = {row + nb, (size_t)(L - nb), 0, 0};
    mms_status st = encode_text(t, w, text, len, &out, err);
    if (st) return st;
    int64_t n = (int64_t)out.n + nb + ne;
    mms_batch_row_end(row, mask, L, n, (int)ne, t->eos_id, p->pad_id);
    *total = n;
    return MMS_OK;
}

/* one text of a batch (mms_batch_run's row callback) */
typedef struct sp_batch_ctx {
    const mms_sp_tokenizer *t;
    const char *const *texts;
    const size_t *lens;
    const mms_sp_batch_params *p;
    int64_t *ids, *mask;
} sp_batch_ctx;

static mms_status sp_batch_row(const void *ctx, void *work, int64_t i, int64_t *total, mms_error *e) {
    const sp_batch_ctx *c = ctx;
    const int64_t L = c->p->context_length;
    return encode_row(c->t, work, c->texts[i], c->lens[i], c->p, c->ids + i * L, c->mask ? c->mask + i * L : NULL,
                      total, e);
}

static void sp_work_free(void *w) { work_free(w); }

mms_status mms_sp_tokenizer_encode_batch(const mms_sp_tokenizer *t, const char *const *texts, const size_t *lens,
                                         int64_t n, mms_sp_batch_params p, int64_t *ids, int64_t *mask,
                                         int64_t *n_tokens, mms_error *err) {
    int64_t min_len = (p.add_bos ? 1 : 0) + (p.add_eos ? 1 : 0);
    if (min_len < 1) min_len = 1;
    if (n < 0 || p.context_length < min_len)
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: need n >= 0 and context_length >= %lld, got n=%lld, "
                             "context_length=%lld", (long long)min_len, (long long)n, (long long)p.context_length);
    if (p.add_bos && t->bos_id < 0)
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: add_bos, but the model has no BOS control piece");
    if (p.add_eos && t->eos_id < 0)
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: add_eos, but the model has no EOS control piece");
    sp_batch_ctx c = {t, texts, lens, &p, ids, mask};
    return mms_batch_run(n, p.n_threads, sizeof(sp_work), sp_work_free, sp_batch_row, &c, p.truncate,
                         p.context_length, n_tokens, err);
}

/* ==== decoding ========================================================================================== */

/* Value of a BYTE piece "<0xAB>" (the loader checked the form). */
static uint8_t byte_of_piece(const char *p) {
    int v = 0;
    for (int i = 3; i < 5; i++) v = v * 16 + (p[i] <= '9' ? p[i] - '0' : p[i] - 'A' + 10);
    return (uint8_t)v;
}

/* SentencePieceProcessor::Decode. */
mms_status mms_sp_tokenizer_decode(const mms_sp_tokenizer *t, const int64_t *ids, size_t n, char **text,
                                   size_t *len, mms_error *err) {
    *text = NULL;
    *len = 0;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t id = ids[i];
        if (id < 0 || id >= t->n_pieces)
            return mms_error_set(err, MMS_ERR_VALUE, "decode: id %lld at position %zu is not in the vocabulary "
                                 "[0, %d)", (long long)id, i, (int)t->n_pieces);
        int ty = t->type[id];
        cap += ty == MMS_SP_PIECE_TYPE_UNKNOWN ? t->unk_surface_len
             : ty == MMS_SP_PIECE_TYPE_BYTE    ? 3
                                               : (size_t)t->len[id];
    }
    char *out = mms_malloc(cap);
    uint8_t *run = mms_malloc(n + 1);
    if (!out || !run) {
        mms_free(out);
        mms_free(run);
        return mms_error_set(err, MMS_ERR_NOMEM, "decode: out of memory");
    }
    const int strip_first = t->norm.add_dummy_prefix || t->norm.remove_extra_whitespaces;
    size_t o = 0, n_run = 0;
    int is_bos_ws = 1, bos_ws_seen = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = (int32_t)ids[i];
        int ty = t->type[id];
        if (ty == MMS_SP_PIECE_TYPE_BYTE) {
            run[n_run++] = byte_of_piece(t->pool + t->off[id]);
            continue;
        }
        o += mms_utf8_replace_bytes(run, n_run, (uint8_t *)out + o);
        n_run = 0;
        if (bos_ws_seen || o > 0) is_bos_ws = 0;
        bos_ws_seen = 0;
        if (ty == MMS_SP_PIECE_TYPE_CONTROL) continue;
        if (ty == MMS_SP_PIECE_TYPE_UNKNOWN) {
            memcpy(out + o, t->unk_surface, t->unk_surface_len);
            o += t->unk_surface_len;
            continue;
        }
        const char *p = t->pool + t->off[id];
        size_t pl = (size_t)t->len[id];
        if (is_bos_ws && strip_first && pl >= 3 && memcmp(p, SPACE_SYMBOL, 3) == 0) {
            p += 3;
            pl -= 3;
            /* with remove_extra_whitespaces every leading '▁' goes, not just the first */
            bos_ws_seen = !t->norm.remove_extra_whitespaces;
        }
        for (size_t k = 0; k < pl;) {
            if (pl - k >= 3 && memcmp(p + k, SPACE_SYMBOL, 3) == 0) {
                out[o++] = ' ';
                k += 3;
            } else {
                out[o++] = p[k++];
            }
        }
    }
    o += mms_utf8_replace_bytes(run, n_run, (uint8_t *)out + o);
    mms_free(run);
    out[o] = '\0';
    if (t->has_denorm) {
        sp_work w = {0};
        mms_status st = normalize(t, &t->denorm, (const uint8_t *)out, o, &w, err);
        mms_free(out);
        if (st) {
            work_free(&w);
            return st;
        }
        out = w.norm;
        o = w.norm_len;
        w.norm = NULL;
        work_free(&w);
    }
    *text = out;
    *len = o;
    return MMS_OK;
}
