/* mms_tensor.h -- the tensor type every op and model uses.
 *
 * A tensor is a view: dtype + shape + byte strides + a data pointer, plus an optional
 * reference to the storage that owns the bytes. Storage is reference counted so a result
 * handed to Python (NumPy, DLPack) can outlive the model or call that produced it.
 *
 * Lifetime rules:
 *   - storage == NULL: the tensor BORROWS data; whoever built it guarantees the bytes outlive
 *     every use (e.g. scratch inside one call).
 *   - storage != NULL: the tensor holds one reference; mms_tensor_release() drops it.
 *     Weights borrowed from a safetensors mmap hold a reference to the mapping's storage, so
 *     the file stays mapped while any view of it lives. */
#ifndef MMS_TENSOR_H
#define MMS_TENSOR_H

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MMS_MAX_DIMS 6

typedef enum mms_dtype {
    MMS_DTYPE_F32 = 0,
    MMS_DTYPE_F16 = 1,
    MMS_DTYPE_BF16 = 2,
    MMS_DTYPE_I32 = 3,
    MMS_DTYPE_I64 = 4,
    MMS_DTYPE_U8 = 5,
    MMS_DTYPE_COUNT
} mms_dtype;

typedef enum mms_device { MMS_DEVICE_CPU = 0, MMS_DEVICE_CUDA = 1 } mms_device;

size_t mms_dtype_size(mms_dtype t);
const char *mms_dtype_name(mms_dtype t); /* "float32", "bfloat16", ... (NumPy-style) */

/* Reference-counted owner of a byte range (malloc'd, mmap'd or device memory). */
typedef struct mms_storage mms_storage;
struct mms_storage {
    int refs;                 /* atomic; starts at 1                                   */
    void *data;               /* start of the owned range                              */
    size_t size;              /* bytes                                                 */
    mms_device device;
    void (*destroy)(mms_storage *s); /* frees data and the struct itself              */
    void *ctx;                /* destroy's private data                               */
    int is_file_map;          /* read-only private file mapping: pages may be dropped */
};

/* Hint that the bytes [p, p+n) of a file-mapped storage will not be read again (e.g. after
 * converting fp32 weights to bf16): their pages leave the resident set; a later read simply
 * faults them back in from the file. No-op for other storage. */
void mms_storage_drop_pages(mms_storage *s, const void *p, size_t n);

/* New host storage of n bytes from mms_malloc (64-byte aligned); NULL on failure. */
mms_storage *mms_storage_new_host(size_t n);
void mms_storage_retain(mms_storage *s);
void mms_storage_release(mms_storage *s); /* NULL-safe; destroys at zero */

typedef struct mms_tensor {
    mms_dtype dtype;
    int ndim;
    int64_t ne[MMS_MAX_DIMS]; /* elements per dimension, outermost first (NumPy order) */
    int64_t nb[MMS_MAX_DIMS]; /* byte stride per dimension                             */
    void *data;               /* first element                                         */
    mms_device device;
    mms_storage *storage;     /* owner (holds one ref) or NULL when borrowed           */
} mms_tensor;

/* A borrowed, contiguous view of data with the given shape (no reference taken). */
mms_tensor mms_tensor_view(void *data, mms_dtype dt, int ndim, const int64_t *ne);

/* Allocate a contiguous host tensor that owns its storage (refcount 1). */
mms_status mms_tensor_alloc(mms_tensor *t, mms_dtype dt, int ndim, const int64_t *ne, mms_error *err);

/* Drop the storage reference (if any) and zero the struct. NULL-safe. */
void mms_tensor_release(mms_tensor *t);

int64_t mms_tensor_numel(const mms_tensor *t);
size_t mms_tensor_nbytes(const mms_tensor *t);   /* numel * dtype size (for contiguous) */
int mms_tensor_is_contiguous(const mms_tensor *t);
/* "(2, 3, 4)" into buf; returns buf. */
const char *mms_tensor_shape_str(const mms_tensor *t, char *buf, size_t n);

/* ---- dtype conversion helpers (host) ---- */
static inline float mms_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
static inline uint16_t mms_f32_to_bf16(float f) { /* round to nearest even; NaN kept NaN */
    union { float f; uint32_t u; } v = {f};
    const uint32_t rounded = (v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16;
    const uint32_t quiet = (v.u >> 16) | 0x40u; /* branch-free so loops vectorize */
    return (uint16_t)((v.u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}
float mms_f16_to_f32(uint16_t h);

/* Convert n elements of src (F32/F16/BF16) to dst (F32/BF16); parallel for large n. */
mms_status mms_convert(const void *src, mms_dtype st, void *dst, mms_dtype dt, int64_t n, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif
