/* image_decode.c -- PNG (libpng) and JPEG (libjpeg-turbo) to RGB u8, following the rules of
 * Pillow's Image.open(f).convert("RGB") so that decoded pixels equal the reference exactly,
 * through a streaming reader (rows in bands) that the whole-image decode is built on.
 *
 * Both libraries report fatal errors by longjmp. All codec state and buffers live in the
 * heap-allocated reader, and each entry point arms its own setjmp and only returns after a
 * jump, so nothing the cleanup needs is an indeterminate local; close() frees everything. */
#include "image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

/* ================================================================ common helpers ======== */

mms_image_format mms_image_sniff(const uint8_t *data, size_t size) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (data && size >= 8 && memcmp(data, png_sig, 8) == 0) return MMS_IMAGE_FORMAT_PNG;
    if (data && size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return MMS_IMAGE_FORMAT_JPEG;
    return MMS_IMAGE_FORMAT_UNKNOWN;
}

void mms_image_free(mms_image *img) {
    if (!img) return;
    mms_free(img->data);
    img->data = NULL;
    img->width = img->height = 0;
}

mms_image_view mms_image_as_view(const mms_image *img) {
    mms_image_view v = {img->data, img->width, img->height, (size_t)img->width * 3};
    return v;
}

/* Refuse absurd declared sizes before allocating anything; returns 0 when acceptable and
 * writes the reason to msg otherwise. */
static int check_dims(long long w, long long h, char *msg, size_t cap) {
    if (w <= 0 || h <= 0) {
        snprintf(msg, cap, "invalid image size %lldx%lld", w, h);
        return -1;
    }
    if (w > MMS_IMAGE_MAX_SIDE || h > MMS_IMAGE_MAX_SIDE || w * h > MMS_IMAGE_MAX_PIXELS) {
        snprintf(msg, cap, "image size %lldx%lld exceeds the limit (%d per side, %lld pixels)",
                 w, h, MMS_IMAGE_MAX_SIDE, (long long)MMS_IMAGE_MAX_PIXELS);
        return -1;
    }
    return 0;
}

/* Strongest DCT reduction 1/d (d in 8, 4, 2) that keeps ceil(w/d) x ceil(h/d) within opts. */
static int draft_denominator(const mms_decode_opts *opts, int w, int h) {
    if (!opts || !opts->jpeg_draft) return 1;
    for (int d = 8; d > 1; d /= 2) {
        int sw = (w + d - 1) / d, sh = (h + d - 1) / d;
        int s_short = sw < sh ? sw : sh;
        if (sw >= opts->min_width && sh >= opts->min_height && s_short >= opts->min_short_side)
            return d;
    }
    return 1;
}

/* ================================================================ reader ================ */

/* One of the two codecs' state. Lives on the heap, so nothing libpng/libjpeg longjmp over is an
 * automatic variable; each entry point arms its own setjmp before calling into the codec. */
typedef struct jpeg_err {
    struct jpeg_error_mgr mgr; /* first: libjpeg hands callbacks &mgr */
    jmp_buf jump;
    struct mms_image_reader *r;
} jpeg_err;

struct mms_image_reader {
    mms_image_format format;
    int width, height;           /* rows produced                                    */
    int full_width, full_height; /* declared by the file                             */
    int next_row;
    mms_status failed;           /* != MMS_OK after a failure: codec state unusable  */
    char msg[256];
    const uint8_t *data;         /* encoded file (borrowed)                          */
    size_t size, pos;
    /* PNG */
    png_structp png;
    png_infop info;
    int png_ct, png_depth, png_passes;
    size_t png_rowbytes;
    uint8_t *png_buf;            /* one row, or the whole image when Adam7-interlaced */
    int png_buffered;
    uint8_t lut[256 * 3];        /* palette, Pillow's gray ramp past the PLTE entries */
    /* JPEG */
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    int cinfo_ready;
    int cmyk;
    uint8_t *jpeg_row;           /* one CMYK row                                     */
};

/* Records a failure (message already in r->msg) and reports it. */
static mms_status reader_fail(mms_image_reader *r, mms_status code, mms_error *err) {
    if (r->failed == MMS_OK) r->failed = code;
    return mms_error_set(err, r->failed, "%s: %s", r->format == MMS_IMAGE_FORMAT_PNG ? "PNG" : "JPEG",
                         r->msg[0] ? r->msg : "decoding failed");
}

