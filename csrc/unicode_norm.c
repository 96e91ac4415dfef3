/* unicode_norm.c -- NFD / NFC and lowercasing for the HF tokenizer.json normalizers
 * (unicode_norm.h), on the data of unicode_norm_tables.h, and the byte buffer they fill. */
#include "unicode_norm.h"

#include <string.h>

#include "tokenizer.h" /* mms_utf8_next */

#include "unicode_norm_tables.h"

/* ==== byte buffer ========================================================================= */

int mms_buf_reserve(mms_buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra) cap *= 2;
    char *p = mms_realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int mms_buf_put(mms_buf *b, const void *s, size_t n) {
    if (mms_buf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

void mms_buf_free(mms_buf *b) {
    mms_free(b->p);
    memset(b, 0, sizeof *b);
}

size_t mms_utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ==== lookups ================================================================================ */

static int ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = MMS_CCC_N_RUNS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mms_ccc_runs[mid].lo <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo && cp <= mms_ccc_runs[lo - 1].hi ? mms_ccc_runs[lo - 1].ccc : 0;
}

/* One-level decomposition of cp: its pool entry, or NULL with *len 0. */
static const uint32_t *decomposition(uint32_t cp, size_t *len) {
    size_t lo = 0, hi = MMS_DECOMP_N;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t c = (uint32_t)(mms_decomp_index[mid] >> 24);
        if (c == cp) {
            *len = (size_t)(mms_decomp_index[mid] & 0xF);
            return mms_decomp_pool + ((mms_decomp_index[mid] >> 4) & 0xFFFFF);
        }
        if (c < cp) lo = mid + 1;
        else hi = mid;
    }
    *len = 0;
    return NULL;
}

/* Hangul syllable arithmetic (Unicode 3.12). */
enum { S_BASE = 0xAC00, L_BASE = 0x1100, V_BASE = 0x1161, T_BASE = 0x11A7, L_COUNT = 19, V_COUNT = 21,
       T_COUNT = 28, N_COUNT = V_COUNT * T_COUNT, S_COUNT = L_COUNT * N_COUNT };

/* Composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a - L_BASE < L_COUNT && b - V_BASE < V_COUNT) return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a - S_BASE < S_COUNT && (a - S_BASE) % T_COUNT == 0 && b - T_BASE - 1 < T_COUNT - 1) return a + (b - T_BASE);
    uint64_t key = (uint64_t)a << 21 | b;
    size_t lo = 0, hi = MMS_COMP_N;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mms_comp_key[mid] == key) return mms_comp_value[mid];
        if (mms_comp_key[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* ==== NFD / NFC ================================================================================= */

/* Code points being normalized, with their classes. */
typedef struct cp_vec {
    uint32_t *cp;
    uint8_t *cc;
    size_t n, cap;
} cp_vec;

static int vec_push(cp_vec *v, uint32_t cp) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        uint32_t *c = mms_realloc(v->cp, cap * sizeof *c);
        if (!c) return -1;
        v->cp = c;
        uint8_t *k = mms_realloc(v->cc, cap);
        if (!k) return -1;
        v->cc = k;
        v->cap = cap;
    }
    v->cp[v->n] = cp;
    v->cc[v->n++] = (uint8_t)ccc(cp);
    return 0;
}

/* Full canonical decomposition of cp appended to v (the tables nest at most a few levels). */
static int decompose(cp_vec *v, uint32_t cp) {
    if (cp - S_BASE < S_COUNT) {
        uint32_t s = cp - S_BASE;
        if (vec_push(v, L_BASE + s / N_COUNT) || vec_push(v, V_BASE + (s % N_COUNT) / T_COUNT)) return -1;
        return s % T_COUNT ? vec_push(v, T_BASE + s % T_COUNT) : 0;
    }
    size_t len;
    const uint32_t *d = decomposition(cp, &len);
    if (!d) return vec_push(v, cp);
    for (size_t i = 0; i < len; i++)
        if (decompose(v, d[i])) return -1;
    return 0;
}

