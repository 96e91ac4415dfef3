/* gemv.c -- the CPU linear op for decode-sized inputs: y (M, N) = act(x (M, K) W^T + b) [+ res]
 * with M <= MMS_GEMV_MAX_M rows of x (one token per sequence of a small batch).
 *
 * At these sizes the op is bound by reading W (N, K) once from memory, so the kernels are built
 * to keep the memory busy (cpu/membw.c measures the roofline; benchmarks/bench_gemv.py):
 *   - N is split into one contiguous slab of rows per thread, on 16-row boundaries;
 *   - R rows of W are dotted with all M rows of x at once (R x M accumulators in registers), so
 *     R streams are in flight and each x vector serves R rows;
 *   - the same lines of the next R rows are prefetched into L2 while a block is read, because the
 *     hardware streamer stops at every 4 KiB page (a bf16 row of K = 2048 is exactly one page);
 *   - for M > 1, K is cut into panels so that the x panel stays in L1 (M = 8, K = 5632: 20.7 ->
 *     22 GB/s f32); a group of 64 rows is swept per panel, partial sums kept per row.
 * bf16 weights: x is rounded to bf16 once per call and the products accumulate in fp32 -- the
 * semantics of oneDNN's bf16 matmul, so prefill (oneDNN) and decode (here) agree, and the same on
 * every ISA. With AMX (Sapphire Rapids+) and M >= 2 the dots run on bf16 tiles; otherwise W is
 * widened to fp32 and FMA'd (see the bf16 note above mms_cpu_gemv for the measurements).
 * ISA variants: AMX / AVX-512 / AVX2+FMA / portable C, picked per call (mms_cpu_isa_get). */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"

/* What every row-range kernel reads. Shapes in elements; all buffers contiguous. */
typedef struct gemv_args {
    int64_t M, K, N;
    const void *w;      /* (N, K) F32 or BF16, checkpoint layout (out, in)                     */
    const float *x;     /* (M, K) F32; for bf16 W holding bf16-rounded values                   */
    const uint16_t *xv; /* AMX only: x as bf16 in k pairs, (K/32*16, M, 2)                      */
    const float *bias;  /* (N) or NULL                                                         */
    const float *res;   /* (M, N) or NULL, added after the activation                           */
    void *y;            /* (M, N) F32 or BF16                                                  */
    mms_act act;
    int ybf;
} gemv_args;

#define INLINE static inline __attribute__((always_inline))

/* Epilogue of `rows` rows from n: dots (rows, 8): dots[r*8 + m] = x[m] . W[n + r]. */
static void store_rows(const gemv_args *a, int64_t n, int rows, const float *dots) {
    for (int r = 0; r < rows; r++) {
        const float b = a->bias ? a->bias[n + r] : 0.f;
        for (int64_t m = 0; m < a->M; m++) {
            float v = mms_act_apply(dots[r * 8 + m] + b, a->act);
            if (a->res) v += a->res[m * a->N + n + r];
            if (a->ybf) ((uint16_t *)a->y)[m * a->N + n + r] = mms_f32_to_bf16(v);
            else ((float *)a->y)[m * a->N + n + r] = v;
        }
    }
}

/* ---- row-range driver, shared by the AVX-512, AVX2 and portable kernels ------------------- */

#define GEMV_X_PANEL_BYTES 24576 /* x panel (M rows) kept in L1 next to the streaming W lines */
#define GEMV_GROUP 64            /* rows of W swept per x panel                               */

/* Panel width for M rows: K split evenly into panels of <= GEMV_X_PANEL_BYTES of x, rounded up
 * to 64 elements (whole lines of W). Depends on M and K only, never on the thread split, so
 * results are the same for any thread count. M = 1 has one panel up to K = 6144. */
static inline int64_t panel_k(int64_t K, int M) {
    const int64_t kmax = GEMV_X_PANEL_BYTES / (4 * M) / 64 * 64;
    const int64_t np = (K + kmax - 1) / kmax;
    return np <= 1 ? K : ((K + np - 1) / np + 63) / 64 * 64;
}

