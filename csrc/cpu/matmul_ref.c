/* matmul_ref.c -- reference CPU linear used when mmsuite is built without oneDNN
 * (MMS_NO_DNNL): plain blocked loops, fp32 accumulation, same fused epilogue semantics as the
 * oneDNN path. Correct everywhere, fast nowhere; the oneDNN build is the product. */
#ifdef MMS_NO_DNNL
#include <math.h>
#include <string.h>

#include "cpu_internal.h"


static inline float load(const void *p, mms_dtype dt, int64_t i) {
    return dt == MMS_DTYPE_BF16 ? mms_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

mms_status mms_cpu_linear_dnnl(const mms_tensor *x, const mms_linear *L, mms_act act, const mms_tensor *residual,
                               mms_tensor *y, mms_error *err) {
    (void)err;
    const int64_t K = mms_linear_in(L), N = mms_linear_out(L), M = mms_tensor_numel(x) / K;
    const int ybf = y->dtype == MMS_DTYPE_BF16;
    const int wbf = L->w.dtype == MMS_DTYPE_BF16;
    #pragma omp parallel for num_threads(mms_get_num_threads()) schedule(static)
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            float acc = 0.f;
            for (int64_t k = 0; k < K; k++) {
                float xv = load(x->data, x->dtype, m * K + k);
                if (wbf) xv = mms_bf16_to_f32(mms_f32_to_bf16(xv));
                acc += xv * load(L->w.data, L->w.dtype, n * K + k);
            }
            if (L->b.ndim) acc += ((const float *)L->b.data)[n];
            acc = mms_act_apply(acc, act);
            if (residual) acc += ((const float *)residual->data)[m * N + n];
            if (ybf) ((uint16_t *)y->data)[m * N + n] = mms_f32_to_bf16(acc);
            else ((float *)y->data)[m * N + n] = acc;
        }
    }
    return MMS_OK;
}
#endif
