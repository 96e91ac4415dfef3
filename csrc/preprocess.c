/* preprocess.c -- the Hugging Face CLIP / SigLIP / BLIP image processors (transformers v4.47)
 * as one config struct: resize (Pillow-exact, on u8) -> center crop (u8, zero padding) ->
 * rescale -> normalize -> (3, H, W) float32, and a batch driver that decodes and preprocesses
 * many images in parallel with OpenMP. */
#include "image.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

mms_preprocess_config mms_preprocess_default_config(void) {
    mms_preprocess_config c;
    memset(&c, 0, sizeof c);
    c.do_resize = 1;
    c.resize_mode = MMS_RESIZE_SHORTEST_EDGE;
    c.shortest_edge = 224;
    c.height = c.width = 224;
    c.resample = MMS_RESAMPLE_BICUBIC;
    c.do_center_crop = 1;
    c.crop_height = c.crop_width = 224;
    c.do_rescale = 1;
    c.rescale_factor = 1.0 / 255.0;
    c.do_normalize = 1;
    const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(c.image_mean, mean, sizeof mean);
    memcpy(c.image_std, std, sizeof std);
    c.jpeg_draft = 0;
    return c;
}

static int side_ok(int v) { return v > 0 && v <= MMS_IMAGE_MAX_SIDE; }

mms_status mms_preprocess_validate(const mms_preprocess_config *cfg, mms_error *err) {
    if (!cfg) return mms_error_set(err, MMS_ERR_VALUE, "preprocess: config is NULL");
    if (cfg->do_resize) {
        if (cfg->resize_mode == MMS_RESIZE_SHORTEST_EDGE) {
            if (!side_ok(cfg->shortest_edge))
                return mms_error_set(err, MMS_ERR_VALUE, "preprocess: shortest_edge must be in 1..%d, got %d",
                                     MMS_IMAGE_MAX_SIDE, cfg->shortest_edge);
        } else if (cfg->resize_mode == MMS_RESIZE_EXACT) {
            if (!side_ok(cfg->height) || !side_ok(cfg->width))
                return mms_error_set(err, MMS_ERR_VALUE, "preprocess: resize height/width must be in 1..%d, got %dx%d",
                                     MMS_IMAGE_MAX_SIDE, cfg->height, cfg->width);
        } else {
            return mms_error_set(err, MMS_ERR_VALUE, "preprocess: unknown resize_mode %d", (int)cfg->resize_mode);
        }
        if ((int)cfg->resample < 0 || (int)cfg->resample > MMS_RESAMPLE_HAMMING)
            return mms_error_set(err, MMS_ERR_VALUE, "preprocess: unknown resample filter %d (PIL numbering 0..5)",
                                 (int)cfg->resample);
    }
    if (cfg->do_center_crop && (!side_ok(cfg->crop_height) || !side_ok(cfg->crop_width)))
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: crop height/width must be in 1..%d, got %dx%d",
                             MMS_IMAGE_MAX_SIDE, cfg->crop_height, cfg->crop_width);
    if (cfg->do_rescale && !isfinite(cfg->rescale_factor))
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: rescale_factor is not finite");
    if (cfg->do_normalize)
        for (int c = 0; c < 3; c++)
            if (!isfinite(cfg->image_mean[c]) || !isfinite(cfg->image_std[c]) || cfg->image_std[c] == 0.0f)
                return mms_error_set(err, MMS_ERR_VALUE,
                                     "preprocess: image_mean/image_std[%d] must be finite and std non-zero", c);
    return MMS_OK;
}

/* Size after the resize step (HF get_resize_output_image_size / exact size). */
static void resize_target(const mms_preprocess_config *cfg, int in_w, int in_h, int *rw, int *rh) {
    if (!cfg->do_resize) {
        *rw = in_w;
        *rh = in_h;
    } else if (cfg->resize_mode == MMS_RESIZE_EXACT) {
        *rw = cfg->width;
        *rh = cfg->height;
    } else {
        int s = cfg->shortest_edge;
        int shrt = in_w <= in_h ? in_w : in_h, lng = in_w <= in_h ? in_h : in_w;
        /* Python's int(S * long / short): exact product, correctly rounded quotient, truncation */
        int new_long = (int)((double)((int64_t)s * lng) / (double)shrt);
        *rw = in_w <= in_h ? s : new_long;
        *rh = in_w <= in_h ? new_long : s;
    }
}

