/* image.h -- images in, model-ready tensors out.
 * Decodes PNG/JPEG to RGB u8 exactly like Pillow's `Image.open(f).convert("RGB")`, resizes with
 * Pillow's own fixed-point resampler (bit-exact), and runs the Hugging Face CLIP / SigLIP / BLIP
 * image processors (resize, center crop, rescale, normalize) into NCHW float32 batches.
 *
 * Every pixel buffer is RGB u8, shape (height, width, 3): channels interleaved, pixels packed,
 * rows `stride` bytes apart. Thread safety: every function is reentrant (no global state except
 * the SIMD switch, meant for tests). */
#ifndef MMS_IMAGE_H
#define MMS_IMAGE_H

#include "mms_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest image accepted by the decoders and the resizer: larger declared sizes are refused
 * before anything is allocated (a 30-byte header must not be able to ask for 100 GB). */
#define MMS_IMAGE_MAX_PIXELS ((int64_t)1 << 28)
#define MMS_IMAGE_MAX_SIDE (65535 * 4)

/* ---- types ------------------------------------------------------------------------------ */

/* A decoded image. data: (height, width, 3) RGB u8, rows width*3 bytes apart (no padding).
 * Owned by whoever received it from a decode call; release with mms_image_free. */
typedef struct mms_image {
    uint8_t *data;
    int width;
    int height;
} mms_image;

/* A borrowed RGB u8 buffer: (height, width, 3), rows `stride` bytes apart (stride >= 3*width).
 * Read-only when used as a source. */
typedef struct mms_image_view {
    uint8_t *data;
    int width;
    int height;
    size_t stride;
} mms_image_view;

typedef enum mms_image_format {
    MMS_IMAGE_FORMAT_UNKNOWN = 0,
    MMS_IMAGE_FORMAT_PNG = 1,
    MMS_IMAGE_FORMAT_JPEG = 2,
} mms_image_format;

/* Decoder options. The defaults (all zero) give the exact Pillow decode. */
typedef struct mms_decode_opts {
    /* Fast mode for big JPEG photos: let libjpeg downscale in the DCT domain by 1/2, 1/4 or 1/8
     * (the strongest reduction that keeps the image at least min_width x min_height with its
     * short side >= min_short_side). A 4000x3000 photo -> 224 preprocesses ~2x faster (the
     * IDCT and colour conversion shrink with the pixel count; entropy decoding does not), but
     * the result is NOT Pillow's: the reduced IDCT averages pixels before the bicubic does, so
     * values move by a few u8 levels (mean |diff| well under one level on photos). Off by
     * default; PNGs are unaffected. */
    int jpeg_draft;
    int min_width;
    int min_height;
    int min_short_side;
} mms_decode_opts;

/* Pillow resampling filters, numbered like PIL.Image.Resampling (and HF's `resample`). */
typedef enum mms_resample {
    MMS_RESAMPLE_NEAREST = 0,
    MMS_RESAMPLE_LANCZOS = 1,
    MMS_RESAMPLE_BILINEAR = 2,
    MMS_RESAMPLE_BICUBIC = 3,
    MMS_RESAMPLE_BOX = 4,
    MMS_RESAMPLE_HAMMING = 5,
} mms_resample;

/* ---- decoding (image_decode.c) ----------------------------------------------------------
 * Pillow's convert("RGB") rules: alpha is dropped (never composited), gray is replicated,
 * palettes are looked up (tRNS ignored), 16-bit grayscale PNG clamps v8 = min(v16, 255) (Pillow
 * mode I), other 16-bit PNGs keep the high byte, CMYK JPEG uses Pillow's inverted-Adobe rule.
 * Gamma, ICC profiles and EXIF orientation are ignored. JPEG: ISLOW IDCT, fancy upsampling.
 * Errors: MMS_ERR_FORMAT (unknown format, corrupt or truncated data, absurd size),
 * MMS_ERR_NOMEM, and for files MMS_ERR_NOT_FOUND (missing) / MMS_ERR_IO (unreadable). */

/* The format of an encoded buffer from its magic bytes (UNKNOWN when neither PNG nor JPEG). */
mms_image_format mms_image_sniff(const uint8_t *data, size_t size);

/* Decode `size` bytes of PNG/JPEG (borrowed, only read) into *out (filled only on success).
 * opts may be NULL (exact decode). */
mms_status mms_image_decode_memory(const uint8_t *data, size_t size, const mms_decode_opts *opts,
                                   mms_image *out, mms_error *err);

