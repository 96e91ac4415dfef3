/* pretok.c -- native matchers of the split regexes byte-level BPE tokenizers use (pretok.h).
 * Each follows the regex engine's rule: at a position the first alternative that matches
 * wins, quantifiers are greedy and give back characters only as far as a look-ahead needs.
 * Checked against the `regex` module (GPT-2 reference) and HF tokenizers' Oniguruma. */
#include "pretok.h"

#include <string.h>

static const char *const PATTERNS[MMS_SPLIT_N_PATTERNS] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

static const char *const CONTRACTIONS[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
#define N_CONTRACTIONS (sizeof CONTRACTIONS / sizeof *CONTRACTIONS)

int mms_split_pattern_find(const char *re, size_t n) {
    for (int p = 0; p < MMS_SPLIT_N_PATTERNS; p++)
        if (strlen(PATTERNS[p]) == n && memcmp(PATTERNS[p], re, n) == 0) return p;
    return -1;
}

const char *mms_split_pattern_regex(mms_split_pattern p) { return PATTERNS[p]; }

/* Class of the character at s[i] (i < n), its length in *l. */
static inline int class_at(const uint8_t *s, size_t n, size_t i, int *l) {
    uint32_t cp;
    return mms_pretok_class(s + i, n - i, l, &cp);
}

/* End of the run of characters of class cls starting at i. */
static size_t run_end(const uint8_t *s, size_t n, size_t i, int cls) {
    while (i < n) {
        int l;
        if (class_at(s, n, i, &l) != cls || l == 0) break;
        i += (size_t)l;
    }
    return i;
}

/* \s+(?!\S) then \s+ at a whitespace run [0, j): the run keeps its last character for the
 * next piece when a non-space follows and the run has more than one character. */
static size_t space_run(const uint8_t *s, size_t n, size_t j) {
    if (j == n) return j;
    size_t last = j - 1;
    while (last > 0 && (s[last] & 0xC0) == 0x80) last--; /* start of the last character */
    return last > 0 ? last : j;
}

static size_t match_gpt2(const uint8_t *s, size_t n) {
    if (s[0] == '\'')
        for (size_t c = 0; c < N_CONTRACTIONS; c++) {
            size_t k = strlen(CONTRACTIONS[c]);
            if (k <= n && memcmp(s, CONTRACTIONS[c], k) == 0) return k;
        }
    int l0, c0 = class_at(s, n, 0, &l0);
    if (s[0] == ' ' && n > 1) { /* ' ?' then a letter, number or other run */
        int l1, c1 = class_at(s, n, 1, &l1);
        if (c1 != MMS_UCLASS_SPACE) return run_end(s, n, 1, c1);
    }
    if (c0 != MMS_UCLASS_SPACE) return run_end(s, n, 0, c0);
    return space_run(s, n, run_end(s, n, 0, MMS_UCLASS_SPACE));
}

static size_t match_llama3(const uint8_t *s, size_t n, size_t max_digits) {
    if (s[0] == '\'')
        for (size_t c = 0; c < N_CONTRACTIONS; c++) {
            size_t k = mms_pretok_match_ci(s, n, CONTRACTIONS[c]);
            if (k) return k;
        }
    int l0, c0 = class_at(s, n, 0, &l0);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0 == MMS_UCLASS_LETTER) return run_end(s, n, 0, MMS_UCLASS_LETTER);
    if (c0 != MMS_UCLASS_NUMBER && s[0] != '\r' && s[0] != '\n' && (size_t)l0 < n) {
        int l1;
        if (class_at(s, n, (size_t)l0, &l1) == MMS_UCLASS_LETTER) return run_end(s, n, (size_t)l0, MMS_UCLASS_LETTER);
    }
    /* \p{N}{1,3} or \p{N} */
    if (c0 == MMS_UCLASS_NUMBER) {
        size_t i = 0;
        for (size_t k = 0; k < max_digits && i < n; k++) {
            int l;
            if (class_at(s, n, i, &l) != MMS_UCLASS_NUMBER) break;
            i += (size_t)l;
        }
        return i;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    size_t k = s[0] == ' ' ? 1 : 0;
    if (k < n) {
        int l;
        if (class_at(s, n, k, &l) == MMS_UCLASS_OTHER) {
            size_t i = run_end(s, n, k, MMS_UCLASS_OTHER);
            while (i < n && (s[i] == '\r' || s[i] == '\n')) i++;
            return i;
        }
    }
    /* Whitespace: \s*[\r\n]+ ends after the run's last newline; else \s+(?!\S), \s+. */
    size_t j = run_end(s, n, 0, MMS_UCLASS_SPACE);
    for (size_t i = j; i-- > 0;) /* \r and \n are single bytes; other spaces have none below 0x80 */
        if (s[i] == '\r' || s[i] == '\n') return i + 1;
    return space_run(s, n, j);
}

size_t mms_split_match(mms_split_pattern p, const uint8_t *s, size_t n) {
    switch (p) {
    case MMS_SPLIT_LLAMA3: return match_llama3(s, n, 3);
    case MMS_SPLIT_QWEN2: return match_llama3(s, n, 1);
    default: return match_gpt2(s, n);
    }
}
