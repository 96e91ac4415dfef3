/* image_resize.c -- Pillow's Image.resize on RGB u8, bit for bit (as of Pillow 9.4, the
 * reference; Pillow releases after PR #9549 run the vertical pass first when the height
 * shrinks much more than the width, which rounds differently).
 * Same arithmetic as Pillow's ImagingResample: per-output filter weights computed in double
 * (support scaled by the downscale factor), normalized, rounded to 22-bit fixed point; a
 * horizontal pass into a u8 temporary (round half up via the 1 << 21 bias, clip), then a
 * vertical pass. Integer sums do not depend on their order, so the AVX2 / AVX-512 kernels
 * (and any window, band or thread split) give exactly the scalar result. */
#include "image.h"

#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MMS_HAVE_AVX2_KERNELS 1
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* 8 bits of result, 2 of headroom for negative lobes / sums above 1 (Pillow's choice). */
#define PRECISION_BITS (32 - 8 - 2)

/* ================================================================ filters =============== */
/* Written with Pillow's operation order: the weights must round identically. */

static double filter_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

static double filter_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_hamming(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x)); /* float constants, as in Pillow */
}

static double filter_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double filter_lanczos(double x) {
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
}

typedef struct filter_def {
    double (*fn)(double x);
    double support; /* half-width at scale 1 */
} filter_def;

static const filter_def *filter_for(mms_resample r) {
    static const filter_def box = {filter_box, 0.5}, bilinear = {filter_bilinear, 1.0},
                            hamming = {filter_hamming, 1.0}, bicubic = {filter_bicubic, 2.0},
                            lanczos = {filter_lanczos, 3.0};
    switch (r) {
    case MMS_RESAMPLE_BOX: return &box;
    case MMS_RESAMPLE_BILINEAR: return &bilinear;
    case MMS_RESAMPLE_HAMMING: return &hamming;
    case MMS_RESAMPLE_BICUBIC: return &bicubic;
    case MMS_RESAMPLE_LANCZOS: return &lanczos;
    default: return NULL;
    }
}

/* ================================================================ coefficients ========== */

/* Fixed-point weights of outputs [first, first + n) of one axis (in_size -> out_size). */
typedef struct coeffs {
    int ksize;      /* taps reserved per output                                  */
    int n;          /* outputs described                                         */
    int *bounds;    /* (n, 2): first input index, number of taps                 */
    int32_t *k;     /* (n, ksize): weights in 1 << PRECISION_BITS units, 0-padded */
} coeffs;

