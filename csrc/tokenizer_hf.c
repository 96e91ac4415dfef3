/* tokenizer_hf.c -- encoding with an mms_hf_tokenizer (tokenizer_hf.h), step by step as HF
 * tokenizers' Tokenizer::encode: added tokens cut out of the raw text, the normalizer on each
 * remaining segment, normalized added tokens cut out, the pre-tokenizers, BPE on each
 * piece, the post-processor's ids around them. Loading is tokenizer_hf_load.c's job,
 * decoding tokenizer_hf_decode.c's. */
#include "tokenizer_hf_internal.h"
#include "unicode_norm.h"

/* ==== properties =============================================================================== */

int64_t mms_hf_tokenizer_vocab_size(const mms_hf_tokenizer *t) { return t->vocab_size; }

int64_t mms_hf_tokenizer_model_vocab_size(const mms_hf_tokenizer *t) { return t->model_vocab_size; }

int64_t mms_hf_tokenizer_unk_id(const mms_hf_tokenizer *t) { return t->unk_id; }

const char *mms_hf_token(const mms_hf_tokenizer *t, int64_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (t->added_of_id[id] >= 0) {
        const hf_added *a = &t->added[t->added_of_id[id]];
        if (len) *len = a->len;
        return a->content;
    }
    return bpe_model_token(&t->bpe, id, len);
}

const char *mms_hf_tokenizer_id_to_token(const mms_hf_tokenizer *t, int64_t id, size_t *len) {
    return mms_hf_token(t, id, len);
}

int64_t mms_hf_tokenizer_token_to_id(const mms_hf_tokenizer *t, const char *s, size_t n) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return t->added[i].id;
    return vocab_find(&t->bpe, s, n);
}

int mms_hf_tokenizer_is_special(const mms_hf_tokenizer *t, int64_t id) {
    return id >= 0 && id < t->vocab_size && t->added_of_id[id] >= 0 && t->added[t->added_of_id[id]].special;
}

size_t mms_hf_tokenizer_n_added(const mms_hf_tokenizer *t) { return t->n_added; }

mms_hf_added_token mms_hf_tokenizer_added(const mms_hf_tokenizer *t, size_t i) {
    if (i >= t->n_added) return (mms_hf_added_token){-1, NULL, 0, 0, 0, 0, 0, 0};
    const hf_added *a = &t->added[i];
    return (mms_hf_added_token){a->id, a->content, a->len, a->special, a->lstrip, a->rstrip, a->single_word,
                                a->normalized};
}

void mms_hf_tokenizer_template(const mms_hf_tokenizer *t, const int64_t **prefix, size_t *n_prefix,
                               const int64_t **suffix, size_t *n_suffix) {
    *prefix = t->prefix;
    *n_prefix = t->n_prefix;
    *suffix = t->suffix;
    *n_suffix = t->n_suffix;
}

/* ==== per-call scratch ============================================================================ */

/* A split of the text: bytes buf[off, off + len) of its list, or an added token (id >= 0).
 * at_start: it begins at offset 0 of the original text (Metaspace prepend_scheme "first"). */
typedef struct hf_split {
    size_t off, len;
    int32_t id;
    int at_start;
} hf_split;

typedef struct hf_list {
    hf_split *v; /* (cap,) */
    size_t n, cap;
    mms_buf buf;
} hf_list;

/* A stretch [start, end) of a split and whether the pattern matched it. */
typedef struct hf_event {
    size_t start, end;
    int match;
} hf_event;

typedef struct hf_work {
    hf_list a, b;        /* splits, ping-pong between steps */
    mms_buf t1, t2, t3;  /* text scratch */
    hf_event *ev;        /* (ev_cap,) */
    size_t ev_cap;
    int64_t *ids;        /* (ids_cap,) the text's ids */
    size_t n_ids, ids_cap;
    bpe_work bw;
} hf_work;

static void work_free(hf_work *w) {
    mms_free(w->a.v);
    mms_free(w->b.v);
    mms_buf_free(&w->a.buf);
    mms_buf_free(&w->b.buf);
    mms_buf_free(&w->t1);
    mms_buf_free(&w->t2);
    mms_buf_free(&w->t3);
    mms_free(w->ev);
    mms_free(w->ids);
    mms_bpe_work_free(&w->bw);
    memset(w, 0, sizeof *w);
}

