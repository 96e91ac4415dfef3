/* tokenizer_hf_internal.h -- the mms_hf_tokenizer struct: the pipeline steps read from a
 * tokenizer.json, shared by tokenizer_hf_load.c (reading and building), tokenizer_hf.c
 * (encoding) and tokenizer_hf_decode.c (decoding). Not public. */
#ifndef MMS_TOKENIZER_HF_INTERNAL_H
#define MMS_TOKENIZER_HF_INTERNAL_H

#include "tokenizer_hf.h"

#include "pretok.h"
#include "tokenizer_bpe_internal.h"
#include "unicode_norm.h"

#define HF_REPLACEMENT_CHAR "\xE2\x96\x81" /* U+2581 '▁', Metaspace's default */
#define HF_CHAR_TABLE 0x180                /* code points with a direct char -> id table */

/* ---- normalizers: each maps a segment's text to new text ----------------------------- */
typedef enum hf_norm_kind {
    HF_NORM_PREPEND,   /* a = prefix, added to non-empty text */
    HF_NORM_REPLACE,   /* every a -> b, left to right, non-overlapping */
    HF_NORM_LOWERCASE,
    HF_NORM_NFC,
    HF_NORM_NFD,
    HF_NORM_STRIP,     /* White_Space off the left / right ends */
} hf_norm_kind;

typedef struct hf_norm {
    hf_norm_kind kind;
    char *a, *b; /* owned, NUL-terminated */
    size_t alen, blen;
    int left, right;
} hf_norm;

/* ---- pre-tokenizers: each maps a split to splits --------------------------------------- */
typedef enum hf_pre_kind { HF_PRE_BYTELEVEL, HF_PRE_METASPACE, HF_PRE_SPLIT, HF_PRE_DIGITS } hf_pre_kind;

/* SplitDelimiterBehavior */
typedef enum hf_behavior {
    HF_ISOLATED, HF_REMOVED, HF_MERGED_WITH_PREVIOUS, HF_MERGED_WITH_NEXT, HF_CONTIGUOUS
} hf_behavior;

typedef enum hf_prepend { HF_PREPEND_ALWAYS, HF_PREPEND_FIRST, HF_PREPEND_NEVER } hf_prepend;

typedef struct hf_pre {
    hf_pre_kind kind;
    int add_prefix_space, use_regex; /* ByteLevel */
    char repl[8];                    /* Metaspace replacement character (UTF-8, NUL-terminated) */
    size_t repl_len;
    hf_prepend prepend;
    int split;                       /* Metaspace: split on repl, merged with next */
    int pattern;                     /* Split: mms_split_pattern, or -1 for the string str */
    char *str;                       /* owned */
    size_t str_len;
    hf_behavior behavior;
    int invert;
    int individual_digits;           /* Digits */
} hf_pre;

/* ---- decoders: each maps a list of token strings to another ------------------------------ */
typedef enum hf_dec_kind {
    HF_DEC_BYTELEVEL, HF_DEC_METASPACE, HF_DEC_REPLACE, HF_DEC_BYTEFALLBACK, HF_DEC_FUSE, HF_DEC_STRIP
} hf_dec_kind;

typedef struct hf_dec {
    hf_dec_kind kind;
    char *a, *b;    /* Replace: a -> b; Metaspace: a = replacement; Strip: a = content char */
    size_t alen, blen;
    hf_prepend prepend; /* Metaspace */
    int start, stop;    /* Strip */
} hf_dec;

typedef struct hf_added {
    int32_t id;
    char *content;  /* owned */
    size_t len;
    char *match;    /* what is searched: content, or for normalized tokens its normalized form */
    size_t match_len;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} hf_added;

/* Added tokens searched in one kind of text (raw or normalized): indices into added[] by
 * first byte, longest first, so the first hit at a position is the leftmost-longest match. */
typedef struct hf_matcher {
    int32_t *idx;        /* (n,) */
    size_t n;
    uint32_t first[257]; /* idx[first[b] .. first[b + 1]) start with byte b */
} hf_matcher;

struct mms_hf_tokenizer {
    char *name;            /* for messages */
    bpe_model bpe;         /* the model vocabulary and merges */
    bpe_merge_mode merge_mode;
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;                      /* -1 without unk_token */
    int32_t byte_token[256];             /* id of "<0xXX>", -1 if missing */
    int32_t char_id[HF_CHAR_TABLE];      /* id of each one-character token below HF_CHAR_TABLE */
    char byte_char[256][2];              /* UTF-8 of each byte's byte-level character */
    uint8_t byte_char_len[256];
    int16_t char_byte[0x144];            /* the inverse: byte of a code point < 0x144, or -1 */
    int32_t vocab_size;                  /* max id + 1, added tokens included */
    int32_t model_vocab_size;            /* entries of the model vocabulary */
    hf_norm *norm;
    size_t n_norm;
    hf_pre *pre;
    size_t n_pre;
    hf_dec *dec;
    size_t n_dec;
    int has_decoder;                     /* 0: tokens joined with ' ' */
    hf_added *added;
    size_t n_added;
    hf_matcher raw, normalized;          /* added tokens matched before / after normalizing */
    int32_t *added_of_id;                /* (vocab_size,) index into added[], -1 */
    int has_post;                        /* a post-processor was given */
    int64_t *prefix, *suffix;            /* post-processor ids around a text */
    size_t n_prefix, n_suffix;
};

/* Apply the normalizer to s[0..n), appending the result to out (scratch t1, t2). 0 or -1. */
int mms_hf_normalize(const mms_hf_tokenizer *t, const char *s, size_t n, mms_buf *out, mms_buf *t1, mms_buf *t2);

/* Token string of id (added content first), or NULL. */
const char *mms_hf_token(const mms_hf_tokenizer *t, int64_t id, size_t *len);

/* Free every pipeline part of t (the loaders' error path and mms_hf_tokenizer_free). */
void mms_hf_tokenizer_free(mms_hf_tokenizer *t);

#endif