static void coeffs_free(coeffs *c) {
    mms_free(c->bounds);
    mms_free(c->k);
    c->bounds = NULL;
    c->k = NULL;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for a sub-range of the outputs (each
 * output's weights depend only on its own index, so a sub-range is exact). The box is the
 * whole input: Pillow's float box (0, in_size) converts to double without loss. */
static mms_status coeffs_build(coeffs *c, int in_size, int out_size, int first, int n,
                               const filter_def *f, mms_error *err) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    memset(c, 0, sizeof *c);
    if (ksize_d > (double)INT_MAX / 8 || (size_t)ksize_d * (size_t)n > ((size_t)1 << 40))
        return mms_error_set(err, MMS_ERR_NOMEM, "resize: filter too large (%d -> %d)",
                             in_size, out_size);
    int ksize = (int)ksize_d;
    c->ksize = ksize;
    c->n = n;
    c->bounds = (int *)mms_malloc(sizeof(int) * 2 * (size_t)(n > 0 ? n : 1));
    c->k = (int32_t *)mms_malloc(sizeof(int32_t) * (size_t)ksize * (size_t)(n > 0 ? n : 1));
    double *w = (double *)mms_malloc(sizeof(double) * (size_t)ksize);
    if (!c->bounds || !c->k || !w) {
        mms_free(w);
        coeffs_free(c);
        return mms_error_set(err, MMS_ERR_NOMEM, "resize: out of memory for filter weights");
    }
    for (int i = 0; i < n; i++) {
        int xx = first + i;
        double center = (double)0.0f + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double v = f->fn((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) w[x] /= ww;
        int32_t *k = c->k + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? w[x] : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[2 * i] = xmin;
        c->bounds[2 * i + 1] = xmax;
    }
    mms_free(w);
    return MMS_OK;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ================================================================ scalar kernels ======== */

/* One output pixel of the horizontal pass: taps over interleaved RGB input `p` (at xmin). */
static inline void hpixel_scalar(const uint8_t *p, const int32_t *k, int n, uint8_t *out) {
    int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
    for (int t = 0; t < n; t++) {
        s0 += p[3 * t] * k[t];
        s1 += p[3 * t + 1] * k[t];
        s2 += p[3 * t + 2] * k[t];
    }
    out[0] = clip8(s0);
    out[1] = clip8(s1);
    out[2] = clip8(s2);
}

/* Vertical pass of one output row: `rows` (n pointers) weighted by k, over nbytes bytes. */
static void vrow_scalar(const uint8_t *const *rows, const int32_t *k, int n, size_t nbytes,
                        uint8_t *out) {
    for (size_t x = 0; x < nbytes; x++) {
        int32_t s = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < n; t++) s += rows[t][x] * k[t];
        out[x] = clip8(s);
    }
}

/* ================================================================ SIMD kernels ========== */
#ifdef MMS_HAVE_AVX2_KERNELS

/* Horizontal weights for vpmaddwd: each 22-bit weight splits exactly into k = hi * 2^11 + lo
 * (lo in 0..2047, hi small and signed), both fitting int16. Per output pixel the taps go in
 * pairs; pair j is 8 int16 [k0 k1 k0 k1 k0 k1 0 0] (one 128-bit lane), matching the
 * [R0 R1 G0 G1 B0 B1 0 0] pixel pairs made by the byte shuffles below. A group (one vector) is
 * 2 pairs for AVX2, 4 for AVX-512; each output's pairs are padded to whole groups with zeros. */
typedef struct hsimd {
    int taps_per_group; /* 4 (AVX2) or 8 (AVX-512)           */
    int pairs;          /* pairs per output, whole groups     */
    int16_t *hi;        /* (n, pairs, 8), 64-byte aligned    */
    int16_t *lo;        /* (n, pairs, 8)                      */
} hsimd;

#define SPLIT_BITS 11

static void hsimd_free(hsimd *h) {
    mms_free(h->hi);
    mms_free(h->lo);
    h->hi = h->lo = NULL;
}

/* Returns 0, or -1 when out of memory / when a weight is too large for the split (never for
 * Pillow's filters; the caller then uses the scalar kernel). */
static int hsimd_build(hsimd *h, const coeffs *c, int taps_per_group) {
    int groups = (c->ksize + taps_per_group - 1) / taps_per_group;
    h->taps_per_group = taps_per_group;
    h->pairs = groups * taps_per_group / 2;
    size_t cnt = (size_t)c->n * h->pairs * 8;
    h->hi = (int16_t *)mms_calloc(cnt ? cnt : 1, sizeof(int16_t));
    h->lo = (int16_t *)mms_calloc(cnt ? cnt : 1, sizeof(int16_t));
    if (!h->hi || !h->lo) {
        hsimd_free(h);
        return -1;
    }
    for (int i = 0; i < c->n; i++) {
        const int32_t *k = c->k + (size_t)i * c->ksize;
        for (int t = 0; t < c->ksize; t++) {
            if (k[t] >= (1 << 26) || k[t] <= -(1 << 26)) {
                hsimd_free(h);
                return -1;
            }
            int16_t *ph = h->hi + ((size_t)i * h->pairs + t / 2) * 8;
            int16_t *pl = h->lo + ((size_t)i * h->pairs + t / 2) * 8;
            for (int c3 = 0; c3 < 3; c3++) {
                ph[2 * c3 + t % 2] = (int16_t)(k[t] >> SPLIT_BITS);
                pl[2 * c3 + t % 2] = (int16_t)(k[t] & ((1 << SPLIT_BITS) - 1));
            }
        }
    }
    return 0;
}

/* Writes one RGB pixel from [R G B x] int32 sums (rounding bias, shift, clip like clip8). */
#define STORE_RGB_SUMS(s128, dst)                                                               \
    do {                                                                                        \
        __m128i s_ = _mm_srai_epi32(_mm_add_epi32((s128), _mm_set1_epi32(1 << (PRECISION_BITS - 1))), \
                                    PRECISION_BITS);                                            \
        s_ = _mm_packus_epi16(_mm_packs_epi32(s_, s_), s_);                                     \
        uint32_t v_ = (uint32_t)_mm_cvtsi128_si32(s_);                                          \
        (dst)[0] = (uint8_t)v_;                                                                 \
        (dst)[1] = (uint8_t)(v_ >> 8);                                                          \
        (dst)[2] = (uint8_t)(v_ >> 16);                                                         \
    } while (0)

/* Hot loop of the whole preprocessing (a 12 MP photo -> 224 runs ~36M pixel taps here): one
 * output row of the horizontal pass, 4 taps per step. Pixels whose 16-byte loads would run past
 * the input row use the scalar kernel. */
__attribute__((target("avx2"))) static void hrow_avx2(const uint8_t *in, int in_w,
                                                      const coeffs *c, const hsimd *h,
                                                      uint8_t *out) {
    /* bytes -> int16 pairs: lane 0 [R0 R1 G0 G1 B0 B1 0 0], lane 1 the same for pixels 2, 3 */
    const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                          6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
    for (int xx = 0; xx < c->n; xx++) {
        int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
        int groups = (n + 3) / 4;
        const uint8_t *p = in + 3 * (size_t)xmin;
        if (xmin + 4 * groups + 2 > in_w) {
            hpixel_scalar(p, c->k + (size_t)xx * c->ksize, n, out + 3 * xx);
            continue;
        }
        const __m256i *kh = (const __m256i *)(h->hi + (size_t)xx * h->pairs * 8);
        const __m256i *kl = (const __m256i *)(h->lo + (size_t)xx * h->pairs * 8);
        __m256i acc_h = _mm256_setzero_si256(), acc_l = _mm256_setzero_si256();
        for (int g = 0; g < groups; g++) {
            __m128i raw = _mm_loadu_si128((const __m128i *)(p + 12 * g));
            __m256i px = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(raw), shuf);
            acc_h = _mm256_add_epi32(acc_h, _mm256_madd_epi16(px, _mm256_load_si256(kh + g)));
            acc_l = _mm256_add_epi32(acc_l, _mm256_madd_epi16(px, _mm256_load_si256(kl + g)));
        }
        /* wrap-around int32 arithmetic: (sum hi) * 2^11 + sum lo == sum of p * k */
        __m256i acc = _mm256_add_epi32(_mm256_slli_epi32(acc_h, SPLIT_BITS), acc_l);
        STORE_RGB_SUMS(_mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)),
                       out + 3 * xx);
    }
}

