/* sentencepiece.h -- SentencePiece tokenizers (BPE and unigram) read from a sentencepiece
 * ModelProto file (`tokenizer.model`, `spiece.model`), with the semantics of the
 * google/sentencepiece library (0.1.9x / 0.2.x), so ids match it exactly.
 *
 *   "Hello  world"                                   UTF-8 text
 *     -> normalizer   NormalizerSpec: precompiled charsmap (nmt_nfkc, ...) if any, drop
 *                     leading/trailing/repeated spaces (remove_extra_whitespaces), dummy
 *                     prefix, ' ' -> U+2581 '▁'      "▁Hello▁world"
 *     -> model        BPE: highest-score merges of characters (user-defined pieces are
 *                     frozen symbols); unigram: Viterbi path maximizing the summed piece
 *                     scores, unknown characters -> unk (score min_score - 10)
 *     -> ids          unknown pieces -> <0xXX> byte pieces when byte_fallback, else one unk
 *                     id per run of unknown pieces
 *
 * Typical use:
 *
 *     mms_sp_tokenizer *tok;
 *     if (mms_sp_tokenizer_load("spiece.model", &tok, &err)) ...
 *     int64_t *ids; size_t n;
 *     if (mms_sp_tokenizer_encode(tok, "a photo of a cat", 16, &ids, &n, &err)) ...
 *     mms_free(ids);
 *     int64_t rows[64 * 2], mask[64 * 2];                      // (n, context_length)
 *     mms_sp_batch_params p = mms_sp_batch_default_params();  // 64, truncate, pad 0
 *     p.add_eos = 1; p.pad_id = mms_sp_tokenizer_info(tok).eos_id;
 *     if (mms_sp_tokenizer_encode_batch(tok, texts, lens, 2, p, rows, mask, NULL, &err)) ...
 *     mms_sp_tokenizer_free(tok);
 *
 * Differences from the library, all on inputs no released model has: WORD and CHAR models
 * are refused (MMS_ERR_UNSUPPORTED); the model's self_test_data is not run; a piece whose
 * bytes contain NUL matches as the library's C-string trie would not.
 *
 * Ids are int64_t at the API, int32 inside. Ownership: a tokenizer owns copies of
 * everything it was built from; arrays and strings returned through `**out` parameters are
 * allocated with mms_malloc and freed by the caller with mms_free.
 * Threads: a tokenizer is immutable after creation; every function taking a
 * `const mms_sp_tokenizer *` may be called from many threads at once on one handle.
 * create/free must not race with use. */
#ifndef MMS_SENTENCEPIECE_H
#define MMS_SENTENCEPIECE_H

#include <stddef.h>
#include <stdint.h>

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TrainerSpec.model_type values that can be loaded. */
typedef enum mms_sp_model_type {
    MMS_SP_MODEL_TYPE_UNIGRAM = 1,
    MMS_SP_MODEL_TYPE_BPE = 2,
} mms_sp_model_type;

/* ModelProto.SentencePiece.Type, as stored in the file. */
typedef enum mms_sp_piece_type {
    MMS_SP_PIECE_TYPE_INVALID = 0,      /* returned for an id out of range */
    MMS_SP_PIECE_TYPE_NORMAL = 1,
    MMS_SP_PIECE_TYPE_UNKNOWN = 2,      /* <unk>: exactly one per model */
    MMS_SP_PIECE_TYPE_CONTROL = 3,      /* <s>, </s>, [INST]: never matched in text, decode to "" */
    MMS_SP_PIECE_TYPE_USER_DEFINED = 4, /* always one token when it appears in text */
    MMS_SP_PIECE_TYPE_UNUSED = 5,       /* in the vocabulary but never output */
    MMS_SP_PIECE_TYPE_BYTE = 6,         /* <0x00>..<0xFF>, byte fallback */
} mms_sp_piece_type;

/* Opaque handle: pieces, their trie, the normalizer and its charsmap. */
typedef struct mms_sp_tokenizer mms_sp_tokenizer;

/* ---- creation ------------------------------------------------------------------------- */

/* Build from the bytes of a serialized ModelProto (len bytes, only read). `name` (may be
 * NULL: "<memory>") is put in front of error messages, normally the file path.
 * Errors: MMS_ERR_FORMAT (not a ModelProto: bad wire format, truncated; or a model the
 * library refuses too: no pieces, an empty or repeated piece, no or two <unk>, byte pieces
 * without byte_fallback or not all 256, a broken precompiled_charsmap),
 * MMS_ERR_UNSUPPORTED (WORD / CHAR model types), MMS_ERR_NOMEM. */
mms_status mms_sp_tokenizer_create(const void *model, size_t len, const char *name,
                                   mms_sp_tokenizer **out, mms_error *err);

/* Same, reading the file at path (messages name it). Errors in addition:
 * MMS_ERR_NOT_FOUND (no such file), MMS_ERR_IO. */
mms_status mms_sp_tokenizer_load(const char *path, mms_sp_tokenizer **out, mms_error *err);

/* Free everything the tokenizer owns. NULL is a no-op. */
void mms_sp_tokenizer_free(mms_sp_tokenizer *tok);

/* ---- properties (thread safe, never fail) --------------------------------------------- */

