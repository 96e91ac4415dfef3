/* sampler.h -- choosing the next token from logits, as transformers' generate() does:
 * repetition penalty, then temperature, top-k and top-p warping, then greedy argmax or a
 * draw from a seeded generator. Deterministic: the same seed and logits give the same ids on
 * every machine (the generator is ours, not libc's). */
#ifndef MMS_SAMPLER_H
#define MMS_SAMPLER_H

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mms_sampling_params {
    int do_sample;            /* 0: greedy (argmax after the repetition penalty)           */
    float temperature;        /* > 0; 1 = unchanged                                         */
    int64_t top_k;            /* 0 = off                                                    */
    float top_p;              /* 1 = off; keeps the smallest set with mass >= top_p          */
    float repetition_penalty; /* 1 = off; HF rule: score < 0 ? score * p : score / p          */
} mms_sampling_params;

static inline mms_sampling_params mms_sampling_default_params(void) {
    mms_sampling_params p = {0, 1.0f, 0, 1.0f, 1.0f};
    return p;
}

/* xoshiro256** state; seeded with splitmix64 so every seed gives a usable state. */
typedef struct mms_rng { uint64_t s[4]; } mms_rng;
void mms_rng_seed(mms_rng *r, uint64_t seed);
double mms_rng_uniform(mms_rng *r); /* [0, 1) with 53 random bits */

/* Pick the next token from logits (V) F32 (left unchanged). history (n_hist) holds the ids
 * the repetition penalty applies to (prompt + generated, as HF); work: scratch of 2*V floats
 * (mms_sample_work_bytes). Errors: bad parameters, non-finite logits everywhere. */
size_t mms_sample_work_bytes(int64_t V);
mms_status mms_sample(const float *logits, int64_t V, const mms_sampling_params *p, const int64_t *history,
                      int64_t n_hist, mms_rng *rng, void *work, int64_t *out, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