/* The same with 512-bit vectors, 8 taps per step: lanes 0, 1 shuffle pixels 0-3 of a 16-byte
 * load at p, lanes 2, 3 pixels 4-7 of a load at p + 12 (reads at most 4 bytes past the taps). */
__attribute__((target("avx512f,avx512bw"))) static void hrow_avx512(const uint8_t *in, int in_w,
                                                                    const coeffs *c,
                                                                    const hsimd *h, uint8_t *out) {
    const __m512i shuf = _mm512_broadcast_i64x4(
        _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                         6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1));
    for (int xx = 0; xx < c->n; xx++) {
        int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
        int groups = (n + 7) / 8;
        const uint8_t *p = in + 3 * (size_t)xmin;
        if (xmin + 8 * groups + 2 > in_w) {
            hpixel_scalar(p, c->k + (size_t)xx * c->ksize, n, out + 3 * xx);
            continue;
        }
        const __m512i *kh = (const __m512i *)(h->hi + (size_t)xx * h->pairs * 8);
        const __m512i *kl = (const __m512i *)(h->lo + (size_t)xx * h->pairs * 8);
        __m512i acc_h = _mm512_setzero_si512(), acc_l = _mm512_setzero_si512();
        for (int g = 0; g < groups; g++) {
            __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 24 * g)));
            __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 24 * g + 12)));
            __m512i px = _mm512_shuffle_epi8(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1), shuf);
            acc_h = _mm512_add_epi32(acc_h, _mm512_madd_epi16(px, _mm512_load_si512(kh + g)));
            acc_l = _mm512_add_epi32(acc_l, _mm512_madd_epi16(px, _mm512_load_si512(kl + g)));
        }
        __m512i acc = _mm512_add_epi32(_mm512_slli_epi32(acc_h, SPLIT_BITS), acc_l);
        __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
        STORE_RGB_SUMS(_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)),
                       out + 3 * xx);
    }
}