static int list_push(hf_list *l, size_t off, size_t len, int32_t id, int at_start) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        hf_split *v = mms_realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (hf_split){off, len, id, at_start};
    return 0;
}

/* Copy s[0..n) into l's buffer as a new text split (empty ones are dropped, as HF does). */
static int list_text(hf_list *l, const char *s, size_t n, int at_start) {
    if (n == 0) return 0;
    size_t off = l->buf.n;
    return mms_buf_put(&l->buf, s, n) || list_push(l, off, n, -1, at_start);
}

static int event_push(hf_work *w, size_t *n, size_t start, size_t end, int match) {
    if (*n == w->ev_cap) {
        size_t cap = w->ev_cap ? 2 * w->ev_cap : 64;
        hf_event *e = mms_realloc(w->ev, cap * sizeof *e);
        if (!e) return -1;
        w->ev = e;
        w->ev_cap = cap;
    }
    w->ev[(*n)++] = (hf_event){start, end, match};
    return 0;
}

static int ids_push(hf_work *w, int64_t id) {
    if (w->n_ids == w->ids_cap) {
        size_t cap = w->ids_cap ? 2 * w->ids_cap : 64;
        int64_t *p = mms_realloc(w->ids, cap * sizeof *p);
        if (!p) return -1;
        w->ids = p;
        w->ids_cap = cap;
    }
    w->ids[w->n_ids++] = id;
    return 0;
}

/* ==== character helpers =========================================================================== */

/* Is the character at s[0..n) White_Space (Rust's char::is_whitespace)? Its length goes to *l. */
static int is_space(const char *s, size_t n, size_t *l) {
    uint32_t cp;
    int len;
    int cls = mms_pretok_class((const uint8_t *)s, n, &len, &cp);
    *l = (size_t)(len ? len : 1);
    return cls == MMS_UCLASS_SPACE;
}


/* ==== added tokens ====================================================================================== */

/* The added token of m at s[i..n) (longest first), or NULL. */
static const hf_added *match_at(const mms_hf_tokenizer *t, const hf_matcher *m, const char *s, size_t n, size_t i) {
    uint8_t b = (uint8_t)s[i];
    for (uint32_t k = m->first[b]; k < m->first[b + 1]; k++) {
        const hf_added *a = &t->added[m->idx[k]];
        if (a->match_len <= n - i && memcmp(s + i, a->match, a->match_len) == 0) return a;
    }
    return NULL;
}

/* AddedVocabulary::find_matches on s[0..n): token splits and the text between them into out.
 * The scan resumes after each match's own end whether or not it was used, as the
 * Aho-Corasick iterator HF uses does. */
static int split_added(const mms_hf_tokenizer *t, const hf_matcher *m, int skip_special, const char *s, size_t n,
                       int at_start, hf_list *out) {
    if (m->n == 0) return list_text(out, s, n, at_start);
    size_t start_offset = 0;
    for (size_t i = 0; i < n;) {
        const hf_added *a = match_at(t, m, s, n, i);
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + a->match_len;
        i = stop;
        if (skip_special && a->special) continue;
        if (a->single_word &&
            ((start > 0 && mms_utf8_ends_with_word(s, start)) || (stop < n && mms_utf8_starts_with_word(s + stop, n - stop))))
            continue;
        if (a->lstrip) {
            size_t j = start, l;
            while (j > 0) { /* step back one character at a time */
                size_t k = j - 1;
                while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
                if (!is_space(s + k, n - k, &l)) break;
                j = k;
            }
            start = j > start_offset ? j : start_offset;
        }
        if (a->rstrip) {
            size_t l;
            while (stop < n && is_space(s + stop, n - stop, &l)) stop += l;
        }
        if (start_offset < start &&
            list_text(out, s + start_offset, start - start_offset, at_start && start_offset == 0))
            return -1;
        if (list_push(out, 0, 0, a->id, 0)) return -1;
        start_offset = stop;
    }
    return start_offset < n ? list_text(out, s + start_offset, n - start_offset, at_start && start_offset == 0) : 0;
}

/* ==== normalizers ========================================================================================= */

