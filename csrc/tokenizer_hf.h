/* tokenizer_hf.h -- BPE tokenizers of Hugging Face `tokenizer.json` files (GPT-2, OPT, Llama,
 * Mistral, Qwen2, LLaVA, ...) and of the GPT-2 file layouts (vocab.json + merges.txt,
 * encoder.json + vocab.bpe), with the semantics of HF tokenizers (0.23) and of openai/gpt-2's
 * encoder.py, so ids match them exactly.
 *
 *   "Hi <|im_end|>"                  UTF-8 text
 *     -> added tokens              the file's added_tokens are cut out first (longest match at
 *                                  the leftmost position; lstrip / rstrip / single_word as HF);
 *                                  special ones only unless MMS_HF_SPLIT_SPECIAL
 *     -> normalizer                on each remaining segment: Prepend, Replace (string), NFC,
 *                                  NFD, Lowercase, Strip, Sequence
 *     -> pre-tokenizer             ByteLevel (GPT-2 regex, byte-to-unicode map), Split with the
 *                                  GPT-2 / Llama 3 / Qwen2 patterns or a string, Metaspace,
 *                                  Digits, Sequence          "Hi" "Ġ"
 *     -> BPE                       merges by rank; byte_fallback, unk_token, fuse_unk,
 *                                  ignore_merges
 *     -> post-processor            TemplateProcessing / RobertaProcessing / BertProcessing /
 *                                  ByteLevel: BOS / EOS around the ids (MMS_HF_ADD_SPECIAL)
 *
 * Decoding runs the file's decoder (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip,
 * Sequence); invalid UTF-8 from byte-level tokens becomes U+FFFD per maximal ill-formed
 * subpart (Python's errors="replace"). Anything else in a file (another model type, an
 * unknown split regex, NFKC, ...) is refused with MMS_ERR_UNSUPPORTED naming the file and the
 * feature: a tokenizer that loads gives the reference's ids.
 *
 * Typical use:
 *
 *     mms_hf_tokenizer *tok;
 *     if (mms_hf_tokenizer_load("llava-dir", NULL, &tok, &err)) ...   // dir or tokenizer.json
 *     int64_t *ids; size_t n;
 *     if (mms_hf_tokenizer_encode(tok, "a photo of a cat", 16, MMS_HF_ADD_SPECIAL, &ids, &n, &err)) ...
 *     char *text; size_t len;
 *     if (mms_hf_tokenizer_decode(tok, ids, n, 1, &text, &len, &err)) ...  // skip specials
 *     mms_free(ids); mms_free(text);
 *     mms_hf_tokenizer_free(tok);
 *
 * Ids are int64_t at the API, int32 inside. Ownership: a tokenizer owns copies of everything it
 * was built from; arrays and strings returned through `**out` parameters are allocated with
 * mms_malloc and freed by the caller with mms_free; `const char *` results are borrowed from
 * the tokenizer and live until it is freed.
 * Threads: a tokenizer is immutable after creation; every function taking a
 * `const mms_hf_tokenizer *` may be called from many threads at once on one handle.
 * create/free must not race with use. */
#ifndef MMS_TOKENIZER_HF_H
#define MMS_TOKENIZER_HF_H

#include <stddef.h>
#include <stdint.h>

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mms_hf_tokenizer mms_hf_tokenizer;

/* ---- creation ------------------------------------------------------------------------- */

/* What a checkpoint's tokenizer_config.json adds on top of the tokenizer files (transformers
 * applies these; start from mms_hf_default_options()). */
typedef struct mms_hf_options {
    /* Tokens added as special added tokens (not normalized, no strip) unless they are added
     * tokens already, as transformers does with a config's bos / eos / unk / pad tokens. One
     * missing from the vocabulary gets the next free id. (n_special_tokens,) strings, NUL-
     * terminated UTF-8, only read during the call. */
    const char *const *special_tokens;
    size_t n_special_tokens;
    /* 1: the post-processor becomes [bos_token if add_bos] $A [eos_token if add_eos]
     * (transformers' update_post_processor, used when tokenizer_config.json sets
     * add_bos_token / add_eos_token). A tokenizer without a post-processor (always the GPT-2
     * layouts) gets this template whatever the flag says. */
    int override_post_processor;
    int add_bos, add_eos;
    const char *bos_token, *eos_token; /* contents of tokens with ids; NULL: none */
    int add_prefix_space;              /* GPT-2 layouts: ByteLevel(add_prefix_space) */
} mms_hf_options;