mms_status mms_preprocess_output_size(const mms_preprocess_config *cfg, int in_w, int in_h,
                                      int *out_w, int *out_h, mms_error *err) {
    mms_status st = mms_preprocess_validate(cfg, err);
    if (st != MMS_OK) return st;
    if (in_w <= 0 || in_h <= 0)
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: invalid input size %dx%d", in_w, in_h);
    int rw = 0, rh = 0;
    resize_target(cfg, in_w, in_h, &rw, &rh);
    if (!side_ok(rw) || !side_ok(rh) || (int64_t)rw * rh > MMS_IMAGE_MAX_PIXELS)
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: a %dx%d image would resize to %dx%d (too large)",
                             in_w, in_h, rw, rh);
    *out_w = cfg->do_center_crop ? cfg->crop_width : rw;
    *out_h = cfg->do_center_crop ? cfg->crop_height : rh;
    return MMS_OK;
}

static int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* The decoded image: either in memory, or streamed top to bottom from a reader (so the
 * horizontal resize runs on cache-hot bands and no full-size copy of a big photo is made). */
typedef struct row_source {
    const mms_image_view *view;
    mms_image_reader *reader;
    int width, height;
} row_source;

/* Rows per band read from a reader: 16 rows of a 4000-pixel photo (192 KB) stay in L2 until
 * the horizontal filter has consumed them. */
#define BAND_ROWS 16

/* Bands of a reader, all of them, into the resizer (rows outside its window are skipped there).
 * Serial: the decode is sequential, and a fork/join per 16-row band would cost more than the
 * filtering it splits (badly so when cores are shared). */
static mms_status stream_serial(mms_image_reader *rd, int width, int height, mms_resizer *rs,
                                mms_error *err) {
    size_t stride = (size_t)width * 3;
    uint8_t *band = (uint8_t *)mms_malloc(stride * BAND_ROWS);
    if (!band) return mms_error_set(err, MMS_ERR_NOMEM, "preprocess: out of memory");
    mms_status st = MMS_OK;
    for (int y = 0; st == MMS_OK && y < height; y += BAND_ROWS) {
        int n = height - y < BAND_ROWS ? height - y : BAND_ROWS;
        st = mms_image_reader_read(rd, band, stride, n, err);
        if (st == MMS_OK && rs) mms_resizer_push_rows(rs, band, stride, y, n);
    }
    mms_free(band);
    return st;
}

/* The same with two threads: one decodes bands into a small ring, the other filters them, so
 * the horizontal resize costs no wall time next to the (longer) decode. Waits sleep on a
 * condition variable rather than spin, which keeps a shared core usable. */
#define RING_BANDS 4
static mms_status stream_pipelined(mms_image_reader *rd, int width, int height, mms_resizer *rs,
                                   mms_error *err) {
    size_t stride = (size_t)width * 3, band_bytes = stride * BAND_ROWS;
    int n_bands = (height + BAND_ROWS - 1) / BAND_ROWS;
    uint8_t *ring = (uint8_t *)mms_malloc(band_bytes * RING_BANDS);
    if (!ring) return mms_error_set(err, MMS_ERR_NOMEM, "preprocess: out of memory");
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int produced = 0, consumed = 0, stopped = 0; /* guarded by mu */
    mms_status st = MMS_OK;                      /* written by the decoding thread only */
#pragma omp parallel num_threads(2)
    {
        int solo = 1, tid = 0;
#ifdef _OPENMP
        solo = omp_get_num_threads() < 2; /* e.g. inside another parallel region */
        tid = omp_get_thread_num();
#endif
        if (tid == 0) {
            for (int b = 0; b < n_bands; b++) {
                int y = b * BAND_ROWS, n = height - y < BAND_ROWS ? height - y : BAND_ROWS;
                uint8_t *slot = ring + band_bytes * (b % RING_BANDS);
                pthread_mutex_lock(&mu);
                while (!solo && b - consumed >= RING_BANDS) pthread_cond_wait(&cv, &mu);
                pthread_mutex_unlock(&mu);
                st = mms_image_reader_read(rd, slot, stride, n, err);
                if (st == MMS_OK && solo) mms_resizer_push_rows(rs, slot, stride, y, n);
                pthread_mutex_lock(&mu);
                if (st == MMS_OK) produced = b + 1;
                else stopped = 1;
                pthread_cond_broadcast(&cv);
                pthread_mutex_unlock(&mu);
                if (st != MMS_OK) break;
            }
        } else if (tid == 1) {
            for (int b = 0; b < n_bands; b++) {
                pthread_mutex_lock(&mu);
                while (produced <= b && !stopped) pthread_cond_wait(&cv, &mu);
                int ready = produced > b;
                pthread_mutex_unlock(&mu);
                if (!ready) break;
                int y = b * BAND_ROWS, n = height - y < BAND_ROWS ? height - y : BAND_ROWS;
                mms_resizer_push_rows(rs, ring + band_bytes * (b % RING_BANDS), stride, y, n);
                pthread_mutex_lock(&mu);
                consumed = b + 1;
                pthread_cond_broadcast(&cv);
                pthread_mutex_unlock(&mu);
            }
        }
    }
    pthread_cond_destroy(&cv);
    pthread_mutex_destroy(&mu);
    mms_free(ring);
    return st;
}