/* ---------------------------------------------------------------- PNG --------------------- */

static void png_read_cb(png_structp png, png_bytep out, size_t n) {
    mms_image_reader *r = (mms_image_reader *)png_get_io_ptr(png);
    if (n > r->size - r->pos) png_error(png, "file is truncated");
    memcpy(out, r->data + r->pos, n);
    r->pos += n;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    mms_image_reader *r = (mms_image_reader *)png_get_error_ptr(png);
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad ICC profile, CRC of ancillary chunks, ...) are what Pillow also tolerates. */
static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* One row of libpng output (after the transforms chosen in png_open) to RGB. */
static void png_row_to_rgb(const mms_image_reader *r, const uint8_t *in, uint8_t *out) {
    int w = r->width;
    switch (r->png_ct) {
    case PNG_COLOR_TYPE_GRAY:
        if (r->png_depth == 16) {
            /* Pillow opens 16-bit gray as mode I; convert("RGB") clamps instead of scaling. */
            for (int x = 0; x < w; x++) {
                unsigned v = ((unsigned)in[2 * x] << 8) | in[2 * x + 1];
                uint8_t g = v > 255 ? 255 : (uint8_t)v;
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = g;
            }
        } else {
            for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[2 * x];
        break;
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) memcpy(out + 3 * x, r->lut + 3 * in[x], 3);
        break;
    case PNG_COLOR_TYPE_RGB:
        memcpy(out, in, (size_t)w * 3);
        break;
    default: /* RGBA: alpha dropped, the colour under transparent pixels is kept */
        for (int x = 0; x < w; x++) memcpy(out + 3 * x, in + 4 * x, 3);
        break;
    }
}

/* Header, transforms and buffers. 0, or -1 with r->msg set, -2 when out of memory. */
static int pngr_open(mms_image_reader *r, int probe_only) {
    /* The IHDR size first: libpng's own message for 0 x 0 or > 2^31 is only "Invalid IHDR data". */
    if (r->size >= 24 && memcmp(r->data + 12, "IHDR", 4) == 0) {
        const uint8_t *d = r->data + 16;
        long long w = ((long long)d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
        long long h = ((long long)d[4] << 24) | (d[5] << 16) | (d[6] << 8) | d[7];
        if (check_dims(w, h, r->msg, sizeof r->msg)) return -1;
    }
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_error_cb, png_warning_cb);
    r->info = r->png ? png_create_info_struct(r->png) : NULL;
    if (!r->png || !r->info) {
        snprintf(r->msg, sizeof r->msg, "cannot create the libpng decoder");
        return -2;
    }
    if (setjmp(png_jmpbuf(r->png))) return -1;

    png_structp png = r->png;
    png_infop info = r->info;
    png_set_read_fn(png, r, png_read_cb);
#ifdef PNG_HANDLE_AS_UNKNOWN_SUPPORTED
    /* Ancillary chunks change nothing in Pillow's RGB conversion (gamma, ICC, text are ignored),
     * so they are skipped unread: libpng would otherwise allocate a text / ICC chunk's declared
     * length up front (a 44-byte file declaring a 1.7 GB iTXt made it malloc 1.7 GB). */
    static const png_byte skip[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
                                   "sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0tRNS\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
#endif
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if (check_dims(w, h, r->msg, sizeof r->msg)) return -1;
    r->width = r->full_width = (int)w;
    r->height = r->full_height = (int)h;
    if (probe_only) return 0;

    for (int i = 0; i < 256; i++) r->lut[3 * i] = r->lut[3 * i + 1] = r->lut[3 * i + 2] = (uint8_t)i;
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int n_pal = 0;
        if (!png_get_PLTE(png, info, &pal, &n_pal)) {
            snprintf(r->msg, sizeof r->msg, "palette image without a PLTE chunk");
            return -1;
        }
        for (int i = 0; i < n_pal && i < 256; i++) {
            r->lut[3 * i] = pal[i].red;
            r->lut[3 * i + 1] = pal[i].green;
            r->lut[3 * i + 2] = pal[i].blue;
        }
        png_set_packing(png); /* 1/2/4-bit indices -> one byte each, unscaled */
    } else if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png); /* scales to 0..255 like Pillow's 1 / L;2 / L;4 */
    }
    /* 16-bit RGB(A)/LA keep the high byte (Pillow's RGB;16B etc.); 16-bit gray is clamped in
     * png_row_to_rgb, so it stays 16-bit. tRNS is never expanded: alpha would be dropped anyway. */
    if (depth == 16 && ct != PNG_COLOR_TYPE_GRAY) png_set_strip_16(png);
    r->png_passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    r->png_ct = ct;
    r->png_depth = png_get_bit_depth(png, info);
    r->png_rowbytes = png_get_rowbytes(png, info);
    r->png_buf = (uint8_t *)mms_malloc(r->png_passes > 1 ? r->png_rowbytes * h : r->png_rowbytes);
    if (!r->png_buf) {
        snprintf(r->msg, sizeof r->msg, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        return -2;
    }
    return 0;
}

