/* tokenizer_t5.h -- the T5 / Flan-T5 tokenizer of transformers 5 (`T5Tokenizer`, one class on
 * the tokenizers library; `T5TokenizerFast` is the same), on the pieces and scores of a
 * SentencePiece unigram model (spiece.model) read by sentencepiece.h. Its pipeline is the
 * tokenizers library's, not sentencepiece's, so ids match transformers 5 exactly:
 *
 *   "Hi ＜/s＞ <extra_id_0>."                   UTF-8 text
 *     -> added tokens   cut out of the raw text, leftmost-longest, with their AddedToken
 *                       flags (single_word, lstrip, rstrip); `normalized` ones are searched
 *                       in each remaining chunk after the normalizer instead
 *     -> normalizer     the model's precompiled charsmap per extended grapheme cluster: a
 *                       cluster of 2+ characters under 6 UTF-8 bytes is replaced whole by the
 *                       replacement of its SHORTEST charsmap prefix, others character by
 *                       character (sentencepiece takes the longest match anywhere instead)
 *     -> pre-tokenizer  split on White_Space; each word gets a leading '▁' (U+2581) unless it
 *                       has one and is cut before every '▁' (Metaspace, prepend "always")
 *     -> model          unigram Viterbi over the whole vocabulary: every piece (control ones
 *                       too) and the sentinels, scores summed in double, a character without
 *                       a one-character piece scoring min_score - 10 as unk; a run of unknown
 *                       pieces becomes one token: the piece spelling the run, else unk_id
 *     -> ids            then EOS when asked (transformers appends it always, also after a text
 *                       that ends in "</s>")
 *
 * Ids: the model's pieces 0 .. n_pieces - 1, then the extra_ids sentinels with <extra_id_0>
 * LAST (id n_pieces + extra_ids - 1 - i), then whatever ids the added tokens carry.
 * Decoding (Metaspace decoder, skip_special_tokens, clean-up) is a table walk left to the
 * caller (mmsuite/tokenizer_t5.py); mms_t5_tokenizer_normalize gives the surface of a
 * normalized added token.
 *
 * Typical use (the added-token list is what tokenizer_config.json & co. say; transformers puts
 * <pad>, </s>, <unk> and the sentinels in it as special, not normalized tokens):
 *
 *     mms_sp_tokenizer *sp;
 *     if (mms_sp_tokenizer_load("spiece.model", &sp, &err)) ...
 *     mms_t5_added_token added[] = {{"</s>", 4, 1, 0, 0, 0, 0, 1}, ...};
 *     mms_t5_params p = mms_t5_default_params();            // 100 sentinels, unk 2
 *     mms_t5_tokenizer *tok;
 *     mms_status st = mms_t5_tokenizer_create(sp, added, n_added, p, &tok, &err);
 *     mms_sp_tokenizer_free(sp);                            // tok keeps copies
 *     int64_t *ids; size_t n;
 *     if (mms_t5_tokenizer_encode(tok, "Question: what is it?", 21, 1, &ids, &n, &err)) ...
 *     mms_free(ids);
 *     mms_t5_tokenizer_free(tok);
 *
 * Known approximation: grapheme clusters follow UAX #29 rules GB3-GB5, GB9-GB9b and GB999 on
 * Unicode 15.0 data (csrc/unicode_gcb_tables.h); the Hangul, emoji and Indic-conjunct rules
 * only join clusters of 6 bytes or more, which are normalized character by character either
 * way.
 *
 * Ownership: a tokenizer owns copies of everything it was built from. Arrays and strings
 * returned through `**out` parameters are allocated with mms_malloc and freed by the caller
 * with mms_free. Threads: a tokenizer is immutable after creation (no cache); every function
 * taking a `const mms_t5_tokenizer *` may be called from many threads at once on one handle.
 * create/free must not race with use. */
#ifndef MMS_TOKENIZER_T5_H
#define MMS_TOKENIZER_T5_H

#include <stddef.h>
#include <stdint.h>

#include "mms_common.h"
#include "sentencepiece.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handle: the vocabulary trie and scores, the charsmap, the added-token matchers. */
typedef struct mms_t5_tokenizer mms_t5_tokenizer;

/* One AddedToken of the vocabulary (tokenizers' flags); only read during creation. */
typedef struct mms_t5_added_token {
    const char *content; /* UTF-8, len bytes; an empty content is never matched */
    size_t len;
    int64_t id;          /* >= 0; what a match of content becomes */
    int lstrip;          /* a match also takes the White_Space before it */
    int rstrip;          /* ... and after it */
    int single_word;     /* only matched when no word character (Rust regex \w) touches it */
    int normalized;      /* searched in normalized text, as its normalized form */
    int special;         /* searched before non-special tokens of the same content */
} mms_t5_added_token;