static int norm_step(const hf_norm *z, const char *s, size_t n, mms_buf *out) {
    switch (z->kind) {
    case HF_NORM_PREPEND:
        return n ? mms_buf_put(out, z->a, z->alen) || mms_buf_put(out, s, n) : 0;
    case HF_NORM_REPLACE: {
        if (z->alen == 0) return mms_buf_put(out, s, n);
        size_t from = 0;
        for (size_t i = 0; i + z->alen <= n;) {
            if (memcmp(s + i, z->a, z->alen) == 0) {
                if (mms_buf_put(out, s + from, i - from) || mms_buf_put(out, z->b, z->blen)) return -1;
                i += z->alen;
                from = i;
            } else {
                i++;
            }
        }
        return mms_buf_put(out, s + from, n - from);
    }
    case HF_NORM_LOWERCASE: return mms_unicode_lower_append(out, s, n);
    case HF_NORM_NFC: return mms_unicode_nf_append(out, s, n, 1);
    case HF_NORM_NFD: return mms_unicode_nf_append(out, s, n, 0);
    case HF_NORM_STRIP: {
        size_t a = 0, b = n, l;
        while (z->left && a < b && is_space(s + a, b - a, &l)) a += l;
        while (z->right && b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
            if (!is_space(s + k, b - k, &l)) break;
            b = k;
        }
        return mms_buf_put(out, s + a, b - a);
    }
    }
    return -1;
}

int mms_hf_normalize(const mms_hf_tokenizer *t, const char *s, size_t n, mms_buf *out, mms_buf *t1, mms_buf *t2) {
    mms_buf *bufs[2] = {t1, t2};
    for (size_t k = 0; k < t->n_norm; k++) {
        mms_buf *dst = bufs[k & 1];
        dst->n = 0;
        if (mms_buf_reserve(dst, 1) || norm_step(&t->norm[k], s, n, dst)) return -1;
        s = dst->p;
        n = dst->n;
    }
    return mms_buf_put(out, s, n);
}

/* ==== pre-tokenizers ======================================================================================== */

/* Splits of s[0..n) from events w->ev[0..ne) under a SplitDelimiterBehavior (HF's
 * NormalizedString::split). */
static int apply_behavior(hf_work *w, size_t ne, hf_behavior b, const char *s, int at_start, hf_list *out) {
    hf_event *ev = w->ev;
    size_t m = 0; /* merged events, in place */
    if (b == HF_MERGED_WITH_NEXT) { /* fold from the right */
        int prev_match = 0;
        size_t k = ne;
        for (size_t i = ne; i-- > 0;) {
            int match = ev[i].match; /* ev[i] may be overwritten below */
            if (match && !prev_match && k < ne) ev[k].start = ev[i].start;
            else ev[--k] = (hf_event){ev[i].start, ev[i].end, 0};
            prev_match = match;
        }
        memmove(ev, ev + k, (ne - k) * sizeof *ev);
        m = ne - k;
    } else {
        int prev_match = 0;
        for (size_t i = 0; i < ne; i++) {
            int merge = b == HF_MERGED_WITH_PREVIOUS ? ev[i].match && !prev_match
                                                     : b == HF_CONTIGUOUS && ev[i].match == prev_match;
            int drop = b == HF_REMOVED && ev[i].match;
            prev_match = ev[i].match;
            if (drop) continue;
            if (merge && m > 0) ev[m - 1].end = ev[i].end;
            else ev[m++] = (hf_event){ev[i].start, ev[i].end, 0};
        }
    }
    for (size_t i = 0; i < m; i++)
        if (list_text(out, s + ev[i].start, ev[i].end - ev[i].start, at_start && ev[i].start == 0)) return -1;
    return 0;
}

/* Events of pattern step p (Split or Digits) over s[0..n) into w->ev; their count in *ne. */
static int find_events(const hf_pre *p, hf_work *w, const char *s, size_t n, size_t *ne) {
    const uint8_t *u = (const uint8_t *)s;
    size_t last = 0;
    *ne = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i, len = 0;
        if (p->kind == HF_PRE_DIGITS) {
            int l;
            uint32_t cp;
            int cls = mms_pretok_class(u + i, n - i, &l, &cp);
            i += (size_t)(l ? l : 1);
            if (cls != MMS_UCLASS_NUMBER) continue;
            len = i - start;
        } else if (p->pattern >= 0) {
            len = mms_split_match((mms_split_pattern)p->pattern, u + i, n - i);
            i += len;
        } else if (p->str_len && p->str_len <= n - i && memcmp(s + i, p->str, p->str_len) == 0) {
            len = p->str_len;
            i += len;
        } else {
            i++;
            continue;
        }
        if (last < start && event_push(w, ne, last, start, p->invert)) return -1;
        if (event_push(w, ne, start, start + len, !p->invert)) return -1;
        last = start + len;
    }
    return last < n ? event_push(w, ne, last, n, p->invert) : 0;
}

