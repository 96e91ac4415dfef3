/* tokenizer_t5_internal.h -- the mms_t5_tokenizer struct, shared by tokenizer_t5.c (creation,
 * added tokens, pre-tokenizer, Viterbi, batches) and tokenizer_t5_norm.c (grapheme clusters
 * and the charsmap). Not installed; nothing else includes it. */
#ifndef MMS_TOKENIZER_T5_INTERNAL_H
#define MMS_TOKENIZER_T5_INTERNAL_H

#include "sentencepiece_internal.h" /* sp_trie, sp_normalizer, the darts-clone unit fields */
#include "tokenizer_t5.h"
#include "unicode_norm.h"           /* mms_buf */

/* An added token as a matcher searches it. */
typedef struct t5_added {
    int64_t id;
    char *match;      /* owned: the content, or its normalized form for a normalized token */
    size_t match_len; /* >= 1 */
    uint8_t lstrip, rstrip, single_word;
} t5_added;

/* Added tokens searched in one kind of text (raw or normalized), sorted by first byte, then
 * longest first, then matching order: the first hit at a position is the leftmost-longest
 * match, and of equal strings the one that comes first wins. */
typedef struct t5_matcher {
    t5_added *tok;       /* (n,) */
    size_t n;
    uint32_t first[257]; /* tok[first[b] .. first[b + 1]) start with byte b */
} t5_matcher;

struct mms_t5_tokenizer {
    char *name;          /* the model file (for messages) */
    int32_t n_pieces;    /* pieces of the model; the sentinels follow */
    int32_t vocab_size;  /* n_pieces + extra_ids */
    double *score;       /* (vocab_size,) piece scores as double; sentinels 0 */
    double unk_score;    /* min(score) - 10 (tokenizers' K_UNK_PENALTY) */
    sp_trie trie;        /* every piece and sentinel -> id; a later id wins a repeated string */
    int64_t eos_id, unk_id;
    sp_normalizer cm;    /* only units / strings used: the precompiled charsmap; units NULL
                            when the model has none */
    t5_matcher raw, norm;
};

/* tokenizers' Precompiled normalizer on s[0..n) (valid UTF-8), appended to out. Without a
 * charsmap the text is copied. Errors: MMS_ERR_FORMAT (a replacement outside the strings or
 * not UTF-8), MMS_ERR_NOMEM. */
mms_status mms_t5_normalize_append(const mms_t5_tokenizer *t, const char *s, size_t n, mms_buf *out,
                                   mms_error *err);

/* Offset of the first ill-formed UTF-8 byte of s[0..n), or n when it is all well-formed. */
size_t mms_t5_utf8_check(const char *s, size_t n);

#endif /* MMS_TOKENIZER_T5_INTERNAL_H */
