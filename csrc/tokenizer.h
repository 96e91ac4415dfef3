/* tokenizer.h -- CLIP byte-level BPE tokenizer (openai/CLIP simple_tokenizer.py semantics).
 *
 * The C side takes text that is already cleaned (ftfy, html.unescape twice, whitespace
 * collapse, str.lower(): see mmsuite/tokenizer.py, which does that in Python because
 * the reference semantics are Python's) and does everything after it:
 *
 *   "a photo of a cat"                       cleaned UTF-8 text
 *     -> pre-tokenizer                       "a" "photo" "of" "a" "cat"  (<|startoftext|>,
 *                                            <|endoftext|> matched as special tokens)
 *     -> bytes -> BPE merges, "</w>" on the last symbol of each piece
 *     -> ids                                 320 1125 539 320 2368
 *
 * Typical use:
 *
 *     mms_bpe_tokenizer *tok;
 *     if (mms_bpe_tokenizer_create_hf(vocab, vocab_len, merges, merges_len, &tok, &err)) ...
 *     int64_t ids[77 * 2], mask[77 * 2];                       // (n, context_length)
 *     mms_bpe_batch_params p = mms_bpe_batch_default_params(); // 77, truncate, pad 0, SOT/EOT
 *     const char *texts[2] = {"a photo of a cat", "a dog"};
 *     size_t lens[2] = {16, 5};
 *     if (mms_bpe_tokenizer_encode_batch(tok, texts, lens, 2, p, ids, mask, NULL, &err)) ...
 *     mms_bpe_tokenizer_free(tok);
 *
 * Ids are int64_t at the API (what numpy / torch index tensors use), int32 inside.
 * Ownership: a tokenizer owns copies of everything it was built from; strings and id
 * arrays returned through `**out` parameters are allocated with mms_malloc and freed by
 * the caller with mms_free.
 * Threads: after creation a tokenizer is read-only except for an internal word cache that
 * is safe for concurrent use by itself (lock-free seqlocked entries), so every function
 * taking `const mms_bpe_tokenizer *` may be called from many threads at once on the same
 * handle. create/free must not race with use. */
#ifndef MMS_TOKENIZER_H
#define MMS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Merges used by OpenAI's bpe_simple_vocab_16e6.txt (lines 1..48894; the file has more,
 * unused). Vocabulary = 256 bytes + 256 bytes with "</w>" + 48894 merges + 2 specials. */
#define MMS_CLIP_N_MERGES 48894

/* Opaque handle: vocabulary, merge ranks, special ids, and a cache of encoded words. */
typedef struct mms_bpe_tokenizer mms_bpe_tokenizer;

/* ---- creation ------------------------------------------------------------------ */

/* Build from OpenAI's merges text (the decompressed bpe_simple_vocab_16e6.txt: one header
 * line, then "left right" per line). Ids follow the reference: 0..255 the byte symbols in
 * byte-to-unicode order, 256..511 the same with "</w>", then one id per merge in merge
 * order, then <|startoftext|>, <|endoftext|>. n_merges: how many merge lines to use
 * (MMS_CLIP_N_MERGES for CLIP; -1 = every non-empty line). The text is only read.
 * Errors: MMS_ERR_FORMAT (fewer lines than n_merges, a line that is not two symbols,
 * a symbol that is neither a byte symbol nor a merge result), MMS_ERR_NOMEM. */
mms_status mms_bpe_tokenizer_create_openai(const char *merges_text, size_t merges_len,
                                           int32_t n_merges, mms_bpe_tokenizer **out,
                                           mms_error *err);

/* Build from a Hugging Face CLIPTokenizer checkpoint: vocab.json (object token -> id) and
 * merges.txt (optional "#version" header, then "left right" per line). Ids come from
 * vocab.json, which must hold the 512 byte symbols, every merge's parts and result, and
 * <|startoftext|> / <|endoftext|>. For OpenAI's vocabulary both constructors give the
 * same ids. Errors: MMS_ERR_FORMAT (bad JSON, negative or duplicate id, bad merge line,
 * missing symbol), MMS_ERR_NOMEM. */
mms_status mms_bpe_tokenizer_create_hf(const char *vocab_json, size_t vocab_len,
                                       const char *merges_text, size_t merges_len,
                                       mms_bpe_tokenizer **out, mms_error *err);

/* Same as mms_bpe_tokenizer_create_hf, reading the two files. Errors in addition:
 * MMS_ERR_NOT_FOUND (a file does not exist; the message names it), MMS_ERR_IO. */
mms_status mms_bpe_tokenizer_load_hf(const char *vocab_json_path, const char *merges_path,
                                     mms_bpe_tokenizer **out, mms_error *err);

/* Free everything the tokenizer owns. NULL is a no-op. Not thread safe with other calls
 * on the same handle. */
void mms_bpe_tokenizer_free(mms_bpe_tokenizer *tok);

/* ---- properties (thread safe, never fail) ---------------------------------------- */

int64_t mms_bpe_tokenizer_vocab_size(const mms_bpe_tokenizer *tok); /* max id + 1 (49408) */
int64_t mms_bpe_tokenizer_n_merges(const mms_bpe_tokenizer *tok);
int64_t mms_bpe_tokenizer_sot_id(const mms_bpe_tokenizer *tok); /* <|startoftext|> (49406) */
int64_t mms_bpe_tokenizer_eot_id(const mms_bpe_tokenizer *tok); /* <|endoftext|>   (49407) */

/* Id of a vocabulary string (written in the byte-to-unicode alphabet, e.g. "cat</w>"),
 * or -1 if it is not in the vocabulary. */