/* Bytes s[0..n) as byte-level characters, one split. */
static int bytelevel_split(const mms_hf_tokenizer *t, const char *s, size_t n, int at_start, hf_list *out) {
    size_t off = out->buf.n;
    if (mms_buf_reserve(&out->buf, 2 * n + 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        memcpy(out->buf.p + out->buf.n, t->byte_char[b], t->byte_char_len[b]);
        out->buf.n += t->byte_char_len[b];
    }
    return n ? list_push(out, off, out->buf.n - off, -1, at_start) : 0;
}

static int pre_step(const mms_hf_tokenizer *t, const hf_pre *p, hf_work *w, const char *s, size_t n, int at_start,
                    hf_list *out) {
    mms_buf *tmp = &w->t3;
    tmp->n = 0;
    switch (p->kind) {
    case HF_PRE_BYTELEVEL: {
        if (p->add_prefix_space && s[0] != ' ') {
            if (mms_buf_put(tmp, " ", 1) || mms_buf_put(tmp, s, n)) return -1;
            s = tmp->p;
            n = tmp->n;
        }
        if (!p->use_regex) return bytelevel_split(t, s, n, at_start, out);
        for (size_t i = 0, len; i < n; i += len) {
            len = mms_split_match(MMS_SPLIT_GPT2, (const uint8_t *)s + i, n - i);
            if (bytelevel_split(t, s + i, len, at_start && i == 0, out)) return -1;
        }
        return 0;
    }
    case HF_PRE_METASPACE: {
        /* spaces become the replacement first, so a leading space counts as one */
        int prepend = p->prepend == HF_PREPEND_ALWAYS || (p->prepend == HF_PREPEND_FIRST && at_start);
        if (prepend && s[0] != ' ' && !(n >= p->repl_len && memcmp(s, p->repl, p->repl_len) == 0) &&
            mms_buf_put(tmp, p->repl, p->repl_len))
            return -1;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ' ' ? mms_buf_put(tmp, p->repl, p->repl_len) : mms_buf_put(tmp, s + i, 1)) return -1;
        if (!p->split) return list_text(out, tmp->p, tmp->n, at_start);
        size_t ne = 0, last = 0;
        for (size_t i = 0; i + p->repl_len <= tmp->n; i++) {
            if (memcmp(tmp->p + i, p->repl, p->repl_len)) continue;
            if ((last < i && event_push(w, &ne, last, i, 0)) || event_push(w, &ne, i, i + p->repl_len, 1)) return -1;
            last = i + p->repl_len;
        }
        if (last < tmp->n && event_push(w, &ne, last, tmp->n, 0)) return -1;
        return apply_behavior(w, ne, HF_MERGED_WITH_NEXT, tmp->p, at_start, out);
    }
    case HF_PRE_SPLIT:
    case HF_PRE_DIGITS: {
        size_t ne;
        if (find_events(p, w, s, n, &ne)) return -1;
        hf_behavior b = p->kind == HF_PRE_SPLIT ? p->behavior : p->individual_digits ? HF_ISOLATED : HF_CONTIGUOUS;
        return apply_behavior(w, ne, b, s, at_start, out);
    }
    }
    return -1;
}

/* ==== the model ================================================================================================ */

/* BPE::merge_word + Word::merge_all on one piece s[0..n): characters as symbols (unknown
 * ones as <0xXX> byte tokens with byte_fallback, else unk, fused with fuse_unk, else
 * dropped), then the merges. */