/* Same as mms_image_decode_memory for the file at `path`; error messages name the path. */
mms_status mms_image_decode_file(const char *path, const mms_decode_opts *opts, mms_image *out,
                                 mms_error *err);

/* Reads the whole file at `path` into *data (mms_malloc, caller frees with mms_free), *size
 * bytes. MMS_ERR_NOT_FOUND when missing, MMS_ERR_IO when unreadable; messages name the path. */
mms_status mms_image_read_file(const char *path, uint8_t **data, size_t *size, mms_error *err);

/* Width and height from the header only (no pixel decode, nothing kept). */
mms_status mms_image_probe_memory(const uint8_t *data, size_t size, int *width, int *height,
                                  mms_error *err);

/* Streaming decode: rows come out top to bottom in bands, so a consumer (the resizer) can work
 * on cache-hot rows and a full-size copy of a 12 MP photo never has to exist.
 * open: parses the header (errors as above); `data` stays borrowed until close.
 * read: the next n_rows rows into dst (n_rows, width, 3), rows `stride` bytes apart; reading
 * past the last row is MMS_ERR_VALUE; after a failure every later read fails too.
 * close: releases everything (NULL is fine). One reader per thread at a time. */
typedef struct mms_image_reader mms_image_reader;
mms_status mms_image_reader_open(const uint8_t *data, size_t size, const mms_decode_opts *opts,
                                 mms_image_reader **out, mms_error *err);
/* Size of the rows read() produces (the JPEG draft size when draft scaling applies) and the
 * full size the file declares. */
void mms_image_reader_size(const mms_image_reader *r, int *width, int *height, int *full_width,
                           int *full_height);
mms_status mms_image_reader_read(mms_image_reader *r, uint8_t *dst, size_t stride, int n_rows,
                                 mms_error *err);
void mms_image_reader_close(mms_image_reader *r);

/* Releases img->data (NULL is fine) and zeroes *img. */
void mms_image_free(mms_image *img);

/* The whole of an mms_image as a view (borrows img->data). */
mms_image_view mms_image_as_view(const mms_image *img);

/* ---- resampling (image_resize.c) --------------------------------------------------------
 * Bit-exact with Pillow's Image.resize((w, h), filter) on an RGB image: antialiased separable
 * convolution whose support grows with the downscale factor, coefficients rounded to 22-bit
 * fixed point, horizontal pass first (rounded and clipped to u8), then vertical; NEAREST uses
 * Pillow's affine nearest-neighbour path. Same size in and out = copy. */

/* Resize src (read-only) to dst->width x dst->height into dst->data (caller-owned).
 * n_threads <= 1 runs on the calling thread. Errors: MMS_ERR_VALUE (bad sizes / filter),
 * MMS_ERR_NOMEM. */
mms_status mms_image_resize(const mms_image_view *src, const mms_image_view *dst,
                            mms_resample filter, int n_threads, mms_error *err);

/* The window (x0, y0, dst->width, dst->height) of "src resized to out_w x out_h", computing only
 * that window (identical to resizing fully then cropping). The window must lie inside
 * out_w x out_h. */
mms_status mms_image_resize_window(const mms_image_view *src, int out_w, int out_h, int x0,
                                   int y0, const mms_image_view *dst, mms_resample filter,
                                   int n_threads, mms_error *err);

/* Streaming resize of the same window: rows of the source are pushed as they become
 * available (e.g. straight from an mms_image_reader), each one is filtered horizontally right
 * away, and finish() runs the vertical step. Only the rows reported by source_rows are kept
 * (the rest may still be pushed; they are ignored), so a 12 MP source needs a few MB.
 * create: MMS_ERR_VALUE for bad sizes / window / filter, MMS_ERR_NOMEM. The resizer owns its
 * buffers; free with mms_resizer_free (NULL is fine).
 * push_rows: source rows y .. y + n_rows - 1 at `rows` (row y first, `stride` bytes apart);
 * may be called from several threads at once for disjoint rows, in any order.
 * finish: writes the window into dst (caller-owned, w x h) once every needed row was pushed;
 * may be called again (same result). */
typedef struct mms_resizer mms_resizer;
mms_status mms_resizer_create(int src_w, int src_h, int out_w, int out_h, int x0, int y0, int w,
                              int h, mms_resample filter, mms_resizer **out, mms_error *err);
void mms_resizer_source_rows(const mms_resizer *rs, int *first, int *end);
void mms_resizer_push_rows(mms_resizer *rs, const uint8_t *rows, size_t stride, int y, int n_rows);
mms_status mms_resizer_finish(mms_resizer *rs, const mms_image_view *dst, int n_threads,
                              mms_error *err);
