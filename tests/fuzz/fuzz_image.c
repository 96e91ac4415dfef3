/* fuzz_image.c -- PNG / JPEG decoding and preprocessing from memory (csrc/image.h):
 * mms_image_sniff, mms_image_probe_memory, mms_image_decode_memory, the streaming reader, and
 * mms_preprocess_pixels / mms_preprocess_batch with a CLIP-like config to a small output.
 *
 * Input: byte 0 = options (bit 0 JPEG draft decode, bits 1-3 resample filter, bit 4 exact
 * resize instead of shortest edge, bit 5 no center crop, bits 6-7 reader band height), then
 * the encoded image. Images declaring more than FUZZ_MAX_PIXELS are only probed: the library
 * accepts up to 2^28 pixels by design, which is too slow to decode thousands of times a second.
 *
 * Invariants checked: probe and decode agree on the size (without draft); the streaming
 * reader produces the same rows as the whole-image decode, refuses to read past the end and
 * keeps failing after a failure; batch preprocessing of the encoded bytes equals
 * preprocessing the decoded pixels. */
#include <math.h>

#include "fuzz_util.h"
#include "image.h"

#define FUZZ_MAX_PIXELS (1 << 20)
#define FUZZ_OUT 32 /* output side */

/* The whole image through the reader in bands of `band` rows; returns the status and, on
 * success, the pixels in *out (malloc'd, w*h*3). */
static mms_status read_streaming(const uint8_t *data, size_t size, const mms_decode_opts *opts, int band,
                                 uint8_t **out, int *w, int *h) {
    mms_image_reader *r = NULL;
    mms_error err;
    *out = NULL;
    mms_status st = mms_image_reader_open(data, size, opts, &r, &err);
    if (st != MMS_OK) {
        FUZZ_CHECK(r == NULL, "failed open returned a reader");
        return st;
    }
    int fw, fh;
    mms_image_reader_size(r, w, h, &fw, &fh);
    FUZZ_CHECK(*w > 0 && *h > 0 && *w <= fw && *h <= fh, "reader size %dx%d of %dx%d", *w, *h, fw, fh);
    size_t stride = (size_t)*w * 3 + 5; /* a padded stride: rows must land where asked */
    uint8_t *buf = malloc(stride * (size_t)*h);
    if (!buf) FUZZ_DIE("out of memory");
    int y = 0;
    while (y < *h && st == MMS_OK) {
        int n = *h - y < band ? *h - y : band;
        st = mms_image_reader_read(r, buf + (size_t)y * stride, stride, n, &err);
        y += n;
    }
    if (st == MMS_OK) {
        /* past the end: an error, not a crash */
        FUZZ_CHECK(mms_image_reader_read(r, buf, stride, 1, &err) == MMS_ERR_VALUE, "read past the last row");
        uint8_t *px = malloc((size_t)*w * *h * 3);
        if (!px) FUZZ_DIE("out of memory");
        for (int i = 0; i < *h; i++) memcpy(px + (size_t)i * *w * 3, buf + (size_t)i * stride, (size_t)*w * 3);
        *out = px;
    } else {
        FUZZ_CHECK(mms_image_reader_read(r, buf, stride, 0, &err) != MMS_OK, "reader recovered after a failure");
    }
    free(buf);
    mms_image_reader_close(r);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t opt = data[0];
    uint8_t *img = fuzz_dup(data + 1, size - 1); /* exact size: overreads are caught */
    size--;
    mms_error err;
    mms_image_format fmt = mms_image_sniff(img, size);
    int pw = 0, ph = 0;
    mms_status st = mms_image_probe_memory(img, size, &pw, &ph, &err);
    FUZZ_LOG("probe: %d %s (%dx%d)", st, st ? err.msg : "", pw, ph);
    FUZZ_CHECK(st != MMS_OK || fmt != MMS_IMAGE_FORMAT_UNKNOWN, "probe accepted an unknown format");
    if (st != MMS_OK || (int64_t)pw * ph > FUZZ_MAX_PIXELS) {
        free(img);
        return 0;
    }
    mms_decode_opts opts = {0};
    if (opt & 1) {
        opts.jpeg_draft = 1;
        opts.min_width = opts.min_height = FUZZ_OUT;
    }
    mms_image full = {0};
    st = mms_image_decode_memory(img, size, &opts, &full, &err);
    if (st == MMS_OK && !opts.jpeg_draft)
        FUZZ_CHECK(full.width == pw && full.height == ph, "decoded %dx%d, probed %dx%d", full.width, full.height, pw, ph);
    const int bands[4] = {1, 3, 16, 1 << 20};
    uint8_t *streamed = NULL;
    int sw = 0, sh = 0;
    mms_status st2 = read_streaming(img, size, &opts, bands[opt >> 6], &streamed, &sw, &sh);
    FUZZ_CHECK((st == MMS_OK) == (st2 == MMS_OK), "decode %d vs streaming %d", st, st2);
    if (st == MMS_OK) {
        FUZZ_CHECK(sw == full.width && sh == full.height, "streaming size differs");
        FUZZ_CHECK(memcmp(streamed, full.data, (size_t)sw * sh * 3) == 0, "streaming rows differ from the decode");
    }
    free(streamed);

    if (st == MMS_OK && !opts.jpeg_draft) {
        mms_preprocess_config cfg = mms_preprocess_default_config();
        cfg.resample = (mms_resample)((opt >> 1) & 7); /* 6, 7: invalid, must be refused */
        cfg.resize_mode = (opt & 16) ? MMS_RESIZE_EXACT : MMS_RESIZE_SHORTEST_EDGE;
        cfg.shortest_edge = FUZZ_OUT;
        cfg.height = FUZZ_OUT;
        cfg.width = FUZZ_OUT - 7;
        cfg.do_center_crop = !(opt & 32);
        cfg.crop_height = cfg.crop_width = FUZZ_OUT;
        int ow = 0, oh = 0;
        if (mms_preprocess_validate(&cfg, &err) == MMS_OK &&
            mms_preprocess_output_size(&cfg, full.width, full.height, &ow, &oh, &err) == MMS_OK &&
            (int64_t)ow * oh <= 4 * FUZZ_MAX_PIXELS) {
            FUZZ_CHECK(ow > 0 && oh > 0, "output size %dx%d", ow, oh);
            size_t n = (size_t)3 * ow * oh;
            float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
            if (!a || !b) FUZZ_DIE("out of memory");
            mms_image_view v = mms_image_as_view(&full);
            st = mms_preprocess_pixels(&cfg, &v, a, ow, oh, 1, &err);
            FUZZ_CHECK(st == MMS_OK, "preprocess_pixels on a decoded image: %s", err.msg);
            for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(a[i]), "non-finite output at %zu", i);
            mms_image_source src = {.kind = MMS_IMAGE_SOURCE_BYTES, .data = img, .size = size};
            st = mms_preprocess_batch(&cfg, &src, 1, b, ow, oh, &err);
            FUZZ_CHECK(st == MMS_OK, "preprocess_batch on bytes that decode: %s", err.msg);
            FUZZ_CHECK(memcmp(a, b, n * sizeof(float)) == 0, "batch (streaming) != pixels path");
            free(a);
            free(b);
        }
    }
    mms_image_free(&full);
    free(img);
    return 0;
}