int64_t mms_bpe_tokenizer_token_to_id(const mms_bpe_tokenizer *tok, const char *token,
                                      size_t len);

/* Vocabulary string of an id, NUL-terminated and borrowed from the tokenizer (valid until
 * it is freed); NULL if id is out of range or unused. */
const char *mms_bpe_tokenizer_id_to_token(const mms_bpe_tokenizer *tok, int64_t id);

/* ---- encoding (thread safe) -------------------------------------------------------- */

/* Encode cleaned UTF-8 text (len bytes, need not be NUL-terminated) to ids, without
 * SOT/EOT. Writes min(count, cap) ids to ids (cap may be 0, ids then may be NULL) and the
 * full count to *n_ids, like snprintf: call again with a larger buffer if *n_ids > cap.
 * Errors: MMS_ERR_VALUE (text is not valid UTF-8; the message gives the byte offset),
 * MMS_ERR_NOMEM. */
mms_status mms_bpe_tokenizer_encode_into(const mms_bpe_tokenizer *tok, const char *text,
                                         size_t len, int64_t *ids, size_t cap, size_t *n_ids,
                                         mms_error *err);

/* Same, returning a new array (n_ids,) allocated with mms_malloc (never NULL on success,
 * even when empty); the caller frees it with mms_free. */
mms_status mms_bpe_tokenizer_encode(const mms_bpe_tokenizer *tok, const char *text,
                                    size_t len, int64_t **ids, size_t *n_ids, mms_error *err);

/* How a batch becomes a (n, context_length) matrix; get defaults from
 * mms_bpe_batch_default_params() and change fields. */
typedef struct mms_bpe_batch_params {
    int64_t context_length; /* columns of each row; >= 2 when add_special (default 77) */
    int truncate;           /* 1: keep the first context_length ids, the last one set to EOT
                               when add_special (clip.tokenize(truncate=True)); 0: a longer
                               text is an MMS_ERR_VALUE naming it (default 1) */
    int64_t pad_id;         /* written after the tokens: 0 in openai/CLIP, the pad token of an
                               HF checkpoint (49407 for openai/clip-*) (default 0) */
    int add_special;        /* 1: row = SOT + ids + EOT (default 1) */
    int n_threads;          /* texts are encoded in parallel; 0 = mms_get_num_threads() */
} mms_bpe_batch_params;

mms_bpe_batch_params mms_bpe_batch_default_params(void);

/* Encode n texts (texts[i] has lens[i] bytes) into rows of ids (n, context_length) and
 * mask (n, context_length) (1 on tokens, 0 on padding; may be NULL). n_tokens (n,) may be
 * NULL; if given it receives each text's untruncated length including SOT/EOT, so a
 * caller can pad to the longest row. On error the outputs hold unspecified values.
 * Errors: MMS_ERR_VALUE (bad params; a text longer than context_length with truncate=0,
 * the first such text is named with its length; invalid UTF-8, the text is named),
 * MMS_ERR_NOMEM. */
mms_status mms_bpe_tokenizer_encode_batch(const mms_bpe_tokenizer *tok,
                                          const char *const *texts, const size_t *lens,
                                          int64_t n, mms_bpe_batch_params params,
                                          int64_t *ids, int64_t *mask, int64_t *n_tokens,
                                          mms_error *err);

/* ---- decoding (thread safe) ----------------------------------------------------------- */

/* Decode n ids to a new NUL-terminated UTF-8 string (*text, *len bytes without the NUL,
 * allocated with mms_malloc, freed by the caller with mms_free). As the reference: token
 * strings joined, mapped back to bytes, UTF-8 decoded with one U+FFFD per maximal
 * ill-formed subpart (Python errors="replace"), then every "</w>" becomes one space.
 * skip_special drops SOT/EOT ids. Errors: MMS_ERR_VALUE (an id out of [0, vocab_size) or
 * unused; the message gives its position), MMS_ERR_NOMEM. */
mms_status mms_bpe_tokenizer_decode(const mms_bpe_tokenizer *tok, const int64_t *ids,
                                    size_t n, int skip_special, char **text, size_t *len,
                                    mms_error *err);

/* ---- UTF-8 and Unicode classes (csrc/unicode.c), shared by the tokenizers ------------ */

/* Pre-tokenizer classes (regex module, Unicode 15.0): \p{L}, \p{N}, White_Space, rest. */
typedef enum mms_uclass {
    MMS_UCLASS_OTHER = 0,
    MMS_UCLASS_LETTER = 1, /* Lu Ll Lt Lm Lo */
    MMS_UCLASS_NUMBER = 2, /* Nd Nl No */
    MMS_UCLASS_SPACE = 3,  /* White_Space: 9-D, 20, 85, A0, 1680, 2000-200A, 2028-9, 202F, 205F, 3000 */
} mms_uclass;

/* Class of a code point (anything above U+10FFFF is OTHER). */
mms_uclass mms_unicode_class(uint32_t cp);

/* Unicode version of the class tables ("15.0.0"). */
const char *mms_unicode_version(void);

/* Decode the well-formed UTF-8 character at s[0..n): returns its length 1..4 and sets *cp,
 * or 0 if the bytes there are ill-formed or truncated (n == 0 also gives 0). */
int mms_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* Copy src (n bytes) to dst replacing each maximal ill-formed subpart (Unicode 3.9, as
 * Python's errors="replace") by U+FFFD; dst needs room for 3 * n bytes. Returns the bytes
 * written (no NUL). */
size_t mms_utf8_sanitize(const uint8_t *src, size_t n, uint8_t *dst);

#ifdef __cplusplus
}
#endif
#endif /* MMS_TOKENIZER_H */
