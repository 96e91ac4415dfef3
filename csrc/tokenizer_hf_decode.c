/* tokenizer_hf_decode.c -- decoding with an mms_hf_tokenizer (tokenizer_hf.h): ids to token
 * strings, then the file's decoders in order, each mapping a list of strings to another as
 * HF's Decoder::decode_chain does, then the strings joined. */
#include "tokenizer_hf_internal.h"

/* A list of strings: string i is buf.p[off[i] .. off[i] + len[i]). */
typedef struct tok_list {
    mms_buf buf;
    size_t *off, *len; /* (cap,) */
    size_t n, cap;
} tok_list;

static void list_free(tok_list *l) {
    mms_buf_free(&l->buf);
    mms_free(l->off);
    mms_free(l->len);
    memset(l, 0, sizeof *l);
}

/* Start a new string at the end of l's buffer; bytes are then appended with mms_buf_put. */
static int list_open(tok_list *l) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        size_t *o = mms_realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *n = mms_realloc(l->len, cap * sizeof *n);
        if (!n) return -1;
        l->len = n;
        l->cap = cap;
    }
    l->off[l->n] = l->buf.n;
    l->len[l->n++] = 0;
    return mms_buf_reserve(&l->buf, 1);
}

/* Close the string opened last: it ends at the buffer's end. */
static void list_close(tok_list *l) { l->len[l->n - 1] = l->buf.n - l->off[l->n - 1]; }

static int list_add(tok_list *l, const char *s, size_t n) {
    if (list_open(l) || mms_buf_put(&l->buf, s, n)) return -1;
    list_close(l);
    return 0;
}

#define STR(l, i) ((l)->buf.p + (l)->off[i])

/* Append s[0..n) with each occurrence of a replaced by b (a non-empty), left to right. */
static int put_replaced(mms_buf *out, const char *s, size_t n, const char *a, size_t alen, const char *b, size_t blen) {
    size_t from = 0;
    for (size_t i = 0; alen && i + alen <= n;) {
        if (memcmp(s + i, a, alen) == 0) {
            if (mms_buf_put(out, s + from, i - from) || mms_buf_put(out, b, blen)) return -1;
            i += alen;
            from = i;
        } else {
            i++;
        }
    }
    return mms_buf_put(out, s + from, n - from);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Byte of a "<0xXX>" token, or -1. */
static int byte_token_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/* ByteFallback's flush: a run of byte tokens as its UTF-8 text if the whole run is
 * well-formed, else one U+FFFD per byte (String::from_utf8 on the run). */
static int flush_bytes(tok_list *out, const uint8_t *run, size_t n) {
    if (!n) return 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok;) {
        uint32_t cp;
        int l = mms_utf8_next(run + i, n - i, &cp);
        ok = l > 0;
        i += (size_t)(l > 0 ? l : 1);
    }
    if (ok) return list_add(out, (const char *)run, n);
    for (size_t i = 0; i < n; i++)
        if (list_add(out, "\xEF\xBF\xBD", 3)) return -1;
    return 0;
}

