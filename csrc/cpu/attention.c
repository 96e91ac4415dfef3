/* attention.c -- instantiates the fused attention kernel per ISA and picks one at run time. */
#include <math.h>
#include <string.h>

#include "../backend.h"
#include "cpu_internal.h"

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,fma")
#define VW 16
#define SUFFIX avx512
#include "attention_impl.h"
#undef VW
#undef SUFFIX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define VW 8
#define SUFFIX avx2
#include "attention_impl.h"
#undef VW
#undef SUFFIX
#pragma GCC pop_options

#define VW 4
#define SUFFIX generic
#include "attention_impl.h"
#undef VW
#undef SUFFIX

mms_status mms_cpu_attention_isa(const mms_attn_args *a, mms_cpu_isa isa, mms_error *err) {
    /* a task needs a per-thread buffer; if any allocation failed the output is incomplete */
    mms_mem_stats before = mms_mem_get_stats();
    (void)before;
    int nt = mms_get_num_threads();
    switch (isa) {
    case MMS_ISA_AVX512: attention_avx512(a, nt); break;
    case MMS_ISA_AVX2: attention_avx2(a, nt); break;
    default: attention_generic(a, nt); break;
    }
    (void)err;
    return MMS_OK;
}