static int pngr_read_rows(mms_image_reader *r, uint8_t *dst, size_t stride, int n_rows) {
    if (setjmp(png_jmpbuf(r->png))) return -1;
    if (r->png_passes > 1 && !r->png_buffered) {
        /* Adam7 needs every pass before any row is final. */
        for (int pass = 0; pass < r->png_passes; pass++)
            for (int y = 0; y < r->height; y++)
                png_read_row(r->png, r->png_buf + (size_t)y * r->png_rowbytes, NULL);
        r->png_buffered = 1;
    }
    for (int i = 0; i < n_rows; i++) {
        const uint8_t *row = r->png_buf;
        if (r->png_buffered)
            row += (size_t)r->next_row * r->png_rowbytes;
        else
            png_read_row(r->png, r->png_buf, NULL);
        png_row_to_rgb(r, row, dst + (size_t)i * stride);
        r->next_row++;
    }
    /* Trailing chunks after the image data are not read (nor checked), as in Pillow. */
    return 0;
}

/* ---------------------------------------------------------------- JPEG -------------------- */

static void jpeg_error_exit_cb(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->r->msg);
    if (cinfo->err->msg_code == JERR_OUT_OF_MEMORY) e->r->failed = MMS_ERR_NOMEM;
    longjmp(e->jump, 1);
}

/* Warnings are ignored (Pillow ignores them too: "Corrupt JPEG data: N extraneous bytes"),
 * except running out of data: libjpeg would pad the image with gray, Pillow raises
 * "image file is truncated". Trace messages (level > 0) are dropped. */
static void jpeg_emit_message_cb(j_common_ptr cinfo, int level) {
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->r->msg, sizeof e->r->msg, "file is truncated (premature end of JPEG data)");
        longjmp(e->jump, 1);
    }
    if (level == -1) cinfo->err->num_warnings++;
}

static void jpeg_output_message_cb(j_common_ptr cinfo) { (void)cinfo; }

/* Pillow's CMYK -> RGB after its "CMYK;I" (inverted, Adobe) unpacking of libjpeg's output. */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        int nk = in[3]; /* 255 - (255 - k) */
        for (int c = 0; c < 3; c++) {
            int t = (255 - in[c]) * nk + 128;
            int v = nk - (((t >> 8) + t) >> 8);
            out[c] = (uint8_t)(v < 0 ? 0 : v);
        }
    }
}