/* Vertical pass of one output row, 32 bytes at a time (8 int32 lanes x 4). */
__attribute__((target("avx2"))) static void vrow_avx2(const uint8_t *const *rows,
                                                      const int32_t *k, int n, size_t nbytes,
                                                      uint8_t *out) {
    const __m256i bias = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
    size_t x = 0;
    for (; x + 32 <= nbytes; x += 32) {
        __m256i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
        for (int t = 0; t < n; t++) {
            const uint8_t *r = rows[t] + x;
            __m256i kv = _mm256_set1_epi32(k[t]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(
                                          _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)r)), kv));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(
                                          _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 8))), kv));
            a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(
                                          _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 16))), kv));
            a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(
                                          _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(r + 24))), kv));
        }
        a0 = _mm256_srai_epi32(a0, PRECISION_BITS);
        a1 = _mm256_srai_epi32(a1, PRECISION_BITS);
        a2 = _mm256_srai_epi32(a2, PRECISION_BITS);
        a3 = _mm256_srai_epi32(a3, PRECISION_BITS);
        /* packs/packus work per 128-bit half: fix the order with one permute */
        __m256i w01 = _mm256_packs_epi32(a0, a1), w23 = _mm256_packs_epi32(a2, a3);
        __m256i b = _mm256_packus_epi16(w01, w23);
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(out + x), b);
    }
    for (; x < nbytes; x++) {
        int32_t s = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < n; t++) s += rows[t][x] * k[t];
        out[x] = clip8(s);
    }
}

/* 2 = AVX-512BW, 1 = AVX2, 0 = neither (cached; the CPU does not change). */
static int cpu_simd_level(void) {
    static atomic_int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f") ? 2
            : __builtin_cpu_supports("avx2")                                        ? 1
                                                                                    : 0;
        atomic_store(&cached, v);
    }
    return v;
}
#endif /* MMS_HAVE_AVX2_KERNELS */

static atomic_int g_simd_limit = 2;

int mms_image_resize_set_simd(int level) {
    return atomic_exchange(&g_simd_limit, level < 0 ? 0 : level > 2 ? 2 : level);
}

/* Kernel level to use now: the lower of the CPU's and the testing limit. */
static int simd_level(void) {
#ifdef MMS_HAVE_AVX2_KERNELS
    int cpu = cpu_simd_level(), lim = atomic_load(&g_simd_limit);
    return cpu < lim ? cpu : lim;
#else
    return 0;
#endif
}

/* ================================================================ resizer =============== */

typedef enum rs_mode {
    RS_COPY,    /* same size: the window is copied                        */
    RS_NEAREST, /* Pillow's nearest-neighbour (affine) path                */
    RS_H,       /* width changes only                                      */
    RS_V,       /* height changes only                                     */
    RS_HV,      /* both: horizontal pass into tmp, vertical pass at finish */
} rs_mode;