/* One decoder step: in -> out (out is emptied first). */
static int dec_step(const mms_hf_tokenizer *t, const hf_dec *d, const tok_list *in, tok_list *out, mms_buf *tmp) {
    out->n = out->buf.n = 0;
    switch (d->kind) {
    case HF_DEC_BYTELEVEL: { /* all tokens' bytes as one string, invalid UTF-8 replaced */
        tmp->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = STR(in, i);
            size_t n = in->len[i], start = tmp->n;
            int mapped = 1;
            for (size_t j = 0; j < n && mapped;) {
                uint32_t cp;
                int l = mms_utf8_next((const uint8_t *)s + j, n - j, &cp);
                if (!l || cp >= 0x144 || t->char_byte[cp] < 0) {
                    mapped = 0;
                    break;
                }
                char b = (char)t->char_byte[cp];
                if (mms_buf_put(tmp, &b, 1)) return -1;
                j += (size_t)l;
            }
            if (!mapped) { /* a character outside the byte alphabet: the token's own bytes */
                tmp->n = start;
                if (mms_buf_put(tmp, s, n)) return -1;
            }
        }
        if (list_open(out) || mms_buf_reserve(&out->buf, 3 * tmp->n + 1)) return -1;
        out->buf.n += mms_utf8_sanitize((const uint8_t *)tmp->p, tmp->n, (uint8_t *)out->buf.p + out->buf.n);
        list_close(out);
        return 0;
    }
    case HF_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = STR(in, i);
            int drop = i == 0 && d->prepend != HF_PREPEND_NEVER; /* every one of the first token's */
            if (list_open(out) || put_replaced(&out->buf, s, in->len[i], d->a, d->alen, " ", drop ? 0 : 1)) return -1;
            list_close(out);
        }
        return 0;
    case HF_DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            if (list_open(out) || put_replaced(&out->buf, STR(in, i), in->len[i], d->a, d->alen, d->b, d->blen))
                return -1;
            list_close(out);
        }
        return 0;
    case HF_DEC_BYTEFALLBACK: {
        tmp->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            int b = byte_token_value(STR(in, i), in->len[i]);
            if (b >= 0) {
                char c = (char)b;
                if (mms_buf_put(tmp, &c, 1)) return -1;
                continue;
            }
            if (flush_bytes(out, (const uint8_t *)tmp->p, tmp->n) || list_add(out, STR(in, i), in->len[i])) return -1;
            tmp->n = 0;
        }
        return flush_bytes(out, (const uint8_t *)tmp->p, tmp->n);
    }
    case HF_DEC_FUSE:
        if (list_open(out)) return -1;
        for (size_t i = 0; i < in->n; i++)
            if (mms_buf_put(&out->buf, STR(in, i), in->len[i])) return -1;
        list_close(out);
        return 0;
    case HF_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = STR(in, i);
            size_t a = 0, b = in->len[i];
            for (int k = 0; k < d->start && b - a >= d->alen && memcmp(s + a, d->a, d->alen) == 0; k++) a += d->alen;
            for (int k = 0; k < d->stop && b - a >= d->alen && memcmp(s + b - d->alen, d->a, d->alen) == 0; k++)
                b -= d->alen;
            if (list_add(out, s + a, b - a)) return -1;
        }
        return 0;
    }
    return -1;
}

const char *mms_hf_tokenizer_decoder(const mms_hf_tokenizer *t, size_t i) {
    static const char *const names[] = {"ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse", "Strip"};
    return i < t->n_dec ? names[t->dec[i].kind] : NULL;
}

mms_status mms_hf_tokenizer_decode(const mms_hf_tokenizer *t, const int64_t *ids, size_t n, int skip_special,
                                   char **text, size_t *len, mms_error *err) {
    *text = NULL;
    *len = 0;
    for (size_t i = 0; i < n; i++)
        if (!mms_hf_token(t, ids[i], NULL))
            return mms_error_set(err, MMS_ERR_VALUE, "decode: id %lld at position %zu is not in the vocabulary [0, %d)",
                                 (long long)ids[i], i, (int)t->vocab_size);
    tok_list lists[2];
    memset(lists, 0, sizeof lists);
    mms_buf tmp = {0};
    tok_list *cur = &lists[0];
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = mms_hf_token(t, ids[i], &l);
        if (skip_special && mms_hf_tokenizer_is_special(t, ids[i])) continue;
        if (list_add(cur, s, l)) goto nomem;
    }
    for (size_t k = 0; k < t->n_dec; k++) {
        tok_list *next = cur == &lists[0] ? &lists[1] : &lists[0];
        if (dec_step(t, &t->dec[k], cur, next, &tmp)) goto nomem;
        cur = next;
    }
    mms_buf out = {0};
    if (mms_buf_reserve(&out, 1)) goto nomem;
    for (size_t i = 0; i < cur->n; i++) /* no decoder: HF joins the tokens with spaces */
        if ((i && !t->has_decoder && mms_buf_put(&out, " ", 1)) || mms_buf_put(&out, STR(cur, i), cur->len[i])) {
            mms_buf_free(&out);
            goto nomem;
        }
    out.p[out.n] = '\0';
    *text = out.p;
    *len = out.n;
    list_free(&lists[0]);
    list_free(&lists[1]);
    mms_buf_free(&tmp);
    return MMS_OK;
nomem:
    list_free(&lists[0]);
    list_free(&lists[1]);
    mms_buf_free(&tmp);
    return mms_error_set(err, MMS_ERR_NOMEM, "decode: out of memory");
}