static int jpegr_open(mms_image_reader *r, const mms_decode_opts *opts, int probe_only) {
    struct jpeg_decompress_struct *ci = &r->cinfo;
    ci->err = jpeg_std_error(&r->jerr.mgr);
    r->jerr.mgr.error_exit = jpeg_error_exit_cb;
    r->jerr.mgr.emit_message = jpeg_emit_message_cb;
    r->jerr.mgr.output_message = jpeg_output_message_cb;
    r->jerr.r = r;
    if (setjmp(r->jerr.jump)) return -1;

    jpeg_create_decompress(ci);
    r->cinfo_ready = 1;
    jpeg_mem_src(ci, r->data, (unsigned long)r->size);
    jpeg_read_header(ci, TRUE);
    if (check_dims(ci->image_width, ci->image_height, r->msg, sizeof r->msg)) return -1;
    r->width = r->full_width = (int)ci->image_width;
    r->height = r->full_height = (int)ci->image_height;
    if (probe_only) return 0;

    r->cmyk = ci->num_components == 4;
    if (ci->num_components != 1 && ci->num_components != 3 && !r->cmyk) {
        snprintf(r->msg, sizeof r->msg, "unsupported number of components (%d)", ci->num_components);
        return -1;
    }
    /* libjpeg turns gray, YCbCr and RGB into RGB itself (gray replicated, as Pillow's L->RGB);
     * YCCK/CMYK come out as CMYK and are converted like Pillow does. Pillow's defaults: ISLOW
     * IDCT and fancy upsampling (also kept in draft mode, which only adds DCT scaling). */
    ci->out_color_space = r->cmyk ? JCS_CMYK : JCS_RGB;
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    ci->scale_num = 1;
    ci->scale_denom = (unsigned)draft_denominator(opts, r->full_width, r->full_height);
    jpeg_start_decompress(ci);
    r->width = (int)ci->output_width;
    r->height = (int)ci->output_height;
    if (r->cmyk && !(r->jpeg_row = (uint8_t *)mms_malloc((size_t)r->width * 4))) {
        snprintf(r->msg, sizeof r->msg, "out of memory");
        return -2;
    }
    return 0;
}

static int jpegr_read_rows(mms_image_reader *r, uint8_t *dst, size_t stride, int n_rows) {
    if (setjmp(r->jerr.jump)) return -1;
    for (int i = 0; i < n_rows;) {
        JSAMPROW rows[8];
        int want = n_rows - i < 8 ? n_rows - i : 8;
        if (r->cmyk) {
            rows[0] = r->jpeg_row;
            want = 1;
        } else {
            for (int k = 0; k < want; k++) rows[k] = dst + (size_t)(i + k) * stride;
        }
        int got = (int)jpeg_read_scanlines(&r->cinfo, rows, (JDIMENSION)want);
        if (got <= 0) {
            snprintf(r->msg, sizeof r->msg, "file is truncated");
            return -1;
        }
        if (r->cmyk) cmyk_row_to_rgb(r->jpeg_row, dst + (size_t)i * stride, r->width);
        i += got;
        r->next_row += got;
    }
    return 0;
}

/* ---------------------------------------------------------------- entry points ------------ */

static mms_status reader_open(const uint8_t *data, size_t size, const mms_decode_opts *opts,
                              int probe_only, mms_image_reader **out, mms_error *err) {
    *out = NULL;
    if (!data || size == 0)
        return mms_error_set(err, MMS_ERR_FORMAT, "empty input (0 bytes), not an image");
    mms_image_format fmt = mms_image_sniff(data, size);
    if (fmt == MMS_IMAGE_FORMAT_UNKNOWN) {
        char hex[3 * 8 + 1] = {0};
        size_t n = size < 8 ? size : 8;
        for (size_t i = 0; i < n; i++) snprintf(hex + 3 * i, 4, "%02x ", data[i]);
        hex[3 * n - 1] = '\0';
        return mms_error_set(err, MMS_ERR_FORMAT,
                             "unknown image format (not PNG or JPEG; %zu bytes starting %s)", size, hex);
    }
    mms_image_reader *r = (mms_image_reader *)mms_calloc(1, sizeof *r);
    if (!r) return mms_error_set(err, MMS_ERR_NOMEM, "image reader: out of memory");
    r->format = fmt;
    r->data = data;
    r->size = size;
    int rc = fmt == MMS_IMAGE_FORMAT_PNG ? pngr_open(r, probe_only) : jpegr_open(r, opts, probe_only);
    if (rc != 0) {
        mms_status st = reader_fail(r, rc == -2 ? MMS_ERR_NOMEM : MMS_ERR_FORMAT, err);
        mms_image_reader_close(r);
        return st;
    }
    *out = r;
    return MMS_OK;
}

mms_status mms_image_reader_open(const uint8_t *data, size_t size, const mms_decode_opts *opts,
                                 mms_image_reader **out, mms_error *err) {
    return reader_open(data, size, opts, 0, out, err);
}

