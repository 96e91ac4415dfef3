/* attention_impl.h -- fused multi-head attention kernel, written once with GCC vector
 * extensions and instantiated per ISA by cpu/attention.c (AVX-512: 16 lanes, AVX2: 8 lanes,
 * generic: 4 lanes of baseline SSE2). Included with VW (lanes) and SUFFIX defined.
 *
 * HOT: per (batch, head) task, K is transposed once into kt (head_dim, n_kv padded), so the
 * scores of one query over VW keys are head_dim broadcast-FMAs with no horizontal sums; the
 * softmax is vectorized (polynomial exp); the output accumulates p_j * v_j rows. */

typedef float CAT(vf, SUFFIX) __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t CAT(vi, SUFFIX) __attribute__((vector_size(VW * 4), aligned(4)));
#define VF CAT(vf, SUFFIX)
#define VI CAT(vi, SUFFIX)

static inline VF CAT(vbcast, SUFFIX)(float x) { return (VF){0} + x; }
/* lanes of m all-ones pick a, zero lanes pick b (C has no vector ?:) */
static inline VF CAT(vsel, SUFFIX)(VI m, VF a, VF b) { return (VF)(((VI)a & m) | ((VI)b & ~m)); }

/* e^x for x <= 0 (inputs are max-subtracted scores); rel. error ~2e-7. */
static inline VF CAT(vexp, SUFFIX)(VF x) {
    const VF lo = CAT(vbcast, SUFFIX)(-87.0f);
    x = CAT(vsel, SUFFIX)(x < lo, lo, x);
    VF t = x * 1.44269504088896341f;
    VF rn = t + CAT(vsel, SUFFIX)(t >= 0, CAT(vbcast, SUFFIX)(0.5f), CAT(vbcast, SUFFIX)(-0.5f));
    VI n = __builtin_convertvector(rn, VI);  /* round to nearest (trunc of +-0.5) */
    VF fn = __builtin_convertvector(n, VF);
    VF r = x - fn * 0.693359375f - fn * -2.12194440e-4f;
    VF p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    VI bits = (n + 127) << 23;
    return p * (VF)bits;
}

static inline float CAT(vhmax, SUFFIX)(VF v) {
    float m = v[0];
    for (int i = 1; i < VW; i++) m = v[i] > m ? v[i] : m;
    return m;
}
static inline float CAT(vhsum, SUFFIX)(VF v) {
    float s = 0;
    for (int i = 0; i < VW; i++) s += v[i];
    return s;
}

static inline VF CAT(vload, SUFFIX)(const float *p) { VF v; memcpy(&v, p, sizeof v); return v; }
static inline void CAT(vstore, SUFFIX)(float *p, VF v) { memcpy(p, &v, sizeof v); }

/* One (batch b, head h) pair, queries [q0, q1). kt: scratch (head_dim, nkp), s: (nkp),
 * acc: (head_dim padded). */
