/* tokenizer_bpe_internal.h -- the byte-level BPE core shared by the CLIP tokenizer
 * (tokenizer_bpe*.c) and the GPT-2 / Hugging Face tokenizer (tokenizer_hf*.c): vocabulary
 * strings with their string -> id hash, the (left, right) -> merge map, building both from
 * vocabulary entries and merge lines, the byte-to-unicode map and the merge loop. Also the
 * CLIP tokenizer's own struct. Not public. */
#ifndef MMS_TOKENIZER_BPE_INTERNAL_H
#define MMS_TOKENIZER_BPE_INTERNAL_H

#include "tokenizer.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text_util.h"

#define SOT_STRING "<|startoftext|>"
#define EOT_STRING "<|endoftext|>"
#define MAX_VOCAB (1 << 24) /* ids above this are refused: they would size the id tables */

/* ==== hashing and the two maps ============================================================ */

/* (left id, right id) -> (rank, result id); open addressing, linear probing. */
typedef struct merge_slot {
    uint64_t key; /* left << 32 | right; MERGE_EMPTY if unused */
    int32_t rank, result;
} merge_slot;
#define MERGE_EMPTY UINT64_MAX

typedef struct merge_map {
    merge_slot *slots; /* (mask + 1,) */
    size_t mask;
    int32_t *result_of; /* (n_merges,) result id of the merge of each rank */
} merge_map;

static inline size_t merge_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

/* The slot holding (left, right), or NULL. Hot: called for every adjacent symbol pair. */
static inline const merge_slot *merge_find(const merge_map *m, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = merge_hash(key, m->mask);; i = (i + 1) & m->mask) {
        const merge_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == MERGE_EMPTY) return NULL;
    }
}

/* ==== the BPE model: vocabulary + merges ================================================== */

/* Ids are dense-ish: id i's string is pool + str_off[i] (str_len[i] bytes, NUL-terminated),
 * str_off[i] = -1 for an id no entry uses. Immutable once built. */
typedef struct bpe_model {
    int32_t vocab_size, n_merges; /* vocab_size = max id + 1 */
    char *pool;                   /* every vocabulary string, NUL-terminated, back to back */
    int64_t *str_off;             /* (vocab_size,) offset in pool, -1 for an unused id */
    int32_t *str_len;             /* (vocab_size,) */
    int32_t *vocab_slots;         /* (vocab_mask + 1,) string -> id hash set of ids, -1 empty */
    size_t vocab_mask;
    merge_map merges;
} bpe_model;

static inline int32_t *vocab_slot(const bpe_model *m, const char *s, size_t n) {
    return mms_str_slot(m->vocab_slots, m->vocab_mask, m->pool, m->str_off, m->str_len, s, n);
}

/* Id of the vocabulary string s[0..n), or -1. */
static inline int64_t vocab_find(const bpe_model *m, const char *s, size_t n) { return *vocab_slot(m, s, n); }

/* Vocabulary string of id (NUL-terminated, borrowed), or NULL if out of range or unused. */
static inline const char *bpe_model_token(const bpe_model *m, int64_t id, size_t *len) {
    if (id < 0 || id >= m->vocab_size || m->str_off[id] < 0) return NULL;
    if (len) *len = (size_t)m->str_len[id];
    return m->pool + m->str_off[id];
}

void mms_bpe_model_free(bpe_model *m);

/* Vocabulary entries collected by a loader: strings back to back in pool. */
typedef struct vocab_build {
    char *pool;       /* owned until handed to the model */
    size_t pool_len;
    int64_t *offs;    /* (n,) */
    int32_t *lens, *ids;
    size_t n;
} vocab_build;

/* Room for n entries whose strings total pool_len bytes (without NULs: one is added per entry
 * by the caller's count). MMS_ERR_NOMEM with v zeroed on failure. */
mms_status mms_vocab_build_alloc(vocab_build *v, size_t n, size_t pool_len, mms_error *err);
void mms_vocab_build_free(vocab_build *v);
/* Append the entry a[0..alen) b[0..blen) (b may be empty) with id. */
void mms_vocab_build_add(vocab_build *v, const char *a, size_t alen, const char *b, size_t blen, int32_t id);

/* The entries of a JSON object {token: id, ...} (vocab.json, encoder.json, tokenizer.json's
 * model.vocab). `what` names the object in messages. */
mms_status mms_vocab_build_json(const cJSON *obj, const char *what, vocab_build *v, mms_error *err);

