/* tokenizer_bpe_internal.h -- the CLIP BPE tokenizer's data structure and id maps, shared by
 * tokenizer_bpe_load.c (building it) and tokenizer_bpe.c (encoding / decoding). Not public. */
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

/* ==== the tokenizer ======================================================================= */

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
    int32_t vocab_size, n_merges, sot_id, eot_id;
    int32_t byte_id[256];     /* first symbols of a piece, by byte value */
    int32_t byte_eow_id[256]; /* its last symbol: "x</w>" */
    char *pool;               /* every vocabulary string, NUL-terminated, back to back */
    int64_t *str_off;         /* (vocab_size,) offset in pool, -1 for an unused id */
    int32_t *str_len;         /* (vocab_size,) */
    uint8_t *bytes;           /* token bytes: the string mapped back through the byte map */
    int64_t *bytes_off;       /* (vocab_size + 1,) token i = bytes[bytes_off[i] .. [i + 1]) */
    int32_t *vocab_slots;     /* (vocab_mask + 1,) string -> id hash set of ids, -1 empty */
    size_t vocab_mask;
    merge_map merges;
    word_cache *cache; /* the only mutable part, thread safe by itself */
};

static inline int32_t *vocab_slot(const mms_bpe_tokenizer *t, const char *s, size_t n) {
    return mms_str_slot(t->vocab_slots, t->vocab_mask, t->pool, t->str_off, t->str_len, s, n);
}

static inline int64_t vocab_find(const mms_bpe_tokenizer *t, const char *s, size_t n) { return *vocab_slot(t, s, n); }

/* Insert id under its string; an equal string already there is replaced (the reference's
 * dict(zip(vocab, ids)): the later id wins). */
static inline void vocab_insert(mms_bpe_tokenizer *t, int32_t id) {
    *vocab_slot(t, t->pool + t->str_off[id], (size_t)t->str_len[id]) = id;
}


#endif
