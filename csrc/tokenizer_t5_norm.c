/* tokenizer_t5_norm.c -- the T5 tokenizer's normalizer (tokenizer_t5.h): tokenizers'
 * `Precompiled` normalizer, which walks extended grapheme clusters and looks each up in
 * sentencepiece's precompiled charsmap with the spm_precompiled crate's SHORTEST-prefix rule
 * (sentencepiece itself takes the longest match; sentencepiece.c does that one). */
#include "tokenizer_t5_internal.h"

#include <string.h>

#include "tokenizer.h" /* mms_utf8_next */
#include "unicode_gcb_tables.h"

/* ==== UTF-8 ================================================================================== */

size_t mms_t5_utf8_check(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int l = mms_utf8_next(u + i, n - i, &cp);
        if (l == 0) return i;
        i += (size_t)l;
    }
    return n;
}

/* ==== grapheme clusters ======================================================================= */

/* Grapheme_Cluster_Break of cp, folded to the MMS_GCB_* classes the rules below tell apart. */
static int gcb_class(uint32_t cp) {
    if (cp < 0x80) return cp == '\r' ? MMS_GCB_CR : cp == '\n' ? MMS_GCB_LF : cp < 0x20 || cp == 0x7F ? MMS_GCB_CONTROL
                                                                                                       : MMS_GCB_OTHER;
    size_t lo = 0, hi = MMS_GCB_N_RANGES; /* last run starting at or before cp */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mms_gcb_ranges[mid].lo <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return MMS_GCB_OTHER;
    const mms_gcb_range *r = &mms_gcb_ranges[lo - 1];
    return cp <= r->hi ? r->cls : MMS_GCB_OTHER;
}

static int is_control_like(int k) { return k == MMS_GCB_CR || k == MMS_GCB_LF || k == MMS_GCB_CONTROL; }

/* UAX #29 between a character of class prev and one of class next: GB3 (CR x LF), GB4 / GB5
 * (break around controls), GB9 / GB9a (x Extend, ZWJ, SpacingMark), GB9b (Prepend x), GB999. */
static int is_break(int prev, int next) {
    if (prev == MMS_GCB_CR && next == MMS_GCB_LF) return 0;
    if (is_control_like(prev) || is_control_like(next)) return 1;
    return !(next == MMS_GCB_JOIN || prev == MMS_GCB_PREPEND);
}

/* Length in bytes of the cluster starting at s[0..n) (valid UTF-8, n >= 1); its number of
 * characters goes to *n_chars. */
static size_t cluster_len(const uint8_t *s, size_t n, size_t *n_chars) {
    /* Hot path: an ASCII character other than CR followed by ASCII (or the end) is alone. */
    if (s[0] < 0x80 && s[0] != '\r' && (n == 1 || s[1] < 0x80)) {
        *n_chars = 1;
        return 1;
    }
    uint32_t cp;
    size_t i = (size_t)mms_utf8_next(s, n, &cp), count = 1;
    int prev = gcb_class(cp);
    while (i < n) {
        int l = mms_utf8_next(s + i, n - i, &cp);
        int k = gcb_class(cp);
        if (is_break(prev, k)) break;
        i += (size_t)l;
        count++;
        prev = k;
    }
    *n_chars = count;
    return i;
}

/* ==== the charsmap ============================================================================== */

/* Precompiled::transform: the replacement of the shortest charsmap key that is a prefix of
 * key[0..n) (DoubleArray::common_prefix_search()[0]; a NUL byte ends the search) into *r /
 * *r_len. 1 found, 0 none, or an MMS_ERR_FORMAT (negative return) for a broken blob. */
static int charsmap_first(const mms_t5_tokenizer *t, const uint8_t *key, size_t n, const char **r, size_t *r_len,
                          mms_error *err) {
    const uint32_t *u = t->cm.units;
    size_t nu = t->cm.n_units;
    uint32_t pos = sp_da_offset(u[0]);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = key[i];
        if (c == 0) return 0;
        pos ^= c;
        if (pos >= nu) return 0;
        uint32_t unit = u[pos];
        if (sp_da_label(unit) != c) return 0;
        pos ^= sp_da_offset(unit);
        if (!sp_da_has_leaf(unit)) continue;
        if (pos >= nu) {
            mms_error_set(err, MMS_ERR_FORMAT, "%s: precompiled_charsmap: leaf %u is outside its %zu units", t->name,
                          pos, nu);
            return -1;
        }
        uint32_t off = sp_da_value(u[pos]);
        if (off >= t->cm.strings_len) {
            mms_error_set(err, MMS_ERR_FORMAT, "%s: precompiled_charsmap: replacement at %u is outside its %zu bytes "
                          "of strings", t->name, off, t->cm.strings_len);
            return -1;
        }
        *r = t->cm.strings + off; /* NUL-terminated: strings[strings_len] is a NUL */
        *r_len = strlen(*r);
        if (mms_t5_utf8_check(*r, *r_len) != *r_len) {
            mms_error_set(err, MMS_ERR_FORMAT, "%s: precompiled_charsmap: replacement at %u is not UTF-8", t->name,
                          off);
            return -1;
        }
        return 1;
    }
    return 0;
}

/* ==== the normalizer ============================================================================= */

mms_status mms_t5_normalize_append(const mms_t5_tokenizer *t, const char *text, size_t n, mms_buf *out,
                                   mms_error *err) {
    if (!t->cm.units) {
        if (mms_buf_put(out, text, n)) goto nomem;
        return MMS_OK;
    }
    if (mms_buf_reserve(out, n + 16)) goto nomem;
    const uint8_t *s = (const uint8_t *)text;
    const char *r;
    size_t rl;
    int hit;
    for (size_t i = 0; i < n;) {
        size_t n_chars, len = cluster_len(s + i, n - i, &n_chars);
        /* A multi-character cluster under 6 bytes is looked up whole first. */
        if (n_chars > 1 && len < 6) {
            if ((hit = charsmap_first(t, s + i, len, &r, &rl, err)) < 0) return MMS_ERR_FORMAT;
            if (hit) {
                if (mms_buf_put(out, r, rl)) goto nomem;
                i += len;
                continue;
            }
        }
        for (size_t end = i + len; i < end;) {
            uint32_t cp;
            size_t l = (size_t)mms_utf8_next(s + i, end - i, &cp);
            if ((hit = charsmap_first(t, s + i, l, &r, &rl, err)) < 0) return MMS_ERR_FORMAT;
            if (hit ? mms_buf_put(out, r, rl) : mms_buf_put(out, s + i, l)) goto nomem;
            i += l;
        }
    }
    return MMS_OK;
nomem:
    return mms_error_set(err, MMS_ERR_NOMEM, "normalize: out of memory");
}