mms_hf_options mms_hf_default_options(void); /* nothing added, no override, no prefix space */

/* Build from the text of a tokenizer.json (len bytes, only read). `name` (may be NULL:
 * "tokenizer.json") starts every error message, normally the file path. opts may be NULL.
 * Errors: MMS_ERR_FORMAT (not JSON, missing or mistyped keys, a merge whose parts or result
 * are not in the vocabulary, duplicate ids), MMS_ERR_UNSUPPORTED (a model type other than BPE,
 * an unknown split pattern, normalizer, pre-tokenizer, decoder or post-processor; the message
 * names it), MMS_ERR_VALUE (an options token without an id), MMS_ERR_NOMEM. */
mms_status mms_hf_tokenizer_create_json(const char *json, size_t len, const char *name, const mms_hf_options *opts,
                                        mms_hf_tokenizer **out, mms_error *err);

/* Build from GPT-2 files: vocab_json (vocab.json or encoder.json: token -> id) and merges
 * (merges.txt or vocab.bpe: optional "#version" line, then "left right" per line). The
 * pipeline is openai/gpt-2's: GPT-2 regex, byte map, merges applied pass by pass as
 * encoder.py does, ByteLevel decoding; no added tokens except opts' special tokens.
 * Errors: as mms_hf_tokenizer_create_json. */
mms_status mms_hf_tokenizer_create_gpt2(const char *vocab_json, size_t vocab_len, const char *merges,
                                        size_t merges_len, const char *name, const mms_hf_options *opts,
                                        mms_hf_tokenizer **out, mms_error *err);

/* Load from path: a tokenizer.json file, or a directory holding tokenizer.json, else
 * vocab.json + merges.txt, else encoder.json + vocab.bpe. Messages name the file read.
 * Errors in addition: MMS_ERR_NOT_FOUND (no such path, or a directory with none of these
 * files), MMS_ERR_IO. */
mms_status mms_hf_tokenizer_load(const char *path, const mms_hf_options *opts, mms_hf_tokenizer **out,
                                 mms_error *err);

/* Same with the two GPT-2 files named. */
mms_status mms_hf_tokenizer_load_gpt2(const char *vocab_path, const char *merges_path, const mms_hf_options *opts,
                                      mms_hf_tokenizer **out, mms_error *err);

/* Free everything the tokenizer owns. NULL is a no-op. */
void mms_hf_tokenizer_free(mms_hf_tokenizer *tok);

/* ---- properties (thread safe, never fail) --------------------------------------------- */

/* Max id + 1 over the model vocabulary and the added tokens. */
int64_t mms_hf_tokenizer_vocab_size(const mms_hf_tokenizer *tok);

/* Size of the model vocabulary alone (HF get_vocab_size(with_added_tokens=False)). */
int64_t mms_hf_tokenizer_model_vocab_size(const mms_hf_tokenizer *tok);

/* Id of a token string (len bytes; an added token's content, else a model vocabulary string
 * such as "Ġcat"), or -1. */
int64_t mms_hf_tokenizer_token_to_id(const mms_hf_tokenizer *tok, const char *token, size_t len);

/* Token string of an id (added token first, as HF), borrowed and NUL-terminated, its length
 * in *len (may be NULL); NULL if no token has this id. */
const char *mms_hf_tokenizer_id_to_token(const mms_hf_tokenizer *tok, int64_t id, size_t *len);

/* 1 if id is a special added token (what decode's skip_special drops), else 0. */
int mms_hf_tokenizer_is_special(const mms_hf_tokenizer *tok, int64_t id);

/* The model's unk token id, or -1. */
int64_t mms_hf_tokenizer_unk_id(const mms_hf_tokenizer *tok);

/* An added token, i in [0, mms_hf_tokenizer_n_added(tok)), in file order; content borrowed. */
typedef struct mms_hf_added_token {
    int64_t id;
    const char *content; /* NUL-terminated UTF-8 */
    size_t len;
    int special, lstrip, rstrip, single_word, normalized;
} mms_hf_added_token;