/* Resize to rw x rh and center-crop into dst (out_h, out_w, 3) u8. HF's center_crop pads
 * with zeros when the crop is larger: output (r, c) shows resized pixel
 * (r + (rh - ch) // 2, c + (rw - cw) // 2) when inside, else 0. Only the window that survives
 * the crop is resized. A reader is always read to the end, so a truncated file fails as it
 * does in Pillow even when its last rows are not needed. */
static mms_status resize_crop_u8(const mms_preprocess_config *cfg, const row_source *src, int rw,
                                 int rh, const mms_image_view *dst, int nt, mms_error *err) {
    int top = cfg->do_center_crop ? floor_div2(rh - dst->height) : 0;
    int left = cfg->do_center_crop ? floor_div2(rw - dst->width) : 0;
    int y0 = top > 0 ? top : 0, x0 = left > 0 ? left : 0;
    int y1 = top + dst->height < rh ? top + dst->height : rh;
    int x1 = left + dst->width < rw ? left + dst->width : rw;
    if (y0 != top || x0 != left || y1 - y0 != dst->height || x1 - x0 != dst->width)
        for (int y = 0; y < dst->height; y++)
            memset(dst->data + (size_t)y * dst->stride, 0, (size_t)dst->width * 3);
    mms_resizer *rs = NULL;
    mms_status st = MMS_OK;
    int r0 = 0, r1 = 0;
    if (y1 > y0 && x1 > x0) {
        /* Without do_resize, rw x rh is the source size and the resizer just copies (the
         * filter, unchecked then, does not matter). */
        st = mms_resizer_create(src->width, src->height, rw, rh, x0, y0, x1 - x0, y1 - y0,
                                cfg->do_resize ? cfg->resample : MMS_RESAMPLE_BICUBIC, &rs, err);
        if (st != MMS_OK) return st;
        mms_resizer_source_rows(rs, &r0, &r1);
    }
    if (src->view) {
        const mms_image_view *v = src->view;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
        for (int y = r0; y < r1; y++) mms_resizer_push_rows(rs, v->data + (size_t)y * v->stride, v->stride, y, 1);
    } else if (rs && nt > 1) {
        st = stream_pipelined(src->reader, src->width, src->height, rs, err);
    } else {
        st = stream_serial(src->reader, src->width, src->height, rs, err);
    }
    if (st == MMS_OK && rs) {
        mms_image_view win = {dst->data + (size_t)(y0 - top) * dst->stride + (size_t)(x0 - left) * 3,
                              x1 - x0, y1 - y0, dst->stride};
        st = mms_resizer_finish(rs, &win, nt, err);
    }
    mms_resizer_free(rs);
    return st;
}

/* (out_h, out_w, 3) u8 -> (3, out_h, out_w) float32 through one 256-entry table per channel:
 * every u8 level maps to one float, computed exactly as HF does (double rescale, float32
 * cast, float32 (x - mean) / std). */
