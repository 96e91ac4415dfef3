/* finite.h -- numerical guards: NaN / Inf detection in activations.
 *
 * Modes (process-wide, default MMS_FINITE_OUTPUTS):
 *   OFF      no checks;
 *   OUTPUTS  every public compute call scans what it returns (embeddings, logits, image
 *            features): O(output), far below the call's cost; a non-finite value is an
 *            MMS_ERR_NONFINITE naming the output, instead of NaN embeddings or NaN-driven text;
 *   LAYERS   a debug mode: in addition, every transformer block's output is scanned (on a GPU
 *            backend it is copied to the host first), so the error names the first layer that
 *            produced a NaN / Inf, e.g. "vision_model.encoder.layers.3". */
#ifndef MMS_FINITE_H
#define MMS_FINITE_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_finite_mode { MMS_FINITE_OFF = 0, MMS_FINITE_OUTPUTS = 1, MMS_FINITE_LAYERS = 2 } mms_finite_mode;

void mms_set_finite_mode(mms_finite_mode m);
mms_finite_mode mms_get_finite_mode(void);

/* MMS_OK when the n floats at x (host memory) are all finite, else MMS_ERR_NONFINITE:
 * "non-finite values in <what>: a NaN, b Inf of n values<hint>". */
mms_status mms_check_finite_host(const float *x, int64_t n, const char *what, const char *hint, mms_error *err);
/* The same for floats on backend be (copied to the host in chunks on a device backend). */
mms_status mms_check_finite(mms_backend *be, const float *x, int64_t n, const char *what, const char *hint,
                            mms_error *err);
/* The hint appended to output errors in OUTPUTS mode. */
#define MMS_FINITE_HINT "; mmsuite.set_check_finite('layers') names the first layer that produced them"

#ifdef __cplusplus
}
#endif
#endif
