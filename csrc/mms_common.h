/* mms_common.h -- status codes, error reporting and the one allocator used by
 * every mmsuite C file. Included by every other header.
 *
 * Errors are values: a fallible function returns mms_status and, on failure,
 * fills the caller's mms_error (which may be NULL) with a code and a message.
 * Nothing in the library prints, exits or aborts. */
#ifndef MMS_COMMON_H
#define MMS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mms_status {
    MMS_OK = 0,
    MMS_ERR_NOMEM = 1,       /* allocation failed or exceeds the memory limit      */
    MMS_ERR_IO = 2,          /* file missing / unreadable                           */
    MMS_ERR_FORMAT = 3,      /* corrupt or malformed file content (safetensors, png) */
    MMS_ERR_VALUE = 4,       /* bad argument: dtype, rank, shape, range             */
    MMS_ERR_UNSUPPORTED = 5, /* valid input the library does not implement          */
    MMS_ERR_CONFIG = 6,      /* missing or invalid key in a model config            */
    MMS_ERR_INTERNAL = 7,    /* backend failure (oneDNN, cuBLAS); a bug if seen     */
    MMS_ERR_NOT_FOUND = 8,   /* missing file / tensor name                          */
    MMS_ERR_NONFINITE = 9,   /* NaN / Inf in an activation or output (finite.h)      */
} mms_status;

/* Error slot filled by failing calls. msg is NUL-terminated. */
typedef struct mms_error {
    mms_status code;
    char msg[1024];
} mms_error;

/* Set err (if non-NULL) and return code; printf-style message. */
mms_status mms_error_set(mms_error *err, mms_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefix the message already in err with "prefix: " (adds context while unwinding). */
mms_status mms_error_prefix(mms_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix err's message with "path: " unless it already names path: loaders call it on failure, so
 * an error raised deep inside (a tensor's shape, a missing tensor) names the checkpoint. */
mms_status mms_error_in_file(mms_error *err, const char *path);

/* ---- allocator: every heap buffer of the library goes through these ----------
 * 64-byte aligned; statistics are process wide and thread safe.
 * mms_malloc returns NULL on failure (never aborts). mms_free(NULL) is a no-op. */
void *mms_malloc(size_t n);
void *mms_calloc(size_t count, size_t size);
void *mms_realloc(void *p, size_t n); /* alignment kept; contents up to min size kept */
/* Make *p (an mms_malloc'd array, *cap elements) hold at least n elements of size sz, growing by
 * 1.5x from 64; contents kept. 0, or -1 with *p untouched when out of memory. */
int mms_grow(void **p, size_t *cap, size_t n, size_t sz);
/* mms_grow on a struct's array field and its capacity field. */
#define MMS_GROW(s, field, capf, n) mms_grow((void **)&(s)->field, &(s)->capf, (n), sizeof *(s)->field)
void mms_free(void *p);
char *mms_strdup(const char *s);
/* Usable size of a block from mms_malloc (the size asked for). */
size_t mms_alloc_size(const void *p);

typedef struct mms_mem_stats {
    int64_t current_bytes; /* bytes live now                      */
    int64_t peak_bytes;    /* high-water mark since process start  */
    int64_t n_allocs;      /* number of live blocks                */
} mms_mem_stats;
mms_mem_stats mms_mem_get_stats(void);

/* ---- threads --------------------------------------------------------------------
 * Number of threads used by every parallel region and by oneDNN. 0 = all cores. */
void mms_set_num_threads(int n);
int mms_get_num_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* MMS_COMMON_H */