/* What a model file says; ids are -1 when the model has no such piece. */
typedef struct mms_sp_info {
    mms_sp_model_type model_type;
    int64_t vocab_size; /* number of pieces; ids are 0 .. vocab_size - 1 */
    int64_t unk_id;     /* the UNKNOWN piece named trainer_spec.unk_piece ("<unk>") */
    int64_t bos_id;     /* CONTROL pieces named bos_piece / eos_piece / pad_piece, as */
    int64_t eos_id;     /* SentencePieceProcessor::bos_id() etc.: -1 if that piece is */
    int64_t pad_id;     /* missing or not a control piece */
    int byte_fallback;
    int add_dummy_prefix;           /* NormalizerSpec flags */
    int remove_extra_whitespaces;
    int escape_whitespaces;
    int treat_whitespace_as_suffix; /* TrainerSpec: the dummy '▁' goes at the end */
    int has_charsmap;               /* a precompiled_charsmap is applied */
    int has_denormalizer;           /* decode output goes through denormalizer_spec's charsmap */
    const char *normalizer_name;    /* NormalizerSpec.name ("nmt_nfkc", "identity", ...), borrowed */
} mms_sp_info;

mms_sp_info mms_sp_tokenizer_info(const mms_sp_tokenizer *tok);

/* Id of a piece string (len bytes), or -1 if no piece has it (the library would answer
 * unk_id instead). */
int64_t mms_sp_tokenizer_piece_to_id(const mms_sp_tokenizer *tok, const char *piece, size_t len);

/* Piece string of an id, borrowed (valid until the tokenizer is freed), NUL-terminated,
 * its length in *len (may be NULL); NULL if id is out of range. */
const char *mms_sp_tokenizer_id_to_piece(const mms_sp_tokenizer *tok, int64_t id, size_t *len);

/* Type of a piece; MMS_SP_PIECE_TYPE_INVALID if id is out of range. */
mms_sp_piece_type mms_sp_tokenizer_piece_type(const mms_sp_tokenizer *tok, int64_t id);

/* Score of a piece (0 if id is out of range). */
float mms_sp_tokenizer_piece_score(const mms_sp_tokenizer *tok, int64_t id);

/* ---- normalizing and encoding (thread safe) ------------------------------------------- */

/* Text (len bytes, any bytes: ill-formed UTF-8 becomes U+FFFD a byte at a time, as the
 * library) after the normalizer: what the model segments. New NUL-terminated string in
 * *out (*out_len bytes), freed with mms_free. Errors: MMS_ERR_FORMAT (the charsmap points
 * outside its strings), MMS_ERR_NOMEM. */
mms_status mms_sp_tokenizer_normalize(const mms_sp_tokenizer *tok, const char *text, size_t len,
                                      char **out, size_t *out_len, mms_error *err);

/* Ids of text (len bytes), without BOS/EOS: the library's EncodeAsIds. Writes
 * min(count, cap) ids (ids may be NULL when cap is 0) and the full count to *n_ids, like
 * snprintf. Errors: as mms_sp_tokenizer_normalize. */
mms_status mms_sp_tokenizer_encode_into(const mms_sp_tokenizer *tok, const char *text, size_t len,
                                        int64_t *ids, size_t cap, size_t *n_ids, mms_error *err);

/* Same, into a new array (n_ids,) allocated with mms_malloc (never NULL on success). */
mms_status mms_sp_tokenizer_encode(const mms_sp_tokenizer *tok, const char *text, size_t len,
                                   int64_t **ids, size_t *n_ids, mms_error *err);

/* How a batch becomes a (n, context_length) matrix; start from the defaults. */
typedef struct mms_sp_batch_params {
    int64_t context_length; /* columns; >= add_bos + add_eos and >= 1 (default 64) */
    int truncate;           /* 1: keep the first context_length ids, the last set to EOS when
                               add_eos (HF truncation); 0: a longer row is an MMS_ERR_VALUE
                               naming the text (default 1) */
    int64_t pad_id;         /* written after the tokens (default 0) */
    int add_bos;            /* row starts with bos_id; MMS_ERR_VALUE if the model has none (0) */
    int add_eos;            /* row ends with eos_id; MMS_ERR_VALUE if the model has none (0) */
    int n_threads;          /* texts are encoded in parallel; 0 = mms_get_num_threads() */
} mms_sp_batch_params;

mms_sp_batch_params mms_sp_batch_default_params(void);

/* Encode n texts (texts[i] has lens[i] bytes) into ids (n, context_length) and mask
 * (n, context_length) (1 on tokens, 0 on padding; may be NULL). n_tokens (n,) may be NULL;
 * it receives each row's untruncated length including BOS/EOS. On error the outputs hold
 * unspecified values. Errors: MMS_ERR_VALUE (bad params, a longer row with truncate = 0),
 * MMS_ERR_FORMAT (as normalize; the text is named), MMS_ERR_NOMEM. */
mms_status mms_sp_tokenizer_encode_batch(const mms_sp_tokenizer *tok, const char *const *texts,
                                         const size_t *lens, int64_t n, mms_sp_batch_params params,
                                         int64_t *ids, int64_t *mask, int64_t *n_tokens,
                                         mms_error *err);

/* ---- decoding (thread safe) ------------------------------------------------------------ */

/* The library's DecodeIds: control pieces give nothing, <unk> gives trainer_spec.unk_surface
 * (" \u2047 "), '▁' gives ' ', the first '▁' of the text is dropped (add_dummy_prefix; all
 * leading ones with remove_extra_whitespaces), runs of byte pieces are joined and read as
 * UTF-8 with one U+FFFD per byte of an ill-formed sequence; then denormalizer_spec's
 * charsmap if the model has one. New NUL-terminated string in *text (*len bytes), freed with
 * mms_free; UTF-8 whenever the model's pieces are. Errors: MMS_ERR_VALUE (an id outside
 * [0, vocab_size); the message gives its position), MMS_ERR_NOMEM. */
mms_status mms_sp_tokenizer_decode(const mms_sp_tokenizer *tok, const int64_t *ids, size_t n,
                                   char **text, size_t *len, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MMS_SENTENCEPIECE_H */