/* part (R, 8) = dots (R, 8) for the first K panel, += for the next ones */
static inline void add_part(float *part, const float *dots, int R, int M, int first) {
    for (int r = 0; r < R; r++)
        for (int m = 0; m < M; m++) part[r * 8 + m] = first ? dots[r * 8 + m] : part[r * 8 + m] + dots[r * 8 + m];
}

/* NAME(a, n0, n1): one thread's rows [n0, n1). Groups of GEMV_GROUP rows; per group and K
 * panel, blocks of R = RFN(M) rows, then single rows; then the group's epilogue.
 * DOT(w, ld, x, kn, M, R, dots) dots kn columns of R rows of W (row stride ld) with M rows of x
 * (same stride). Each M gets its own instance (the switch), so M and R are compile-time
 * constants: the loops over rows unroll fully and the accumulators live in registers. */
#define DEFINE_ROWS(NAME, ATTR, DOT, WT, RFN)                                                     \
    ATTR INLINE void NAME##_m(const gemv_args *a, int64_t n0, int64_t n1, int M) {                \
        const int R = RFN(M);                                                                     \
        const int64_t K = a->K, kc = panel_k(K, M);                                               \
        const WT *w = a->w;                                                                       \
        float dots[8 * 8], part[GEMV_GROUP * 8];                                                  \
        for (int64_t g0 = n0; g0 < n1; g0 += GEMV_GROUP) {                                        \
            const int64_t g1 = g0 + GEMV_GROUP < n1 ? g0 + GEMV_GROUP : n1;                       \
            for (int64_t k0 = 0; k0 < K; k0 += kc) {                                              \
                const int64_t kn = K - k0 < kc ? K - k0 : kc;                                     \
                int64_t n = g0;                                                                   \
                for (; n + R <= g1; n += R) {                                                     \
                    DOT(w + n * K + k0, K, a->x + k0, kn, M, R, dots);                            \
                    add_part(part + (n - g0) * 8, dots, R, M, k0 == 0);                           \
                }                                                                                 \
                for (; n < g1; n++) {                                                             \
                    DOT(w + n * K + k0, K, a->x + k0, kn, M, 1, dots);                            \
                    add_part(part + (n - g0) * 8, dots, 1, M, k0 == 0);                           \
                }                                                                                 \
            }                                                                                     \
            store_rows(a, g0, (int)(g1 - g0), part);                                              \
        }                                                                                         \
    }                                                                                             \
    ATTR static void NAME(const gemv_args *a, int64_t n0, int64_t n1) {                           \
        switch (a->M) {                                                                           \
        case 1: NAME##_m(a, n0, n1, 1); break;                                                    \
        case 2: NAME##_m(a, n0, n1, 2); break;                                                    \
        case 3: NAME##_m(a, n0, n1, 3); break;                                                    \
        case 4: NAME##_m(a, n0, n1, 4); break;                                                    \
        case 5: NAME##_m(a, n0, n1, 5); break;                                                    \
        case 6: NAME##_m(a, n0, n1, 6); break;                                                    \
        case 7: NAME##_m(a, n0, n1, 7); break;                                                    \
        default: NAME##_m(a, n0, n1, 8); break;                                                   \
        }                                                                                         \
    }

/* ---- AVX-512 (32 zmm) --------------------------------------------------------------------- */
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* R x M accumulators + R weight vectors (2R for bf16) + x must fit 32 registers. M = 1 takes 8
 * rows: more streams in flight (M = 1 bf16 lm_head 26.5 -> 27.4 GB/s). */
static inline int rows_512(int M) { return M == 1 ? 8 : M <= 4 ? 4 : 2; }

/* HOT: dots[r*8+m] = W[r, :kn] . x[m, :kn], f32 W. One line of each of the R rows per step; the
 * same line R rows ahead (the next block) is prefetched into L2. */