struct mms_resizer {
    int src_w, src_h, out_w, out_h;
    int x0, y0, w, h;      /* window of the out_w x out_h result                      */
    rs_mode mode;
    coeffs ch, cv;         /* horizontal (w outputs) / vertical (h outputs) weights   */
    int simd;              /* horizontal kernel: 0 scalar, 1 AVX2, 2 AVX-512BW        */
#ifdef MMS_HAVE_AVX2_KERNELS
    hsimd hs;
#endif
    int r0, r1;            /* source rows the window needs                            */
    uint8_t *tmp;          /* (tmp_rows, w, 3): pushed rows after the horizontal step */
    size_t tmp_stride;
    int tmp_rows;
    int *xin, *yin;        /* NEAREST: source column of each window column / row      */
};

void mms_resizer_free(mms_resizer *rs) {
    if (!rs) return;
    coeffs_free(&rs->ch);
    coeffs_free(&rs->cv);
#ifdef MMS_HAVE_AVX2_KERNELS
    hsimd_free(&rs->hs);
#endif
    mms_free(rs->tmp);
    mms_free(rs->xin);
    mms_free(rs->yin);
    mms_free(rs);
}

/* NEAREST tables: Pillow accumulates xo += scale from the first column (and yo likewise), so the
 * sums are replayed from 0 to land on the same doubles; outside the source -> -1 (pixel 0). */
static void nearest_table(int *tab, int in_size, int out_size, int first, int n) {
    double a = (double)in_size / out_size, v = 0.0 + a * 0.5;
    for (int i = 0; i < first + n; i++, v += a) {
        if (i < first) continue;
        int c = v < 0.0 ? -1 : (int)v;
        tab[i - first] = c < in_size ? c : -1;
    }
}

mms_status mms_resizer_create(int src_w, int src_h, int out_w, int out_h, int x0, int y0, int w,
                              int h, mms_resample filter, mms_resizer **out, mms_error *err) {
    *out = NULL;
    if (src_w <= 0 || src_h <= 0 || src_w > MMS_IMAGE_MAX_SIDE || src_h > MMS_IMAGE_MAX_SIDE)
        return mms_error_set(err, MMS_ERR_VALUE, "resize: invalid source size %dx%d", src_w, src_h);
    if (out_w <= 0 || out_h <= 0 || out_w > MMS_IMAGE_MAX_SIDE || out_h > MMS_IMAGE_MAX_SIDE ||
        (int64_t)out_w * out_h > MMS_IMAGE_MAX_PIXELS)
        return mms_error_set(err, MMS_ERR_VALUE, "resize: invalid output size %dx%d", out_w, out_h);
    if (w <= 0 || h <= 0 || x0 < 0 || y0 < 0 || x0 + w > out_w || y0 + h > out_h)
        return mms_error_set(err, MMS_ERR_VALUE, "resize: window %dx%d at (%d, %d) is outside the %dx%d output",
                             w, h, x0, y0, out_w, out_h);
    const filter_def *f = filter_for(filter);
    if (!f && filter != MMS_RESAMPLE_NEAREST)
        return mms_error_set(err, MMS_ERR_VALUE, "resize: unknown resample filter %d", (int)filter);
    mms_resizer *rs = (mms_resizer *)mms_calloc(1, sizeof *rs);
    if (!rs) return mms_error_set(err, MMS_ERR_NOMEM, "resize: out of memory");
    rs->src_w = src_w, rs->src_h = src_h, rs->out_w = out_w, rs->out_h = out_h;
    rs->x0 = x0, rs->y0 = y0, rs->w = w, rs->h = h;
    int need_h = out_w != src_w, need_v = out_h != src_h;
    mms_status st = MMS_OK;
    /* Pillow copies when the size does not change, whatever the filter. */
    rs->mode = !need_h && !need_v ? RS_COPY : filter == MMS_RESAMPLE_NEAREST ? RS_NEAREST
             : need_h && need_v ? RS_HV : need_h ? RS_H : RS_V;
    rs->r0 = y0;
    rs->r1 = y0 + h;
    if (rs->mode == RS_NEAREST) {
        rs->xin = (int *)mms_malloc(sizeof(int) * (size_t)w);
        rs->yin = (int *)mms_malloc(sizeof(int) * (size_t)h);
        if (!rs->xin || !rs->yin) {
            st = mms_error_set(err, MMS_ERR_NOMEM, "resize: out of memory");
            goto fail;
        }
        nearest_table(rs->xin, src_w, out_w, x0, w);
        nearest_table(rs->yin, src_h, out_h, y0, h);
        rs->r0 = src_h;
        rs->r1 = 0;
        for (int j = 0; j < h; j++) {
            if (rs->yin[j] < 0) continue;
            if (rs->yin[j] < rs->r0) rs->r0 = rs->yin[j];
            if (rs->yin[j] + 1 > rs->r1) rs->r1 = rs->yin[j] + 1;
        }
        if (rs->r1 < rs->r0) rs->r0 = rs->r1 = 0;
    }
    if (rs->mode == RS_V || rs->mode == RS_HV) {
        st = coeffs_build(&rs->cv, src_h, out_h, y0, h, f, err);
        if (st != MMS_OK) goto fail;
        /* source rows the window's vertical taps touch; only those are kept */
        rs->r0 = rs->cv.bounds[0];
        rs->r1 = 0;
        for (int i = 0; i < h; i++) {
            int b = rs->cv.bounds[2 * i], e = b + rs->cv.bounds[2 * i + 1];
            if (b < rs->r0) rs->r0 = b;
            if (e > rs->r1) rs->r1 = e;
        }
        if (rs->r1 < rs->r0) rs->r1 = rs->r0;
        for (int i = 0; i < h; i++) rs->cv.bounds[2 * i] -= rs->r0;
    }
    if (rs->mode == RS_H || rs->mode == RS_HV) {
        st = coeffs_build(&rs->ch, src_w, out_w, x0, w, f, err);
        if (st != MMS_OK) goto fail;
        rs->simd = simd_level();
#ifdef MMS_HAVE_AVX2_KERNELS
        if (rs->simd && hsimd_build(&rs->hs, &rs->ch, rs->simd == 2 ? 8 : 4) != 0) rs->simd = 0;
#endif
    }
    rs->tmp_rows = rs->mode == RS_V || rs->mode == RS_HV ? rs->r1 - rs->r0 : h;
    rs->tmp_stride = (size_t)w * 3;
    rs->tmp = (uint8_t *)mms_calloc((size_t)(rs->tmp_rows > 0 ? rs->tmp_rows : 1), rs->tmp_stride);
    if (!rs->tmp) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "resize: out of memory for a %dx%d temporary", w, rs->tmp_rows);
        goto fail;
    }
    *out = rs;
    return MMS_OK;