static int model_piece(const mms_hf_tokenizer *t, hf_work *w, const char *s, size_t n) {
    if (t->ignore_merges) {
        int64_t id = vocab_find(&t->bpe, s, n);
        if (id >= 0) return ids_push(w, id);
    }
    if (mms_bpe_work_reserve(&w->bw, n)) return -1;
    int32_t *sym = w->bw.id;
    size_t k = 0;
    int unk = 0; /* an unk symbol is pending */
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = mms_utf8_next(u + i, n - i, &cp);
        if (l == 0) l = 1; /* not reached: text is validated */
        int64_t id = cp < HF_CHAR_TABLE ? t->char_id[cp] : vocab_find(&t->bpe, s + i, (size_t)l);
        if (id >= 0) {
            if (unk) sym[k++] = t->unk_id;
            unk = 0;
            sym[k++] = (int32_t)id;
        } else {
            int all = t->byte_fallback;
            for (int b = 0; all && b < l; b++) all = t->byte_token[u[i + (size_t)b]] >= 0;
            if (all) {
                for (int b = 0; b < l; b++) sym[k++] = t->byte_token[u[i + (size_t)b]];
            } else if (t->unk_id >= 0) {
                if (unk && !t->fuse_unk) sym[k++] = t->unk_id;
                unk = 1;
            }
        }
        i += (size_t)l;
    }
    if (unk) sym[k++] = t->unk_id;
    if (k == 0) return 0;
    size_t count = mms_bpe_merge(&t->bpe.merges, &w->bw, k, t->merge_mode);
    for (size_t i = 0; i < count; i++)
        if (ids_push(w, w->bw.id[i])) return -1;
    return 0;
}

/* ==== encoding ================================================================================================== */

/* Ids of text into w->ids (w->n_ids), without the post-processor's. */
static mms_status encode_text(const mms_hf_tokenizer *t, hf_work *w, const char *text, size_t len, int flags,
                              mms_error *err) {
    w->n_ids = 0;
    for (size_t i = 0; i < len;) { /* UTF-8 check up front: every later step may assume it */
        uint32_t cp;
        if ((uint8_t)text[i] < 0x80) {
            i++;
            continue;
        }
        int l = mms_utf8_next((const uint8_t *)text + i, len - i, &cp);
        if (!l) return mms_error_set(err, MMS_ERR_VALUE, "encode: text is not valid UTF-8 at byte %zu", i);
        i += (size_t)l;
    }
    int skip_special = (flags & MMS_HF_SPLIT_SPECIAL) != 0;
    hf_list *src = &w->a, *dst = &w->b;
    src->n = src->buf.n = dst->n = dst->buf.n = 0;
    if (split_added(t, &t->raw, skip_special, text, len, 1, src)) goto nomem;
    for (size_t i = 0; i < src->n; i++) {
        const hf_split *sp = &src->v[i];
        if (sp->id >= 0) {
            if (list_push(dst, 0, 0, sp->id, 0)) goto nomem;
            continue;
        }
        w->t3.n = 0;
        if (mms_hf_normalize(t, src->buf.p + sp->off, sp->len, &w->t3, &w->t1, &w->t2) ||
            split_added(t, &t->normalized, skip_special, w->t3.p, w->t3.n, sp->at_start, dst))
            goto nomem;
    }
    for (size_t k = 0; k < t->n_pre; k++) {
        hf_list *tmp = src;
        src = dst;
        dst = tmp;
        dst->n = dst->buf.n = 0;
        for (size_t i = 0; i < src->n; i++) {
            const hf_split *sp = &src->v[i];
            if (sp->id >= 0 ? list_push(dst, 0, 0, sp->id, 0)
                            : pre_step(t, &t->pre[k], w, src->buf.p + sp->off, sp->len, sp->at_start, dst))
                goto nomem;
        }
    }
    for (size_t i = 0; i < dst->n; i++) {
        const hf_split *sp = &dst->v[i];
        if (sp->id >= 0 ? ids_push(w, sp->id) : model_piece(t, w, dst->buf.p + sp->off, sp->len)) goto nomem;
    }
    return MMS_OK;
nomem:
    return mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory (text of %zu bytes)", len);
}