T512 INLINE void dot_f32_512(const float *w, int64_t ld, const float *x, int64_t kn, int M, int R, float *dots) {
    __m512 acc[8][8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= kn; k += 16) {
        __m512 wv[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            _mm_prefetch((const char *)(w + (R + r) * ld + k), _MM_HINT_T1);
            wv[r] = _mm512_loadu_ps(w + r * ld + k);
        }
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            const __m512 xv = _mm512_loadu_ps(x + m * ld + k);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
        }
    }
    if (k < kn) { /* kn % 16 tail: masked loads read zeros past the end */
        const __mmask16 mk = (__mmask16)((1u << (kn - k)) - 1);
        __m512 wv[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_ps(mk, w + r * ld + k);
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            const __m512 xv = _mm512_maskz_loadu_ps(mk, x + m * ld + k);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) dots[r * 8 + m] = _mm512_reduce_add_ps(acc[r][m]);
}

/* 16 bf16 weights as fp32 (a bf16 is the top half of an fp32): zero-extend, shift. */
T512 INLINE __m512 widen16_512(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* HOT: the same for bf16 W: each line (32 weights) widened to two fp32 vectors. FMA rather than
 * vdpbf16ps: on Sapphire Rapids vdpbf16ps zmm issues once per ~2.2 cycles against ~0.55 for an
 * FMA, so two FMAs per 32 weights beat one vdpbf16ps for every M (measured, 1 core). */
T512 INLINE void dot_bf16_512(const uint16_t *w, int64_t ld, const float *x, int64_t kn, int M, int R, float *dots) {
    __m512 acc[8][8];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) acc[r][m] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= kn; k += 32) {
        __m512 w0[8], w1[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            _mm_prefetch((const char *)(w + (R + r) * ld + k), _MM_HINT_T1);
            w0[r] = widen16_512(_mm256_loadu_si256((const __m256i *)(w + r * ld + k)));
            w1[r] = widen16_512(_mm256_loadu_si256((const __m256i *)(w + r * ld + k + 16)));
        }
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            const __m512 x0 = _mm512_loadu_ps(x + m * ld + k), x1 = _mm512_loadu_ps(x + m * ld + k + 16);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) {
                acc[r][m] = _mm512_fmadd_ps(w0[r], x0, acc[r][m]);
                acc[r][m] = _mm512_fmadd_ps(w1[r], x1, acc[r][m]);
            }
        }
    }
    for (; k < kn; k += 16) { /* kn % 32 tail, 16 at a time, masked */
        const __mmask16 mk = kn - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (kn - k)) - 1);
        __m512 wv[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = widen16_512(_mm256_maskz_loadu_epi16(mk, w + r * ld + k));
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) {
            const __m512 xv = _mm512_maskz_loadu_ps(mk, x + m * ld + k);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][m] = _mm512_fmadd_ps(wv[r], xv, acc[r][m]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int m = 0; m < M; m++) dots[r * 8 + m] = _mm512_reduce_add_ps(acc[r][m]);
}

DEFINE_ROWS(rows_f32_512, T512, dot_f32_512, float, rows_512)
DEFINE_ROWS(rows_bf16_512, T512, dot_bf16_512, uint16_t, rows_512)

/* ---- AVX2 + FMA (16 ymm: R x M <= 8 accumulators) ----------------------------------------- */
#define T256 __attribute__((target("avx2,fma")))

static inline int rows_256(int M) { return M <= 2 ? 4 : M <= 4 ? 2 : 1; }

T256 INLINE float hsum_256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* 8 weights as fp32: f32 loads, or bf16 zero-extended and shifted into the top half */
T256 INLINE __m256 load8_f32(const float *p) { return _mm256_loadu_ps(p); }
T256 INLINE __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
static inline float load1_f32(const float *p) { return *p; }
static inline float load1_bf16(const uint16_t *p) { return mms_bf16_to_f32(*p); }

/* HOT: dots[r*8+m] = W[r, :kn] . x[m, :kn], 8 weights per row per step (a prefetch per line of
 * the next block, as above); the kn % 8 tail is scalar. */