static void to_chw_float(const mms_preprocess_config *cfg, const uint8_t *u8, int w, int h,
                         float *out) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            if (cfg->do_normalize) x = (x - cfg->image_mean[c]) / cfg->image_std[c];
            lut[c][v] = x;
        }
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        out[i] = lut[0][u8[3 * i]];
        out[plane + i] = lut[1][u8[3 * i + 1]];
        out[2 * plane + i] = lut[2][u8[3 * i + 2]];
    }
}

/* One image with an explicit resize target (rw, rh), which for a draft-decoded JPEG comes from
 * the full-size header rather than from the decoded size. */
static mms_status preprocess_rows(const mms_preprocess_config *cfg, const row_source *src, int rw,
                                  int rh, float *out, int out_w, int out_h, int nt, mms_error *err) {
    uint8_t *u8 = (uint8_t *)mms_malloc((size_t)out_w * out_h * 3);
    if (!u8) return mms_error_set(err, MMS_ERR_NOMEM, "preprocess: out of memory");
    mms_image_view dst = {u8, out_w, out_h, (size_t)out_w * 3};
    mms_status st = resize_crop_u8(cfg, src, rw, rh, &dst, nt, err);
    if (st == MMS_OK) to_chw_float(cfg, u8, out_w, out_h, out);
    mms_free(u8);
    return st;
}

static int view_ok(const mms_image_view *v) {
    return v && v->data && v->width > 0 && v->height > 0 && v->stride >= (size_t)v->width * 3;
}

/* Checks that (out_w, out_h) is what cfg makes of a w x h image; fills the resize target. */
static mms_status check_size(const mms_preprocess_config *cfg, int w, int h, int out_w, int out_h,
                             int *rw, int *rh, mms_error *err) {
    int ew = 0, eh = 0;
    mms_status st = mms_preprocess_output_size(cfg, w, h, &ew, &eh, err);
    if (st != MMS_OK) return st;
    if (ew != out_w || eh != out_h)
        return mms_error_set(err, MMS_ERR_VALUE,
                             "preprocess: a %dx%d image gives %dx%d (WxH) but the output is %dx%d; "
                             "without a center crop every image of a batch must resize to the same size",
                             w, h, ew, eh, out_w, out_h);
    resize_target(cfg, w, h, rw, rh);
    return MMS_OK;
}

mms_status mms_preprocess_pixels(const mms_preprocess_config *cfg, const mms_image_view *img,
                                 float *out, int out_w, int out_h, int n_threads,
                                 mms_error *err) {
    if (!view_ok(img))
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: invalid pixel buffer (%dx%d)",
                             img ? img->width : 0, img ? img->height : 0);
    int rw = 0, rh = 0;
    mms_status st = check_size(cfg, img->width, img->height, out_w, out_h, &rw, &rh, err);
    if (st != MMS_OK) return st;
    row_source src = {img, NULL, img->width, img->height};
    return preprocess_rows(cfg, &src, rw, rh, out, out_w, out_h, n_threads, err);
}

mms_status mms_preprocess_pixels_u8(const mms_preprocess_config *cfg, const mms_image_view *img,
                                    const mms_image_view *dst, int n_threads, mms_error *err) {
    if (!view_ok(dst)) return mms_error_set(err, MMS_ERR_VALUE, "preprocess: invalid output buffer");
    if (!view_ok(img)) return mms_error_set(err, MMS_ERR_VALUE, "preprocess: invalid pixel buffer");
    int rw = 0, rh = 0;
    mms_status st = check_size(cfg, img->width, img->height, dst->width, dst->height, &rw, &rh, err);
    if (st != MMS_OK) return st;
    row_source src = {img, NULL, img->width, img->height};
    return resize_crop_u8(cfg, &src, rw, rh, dst, n_threads, err);
}

/* ================================================================ batch ================= */

/* Encoded bytes -> preprocessed (3, out_h, out_w), decoding in bands straight into the resizer.
 * With jpeg_draft the resize target comes from the full-size header, so draft and exact
 * decodes produce the same geometry. */