void mms_resizer_free(mms_resizer *rs);

/* Testing hook: the best resize kernels allowed: 0 portable scalar, 1 AVX2, 2 (default)
 * AVX-512BW -- each used only when the CPU has it. Results are identical at every level
 * (integer arithmetic); returns the previous limit. Affects resizes started afterwards. */
int mms_image_resize_set_simd(int level);

/* ---- preprocessing (preprocess.c) -------------------------------------------------------
 * The Hugging Face image processors (transformers v4.47): resize on u8 -> center crop on u8
 * (zero padding where the crop is larger than the image) -> rescale float32(double(u8) * f) ->
 * normalize float32 (x - mean) / std -> (3, H, W) float32. */

typedef enum mms_resize_mode {
    MMS_RESIZE_SHORTEST_EDGE = 0, /* CLIP: short side -> S, long side int(S * long / short) */
    MMS_RESIZE_EXACT = 1,         /* SigLIP / BLIP (and CLIP with size {height, width})    */
} mms_resize_mode;

typedef struct mms_preprocess_config {
    int do_resize;
    mms_resize_mode resize_mode;
    int shortest_edge;     /* SHORTEST_EDGE target                                   */
    int height, width;     /* EXACT target                                           */
    mms_resample resample;
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor; /* applied in double, then cast to float (HF does this)  */
    int do_normalize;
    float image_mean[3];
    float image_std[3];
    int jpeg_draft;        /* opt-in fast JPEG decode, see mms_decode_opts          */
} mms_preprocess_config;

/* Where one image of a batch comes from; everything is borrowed for the duration of the call. */
typedef enum mms_image_source_kind {
    MMS_IMAGE_SOURCE_PATH = 0,   /* path: NUL-terminated file name                     */
    MMS_IMAGE_SOURCE_BYTES = 1,  /* data, size: an encoded PNG/JPEG file in memory      */
    MMS_IMAGE_SOURCE_PIXELS = 2, /* pixels: already decoded RGB u8                     */
} mms_image_source_kind;

typedef struct mms_image_source {
    mms_image_source_kind kind;
    const char *path;
    const uint8_t *data;
    size_t size;
    mms_image_view pixels;
} mms_image_source;

/* CLIPImageProcessor defaults (OpenAI, 224): shortest edge 224, BICUBIC, crop 224x224,
 * rescale 1/255, OpenAI mean/std. */
mms_preprocess_config mms_preprocess_default_config(void);

/* MMS_ERR_VALUE naming the first bad field (non-positive sizes, std == 0, unknown filter). */
mms_status mms_preprocess_validate(const mms_preprocess_config *cfg, mms_error *err);

/* Output (width, height) for an input of in_w x in_h: the crop when cropping, else the resize
 * target, else the input size. */
mms_status mms_preprocess_output_size(const mms_preprocess_config *cfg, int in_w, int in_h,
                                      int *out_w, int *out_h, mms_error *err);

/* Preprocess one decoded image into out: (3, out_h, out_w) float32, caller-owned; out_w/out_h
 * must equal mms_preprocess_output_size (MMS_ERR_VALUE otherwise). n_threads parallelises
 * the resize. */
mms_status mms_preprocess_pixels(const mms_preprocess_config *cfg, const mms_image_view *img,
                                 float *out, int out_w, int out_h, int n_threads,
                                 mms_error *err);

/* Resize + center crop only: dst (caller-owned, out_h, out_w, 3) u8 -- the HF intermediate
 * before rescale/normalize. */
mms_status mms_preprocess_pixels_u8(const mms_preprocess_config *cfg, const mms_image_view *img,
                                    const mms_image_view *dst, int n_threads, mms_error *err);

/* Decode (when needed) and preprocess n sources into out: (n, 3, out_h, out_w) float32,
 * caller-owned. Encoded images are decoded in 16-row bands that go straight into the resizer,
 * so no full-size copy of a photo is made. Images run in parallel on mms_get_num_threads()
 * OpenMP threads; a lone image can only parallelise its vertical resize pass (decoding is
 * sequential). Every image must produce out_w x out_h. On failure the message starts with
 * "image <index>" of the first failing image (lowest index) and names its path (or "<bytes>",
 * "<pixels>"); `out` is then partially written. */
mms_status mms_preprocess_batch(const mms_preprocess_config *cfg, const mms_image_source *srcs,
                                int n, float *out, int out_w, int out_h, mms_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MMS_IMAGE_H */