#define DEFINE_DOT_256(NAME, WT, LOAD8, LOAD1)                                                    \
    T256 INLINE void NAME(const WT *w, int64_t ld, const float *x, int64_t kn, int M, int R, float *dots) { \
        __m256 acc[4][8];                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
            _Pragma("GCC unroll 8") for (int m = 0; m < M; m++) acc[r][m] = _mm256_setzero_ps();  \
        int64_t k = 0;                                                                            \
        for (; k + 8 <= kn; k += 8) {                                                             \
            __m256 wv[4];                                                                         \
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {                                 \
                if ((k * (int64_t)sizeof(WT)) % 64 == 0)                                          \
                    _mm_prefetch((const char *)(w + (R + r) * ld + k), _MM_HINT_T1);              \
                wv[r] = LOAD8(w + r * ld + k);                                                    \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (int m = 0; m < M; m++) {                                 \
                const __m256 xv = _mm256_loadu_ps(x + m * ld + k);                                \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                               \
                    acc[r][m] = _mm256_fmadd_ps(wv[r], xv, acc[r][m]);                            \
            }                                                                                     \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                       \
            _Pragma("GCC unroll 8") for (int m = 0; m < M; m++) {                                 \
                float s = hsum_256(acc[r][m]);                                                    \
                for (int64_t j = k; j < kn; j++) s += LOAD1(w + r * ld + j) * x[m * ld + j];      \
                dots[r * 8 + m] = s;                                                              \
            }                                                                                     \
    }

DEFINE_DOT_256(dot_f32_256, float, load8_f32, load1_f32)
DEFINE_DOT_256(dot_bf16_256, uint16_t, load8_bf16, load1_bf16)
DEFINE_ROWS(rows_f32_256, T256, dot_f32_256, float, rows_256)
DEFINE_ROWS(rows_bf16_256, T256, dot_bf16_256, uint16_t, rows_256)

/* ---- portable C (baseline x86-64: SSE2) --------------------------------------------------- */

/* One row against M rows of x; 8 partial sums per dot so the compiler can use vectors without
 * reassociating (-ffp-contract alone does not allow it). */
#define DEFINE_DOT_GENERIC(NAME, WT, LOAD1)                                                       \
    static void NAME(const WT *w, int64_t ld, const float *x, int64_t kn, int M, int R, float *dots) { \
        (void)R; /* always 1 */                                                                   \
        for (int m = 0; m < M; m++) {                                                             \
            const float *xm = x + m * ld;                                                         \
            float s[8] = {0};                                                                     \
            int64_t k = 0;                                                                        \
            for (; k + 8 <= kn; k += 8)                                                           \
                for (int j = 0; j < 8; j++) s[j] += LOAD1(w + k + j) * xm[k + j];                 \
            for (; k < kn; k++) s[0] += LOAD1(w + k) * xm[k];                                     \
            dots[m] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));         \
        }                                                                                         \
    }
DEFINE_DOT_GENERIC(dot_f32_generic, float, load1_f32)
DEFINE_DOT_GENERIC(dot_bf16_generic, uint16_t, load1_bf16)
static inline int rows_generic(int M) { (void)M; return 1; }
#define TNONE
DEFINE_ROWS(rows_f32_generic, TNONE, dot_f32_generic, float, rows_generic)
DEFINE_ROWS(rows_bf16_generic, TNONE, dot_bf16_generic, uint16_t, rows_generic)

/* ---- AMX bf16 tiles (Sapphire Rapids and later) ------------------------------------------- */
#define TAMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,fma")))

/* The 64-byte tile configuration, palette 1. */
typedef struct amx_cfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16]; /* bytes per row of each tile */
    uint8_t rows[16];
} amx_cfg;

/* HOT: one thread's rows [n0, n1) on tiles: C (16 rows of W, M) += A (16 rows, 32 k of W, loaded
 * in place with row stride K) . B (16 k pairs, M pairs: a->xv), fp32 accumulation over all of K.
 * Two k steps per iteration go to separate A/B tiles, so the second pair of loads need not wait
 * for the first product (tiles are not renamed). The hardware streamer feeds the 16 row streams
 * well; software prefetch (next block, or ahead in the rows) measured slower. K % 32 columns and
 * the last < 16 rows use the same bf16-rounded x in fp32 (a->x), so every output is the same
 * exact products summed in fp32. */