static void CAT(attn_task, SUFFIX)(const mms_attn_args *a, int64_t b, int64_t h, int64_t q0, int64_t q1,
                                   float *kt, float *s, float *acc) {
    const int64_t hd = a->head_dim, nk = a->n_kv;
    const int64_t nkp = (nk + VW - 1) / VW * VW;
    const int64_t kvh = a->n_kv_heads ? h / (a->n_heads / a->n_kv_heads) : h; /* GQA: shared kv head */
    const float *kb = a->k + b * a->kv_batch + kvh * hd;
    const float *vb = a->v + b * a->kv_batch + kvh * hd;
    const int64_t *mask = a->key_mask ? a->key_mask + b * nk : NULL;
    const int64_t causal_off = nk - a->n_q;
    /* transpose K: kt[d][j] = k[j][d]; pad columns with 0 */
    for (int64_t j = 0; j < nk; j++) {
        const float *kr = kb + j * a->kv_row;
        for (int64_t d = 0; d < hd; d++) kt[d * nkp + j] = kr[d];
    }
    for (int64_t d = 0; d < hd; d++)
        for (int64_t j = nk; j < nkp; j++) kt[d * nkp + j] = 0.f;
    const int64_t hdp = (hd + VW - 1) / VW * VW;
    for (int64_t i = q0; i < q1; i++) {
        const float *qi = a->q + b * a->q_batch + i * a->q_row + h * hd;
        int64_t kend = a->causal ? i + causal_off + 1 : nk; /* keys [0, kend) */
        if (kend > nk) kend = nk;
        if (kend < 0) kend = 0;
        const int64_t kendp = (kend + VW - 1) / VW * VW;
        /* scores, four key vectors at a time so each q[d] broadcast feeds four FMAs */
        int64_t j = 0;
        for (; j + 4 * VW <= kendp; j += 4 * VW) {
            VF s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            for (int64_t d = 0; d < hd; d++) {
                const VF qd = CAT(vbcast, SUFFIX)(qi[d]);
                const float *kr = kt + d * nkp + j;
                s0 += qd * CAT(vload, SUFFIX)(kr);
                s1 += qd * CAT(vload, SUFFIX)(kr + VW);
                s2 += qd * CAT(vload, SUFFIX)(kr + 2 * VW);
                s3 += qd * CAT(vload, SUFFIX)(kr + 3 * VW);
            }
            CAT(vstore, SUFFIX)(s + j, s0 * a->scale);
            CAT(vstore, SUFFIX)(s + j + VW, s1 * a->scale);
            CAT(vstore, SUFFIX)(s + j + 2 * VW, s2 * a->scale);
            CAT(vstore, SUFFIX)(s + j + 3 * VW, s3 * a->scale);
        }
        for (; j < kendp; j += VW) {
            VF accs = {0};
            for (int64_t d = 0; d < hd; d++) accs += CAT(vbcast, SUFFIX)(qi[d]) * CAT(vload, SUFFIX)(kt + d * nkp + j);
            CAT(vstore, SUFFIX)(s + j, accs * a->scale);
        }
        if (a->rel_bias) { /* T5: + bias[h][R + clamp(j - p)] */
            const int64_t R = a->rel_max, p = i + causal_off;
            const float *rb = a->rel_bias + h * (2 * R + 1) + R;
            for (int64_t jj = 0; jj < kend; jj++) {
                int64_t d = jj - p;
                d = d < -R ? -R : (d > R ? R : d);
                s[jj] += rb[d];
            }
        }
        /* mask: -inf for masked / out-of-range keys (and keys before a sliding window) */
        for (int64_t jj = kend; jj < kendp; jj++) s[jj] = -INFINITY;
        if (a->window > 0)
            for (int64_t jj = 0; jj < kend && jj <= i + causal_off - a->window; jj++) s[jj] = -INFINITY;
        if (mask)
            for (int64_t jj = 0; jj < kend; jj++)
                if (!mask[jj]) s[jj] = -INFINITY;
        VF vmax = CAT(vbcast, SUFFIX)(-INFINITY);
        for (int64_t jj = 0; jj < kendp; jj += VW) {
            VF sv = CAT(vload, SUFFIX)(s + jj);
            vmax = CAT(vsel, SUFFIX)(sv > vmax, sv, vmax);
        }
        const float mx = CAT(vhmax, SUFFIX)(vmax);
        char *out_row = (char *)a->out + ((b * a->n_q + i) * a->n_heads * hd + h * hd) * (int64_t)mms_dtype_size(a->out_dtype);
        if (mx == -INFINITY) { /* no key visible (fully padded row): defined as zeros */
            for (int64_t d = 0; d < hd; d++) {
                if (a->out_dtype == MMS_DTYPE_F32) ((float *)out_row)[d] = 0.f;
                else ((uint16_t *)out_row)[d] = 0;
            }
            continue;
        }
        VF vsum = {0};
        const VF vmx = CAT(vbcast, SUFFIX)(mx);
        for (int64_t jj = 0; jj < kendp; jj += VW) {
            VF sv = CAT(vload, SUFFIX)(s + jj);
            VF e = CAT(vexp, SUFFIX)(sv - vmx);
            e = CAT(vsel, SUFFIX)(sv == -INFINITY, (VF){0}, e); /* masked lanes exactly 0 */
            CAT(vstore, SUFFIX)(s + jj, e);
            vsum += e;
        }
        const float inv = 1.0f / CAT(vhsum, SUFFIX)(vsum);
        /* out = sum_j p_j v_j: one output vector in a register per pass over the keys */
        if (hd % VW == 0) {
            for (int64_t d = 0; d < hd; d += VW) {
                VF av = {0};
                const float *vd = vb + d;
                for (int64_t jj = 0; jj < kend; jj++)
                    av += CAT(vbcast, SUFFIX)(s[jj]) * CAT(vload, SUFFIX)(vd + jj * a->kv_row);
                CAT(vstore, SUFFIX)(acc + d, av);
            }
        } else {
            for (int64_t d = 0; d < hdp; d++) acc[d] = 0.f;
            for (int64_t jj = 0; jj < kend; jj++) {
                const float p = s[jj];
                const float *vr = vb + jj * a->kv_row;
                for (int64_t d = 0; d < hd; d++) acc[d] += p * vr[d];
            }
        }
        if (a->out_dtype == MMS_DTYPE_F32) {
            for (int64_t d = 0; d < hd; d++) ((float *)out_row)[d] = acc[d] * inv;
        } else {
            for (int64_t d = 0; d < hd; d++) ((uint16_t *)out_row)[d] = mms_f32_to_bf16(acc[d] * inv);
        }
    }
}

/* ws: nthreads * attention_scratch() floats, allocated by the caller (so a failed allocation
 * is reported before any thread starts, and no thread skips the worksharing loop). */
static void CAT(attention, SUFFIX)(const mms_attn_args *a, int nthreads, float *ws) {
    const int64_t pairs = a->batch * a->n_heads;
    /* split queries too when there are fewer (batch, head) pairs than 2 tasks per thread */
    int64_t qsplit = 1;
    while (pairs * qsplit < 2 * nthreads && a->n_q / (qsplit * 2) >= 16) qsplit *= 2;
    const int64_t ntask = pairs * qsplit;
    const int64_t nkp = (a->n_kv + VW - 1) / VW * VW;
    /* the caller sizes each thread's slice for 16 lanes, >= this variant's need */
    const int64_t nkp16 = (a->n_kv + 15) / 16 * 16, hdp16 = (a->head_dim + 15) / 16 * 16;
    const size_t per_thread = (size_t)(a->head_dim * nkp16 + nkp16 + hdp16);
    #pragma omp parallel num_threads(nthreads)
    {
        float *kt = ws + (size_t)omp_get_thread_num() * per_thread;
        float *s = kt + a->head_dim * nkp, *acc = s + nkp;
        #pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntask; t++) {
            int64_t pair = t / qsplit, part = t % qsplit;
            int64_t chunk = (a->n_q + qsplit - 1) / qsplit;
            int64_t q0 = part * chunk, q1 = q0 + chunk < a->n_q ? q0 + chunk : a->n_q;
            if (q0 < q1) CAT(attn_task, SUFFIX)(a, pair / a->n_heads, pair % a->n_heads, q0, q1, kt, s, acc);
        }
    }
}

#undef VF
#undef VI
