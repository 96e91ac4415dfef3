/* membw.c -- measured memory read bandwidth, the roofline for bandwidth-bound kernels.
 *
 * Decode-time GEMV reads each weight once per token, so its speed limit is how fast the cores
 * can stream memory. Benchmarks call mms_cpu_measure_read_bw in the same run as the kernel
 * (machines, VMs and neighbours differ) and report the kernel's bytes/s as a fraction of it. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>
#include <time.h>

#include "cpu_internal.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Sum of n floats (n a multiple of 256) read as 4 concurrent streams (the quarters), with
 * full-width loads. Several streams per core, because one stream under-reads the machine: on
 * the 2-core Sapphire Rapids VM one stream per core gave 26-27 GB/s, 2 gave 29.9, 4 and 8 gave
 * 31 (the L2 streamer keeps more lines in flight), and a GEMV streams R rows at once. */
__attribute__((target("avx512f"))) static float sum_avx512(const float *p, size_t n) {
    const size_t q = n / 4;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < q; i += 16) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + q + i));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + 2 * q + i));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + 3 * q + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target_clones("avx2", "default"))) static float sum_generic(const float *p, size_t n) {
    const size_t q = n / 4;
    float acc[16] = {0};
    for (size_t i = 0; i < q; i += 4)
        for (int j = 0; j < 16; j++) acc[j] += p[(size_t)(j / 4) * q + i + j % 4];
    float s = 0.f;
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

/* Read bandwidth in bytes/s: `threads` threads (<= 0: mms_get_num_threads()) each read their
 * contiguous share of a `bytes` buffer (0: 1 GiB, larger than any L3, so this is DRAM) as 4
 * streams with the widest loads the CPU has. Returns the best of `reps` (<= 0: 5) timed passes
 * after one warm-up pass (best, as STREAM reports, so a kernel's fraction of it is never
 * flattered by a slow reading), or 0 when the buffer cannot be allocated. */
double mms_cpu_measure_read_bw(size_t bytes, int threads, int reps) {
    if (bytes == 0) bytes = (size_t)1 << 30;
    if (threads <= 0) threads = mms_get_num_threads();
    if (reps <= 0) reps = 5;
    const size_t per = (bytes / (size_t)threads) / 1024 * 1024; /* bytes per thread: 4 streams of whole vectors */
    if (per == 0) return 0.0;
    float *buf = mms_malloc(per * (size_t)threads);
    if (!buf) return 0.0;
    const int avx512 = mms_cpu_isa_get() == MMS_ISA_AVX512;
    double best = 0.0;
    volatile float sink = 0.f; /* keeps the sums (and so the loads) alive */
    #pragma omp parallel num_threads(threads)
    { /* first touch by the thread that will read each part */
        for (int i = omp_get_thread_num(); i < threads; i += omp_get_num_threads())
            memset((char *)buf + per * (size_t)i, 0x3c, per);
    }
    for (int r = -1; r < reps; r++) {
        float total = 0.f;
        const double t0 = now_s();
        #pragma omp parallel num_threads(threads) reduction(+ : total)
        {
            /* a smaller team than asked (nested region) still reads every part */
            for (int i = omp_get_thread_num(); i < threads; i += omp_get_num_threads()) {
                const float *p = (const float *)((const char *)buf + per * (size_t)i);
                total += avx512 ? sum_avx512(p, per / sizeof(float)) : sum_generic(p, per / sizeof(float));
            }
        }
        const double dt = now_s() - t0, bw = dt > 0 ? (double)(per * (size_t)threads) / dt : 0.0;
        sink += total;
        if (r >= 0 && bw > best) best = bw;
    }
    (void)sink;
    mms_free(buf);
    return best;
}