fail:
    mms_resizer_free(rs);
    return st;
}

void mms_resizer_source_rows(const mms_resizer *rs, int *first, int *end) {
    *first = rs->r0;
    *end = rs->r1;
}

/* Horizontal step of one source row into its tmp row. */
static void hrow(const mms_resizer *rs, const uint8_t *in, uint8_t *out) {
#ifdef MMS_HAVE_AVX2_KERNELS
    if (rs->simd == 2) {
        hrow_avx512(in, rs->src_w, &rs->ch, &rs->hs, out);
        return;
    }
    if (rs->simd == 1) {
        hrow_avx2(in, rs->src_w, &rs->ch, &rs->hs, out);
        return;
    }
#endif
    const coeffs *c = &rs->ch;
    for (int xx = 0; xx < c->n; xx++)
        hpixel_scalar(in + 3 * (size_t)c->bounds[2 * xx], c->k + (size_t)xx * c->ksize,
                      c->bounds[2 * xx + 1], out + 3 * xx);
}

void mms_resizer_push_rows(mms_resizer *rs, const uint8_t *rows, size_t stride, int y, int n_rows) {
    for (int i = 0; i < n_rows; i++) {
        int sy = y + i;
        if (sy < rs->r0 || sy >= rs->r1) continue;
        const uint8_t *in = rows + (size_t)i * stride;
        switch (rs->mode) {
        case RS_H:
        case RS_HV:
            hrow(rs, in, rs->tmp + (size_t)(sy - rs->r0) * rs->tmp_stride);
            break;
        case RS_COPY:
        case RS_V:
            memcpy(rs->tmp + (size_t)(sy - rs->r0) * rs->tmp_stride, in + (size_t)rs->x0 * 3, rs->tmp_stride);
            break;
        case RS_NEAREST:
            for (int j = 0; j < rs->h; j++) {
                if (rs->yin[j] != sy) continue;
                uint8_t *out = rs->tmp + (size_t)j * rs->tmp_stride;
                for (int x = 0; x < rs->w; x++)
                    if (rs->xin[x] >= 0) memcpy(out + 3 * x, in + 3 * (size_t)rs->xin[x], 3);
            }
            break;
        }
    }
}