static mms_status process_encoded(const mms_preprocess_config *cfg, const uint8_t *data,
                                  size_t size, float *out, int out_w, int out_h, int nt,
                                  mms_error *err) {
    mms_decode_opts opts;
    memset(&opts, 0, sizeof opts);
    if (cfg->jpeg_draft && cfg->do_resize && mms_image_sniff(data, size) == MMS_IMAGE_FORMAT_JPEG) {
        int fw = 0, fh = 0, tw = 0, th = 0;
        mms_status st = mms_image_probe_memory(data, size, &fw, &fh, err);
        if (st != MMS_OK) return st;
        resize_target(cfg, fw, fh, &tw, &th);
        opts.jpeg_draft = 1;
        opts.min_width = tw;
        opts.min_height = th;
    }
    mms_image_reader *rd = NULL;
    mms_status st = mms_image_reader_open(data, size, &opts, &rd, err);
    if (st != MMS_OK) return st;
    int w, h, fw, fh, rw = 0, rh = 0;
    mms_image_reader_size(rd, &w, &h, &fw, &fh);
    st = check_size(cfg, fw, fh, out_w, out_h, &rw, &rh, err);
    if (st == MMS_OK) {
        row_source src = {NULL, rd, w, h};
        st = preprocess_rows(cfg, &src, rw, rh, out, out_w, out_h, nt, err);
    }
    mms_image_reader_close(rd);
    return st;
}

static mms_status process_source(const mms_preprocess_config *cfg, const mms_image_source *src,
                                 int index, float *out, int out_w, int out_h, int nt,
                                 mms_error *err) {
    mms_status st;
    switch (src->kind) {
    case MMS_IMAGE_SOURCE_PATH: {
        uint8_t *data = NULL;
        size_t size = 0;
        st = mms_image_read_file(src->path, &data, &size, err);
        if (st != MMS_OK) {
            mms_error_prefix(err, "image %d", index);
            return st;
        }
        st = process_encoded(cfg, data, size, out, out_w, out_h, nt, err);
        mms_free(data);
        if (st != MMS_OK) mms_error_prefix(err, "image %d ('%s')", index, src->path);
        return st;
    }
    case MMS_IMAGE_SOURCE_BYTES:
        st = process_encoded(cfg, src->data, src->size, out, out_w, out_h, nt, err);
        if (st != MMS_OK) mms_error_prefix(err, "image %d (<bytes>)", index);
        return st;
    case MMS_IMAGE_SOURCE_PIXELS:
        st = mms_preprocess_pixels(cfg, &src->pixels, out, out_w, out_h, nt, err);
        if (st != MMS_OK) mms_error_prefix(err, "image %d (<pixels>)", index);
        return st;
    default:
        return mms_error_set(err, MMS_ERR_VALUE, "image %d: unknown source kind %d", index, (int)src->kind);
    }
}

mms_status mms_preprocess_batch(const mms_preprocess_config *cfg, const mms_image_source *srcs,
                                int n, float *out, int out_w, int out_h, mms_error *err) {
    mms_status st = mms_preprocess_validate(cfg, err);
    if (st != MMS_OK) return st;
    if (n <= 0 || !srcs) return mms_error_set(err, MMS_ERR_VALUE, "preprocess: empty batch");
    if (!out || out_w <= 0 || out_h <= 0)
        return mms_error_set(err, MMS_ERR_VALUE, "preprocess: invalid output buffer");
    size_t per_image = (size_t)3 * out_w * out_h;
    int threads = mms_get_num_threads();
    if (threads < 1) threads = 1;

    if (n == 1 || threads == 1) { /* one image: its resize gets the threads */
        for (int i = 0; i < n; i++) {
            st = process_source(cfg, &srcs[i], i, out + per_image * i, out_w, out_h, threads, err);
            if (st != MMS_OK) return st;
        }
        return MMS_OK;
    }

    /* Images in parallel. Report the lowest failing index, whatever order threads finish in;
     * images after a known failure are skipped. */
    atomic_int first_bad = n;
    mms_status bad_status = MMS_OK;
    int nt = threads < n ? threads : n;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        if (i > atomic_load(&first_bad)) continue;
        mms_error local;
        local.code = MMS_OK;
        local.msg[0] = '\0';
        mms_status s = process_source(cfg, &srcs[i], i, out + per_image * i, out_w, out_h, 1, &local);
        if (s != MMS_OK) {
#pragma omp critical(mms_preprocess_batch_error)
            {
                if (i < atomic_load(&first_bad)) {
                    atomic_store(&first_bad, i);
                    bad_status = s;
                    if (err) *err = local;
                }
            }
        }
    }
    return bad_status;
}
