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

mms_status mms_batch_run(int64_t n, int nthreads, size_t work_size, void (*work_free)(void *), mms_batch_row_fn row,
                         const void *ctx, int truncate, int64_t L, int64_t *n_tokens, mms_error *err) {
    if (n == 0) return MMS_OK;
    int64_t *totals = n_tokens ? n_tokens : mms_malloc((size_t)n * sizeof *totals);
    if (!totals) return mms_error_set(err, MMS_ERR_NOMEM, "encode_batch: out of memory");
    int64_t bad = n; /* first failing text */
    mms_error bad_err = {MMS_OK, ""};
    int nt = nthreads > 0 ? nthreads : mms_get_num_threads();
    if (nt < 1 || n < 32) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        void *work = mms_calloc(1, work_size ? work_size : 1);
#pragma omp for schedule(dynamic, 8)
        for (int64_t i = 0; i < n; i++) {
            mms_error e = {MMS_ERR_NOMEM, "encode_batch: out of memory for the thread's scratch"};
            if (!work || row(ctx, work, i, &totals[i], &e) != MMS_OK) mms_batch_note_error(i, &e, &bad, &bad_err);
        }
        if (work) {
            work_free(work);
            mms_free(work);
        }
    }
    mms_status st = mms_batch_status(n, bad, &bad_err, truncate, totals, L, err);
    if (!n_tokens) mms_free(totals);
    return st;
}
