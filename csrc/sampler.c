/* sampler.c -- next-token choice (sampler.h). Order and rules follow transformers' logits
 * processors: RepetitionPenalty, then (sampling only) Temperature, TopK, TopP, softmax and a
 * multinomial draw. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mms_rng_seed(mms_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(mms_rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double mms_rng_uniform(mms_rng *r) { return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

size_t mms_sample_work_bytes(int64_t V) { return (size_t)V * 2 * sizeof(float); }

typedef struct { float v; int64_t i; } vi;

static int cmp_vi_asc(const void *a, const void *b) {
    const vi *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable order for equal values */
}

/* k-th largest value of v (n), 1 <= k <= n; scratch tmp (n). Quickselect. */
static float kth_largest(const float *v, int64_t n, int64_t k, float *tmp) {
    memcpy(tmp, v, (size_t)n * sizeof(float));
    int64_t lo = 0, hi = n - 1, want = k - 1; /* index in descending order */
    while (lo < hi) {
        const float piv = tmp[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > piv) i++;
            while (tmp[j] < piv) j--;
            if (i <= j) { float t = tmp[i]; tmp[i] = tmp[j]; tmp[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    return tmp[want];
}

mms_status mms_sample(const float *logits, int64_t V, const mms_sampling_params *p, const int64_t *history,
                      int64_t n_hist, mms_rng *rng, void *work, int64_t *out, mms_error *err) {
    if (V <= 0) return mms_error_set(err, MMS_ERR_VALUE, "sample: empty logits");
    if (!(p->repetition_penalty > 0)) return mms_error_set(err, MMS_ERR_VALUE, "repetition_penalty must be > 0");
    if (p->do_sample && !(p->temperature > 0)) return mms_error_set(err, MMS_ERR_VALUE, "temperature must be > 0 when sampling");
    if (p->do_sample && !(p->top_p > 0 && p->top_p <= 1)) return mms_error_set(err, MMS_ERR_VALUE, "top_p must be in (0, 1]");
    if (p->top_k < 0) return mms_error_set(err, MMS_ERR_VALUE, "top_k must be >= 0");
    float *w = work, *tmp = w + V;
    memcpy(w, logits, (size_t)V * sizeof(float));
    if (p->repetition_penalty != 1.0f) {
        /* from the original logits, so an id repeated in history is penalized once */
        for (int64_t h = 0; h < n_hist; h++) {
            const int64_t id = history[h];
            if (id < 0 || id >= V) continue;
            const float s = logits[id];
            w[id] = s < 0 ? s * p->repetition_penalty : s / p->repetition_penalty;
        }
    }
    if (!p->do_sample) {
        int64_t best = -1;
        for (int64_t i = 0; i < V; i++)
            if (!isnan(w[i]) && (best < 0 || w[i] > w[best])) best = i;
        if (best < 0) return mms_error_set(err, MMS_ERR_VALUE, "sample: all logits are NaN");
        *out = best;
        return MMS_OK;
    }
    if (p->temperature != 1.0f)
        for (int64_t i = 0; i < V; i++) w[i] = w[i] / p->temperature;
    for (int64_t i = 0; i < V; i++)
        if (isnan(w[i])) w[i] = -INFINITY;
    if (p->top_k > 0 && p->top_k < V) {
        const float kth = kth_largest(w, V, p->top_k, tmp);
        for (int64_t i = 0; i < V; i++)
            if (w[i] < kth) w[i] = -INFINITY;
    }
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) mx = w[i] > mx ? w[i] : mx;
    if (mx == -INFINITY) return mms_error_set(err, MMS_ERR_VALUE, "sample: no finite logit to sample from");
    if (p->top_p < 1.0f) {
        /* HF TopP: sort ascending, softmax, cumulative sum; drop entries whose cumulative mass
         * is <= 1 - top_p, always keeping the most likely one */
        int64_t n = 0;
        for (int64_t i = 0; i < V; i++)
            if (w[i] > -INFINITY) n++;
        vi *s = malloc((size_t)n * sizeof(vi));
        if (!s) return mms_error_set(err, MMS_ERR_NOMEM, "sample: out of memory");
        n = 0;
        for (int64_t i = 0; i < V; i++)
            if (w[i] > -INFINITY) { s[n].v = w[i]; s[n].i = i; n++; }
        qsort(s, (size_t)n, sizeof(vi), cmp_vi_asc);
        float sum = 0.f, cum = 0.f;
        for (int64_t k = 0; k < n; k++) sum += expf(s[k].v - mx);
        for (int64_t k = 0; k < n - 1; k++) {
            cum += expf(s[k].v - mx) / sum;
            if (cum <= 1.0f - p->top_p) w[s[k].i] = -INFINITY;
        }
        free(s);
    }
    double total = 0;
    for (int64_t i = 0; i < V; i++) {
        tmp[i] = w[i] > -INFINITY ? expf(w[i] - mx) : 0.f;
        total += tmp[i];
    }
    double u = mms_rng_uniform(rng) * total, c = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < V; i++) {
        if (tmp[i] <= 0.f) continue;
        last = i;
        c += tmp[i];
        if (u < c) { *out = i; return MMS_OK; }
    }
    *out = last; /* rounding at the top end */
    return MMS_OK;
}
