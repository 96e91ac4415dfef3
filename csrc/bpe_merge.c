/* bpe_merge.c -- the BPE merge loop shared by every byte-level BPE tokenizer
 * (tokenizer_bpe_internal.h): symbols are token ids from the start, so a merge is a lookup
 * (left id, right id) -> (rank, result id) in an integer hash map and no strings are built. */
#include "tokenizer_bpe_internal.h"

void mms_bpe_work_free(bpe_work *w) {
    mms_free(w->id);
    mms_free(w->next);
    mms_free(w->prev);
    mms_free(w->merged);
    mms_free(w->heap);
    memset(w, 0, sizeof *w);
}

int mms_bpe_work_reserve(bpe_work *w, size_t n) {
    if (n <= w->cap) return 0;
    size_t cap = n < 64 ? 64 : n + n / 2;
    mms_bpe_work_free(w);
    w->id = mms_malloc(cap * sizeof *w->id);
    w->next = mms_malloc(cap * sizeof *w->next);
    w->prev = mms_malloc(cap * sizeof *w->prev);
    w->merged = mms_malloc(cap * sizeof *w->merged);
    w->heap = mms_malloc(3 * cap * sizeof *w->heap);
    if (!w->id || !w->next || !w->prev || !w->merged || !w->heap) {
        mms_bpe_work_free(w);
        return -1;
    }
    w->cap = cap;
    return 0;
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

/* Queue the pair (i, next of i) if it has a merge. The heap holds at most one entry per
 * pair formed, and each merge forms at most two: 3 * n bounds it. */
static inline void push_pair(const merge_map *mm, bpe_work *w, size_t *hn, int32_t i) {
    const merge_slot *m = merge_find(mm, w->id[i], w->id[w->next[i]]);
    if (m) heap_push(w->heap, hn, (uint64_t)(uint32_t)m->rank << 32 | (uint32_t)i);
}

/* The hot loop. Entries go stale when a symbol is merged away or its neighbour changes; a
 * popped entry is re-checked against the current pair. BPE_MERGE_PASS takes every entry of
 * the lowest rank before queueing the pairs the pass formed, so the result is the
 * reference's even for merges listed out of order; BPE_MERGE_ONE queues them at once and,
 * as HF tokenizers does, accepts an entry whose current pair gives the same result id. */
size_t mms_bpe_merge(const merge_map *mm, bpe_work *w, size_t n, bpe_merge_mode mode) {
    for (size_t i = 0; i < n; i++) {
        w->next[i] = (int32_t)i + 1;
        w->prev[i] = (int32_t)i - 1;
    }
    w->next[n - 1] = -1;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(mm, w, &hn, (int32_t)i);
    while (hn) {
        uint32_t rank = (uint32_t)(w->heap[0] >> 32);
        size_t n_merged = 0;
        while (hn && (uint32_t)(w->heap[0] >> 32) == rank) {
            int32_t i = (int32_t)(uint32_t)heap_pop(w->heap, &hn);
            int32_t j = w->next[i];
            if (w->id[i] < 0 || j < 0) continue; /* stale: merged away */
            const merge_slot *m = merge_find(mm, w->id[i], w->id[j]);
            if (!m) continue;
            if (mode == BPE_MERGE_PASS ? (uint32_t)m->rank != rank : m->result != mm->result_of[rank]) continue;
            w->id[i] = m->result;
            w->id[j] = -1;
            w->next[i] = w->next[j];
            if (w->next[j] >= 0) w->prev[w->next[j]] = i;
            if (mode == BPE_MERGE_ONE) {
                if (w->prev[i] >= 0) push_pair(mm, w, &hn, w->prev[i]);
                if (w->next[i] >= 0) push_pair(mm, w, &hn, i);
                break; /* a new pair may have a lower rank: look at the heap top again */
            }
            w->merged[n_merged++] = i;
        }
        for (size_t k = 0; k < n_merged; k++) {
            int32_t i = w->merged[k];
            if (w->prev[i] >= 0) push_pair(mm, w, &hn, w->prev[i]);
            if (w->next[i] >= 0) push_pair(mm, w, &hn, i);
        }
    }
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = w->next[i]) w->id[count++] = w->id[i];
    return count;
}