mms_status mms_hf_tokenizer_encode(const mms_hf_tokenizer *t, const char *text, size_t len, int flags, int64_t **ids,
                                   size_t *n_ids, mms_error *err) {
    hf_work w = {0};
    *ids = NULL;
    *n_ids = 0;
    mms_status st = encode_text(t, &w, text, len, flags, err);
    if (!st) {
        int sp = (flags & MMS_HF_ADD_SPECIAL) != 0;
        size_t n = w.n_ids + (sp ? t->n_prefix + t->n_suffix : 0);
        int64_t *out = mms_malloc((n ? n : 1) * sizeof *out);
        if (!out) {
            st = mms_error_set(err, MMS_ERR_NOMEM, "encode: out of memory");
        } else {
            size_t k = 0;
            if (sp) for (size_t i = 0; i < t->n_prefix; i++) out[k++] = t->prefix[i];
            if (w.n_ids) memcpy(out + k, w.ids, w.n_ids * sizeof *out);
            k += w.n_ids;
            if (sp) for (size_t i = 0; i < t->n_suffix; i++) out[k++] = t->suffix[i];
            *ids = out;
            *n_ids = k;
        }
    }
    work_free(&w);
    return st;
}

mms_hf_batch_params mms_hf_batch_default_params(void) {
    return (mms_hf_batch_params){.context_length = 512, .truncate = 1, .pad_id = 0, .flags = MMS_HF_ADD_SPECIAL,
                                 .n_threads = 0};
}

/* One row (L,): prefix, the first ids that fit, suffix, padding. */
static mms_status encode_row(const mms_hf_tokenizer *t, hf_work *w, const char *text, size_t len,
                             const mms_hf_batch_params *p, int64_t *row, int64_t *mask, int64_t *total,
                             mms_error *err) {
    mms_status st = encode_text(t, w, text, len, p->flags, err);
    if (st) return st;
    int sp = (p->flags & MMS_HF_ADD_SPECIAL) != 0;
    size_t np = sp ? t->n_prefix : 0, ns = sp ? t->n_suffix : 0, L = (size_t)p->context_length;
    size_t keep = w->n_ids, k = 0;
    if (np + keep + ns > L) keep = L - np - ns; /* params checked: L >= np + ns */
    for (size_t i = 0; i < np; i++) row[k++] = t->prefix[i];
    for (size_t i = 0; i < keep; i++) row[k++] = w->ids[i];
    for (size_t i = 0; i < ns; i++) row[k++] = t->suffix[i];
    for (size_t j = 0; j < L; j++) {
        if (j >= k) row[j] = p->pad_id;
        if (mask) mask[j] = j < k;
    }
    *total = (int64_t)(np + w->n_ids + ns);
    return MMS_OK;
}

/* one text of a batch (mms_batch_run's row callback) */
typedef struct hf_batch_ctx {
    const mms_hf_tokenizer *t;
    const char *const *texts;
    const size_t *lens;
    const mms_hf_batch_params *p;
    int64_t *ids, *mask;
} hf_batch_ctx;

static mms_status hf_batch_row(const void *ctx, void *work, int64_t i, int64_t *total, mms_error *e) {
    const hf_batch_ctx *c = ctx;
    const int64_t L = c->p->context_length;
    return encode_row(c->t, work, c->texts[i], c->lens[i], c->p, c->ids + i * L, c->mask ? c->mask + i * L : NULL,
                      total, e);
}

static void hf_work_free(void *w) { work_free(w); }

mms_status mms_hf_tokenizer_encode_batch(const mms_hf_tokenizer *t, const char *const *texts, const size_t *lens,
                                         int64_t n, mms_hf_batch_params p, int64_t *ids, int64_t *mask,
                                         int64_t *n_tokens, mms_error *err) {
    int64_t min_len = (p.flags & MMS_HF_ADD_SPECIAL) ? (int64_t)(t->n_prefix + t->n_suffix) : 0;
    if (min_len < 1) min_len = 1;
    if (n < 0 || p.context_length < min_len)
        return mms_error_set(err, MMS_ERR_VALUE, "encode_batch: need n >= 0 and context_length >= %lld, got n=%lld, "
                             "context_length=%lld", (long long)min_len, (long long)n, (long long)p.context_length);
    hf_batch_ctx c = {t, texts, lens, &p, ids, mask};
    return mms_batch_run(n, p.n_threads, sizeof(hf_work), hf_work_free, hf_batch_row, &c, p.truncate,
                         p.context_length, n_tokens, err);
}
