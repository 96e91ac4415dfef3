/* cpu_internal.h -- shared between the CPU backend's files (not public). */
#ifndef MMS_CPU_INTERNAL_H
#define MMS_CPU_INTERNAL_H

#include "../backend.h"

typedef enum mms_cpu_isa { MMS_ISA_GENERIC = 0, MMS_ISA_AVX2 = 1, MMS_ISA_AVX512 = 2 } mms_cpu_isa;

/* Best ISA of this CPU (cached), or the one forced by mms_cpu_force_isa (tests). */
mms_cpu_isa mms_cpu_isa_get(void);
/* Force an ISA for the hand-written kernels (to test each variant); -1 restores detection. */
void mms_cpu_force_isa(int isa);

mms_status mms_cpu_attention_isa(const mms_attn_args *a, mms_cpu_isa isa, mms_error *err);
mms_status mms_cpu_linear_dnnl(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                               mms_tensor *y, mms_error *err);

#endif
