/* pretok.h -- the split patterns of the byte-level BPE pre-tokenizers, matched natively
 * instead of by a regex engine, on the Unicode 15.0 classes of unicode.c: GPT-2's (also the
 * ByteLevel pre-tokenizer's), Llama 3's (cl100k) and Qwen2's; plus the character helpers the
 * CLIP pre-tokenizer (tokenizer_bpe.c) shares with them. Internal; not part of the C API. */
#ifndef MMS_PRETOK_H
#define MMS_PRETOK_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Class (mms_uclass) of the character at s[0..n), n >= 1; its length goes to *l (0 if the
 * bytes there are ill-formed) and its code point to *cp. */
static inline int mms_pretok_class(const uint8_t *s, size_t n, int *l, uint32_t *cp) {
    if (s[0] < 0x80) {
        *l = 1;
        *cp = s[0];
        return (int)mms_unicode_class(s[0]);
    }
    *l = mms_utf8_next(s, n, cp);
    return *l ? (int)mms_unicode_class(*cp) : MMS_UCLASS_OTHER;
}

/* Case-insensitive match of the lowercase ASCII pattern pat at s[0..n), as a regex with
 * IGNORECASE / (?i:) sees it: 's' also matches U+017F (long s, which case-folds to 's').
 * Returns the bytes matched, or 0. */
static inline size_t mms_pretok_match_ci(const uint8_t *s, size_t n, const char *pat) {
    size_t j = 0;
    for (; *pat; pat++) {
        if (j < n && (s[j] | ((s[j] >= 'A' && s[j] <= 'Z') ? 0x20 : 0)) == (uint8_t)*pat) j++;
        else if (*pat == 's' && j + 1 < n && s[j] == 0xC5 && s[j + 1] == 0xBF) j += 2; /* U+017F */
        else return 0;
    }
    return j;
}

/* The known split patterns (the regex text each stands for is in pretok.c). */
typedef enum mms_split_pattern {
    MMS_SPLIT_GPT2 = 0,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    MMS_SPLIT_LLAMA3 = 1, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
    MMS_SPLIT_QWEN2 = 2,  /* the same with \p{N} for \p{N}{1,3} */
    MMS_SPLIT_N_PATTERNS
} mms_split_pattern;

/* The pattern whose regex text is re[0..n) (as written in a tokenizer.json), or -1. */
int mms_split_pattern_find(const char *re, size_t n);

/* Regex text of a pattern (NUL-terminated, static). */
const char *mms_split_pattern_regex(mms_split_pattern p);

/* Length in bytes of the match of pattern p at s[0..n) (n >= 1, valid UTF-8). Each of these
 * patterns matches at every position, so successive matches tile the text: a regex
 * findall / split "isolated" is `for (i = 0; i < n; i += len) len = mms_split_match(...)`. */
size_t mms_split_match(mms_split_pattern p, const uint8_t *s, size_t n);

#endif
