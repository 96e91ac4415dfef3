/* omp.h -- serial stand-in for the OpenMP runtime API in the fuzz build (tests/fuzz only).
 * The fuzzers are built without -fopenmp: every `#pragma omp` is ignored and the code runs on
 * one thread, which these answers describe exactly. (clang-14 cannot include gcc's omp.h, and
 * a real runtime would only add thread pools that leak checking and libFuzzer dislike.) */
#ifndef MMS_FUZZ_OMP_H
#define MMS_FUZZ_OMP_H

static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_num_procs(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }

#endif
