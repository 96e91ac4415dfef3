/* unicode.c -- UTF-8 decoding (strict, and with U+FFFD replacement as Python or as
 * sentencepiece does it) and the character classes of the byte-level BPE pre-tokenizers,
 * looked up in the generated Unicode 15.0 tables of unicode_tables.h
 * (tools/gen_unicode_tables.py). */
#include "tokenizer.h"

#include <string.h>

#include "text_util.h"

#include "unicode_tables.h"

/* ==== character classes =================================================================== */

mms_uclass mms_unicode_class(uint32_t cp) {
    if (cp < 0x100) return (mms_uclass)mms_uclass_latin1[cp];
    /* Binary search for the last range starting at or before cp (~10 steps). */
    size_t lo = 0, hi = MMS_UCLASS_N_RANGES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mms_uclass_ranges[mid].lo <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return MMS_UCLASS_OTHER;
    const mms_uclass_range *r = &mms_uclass_ranges[lo - 1];
    return cp <= r->hi ? (mms_uclass)r->cls : MMS_UCLASS_OTHER;
}

const char *mms_unicode_version(void) { return MMS_UNICODE_TABLES_VERSION; }

/* ==== UTF-8 ================================================================================ */

/* Scan one character at s[0..n), n >= 1, following Table 3-7 of the Unicode standard.
 * Returns its length (1..4) with *cp set, or -k where k >= 1 is the length of the maximal
 * ill-formed subpart there: the longest prefix that could still start a well-formed
 * sequence (a bad lead byte is a subpart of its own). */
static int utf8_scan(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int need;         /* continuation bytes */
    uint8_t lo2 = 0x80, hi2 = 0xBF; /* allowed range of the second byte */
    uint32_t c;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1;
        c = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2;
        c = b0 & 0x0F;
        if (b0 == 0xE0) lo2 = 0xA0;      /* no overlongs */
        else if (b0 == 0xED) hi2 = 0x9F; /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3;
        c = b0 & 0x07;
        if (b0 == 0xF0) lo2 = 0x90;      /* no overlongs */
        else if (b0 == 0xF4) hi2 = 0x8F; /* nothing above U+10FFFF */
    } else {
        return -1; /* 80..C1, F5..FF never start a character */
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) return -i;
        uint8_t b = s[i];
        uint8_t lo = i == 1 ? lo2 : 0x80, hi = i == 1 ? hi2 : 0xBF;
        if (b < lo || b > hi) return -i;
        c = (c << 6) | (b & 0x3F);
    }
    *cp = c;
    return need + 1;
}

int mms_utf8_next(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    int r = utf8_scan(s, n, cp);
    return r > 0 ? r : 0;
}

/* Copy src to dst with U+FFFD for what is ill-formed: each maximal ill-formed subpart as a
 * whole, or each of its bytes when per_byte. */
static size_t utf8_replace(const uint8_t *src, size_t n, uint8_t *dst, int per_byte) {
    size_t i = 0, o = 0;
    while (i < n) {
        /* ASCII runs are the common case: copy them without scanning. */
        if (src[i] < 0x80) {
            dst[o++] = src[i++];
            continue;
        }
        uint32_t cp;
        int r = utf8_scan(src + i, n - i, &cp);
        if (r > 0) {
            memcpy(dst + o, src + i, (size_t)r);
            o += (size_t)r;
            i += (size_t)r;
        } else {
            dst[o++] = 0xEF; /* U+FFFD */
            dst[o++] = 0xBF;
            dst[o++] = 0xBD;
            i += per_byte ? 1 : (size_t)-r;
        }
    }
    return o;
}

size_t mms_utf8_sanitize(const uint8_t *src, size_t n, uint8_t *dst) { return utf8_replace(src, n, dst, 0); }

size_t mms_utf8_replace_bytes(const uint8_t *src, size_t n, uint8_t *dst) { return utf8_replace(src, n, dst, 1); }