size_t mms_hf_tokenizer_n_added(const mms_hf_tokenizer *tok);
mms_hf_added_token mms_hf_tokenizer_added(const mms_hf_tokenizer *tok, size_t i);

/* The ids MMS_HF_ADD_SPECIAL puts before and after a text's ids (borrowed arrays; counts in
 * *n_prefix / *n_suffix, arrays may be NULL when a count is 0). */
void mms_hf_tokenizer_template(const mms_hf_tokenizer *tok, const int64_t **prefix, size_t *n_prefix,
                               const int64_t **suffix, size_t *n_suffix);

/* Type of the i-th decoder step ("ByteLevel", "Metaspace", "Replace", "ByteFallback", "Fuse",
 * "Strip"; Sequences flattened), static; NULL past the last. */
const char *mms_hf_tokenizer_decoder(const mms_hf_tokenizer *tok, size_t i);

/* ---- encoding (thread safe) ------------------------------------------------------------- */

/* Flags of the encode functions. */
enum {
    MMS_HF_ADD_SPECIAL = 1,   /* run the post-processor: BOS / EOS around the ids */
    MMS_HF_SPLIT_SPECIAL = 2, /* special added tokens in the text are plain text (HF
                                 split_special_tokens / encode_special_tokens); non-special
                                 added tokens are still matched */
};

/* Ids of text (len bytes of UTF-8, need not be NUL-terminated) as a new array (n_ids,)
 * allocated with mms_malloc (never NULL on success); the caller frees it with mms_free.
 * Errors: MMS_ERR_VALUE (text is not valid UTF-8; the message gives the byte offset),
 * MMS_ERR_NOMEM. */
mms_status mms_hf_tokenizer_encode(const mms_hf_tokenizer *tok, const char *text, size_t len, int flags,
                                   int64_t **ids, size_t *n_ids, mms_error *err);

/* How a batch becomes a (n, context_length) matrix; start from the defaults. */
typedef struct mms_hf_batch_params {
    int64_t context_length; /* columns; >= the template's prefix + suffix (default 512) */
    int truncate;           /* 1: keep the first ids so that prefix + ids + suffix fit (HF's
                               truncation: the specials survive); 0: a longer row is an
                               MMS_ERR_VALUE naming the text (default 1) */
    int64_t pad_id;         /* written after the tokens (default 0) */
    int flags;              /* MMS_HF_* (default MMS_HF_ADD_SPECIAL) */
    int n_threads;          /* texts are encoded in parallel; 0 = mms_get_num_threads() */
} mms_hf_batch_params;

mms_hf_batch_params mms_hf_batch_default_params(void);

/* Encode n texts (texts[i] has lens[i] bytes) into ids (n, context_length) and mask
 * (n, context_length) (1 on tokens, 0 on padding; may be NULL), right-padded. n_tokens (n,)
 * may be NULL; it receives each row's untruncated length. On error the outputs hold
 * unspecified values. Errors: MMS_ERR_VALUE (bad params, a longer row with truncate = 0,
 * invalid UTF-8; the text is named), MMS_ERR_NOMEM. */
mms_status mms_hf_tokenizer_encode_batch(const mms_hf_tokenizer *tok, const char *const *texts,
                                         const size_t *lens, int64_t n, mms_hf_batch_params params,
                                         int64_t *ids, int64_t *mask, int64_t *n_tokens, mms_error *err);

/* ---- decoding (thread safe) ------------------------------------------------------------- */

/* Text of n ids through the file's decoder (HF Tokenizer.decode), as a new NUL-terminated
 * UTF-8 string (*text, *len bytes without the NUL) allocated with mms_malloc. skip_special
 * drops special added tokens. Errors: MMS_ERR_VALUE (an id no token has; the message gives
 * its position), MMS_ERR_NOMEM. */
mms_status mms_hf_tokenizer_decode(const mms_hf_tokenizer *tok, const int64_t *ids, size_t n, int skip_special,
                                   char **text, size_t *len, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MMS_TOKENIZER_HF_H */