TAMX static void rows_bf16_amx(const gemv_args *a, int64_t n0, int64_t n1) {
    const int64_t M = a->M, K = a->K, K32 = K / 32 * 32;
    const uint16_t *w = a->w;
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 5; t++) { /* 0: C; 1, 2: A; 3, 4: B */
        cfg.rows[t] = 16;
        cfg.colsb[t] = (uint16_t)(t == 1 || t == 2 ? 64 : M * 4);
    }
    _tile_loadconfig(&cfg);
    _Alignas(64) float c[16][16]; /* (rows, M) of C, row stride 64 bytes */
    float part[16 * 8];
    int64_t n = n0;
    for (; n + 16 <= n1; n += 16) {
        const uint16_t *wn = w + n * K;
        _tile_zero(0);
        int64_t k = 0;
        for (; k + 64 <= K32; k += 64) {
            _tile_loadd(1, wn + k, K * 2);
            _tile_loadd(2, wn + k + 32, K * 2);
            _tile_loadd(3, a->xv + k * M, M * 4);
            _tile_loadd(4, a->xv + (k + 32) * M, M * 4);
            _tile_dpbf16ps(0, 1, 3);
            _tile_dpbf16ps(0, 2, 4);
        }
        if (k < K32) {
            _tile_loadd(1, wn + k, K * 2);
            _tile_loadd(3, a->xv + k * M, M * 4);
            _tile_dpbf16ps(0, 1, 3);
        }
        _tile_stored(0, c, 64);
        for (int r = 0; r < 16; r++)
            for (int64_t m = 0; m < M; m++) {
                float s = c[r][m];
                for (int64_t j = K32; j < K; j++) s += mms_bf16_to_f32(wn[r * K + j]) * a->x[m * K + j];
                part[r * 8 + m] = s;
            }
        store_rows(a, n, 16, part);
    }
    _tile_release();
    if (n < n1) rows_bf16_512(a, n, n1);
}

/* ---- x preparation ------------------------------------------------------------------------ */
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* dst (n) = src (n) bf16 -> fp32 (exact) */
CLONES static void widen_bf16(const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = mms_bf16_to_f32(src[i]);
}

/* dst (n) = src (n) rounded to bf16 (nearest even), kept as fp32 */
CLONES static void round_bf16(const float *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = mms_bf16_to_f32(mms_f32_to_bf16(src[i]));
}

/* xv (K/32*16, M, 2) = xr (M, K) in k pairs (AMX's B tile): xr holds bf16 values, so a pair is
 * the top halves of two fp32. A transpose of (M, K/2) pairs; M = 1 is a plain copy. */
CLONES static void pack_pairs(const float *xr, uint16_t *xv, int64_t M, int64_t K) {
    const int64_t P = K / 32 * 16;
    const uint32_t *u = (const uint32_t *)xr;
    uint32_t *v = (uint32_t *)xv;
    for (int64_t m = 0; m < M; m++) {
        const uint32_t *um = u + m * K;
        for (int64_t p = 0; p < P; p++) v[p * M + m] = (um[2 * p] >> 16) | (um[2 * p + 1] & 0xffff0000u);
    }
}

/* ---- entry -------------------------------------------------------------------------------- */

typedef void (*rows_fn)(const gemv_args *, int64_t, int64_t);

/* Below this many weight bytes per thread a fork/join (~1 us) costs more than it saves. */
#define GEMV_MIN_BYTES_PER_THREAD ((int64_t)64 << 10)
/* x scratch up to this size lives on the stack (M = 1 up to K = 2730 with bf16 W + AMX). */
#define GEMV_STACK_BYTES 16384

/* bf16 note. 2 threads, Sapphire Rapids (2 cores), W from DRAM (1 GiB of rotating copies),
 * read bandwidth ~28 GB/s; GB/s of W streamed for M = 1 / 4 / 8 rows, K = N = 2048:
 *   widen + FMA (AVX-512)   25.3 / 20.1 / 15.3
 *   AMX tiles               25.7 / 23.2 / 21.9   (K = 2048, N = 32000, M = 4: 25.4 vs 22.2)
 *   oneDNN (AMX brgemm)     18.9 / 16.1 / 17.2
 * vdpbf16ps lost to widening for M >= 2 (instruction throughput, see dot_bf16_512). So AMX for
 * M >= 2 where the CPU has it; widening for M = 1 (a tie, and no tile state) and elsewhere.
 * Tiles need x in bf16; widening gives the same exact products with bf16-rounded x, and that
 * rounding is what oneDNN does, so every path rounds x: one result semantics on every CPU. */