int mms_unicode_nf_append(mms_buf *out, const char *s, size_t n, int compose_) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    /* Below U+0300 nothing combines, so such text is its own NFC (and ASCII its own NFD). */
    while (i < n && u[i] < (compose_ ? 0xCC : 0x80)) i++;
    if (i == n) return mms_buf_put(out, s, n);
    cp_vec v = {0};
    int rc = -1;
    for (i = 0; i < n;) {
        uint32_t cp;
        int l = mms_utf8_next(u + i, n - i, &cp);
        if (l == 0) { cp = 0xFFFD; l = 1; } /* callers pass valid UTF-8 */
        if (decompose(&v, cp)) goto done;
        i += (size_t)l;
    }
    /* Canonical ordering: a stable sort of each run of non-starters by class. */
    for (size_t k = 1; k < v.n; k++) {
        if (!v.cc[k]) continue;
        for (size_t j = k; j > 0 && v.cc[j - 1] > v.cc[j]; j--) {
            uint32_t c = v.cp[j]; v.cp[j] = v.cp[j - 1]; v.cp[j - 1] = c;
            uint8_t k2 = v.cc[j]; v.cc[j] = v.cc[j - 1]; v.cc[j - 1] = k2;
        }
    }
    size_t m = v.n;
    if (compose_) { /* canonical composition, in place */
        m = 0;
        size_t starter = SIZE_MAX;
        int last_cc = 0;
        for (size_t k = 0; k < v.n; k++) {
            uint32_t c = v.cp[k];
            int cc = v.cc[k];
            if (starter != SIZE_MAX && (m - 1 == starter || (last_cc != 0 && last_cc < cc))) {
                uint32_t comp = compose(v.cp[starter], c);
                if (comp) {
                    v.cp[starter] = comp;
                    continue;
                }
            }
            if (cc == 0) starter = m;
            v.cp[m] = c;
            v.cc[m++] = (uint8_t)cc;
            last_cc = cc;
        }
    }
    if (mms_buf_reserve(out, 4 * m + 1)) goto done;
    for (size_t k = 0; k < m; k++) out->n += mms_utf8_encode(v.cp[k], out->p + out->n);
    rc = 0;
done:
    mms_free(v.cp);
    mms_free(v.cc);
    return rc;
}

/* ==== word characters ============================================================================= */

static int in_runs(const mms_cp_run *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].lo <= cp) lo = mid + 1;
        else hi = mid;
    }
    return lo && cp <= r[lo - 1].hi;
}

int mms_unicode_is_word(uint32_t cp) {
    static const mms_cp_run extra[] = {
        {0x5F, 0x5F}, {0x200C, 0x200D}, {0x203F, 0x2040}, {0x2054, 0x2054}, {0x24B6, 0x24E9}, /* Pc, ZWNJ/ZWJ, Ⓐ */
        {0xFE33, 0xFE34}, {0xFE4D, 0xFE4F}, {0xFF3F, 0xFF3F}, {0x1F130, 0x1F149}, {0x1F150, 0x1F169},
        {0x1F170, 0x1F189}};
    mms_uclass c = mms_unicode_class(cp);
    if (c == MMS_UCLASS_LETTER) return 1;
    if (c == MMS_UCLASS_NUMBER) return !in_runs(mms_no_runs, MMS_NO_N_RUNS, cp);
    return in_runs(mms_mark_runs, MMS_MARK_N_RUNS, cp) || in_runs(extra, sizeof extra / sizeof *extra, cp);
}

/* ==== lowercase ==================================================================================== */

static uint32_t lower_cp(uint32_t cp) {
    size_t lo = 0, hi = MMS_LOWER_N_RUNS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mms_lower_runs[mid].lo <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (!lo) return cp;
    const mms_lower_run *r = &mms_lower_runs[lo - 1];
    if (cp > r->hi || (cp - r->lo) % r->step) return cp;
    return (uint32_t)((int64_t)cp + r->delta);
}

int mms_unicode_lower_append(mms_buf *out, const char *s, size_t n) {
    if (mms_buf_reserve(out, 2 * n + 4)) return -1; /* a lowercase character is never > 2x longer */
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            out->p[out->n++] = (char)(u[i] >= 'A' && u[i] <= 'Z' ? u[i] + 32 : u[i]);
            i++;
            continue;
        }
        uint32_t cp;
        int l = mms_utf8_next(u + i, n - i, &cp);
        if (l == 0) { cp = 0xFFFD; l = 1; }
        i += (size_t)l;
        if (cp == 0x130) { /* İ -> i + combining dot above */
            memcpy(out->p + out->n, "i\xCC\x87", 3);
            out->n += 3;
            continue;
        }
        out->n += mms_utf8_encode(lower_cp(cp), out->p + out->n);
    }
    return 0;
}

int mms_utf8_ends_with_word(const char *s, size_t n) {
    if (n == 0) return 0;
    size_t i = n - 1;
    while (i > 0 && ((uint8_t)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    return mms_utf8_next((const uint8_t *)s + i, n - i, &cp) && mms_unicode_is_word(cp);
}

int mms_utf8_starts_with_word(const char *s, size_t n) {
    uint32_t cp;
    return n && mms_utf8_next((const uint8_t *)s, n, &cp) && mms_unicode_is_word(cp);
}