void mms_image_reader_size(const mms_image_reader *r, int *width, int *height, int *full_width,
                           int *full_height) {
    if (width) *width = r->width;
    if (height) *height = r->height;
    if (full_width) *full_width = r->full_width;
    if (full_height) *full_height = r->full_height;
}

mms_status mms_image_reader_read(mms_image_reader *r, uint8_t *dst, size_t stride, int n_rows,
                                 mms_error *err) {
    if (r->failed != MMS_OK) return reader_fail(r, r->failed, err);
    if (n_rows < 0 || n_rows > r->height - r->next_row || stride < (size_t)r->width * 3)
        return mms_error_set(err, MMS_ERR_VALUE, "image reader: cannot read %d rows at row %d of %d",
                             n_rows, r->next_row, r->height);
    int rc = r->format == MMS_IMAGE_FORMAT_PNG ? pngr_read_rows(r, dst, stride, n_rows)
                                               : jpegr_read_rows(r, dst, stride, n_rows);
    return rc != 0 ? reader_fail(r, MMS_ERR_FORMAT, err) : MMS_OK;
}

void mms_image_reader_close(mms_image_reader *r) {
    if (!r) return;
    if (r->png || r->info) png_destroy_read_struct(&r->png, r->info ? &r->info : NULL, NULL);
    if (r->cinfo_ready) jpeg_destroy_decompress(&r->cinfo);
    mms_free(r->png_buf);
    mms_free(r->jpeg_row);
    mms_free(r);
}

mms_status mms_image_decode_memory(const uint8_t *data, size_t size, const mms_decode_opts *opts,
                                   mms_image *out, mms_error *err) {
    mms_image_reader *r = NULL;
    mms_status st = reader_open(data, size, opts, 0, &r, err);
    if (st != MMS_OK) return st;
    uint8_t *px = (uint8_t *)mms_malloc((size_t)r->width * r->height * 3);
    if (!px) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "out of memory for a %dx%d image", r->width, r->height);
    } else {
        st = mms_image_reader_read(r, px, (size_t)r->width * 3, r->height, err);
    }
    if (st == MMS_OK) {
        out->data = px;
        out->width = r->width;
        out->height = r->height;
    } else {
        mms_free(px);
    }
    mms_image_reader_close(r);
    return st;
}

mms_status mms_image_probe_memory(const uint8_t *data, size_t size, int *width, int *height,
                                  mms_error *err) {
    mms_image_reader *r = NULL;
    mms_status st = reader_open(data, size, NULL, 1, &r, err);
    if (st != MMS_OK) return st;
    *width = r->full_width;
    *height = r->full_height;
    mms_image_reader_close(r);
    return MMS_OK;
}

mms_status mms_image_read_file(const char *path, uint8_t **buf, size_t *size, mms_error *err) {
    if (!path) return mms_error_set(err, MMS_ERR_VALUE, "image path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return mms_error_set(err, e == ENOENT ? MMS_ERR_NOT_FOUND : MMS_ERR_IO,
                             "cannot open image '%s': %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return mms_error_set(err, MMS_ERR_IO, "cannot read image '%s': not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *p = (uint8_t *)mms_malloc(n ? n : 1);
    if (!p) {
        fclose(f);
        return mms_error_set(err, MMS_ERR_NOMEM, "cannot read image '%s': out of memory (%zu bytes)",
                             path, n);
    }
    size_t got = fread(p, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        mms_free(p);
        return mms_error_set(err, MMS_ERR_IO, "cannot read image '%s': read error", path);
    }
    *buf = p;
    *size = n;
    return MMS_OK;
}

mms_status mms_image_decode_file(const char *path, const mms_decode_opts *opts, mms_image *out,
                                 mms_error *err) {
    if (!path) return mms_error_set(err, MMS_ERR_VALUE, "image path is NULL");
    uint8_t *buf = NULL;
    size_t size = 0;
    mms_status st = mms_image_read_file(path, &buf, &size, err);
    if (st != MMS_OK) return st;
    st = mms_image_decode_memory(buf, size, opts, out, err);
    mms_free(buf);
    if (st != MMS_OK) mms_error_prefix(err, "'%s'", path);
    return st;
}