mms_status mms_cpu_gemv(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                        mms_tensor *y, mms_error *err) {
    const int64_t K = mms_linear_in(L), N = mms_linear_out(L);
    const int64_t M = N > 0 ? mms_tensor_numel(y) / N : 0;
    if (M > MMS_GEMV_MAX_M)
        return mms_error_set(err, MMS_ERR_VALUE, "gemv: %lld rows of x, at most %d", (long long)M, MMS_GEMV_MAX_M);
    if (M == 0) return MMS_OK;
    const int wbf = L->w.dtype == MMS_DTYPE_BF16;
    const mms_cpu_isa isa = mms_cpu_isa_get();
    const int amx = wbf && M >= 2 && isa == MMS_ISA_AVX512 && mms_cpu_amx_usable();
    const rows_fn fn = amx                     ? rows_bf16_amx
                       : isa == MMS_ISA_AVX512 ? (wbf ? rows_bf16_512 : rows_f32_512)
                       : isa == MMS_ISA_AVX2   ? (wbf ? rows_bf16_256 : rows_f32_256)
                                               : (wbf ? rows_bf16_generic : rows_f32_generic);
    /* x as the kernels read it: fp32 (borrowed when it is), rounded to bf16 for bf16 W, plus the
     * k-pair copy for AMX. (M, K): L1/L2-resident while W streams. */
    _Alignas(64) unsigned char stack_buf[GEMV_STACK_BYTES];
    const size_t xbytes = (size_t)(M * K) * sizeof(float), vbytes = amx ? (size_t)(M * K) * 2 : 0;
    void *scratch = NULL;
    const float *xk = x->data;
    const uint16_t *xv = NULL;
    if (x->dtype != MMS_DTYPE_F32 || wbf) {
        scratch = xbytes + vbytes <= sizeof stack_buf ? (void *)stack_buf : mms_cpu_scratch_alloc(xbytes + vbytes);
        if (!scratch) return mms_error_set(err, MMS_ERR_NOMEM, "gemv: out of memory (%zu bytes)", xbytes + vbytes);
        float *xr = scratch;
        if (x->dtype == MMS_DTYPE_BF16) widen_bf16(x->data, xr, M * K); /* already bf16 values */
        else round_bf16(x->data, xr, M * K);
        if (amx) {
            pack_pairs(xr, (uint16_t *)((char *)scratch + xbytes), M, K);
            xv = (const uint16_t *)((char *)scratch + xbytes);
        }
        xk = xr;
    }
    const gemv_args a = {M, K, N, L->w.data, xk, xv, L->b.ndim ? (const float *)L->b.data : NULL,
                         residual ? (const float *)residual->data : NULL, y->data, act, y->dtype == MMS_DTYPE_BF16};
    const int64_t wbytes = N * K * (int64_t)mms_dtype_size(L->w.dtype);
    int64_t nt = mms_get_num_threads();
    if (nt > wbytes / GEMV_MIN_BYTES_PER_THREAD) nt = wbytes / GEMV_MIN_BYTES_PER_THREAD;
    if (nt > N / 16) nt = N / 16;
    if (nt <= 1) {
        fn(&a, 0, N);
    } else {
        #pragma omp parallel num_threads((int)nt)
        { /* contiguous slabs of W on 16-row boundaries (AMX blocks; threads never share a line of y) */
            const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
            const int64_t n0 = (N * t / T) & ~(int64_t)15, n1 = t == T - 1 ? N : (N * (t + 1) / T) & ~(int64_t)15;
            fn(&a, n0, n1);
        }
    }
    if (scratch != stack_buf) mms_cpu_scratch_free(scratch);
    return MMS_OK;
}
