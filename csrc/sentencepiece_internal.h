/* sentencepiece_internal.h -- the mms_sp_tokenizer struct, shared by sentencepiece_model.c
 * (reading the ModelProto, building the tables) and sentencepiece.c (normalizer, BPE and
 * unigram encoders, decoder); the T5 tokenizer (tokenizer_t5*.c) reuses its piece trie and
 * charsmap structures. Not installed; nothing else includes it. */
#ifndef MMS_SENTENCEPIECE_INTERNAL_H
#define MMS_SENTENCEPIECE_INTERNAL_H

#include "sentencepiece.h"

/* Byte trie of the pieces the models may produce from text: NORMAL, USER_DEFINED and
 * UNUSED (the library's `pieces_`; CONTROL, UNKNOWN and BYTE pieces are `reserved`).
 * Node 0 is the root. Edges (node, byte) -> child live in one open-addressing table, so a
 * step of a walk is one hash probe and no string is compared. */
typedef struct sp_trie {
    int32_t *piece;      /* (n_nodes,) id of the piece spelled by the path to a node, or -1 */
    uint64_t *edge_key;  /* (mask + 1,) (node << 8 | byte) + 1; 0 marks an empty slot */
    int32_t *edge_child; /* (mask + 1,) */
    size_t mask;
    int32_t n_nodes;
} sp_trie;

static inline size_t sp_edge_hash(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

/* Child of node along byte b, or -1. Hot: one call per byte the encoders look at. */
static inline int32_t sp_trie_child(const sp_trie *t, int32_t node, uint8_t b) {
    uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
    for (size_t i = sp_edge_hash(key, t->mask);; i = (i + 1) & t->mask) {
        uint64_t k = t->edge_key[i];
        if (k == key) return t->edge_child[i];
        if (k == 0) return -1;
    }
}

/* A NormalizerSpec. The charsmap is sentencepiece's precompiled blob: a darts-clone double
 * array whose values are offsets of NUL-terminated replacement strings. */
typedef struct sp_normalizer {
    uint32_t *units;      /* (n_units,) the double array; NULL when there is no charsmap */
    size_t n_units;
    char *strings;        /* (strings_len,) replacement strings, each NUL-terminated */
    size_t strings_len;
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    int treat_whitespace_as_suffix;
    int match_user_defined; /* user-defined pieces pass through unchanged (the encoder's one) */
} sp_normalizer;

/* darts-clone unit fields of a charsmap's double array (sentencepiece.c and, for its
 * shortest-prefix lookup, tokenizer_t5_norm.c). */
static inline uint32_t sp_da_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static inline uint32_t sp_da_label(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static inline int sp_da_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static inline uint32_t sp_da_value(uint32_t u) { return u & ((1u << 31) - 1); }

struct mms_sp_tokenizer {
    mms_sp_model_type model_type;
    int32_t n_pieces;
    char *pool;       /* every piece, NUL-terminated, back to back */
    int64_t *off;     /* (n_pieces,) offset of piece i in pool */
    int32_t *len;     /* (n_pieces,) its length in bytes */
    float *score;     /* (n_pieces,) */
    uint8_t *type;    /* (n_pieces,) mms_sp_piece_type */
    int32_t byte_id[256]; /* BYTE piece of each byte value; -1 without byte fallback */
    int byte_fallback;
    int has_user_defined;
    int32_t unk_piece;    /* the UNKNOWN piece: what unknown text becomes */
    int32_t unk_id, bos_id, eos_id, pad_id; /* the processor's ids (mms_sp_info), -1 if absent */
    float min_score, max_score; /* over NORMAL pieces: FLT_MAX / FLT_MIN without any */
    sp_trie trie;
    int32_t *reserved;    /* (reserved_mask + 1,) hash set of CONTROL/UNKNOWN/BYTE ids, -1 empty */
    size_t reserved_mask;
    char *unk_surface;    /* what decoding <unk> gives */
    size_t unk_surface_len;
    char *normalizer_name;
    char *name;           /* the file (or the name given at creation), for messages */
    sp_normalizer norm;   /* applied to text before the model */
    sp_normalizer denorm; /* applied to decoded text when has_denorm */
    int has_denorm;
};

/* Id of piece s[0..n): reserved pieces first, then the trie; -1 if none (the library's
 * PieceToId gives unk instead). */
int32_t mms_sp_piece_lookup(const mms_sp_tokenizer *t, const char *s, size_t n);

/* sentencepiece's OneCharLen: the UTF-8 length a lead byte announces (1 for a stray
 * continuation byte), never past the end. */
static inline size_t sp_char_len(const uint8_t *s, size_t n) {
    static const uint8_t len_of_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t l = len_of_high_nibble[s[0] >> 4];
    return l < n ? l : n;
}

#endif /* MMS_SENTENCEPIECE_INTERNAL_H */