/* How the vocabulary is completed; start from mms_t5_default_params(). */
typedef struct mms_t5_params {
    int64_t extra_ids; /* sentinels <extra_id_0 .. extra_ids-1> after the pieces (100) */
    int64_t eos_id;    /* what add_eos appends; -1: the piece "</s>" (-1) */
    int64_t unk_id;    /* what an unknown run becomes (2: transformers 5 builds its Unigram
                          model with unk_id 2, whatever piece that is) */
} mms_t5_params;

mms_t5_params mms_t5_default_params(void);

/* ---- creation ------------------------------------------------------------------------- */

/* Build from a loaded unigram model (only read; it may be freed right after) and the
 * added tokens added[0 .. n_added). Matching order: special tokens first, then by id (a
 * later token with the same content is never matched; a normalized one whose normalized
 * form repeats an earlier one's neither). Errors: MMS_ERR_UNSUPPORTED (a BPE model),
 * MMS_ERR_VALUE (extra_ids < 0 or too many, eos_id / unk_id outside the pieces and
 * sentinels, no "</s>" piece for eos_id -1, an added token with a negative id or content
 * that is not UTF-8), MMS_ERR_FORMAT (the charsmap is broken where a content's
 * normalization reads it), MMS_ERR_NOMEM. */
mms_status mms_t5_tokenizer_create(const mms_sp_tokenizer *sp, const mms_t5_added_token *added, size_t n_added,
                                   mms_t5_params params, mms_t5_tokenizer **out, mms_error *err);

/* Free everything the tokenizer owns. NULL is a no-op. */
void mms_t5_tokenizer_free(mms_t5_tokenizer *tok);

/* ---- properties (thread safe, never fail) --------------------------------------------- */

typedef struct mms_t5_info {
    int64_t n_pieces;   /* pieces of the model */
    int64_t vocab_size; /* n_pieces + extra_ids: the Unigram vocabulary (added tokens aside) */
    int64_t extra_ids;
    int64_t eos_id, unk_id;
    int has_charsmap;   /* a precompiled charsmap normalizes text */
} mms_t5_info;

mms_t5_info mms_t5_tokenizer_info(const mms_t5_tokenizer *tok);

/* ---- normalizing and encoding (thread safe) -------------------------------------------- */

/* Text (len bytes of UTF-8) after the charsmap normalizer alone, as a normalized added
 * token's surface: new NUL-terminated string in *out (*out_len bytes), freed with mms_free.
 * Errors: MMS_ERR_VALUE (text is not UTF-8; the message gives the byte offset),
 * MMS_ERR_FORMAT (the charsmap points outside its strings or to non-UTF-8), MMS_ERR_NOMEM. */
mms_status mms_t5_tokenizer_normalize(const mms_t5_tokenizer *tok, const char *text, size_t len, char **out,
                                      size_t *out_len, mms_error *err);

/* Ids of text (len bytes of UTF-8), then eos_id when add_eos. Writes min(count, cap) ids
 * (ids may be NULL when cap is 0) and the full count to *n_ids, like snprintf.
 * Errors: as mms_t5_tokenizer_normalize. */
mms_status mms_t5_tokenizer_encode_into(const mms_t5_tokenizer *tok, const char *text, size_t len, int add_eos,
                                        int64_t *ids, size_t cap, size_t *n_ids, mms_error *err);

/* Same, into a new array (n_ids,) allocated with mms_malloc (never NULL on success). */
mms_status mms_t5_tokenizer_encode(const mms_t5_tokenizer *tok, const char *text, size_t len, int add_eos,
                                   int64_t **ids, size_t *n_ids, mms_error *err);

/* How a batch becomes a (n, context_length) matrix; start from the defaults. */
typedef struct mms_t5_batch_params {
    int64_t context_length; /* columns, >= 1 (default 512) */
    int truncate;           /* 1: keep the first context_length ids, the last set to EOS when
                               add_eos (transformers' truncation); 0: a longer row is an
                               MMS_ERR_VALUE naming the text (default 1) */
    int64_t pad_id;         /* written after the tokens (default 0, T5's <pad>) */
    int add_eos;            /* rows end with eos_id (default 1) */
    int n_threads;          /* texts are encoded in parallel; 0 = mms_get_num_threads() */
} mms_t5_batch_params;

mms_t5_batch_params mms_t5_batch_default_params(void);

/* Encode n texts (texts[i] has lens[i] bytes) into ids (n, context_length) and mask
 * (n, context_length) (1 on tokens, 0 on padding; may be NULL). n_tokens (n,) may be NULL;
 * it receives each row's untruncated length, EOS included. On error the outputs hold
 * unspecified values. Errors: MMS_ERR_VALUE (bad params, a longer row with truncate = 0,
 * a text that is not UTF-8: the text is named), MMS_ERR_FORMAT (as normalize),
 * MMS_ERR_NOMEM. */
mms_status mms_t5_tokenizer_encode_batch(const mms_t5_tokenizer *tok, const char *const *texts, const size_t *lens,
                                         int64_t n, mms_t5_batch_params params, int64_t *ids, int64_t *mask,
                                         int64_t *n_tokens, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MMS_TOKENIZER_T5_H */