/* One "left right" merge, borrowed from the text it was parsed from. */
typedef struct merge_line {
    const char *a, *b;
    size_t alen, blen, lineno; /* lineno: 1-based line (or array index + 1), for messages */
} merge_line;

/* Split merges text into lines; skip line 1 if skip_first (OpenAI) or if it starts with
 * "#version" (HF). limit >= 0 stops after that many merges and requires them all.
 * A final newline does not start a line. *lines is mms_malloc'd. */
mms_status mms_bpe_parse_merges(const char *text, size_t len, int skip_first, int32_t limit, merge_line **lines,
                                size_t *n_lines, mms_error *err);

/* Build m from the vocabulary v (taken over, even on error) and the merges: a repeated id is
 * an error; an equal string keeps the later id (dict(zip(...))); every merge's parts and
 * result must be vocabulary strings; a repeated pair keeps its later rank. `what` prefixes
 * messages (a file name). On error m holds nothing to free. */
mms_status mms_bpe_model_build(bpe_model *m, vocab_build *v, const merge_line *lines, size_t n_lines,
                               const char *what, mms_error *err);

/* GPT-2's byte-to-unicode map: printable bytes stand for themselves, the other 68 take
 * U+0100.. in byte order. u2b[cp] is the byte of code point cp < 0x144, or -1. */
void mms_bpe_byte_map(uint32_t b2u[256], int16_t u2b[0x144]);

/* ==== the merge loop ======================================================================= */

/* Per-call scratch, grown to the longest word seen; nothing is allocated per word. */
typedef struct bpe_work {
    int32_t *id, *next, *prev; /* (cap,) symbol i: token id (-1 once merged away), links */
    int32_t *merged;           /* (cap,) symbols created in the current pass */
    uint64_t *heap;            /* (3 * cap,) rank << 32 | symbol, a binary min-heap */
    size_t cap;
} bpe_work;

void mms_bpe_work_free(bpe_work *w);
/* Room for n symbols; 0, or -1 (out of memory, w emptied). */
int mms_bpe_work_reserve(bpe_work *w, size_t n);

/* How merges are applied; both take the lowest rank first, the leftmost on ties. */
typedef enum bpe_merge_mode {
    /* openai/gpt-2 encoder.py and CLIP: each pass merges every non-overlapping occurrence of
     * the best pair left to right; pairs the pass forms wait for the next pass. */
    BPE_MERGE_PASS = 0,
    /* HF tokenizers (Word::merge_all): one merge at a time, new pairs queued at once. */
    BPE_MERGE_ONE = 1,
} bpe_merge_mode;

/* Merge the symbols w->id[0..n) (n >= 1, ids preset by the caller) with m; the final ids go
 * to w->id[0..count), the count is returned. */
size_t mms_bpe_merge(const merge_map *m, bpe_work *w, size_t n, bpe_merge_mode mode);

/* ==== the CLIP tokenizer ==================================================================== */

/* Direct-mapped cache of encoded short pieces, shared by all threads. Each entry is a
 * seqlock: readers never write shared memory, so threads that keep reading the same hot
 * words ("a", "of") do not bounce cache lines, and a writer that finds an entry busy just
 * skips caching. Fields are atomics read relaxed, the C11 seqlock pattern (H. Boehm, "Can
 * seqlocks get along with programming language memory models?"), so there is no data race. */
#define CACHE_SLOTS 8192
#define CACHE_MAX_PIECE 24 /* bytes; longer pieces are not cached */
#define CACHE_MAX_IDS 6

typedef struct cache_entry {
    _Atomic uint32_t seq;  /* odd while a writer fills the entry */
    uint32_t unused;
    _Atomic uint64_t w[7]; /* w[0] = tag << 32 | len << 8 | n_ids (tag 0 = empty),
                              w[1..3] piece bytes, w[4..6] ids (int32) */
} cache_entry; /* 64 bytes, one cache line */

typedef struct word_cache {
    cache_entry entries[CACHE_SLOTS];
} word_cache;

struct mms_bpe_tokenizer {
    bpe_model m;
    int32_t sot_id, eot_id;
    int32_t byte_id[256];     /* first symbols of a piece, by byte value */
    int32_t byte_eow_id[256]; /* its last symbol: "x</w>" */
    uint8_t *bytes;           /* token bytes: the string mapped back through the byte map */
    int64_t *bytes_off;       /* (vocab_size + 1,) token i = bytes[bytes_off[i] .. [i + 1]) */
    word_cache *cache;        /* the only mutable part, thread safe by itself */
};

#endif
