/* cpu_internal.h -- shared between the CPU backend's files (not public). */
#ifndef MMS_CPU_INTERNAL_H
#define MMS_CPU_INTERNAL_H

#include "../backend.h"

#include <math.h>

/* Scalar activation, the reference definition every CPU path uses. */
static inline float mms_act_apply(float v, mms_act act) {
    switch (act) {
    case MMS_ACT_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case MMS_ACT_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case MMS_ACT_QUICK_GELU: return v / (1.0f + expf(-1.702f * v));
    case MMS_ACT_RELU: return v > 0.f ? v : 0.f;
    case MMS_ACT_SILU: return v / (1.0f + expf(-v));
    default: return v;
    }
}

typedef enum mms_cpu_isa { MMS_ISA_GENERIC = 0, MMS_ISA_AVX2 = 1, MMS_ISA_AVX512 = 2 } mms_cpu_isa;

/* Best ISA of this CPU (cached), or the one forced by mms_cpu_force_isa (tests). */
mms_cpu_isa mms_cpu_isa_get(void);
/* Force an ISA for the hand-written kernels (to test each variant); -1 restores detection.
 * Forcing 0..2 also turns the AMX tile kernels off, so the AVX-512 ones are tested on AMX
 * machines; MMS_ISA_AVX512_AMX forces AVX-512 with the tile kernels allowed. */
void mms_cpu_force_isa(int isa);
#define MMS_ISA_AVX512_AMX 3
/* AMX-BF16 tile kernels usable: the CPU has them, Linux granted this process the tile state
 * (requested once), and no ISA below MMS_ISA_AVX512_AMX is forced. */
int mms_cpu_amx_usable(void);

/* Scratch from the backend's cache of freed blocks (large buffers are reused across calls). */
void *mms_cpu_scratch_alloc(size_t n);
void mms_cpu_scratch_free(void *p);

mms_status mms_cpu_attention_isa(const mms_attn_args *a, mms_cpu_isa isa, mms_error *err);
/* Attention through two batched oneDNN matmuls per sequence (QK^T, PV) and a vectorized masked
 * softmax: used for long sequences, where it runs at GEMM speed. */
mms_status mms_cpu_attention_gemm(const mms_attn_args *a, mms_error *err);
/* Masked, scaled softmax of rows s[0..n_kv) in place (kend = visible keys, mask may be NULL);
 * fully masked rows become zeros. Defined in attention.c (per-ISA). */
void mms_cpu_softmax_rows(float *s, int64_t rows, int64_t n_kv, int64_t row_stride, const int64_t *mask,
                          int causal, int64_t causal_off, float scale);
/* Same over rows of length ld (>= n_kv; columns past n_kv get probability 0); n_q = queries per head. */
void mms_cpu_softmax_rows_strided(float *s, int64_t rows, int64_t n_kv, int64_t ld, int64_t n_q, const int64_t *mask,
                                  int causal, int64_t causal_off, float scale, const float *rel_bias,
                                  int64_t rel_max);
/* Linear for at most MMS_GEMV_MAX_M rows of x (decode), same contract as the backend's linear;
 * a hand-written kernel that streams W at memory bandwidth (gemv.c). */
#define MMS_GEMV_MAX_M 8
mms_status mms_cpu_gemv(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                        mms_tensor *y, mms_error *err);
mms_status mms_cpu_linear_dnnl(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                               mms_tensor *y, mms_error *err);

#endif