mms_status mms_resizer_finish(mms_resizer *rs, const mms_image_view *dst, int n_threads, mms_error *err) {
    if (!dst || !dst->data || dst->width != rs->w || dst->height != rs->h || dst->stride < rs->tmp_stride)
        return mms_error_set(err, MMS_ERR_VALUE, "resize: output must be %dx%d", rs->w, rs->h);
    int nt = n_threads > 1 ? n_threads : 1;
    if (rs->mode != RS_V && rs->mode != RS_HV) {
        for (int y = 0; y < rs->h; y++)
            memcpy(dst->data + (size_t)y * dst->stride, rs->tmp + (size_t)y * rs->tmp_stride, rs->tmp_stride);
        return MMS_OK;
    }
    const coeffs *c = &rs->cv;
    int simd = simd_level() >= 1;
    const uint8_t **rows = (const uint8_t **)mms_malloc(sizeof(uint8_t *) * (size_t)c->ksize * (size_t)nt);
    if (!rows) return mms_error_set(err, MMS_ERR_NOMEM, "resize: out of memory");
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int yy = 0; yy < c->n; yy++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const uint8_t **rp = rows + (size_t)tid * c->ksize;
        int ymin = c->bounds[2 * yy], n = c->bounds[2 * yy + 1];
        for (int t = 0; t < n; t++) rp[t] = rs->tmp + (size_t)(ymin + t) * rs->tmp_stride;
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        uint8_t *out = dst->data + (size_t)yy * dst->stride;
#ifdef MMS_HAVE_AVX2_KERNELS
        if (simd) {
            vrow_avx2(rp, k, n, rs->tmp_stride, out);
            continue;
        }
#endif
        vrow_scalar(rp, k, n, rs->tmp_stride, out);
    }
    (void)simd;
    mms_free(rows);
    return MMS_OK;
}

/* ================================================================ in-memory entry points == */

static int view_ok(const mms_image_view *v) {
    return v && v->data && v->width > 0 && v->height > 0 && v->stride >= (size_t)v->width * 3;
}

mms_status mms_image_resize_window(const mms_image_view *src, int out_w, int out_h, int x0,
                                   int y0, const mms_image_view *dst, mms_resample filter,
                                   int n_threads, mms_error *err) {
    if (!view_ok(src)) return mms_error_set(err, MMS_ERR_VALUE, "resize: invalid source image");
    if (!view_ok(dst)) return mms_error_set(err, MMS_ERR_VALUE, "resize: invalid output image");
    mms_resizer *rs = NULL;
    mms_status st = mms_resizer_create(src->width, src->height, out_w, out_h, x0, y0, dst->width,
                                       dst->height, filter, &rs, err);
    if (st != MMS_OK) return st;
    int nt = n_threads > 1 ? n_threads : 1;
    /* rows are independent in the first step: split them across threads */
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int y = rs->r0; y < rs->r1; y++)
        mms_resizer_push_rows(rs, src->data + (size_t)y * src->stride, src->stride, y, 1);
    st = mms_resizer_finish(rs, dst, nt, err);
    mms_resizer_free(rs);
    return st;
}

mms_status mms_image_resize(const mms_image_view *src, const mms_image_view *dst,
                            mms_resample filter, int n_threads, mms_error *err) {
    if (!view_ok(dst)) return mms_error_set(err, MMS_ERR_VALUE, "resize: invalid output image");
    return mms_image_resize_window(src, dst->width, dst->height, 0, 0, dst, filter, n_threads, err);
}
