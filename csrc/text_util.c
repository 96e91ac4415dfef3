/* text_util.c -- the functions of text_util.h shared by the two tokenizers: file reading
 * for their loaders, and how their batch encoders report errors. */
#include "text_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

mms_status mms_read_whole_file(const char *path, char **data, size_t *len, mms_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return mms_error_set(err, errno == ENOENT ? MMS_ERR_NOT_FOUND : MMS_ERR_IO, "%s: %s", path,
                             strerror(errno));
    /* Grow by doubling: the size of a pipe or special file is not known in advance. */
    size_t cap = 1 << 20, n = 0;
    char *buf = mms_malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = mms_realloc(buf, cap * 2);
        if (!nb) mms_free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        mms_free(buf);
        return mms_error_set(err, buf ? MMS_ERR_IO : MMS_ERR_NOMEM, "%s: read failed", path);
    }
    *data = buf;
    *len = n;
    return MMS_OK;
}

void mms_batch_note_error(int64_t i, const mms_error *e, int64_t *bad, mms_error *bad_err) {
#pragma omp critical(mms_batch_error)
    if (i < *bad) {
        *bad = i;
        *bad_err = *e;
    }
}

mms_status mms_batch_status(int64_t n, int64_t bad, const mms_error *bad_err, int truncate,
                            const int64_t *totals, int64_t L, mms_error *err) {
    if (bad < n) {
        if (!err) return bad_err->code;
        *err = *bad_err;
        return mms_error_prefix(err, "text %lld", (long long)bad);
    }
    if (!truncate)
        for (int64_t i = 0; i < n; i++)
            if (totals[i] > L)
                return mms_error_set(err, MMS_ERR_VALUE, "text %lld has %lld tokens, more than the context length "
                                     "%lld (truncate is off)", (long long)i, (long long)totals[i], (long long)L);
    return MMS_OK;
}
