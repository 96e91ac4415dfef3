/* text_util.h -- internal helpers shared by the two tokenizers (tokenizer_bpe.c and
 * sentencepiece*.c): reading a whole file, their string -> id hash tables, the byte-wise
 * UTF-8 repair sentencepiece decodes with (unicode.c), and the row and error rules of
 * their batch encoders. Not installed; not part of the C API. */
#ifndef MMS_TEXT_UTIL_H
#define MMS_TEXT_UTIL_H

#include <string.h>

#include "mms_common.h"

/* Read the file at path into a new mms_malloc'd buffer (*data, *len bytes); the caller
 * frees it with mms_free. Errors: MMS_ERR_NOT_FOUND (no
 * such file), MMS_ERR_IO, MMS_ERR_NOMEM, each message starting with the path. */
mms_status mms_read_whole_file(const char *path, char **data, size_t *len, mms_error *err);

/* FNV-1a of n bytes with a final mix, for string-keyed tables indexed by the low bits. */
static inline uint64_t mms_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* Smallest power of two >= n and >= 16: a table size, so a slot index is hash & (size - 1). */
static inline size_t mms_pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* String -> id tables: slots (mask + 1,) of ids, -1 marking an empty slot, probed linearly
 * from the string's hash; id's string is pool + off[id], len[id] bytes. Returns the slot
 * holding the id of s[0..n), or the empty slot where it would go. */
static inline int32_t *mms_str_slot(int32_t *slots, size_t mask, const char *pool, const int64_t *off,
                                    const int32_t *len, const char *s, size_t n) {
    for (size_t i = mms_hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = slots[i];
        if (id < 0 || ((size_t)len[id] == n && memcmp(pool + off[id], s, n) == 0)) return &slots[i];
    }
}

/* Copy src (n bytes) to dst with each well-formed UTF-8 character as it is and every other
 * byte as one U+FFFD (sentencepiece's rule; mms_utf8_sanitize replaces a maximal ill-formed
 * subpart as a whole instead). dst needs room for 3 * n bytes. Returns the bytes written. */
size_t mms_utf8_replace_bytes(const uint8_t *src, size_t n, uint8_t *dst);

/* ---- batch encoding: what both encode_batch functions share ----------------------------- */

/* Where a text's ids go: the first cap are stored, all are counted. stop_at_cap lets an
 * encoder end the text once the buffer is full (a truncated row that needs no total). */
typedef struct mms_id_sink {
    int64_t *ids; /* (cap,) */
    size_t cap, n;
    int stop_at_cap;
} mms_id_sink;

static inline void mms_sink_put(mms_id_sink *o, int64_t id) {
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* End a batch row (L,) whose text came to n ids with its specials, the first min(n, L)
 * already in row: with put_last, last_id goes after them or over the last kept one (the
 * end token survives truncation); the rest is pad_id. mask (L,), may be NULL: 1 on tokens. */
static inline void mms_batch_row_end(int64_t *row, int64_t *mask, int64_t L, int64_t n, int put_last,
                                     int64_t last_id, int64_t pad_id) {
    int64_t used = n < L ? n : L;
    if (put_last) row[used - 1] = last_id;
    for (int64_t j = used; j < L; j++) row[j] = pad_id;
    if (mask)
        for (int64_t j = 0; j < L; j++) mask[j] = j < used;
}

/* Record that text i failed with e when it is the first failure so far (*bad, initially n;
 * its error goes to *bad_err), so a parallel batch reports the same text as a serial one.
 * Safe to call from the threads of a parallel loop. */
void mms_batch_note_error(int64_t i, const mms_error *e, int64_t *bad, mms_error *bad_err);

/* Status of a finished batch of n texts: the first failing text's error prefixed with
 * "text <bad>" (bad < n), else with truncate off the first text whose untruncated length
 * totals[i] is over L (MMS_ERR_VALUE), else MMS_OK. */
mms_status mms_batch_status(int64_t n, int64_t bad, const mms_error *bad_err, int truncate,
                            const int64_t *totals, int64_t L, mms_error *err);

/* One text of a batch: encode text i into its row, with `work` the calling thread's scratch
 * (zeroed before its first row); *total = its untruncated token count. */
typedef mms_status (*mms_batch_row_fn)(const void *ctx, void *work, int64_t i, int64_t *total, mms_error *e);

/* The batch loop both encoders share: rows [0, n) over nthreads (0 = all; one thread for
 * fewer than 32 texts, where a team costs more than it saves), a work_size-byte scratch per
 * thread released with work_free, then mms_batch_status's rules (first failing text, or with
 * truncate off the first text over L). n_tokens (n,) receives each total when not NULL. */
mms_status mms_batch_run(int64_t n, int nthreads, size_t work_size, void (*work_free)(void *), mms_batch_row_fn row,
                         const void *ctx, int truncate, int64_t L, int64_t *n_tokens, mms_error *err);

#endif /* MMS_TEXT_UTIL_H */
