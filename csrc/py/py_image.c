/* py_image.c -- mmsuite._C.decode_image / resize_image / preprocess, the Python face of
 * csrc/image.h. Converts arguments (paths, bytes-likes, uint8 (H, W, 3) arrays read in place
 * through the buffer protocol), releases the GIL around the C calls and raises mms_error
 * values. Config normalisation from preprocessor_config.json is mmsuite/image_processor.py's job. */
#include "py_common.h"

#include <numpy/arrayobject.h>
#include <string.h>

#include "../image.h"

#define CAPSULE_NAME "mmsuite.image_buffer"

/* ================================================================ sources =============== */

/* What keeps one source's memory alive while the GIL is released. */
typedef struct source_hold {
    PyObject *path; /* bytes (file system encoding) or NULL */
    Py_buffer view; /* view.obj != NULL when a buffer is held */
} source_hold;

static void hold_release(source_hold *h) {
    Py_CLEAR(h->path);
    if (h->view.obj) PyBuffer_Release(&h->view);
    h->view.obj = NULL;
}

static int is_uint8_format(const char *f) {
    if (!f) return 1; /* no format requested/returned means unsigned bytes */
    if (*f == '<' || *f == '>' || *f == '=' || *f == '|' || *f == '@') f++;
    return strcmp(f, "B") == 0;
}

/* Fills *src from a str / os.PathLike (file path), a 1-D bytes-like (encoded file) or, when
 * allow_pixels, a C-contiguous uint8 (H, W, 3) buffer (borrowed in place). `what` names the
 * argument in errors (e.g. "sources[3]"). Returns 0, or -1 with a Python exception set. */
static int source_from_object(PyObject *o, const char *what, int allow_pixels, source_hold *h,
                              mms_image_source *src) {
    memset(src, 0, sizeof *src);
    h->path = NULL;
    h->view.obj = NULL;
    if (PyUnicode_Check(o) || PyObject_HasAttrString(o, "__fspath__")) {
        if (!PyUnicode_FSConverter(o, &h->path)) return -1;
        src->kind = MMS_IMAGE_SOURCE_PATH;
        src->path = PyBytes_AS_STRING(h->path);
        return 0;
    }
    if (!PyObject_CheckBuffer(o)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a path (str / os.PathLike), encoded bytes or a uint8 (H, W, 3) "
                     "array, got %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(o, &h->view, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        if (PyObject_GetBuffer(o, &h->view, PyBUF_FULL_RO) < 0) return -1;
    }
    Py_buffer *v = &h->view;
    if (v->ndim <= 1 && v->itemsize == 1 && PyBuffer_IsContiguous(v, 'C')) {
        src->kind = MMS_IMAGE_SOURCE_BYTES;
        src->data = (const uint8_t *)v->buf;
        src->size = (size_t)v->len;
        return 0;
    }
    if (!allow_pixels) {
        PyErr_Format(PyExc_ValueError, "%s: expected a path or contiguous encoded bytes (1-D, 1 byte "
                     "per item), got a buffer with %d dimensions and item size %zd",
                     what, v->ndim, v->itemsize);
        goto fail;
    }
    if (v->ndim != 3 || !is_uint8_format(v->format) || v->itemsize != 1 || v->shape[2] != 3) {
        if (v->ndim == 3)
            PyErr_Format(PyExc_ValueError, "%s: expected a uint8 (H, W, 3) RGB array, got format '%s' "
                         "shape (%zd, %zd, %zd)", what, v->format ? v->format : "B", v->shape[0],
                         v->shape[1], v->shape[2]);
        else
            PyErr_Format(PyExc_ValueError, "%s: expected a uint8 (H, W, 3) RGB array, got %d "
                         "dimensions (format '%s')", what, v->ndim, v->format ? v->format : "B");
        goto fail;
    }
    if (!PyBuffer_IsContiguous(v, 'C')) {
        PyErr_Format(PyExc_ValueError, "%s: the uint8 (H, W, 3) array must be C-contiguous (use "
                     "numpy.ascontiguousarray)", what);
        goto fail;
    }
    if (v->shape[0] <= 0 || v->shape[1] <= 0 || v->shape[0] > MMS_IMAGE_MAX_SIDE ||
        v->shape[1] > MMS_IMAGE_MAX_SIDE) {
        PyErr_Format(PyExc_ValueError, "%s: invalid image shape (%zd, %zd, 3)", what, v->shape[0],
                     v->shape[1]);
        goto fail;
    }
    src->kind = MMS_IMAGE_SOURCE_PIXELS;
    src->pixels.data = (uint8_t *)v->buf; /* only read */
    src->pixels.width = (int)v->shape[1];
    src->pixels.height = (int)v->shape[0];
    src->pixels.stride = (size_t)v->shape[1] * 3;
    return 0;
fail:
    hold_release(h);
    return -1;
}

/* ================================================================ decode_image ========== */

static void capsule_free(PyObject *cap) { mms_free(PyCapsule_GetPointer(cap, CAPSULE_NAME)); }

/* (H, W, 3) uint8 array viewing img->data; the array's base capsule owns and frees it.
 * On failure img->data is freed too. */
static PyObject *wrap_image(mms_image *img) {
    PyObject *cap = PyCapsule_New(img->data, CAPSULE_NAME, capsule_free);
    if (!cap) {
        mms_image_free(img);
        return NULL;
    }
    npy_intp dims[3] = {img->height, img->width, 3};
    PyObject *arr = PyArray_SimpleNewFromData(3, dims, NPY_UINT8, img->data);
    if (!arr) {
        Py_DECREF(cap); /* frees the pixels */
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)arr, cap) < 0) { /* steals cap */
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

static PyObject *py_decode_image(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"src", NULL};
    PyObject *o;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:decode_image", kwlist, &o)) return NULL;
    source_hold h;
    mms_image_source src;
    if (source_from_object(o, "decode_image: src", 0, &h, &src) < 0) return NULL;
    mms_image img = {0};
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = src.kind == MMS_IMAGE_SOURCE_PATH ? mms_image_decode_file(src.path, NULL, &img, &err)
                                           : mms_image_decode_memory(src.data, src.size, NULL, &img, &err);
    Py_END_ALLOW_THREADS
    hold_release(&h);
    if (st) return mms_py_raise(&err);
    return wrap_image(&img);
}

/* ================================================================ resize_image ========== */

static PyObject *py_resize_image(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"image", "width", "height", "resample", NULL};
    PyObject *o;
    int width, height, resample = MMS_RESAMPLE_BICUBIC;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oii|i:resize_image", kwlist, &o, &width,
                                     &height, &resample))
        return NULL;
    if (width <= 0 || height <= 0 || width > MMS_IMAGE_MAX_SIDE || height > MMS_IMAGE_MAX_SIDE) {
        PyErr_Format(PyExc_ValueError, "resize_image: width and height must be in 1..%d, got %dx%d",
                     MMS_IMAGE_MAX_SIDE, width, height);
        return NULL;
    }
    if ((int64_t)width * height > MMS_IMAGE_MAX_PIXELS) { /* refused before the output is allocated */
        PyErr_Format(PyExc_ValueError, "resize_image: %dx%d exceeds the limit of %lld pixels", width, height,
                     (long long)MMS_IMAGE_MAX_PIXELS);
        return NULL;
    }
    if (resample < 0 || resample > MMS_RESAMPLE_HAMMING) {
        PyErr_Format(PyExc_ValueError, "resize_image: resample must be a PIL filter number 0..5, got %d",
                     resample);
        return NULL;
    }
    if (PyUnicode_Check(o) || !PyObject_CheckBuffer(o) || PyBytes_Check(o) || PyByteArray_Check(o)) {
        PyErr_SetString(PyExc_ValueError, "resize_image: image must be a uint8 (H, W, 3) array");
        return NULL;
    }
    source_hold h;
    mms_image_source src;
    if (source_from_object(o, "resize_image: image", 1, &h, &src) < 0) return NULL;
    if (src.kind != MMS_IMAGE_SOURCE_PIXELS) {
        hold_release(&h);
        PyErr_SetString(PyExc_ValueError, "resize_image: image must be a uint8 (H, W, 3) array");
        return NULL;
    }
    npy_intp dims[3] = {height, width, 3};
    PyObject *out = PyArray_SimpleNew(3, dims, NPY_UINT8);
    if (!out) {
        hold_release(&h);
        return NULL;
    }
    mms_image_view dst = {(uint8_t *)PyArray_DATA((PyArrayObject *)out), width, height,
                          (size_t)width * 3};
    mms_error err = {MMS_OK, ""};
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_image_resize(&src.pixels, &dst, (mms_resample)resample, mms_get_num_threads(), &err);
    Py_END_ALLOW_THREADS
    hold_release(&h);
    if (st) {
        Py_DECREF(out);
        return mms_py_raise(&err);
    }
    return out;
}

/* ================================================================ preprocess ============ */

static int cfg_int(PyObject *v, const char *key, int *out) {
    if (PyBool_Check(v) || !PyLong_Check(v)) {
        PyErr_Format(PyExc_TypeError, "preprocess: config['%s'] must be an int, got %.100s", key,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (x < -2147483647L || x > 2147483647L) {
        PyErr_Format(PyExc_ValueError, "preprocess: config['%s'] is out of range", key);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int cfg_bool(PyObject *v, int *out) {
    int b = PyObject_IsTrue(v);
    if (b < 0) return -1;
    *out = b;
    return 0;
}

/* A number or a sequence of 3 numbers (HF allows a scalar mean/std for all channels). */
static int cfg_float3(PyObject *v, const char *key, float out[3]) {
    if (PyFloat_Check(v) || PyLong_Check(v)) {
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) return -1;
        out[0] = out[1] = out[2] = (float)d;
        return 0;
    }
    PyObject *seq = PySequence_Fast(v, "");
    if (!seq || PySequence_Fast_GET_SIZE(seq) != 3) {
        Py_XDECREF(seq);
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "preprocess: config['%s'] must be a number or 3 numbers", key);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        double d = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (d == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = (float)d; /* HF: np.array(mean, dtype=float32) */
    }
    Py_DECREF(seq);
    return 0;
}

/* config dict -> C config, starting from the CLIP defaults; None keeps the default. */
static int parse_config(PyObject *d, mms_preprocess_config *cfg) {
    *cfg = mms_preprocess_default_config();
    if (d == Py_None) return 0;
    if (!PyDict_Check(d)) {
        PyErr_Format(PyExc_TypeError, "preprocess: config must be a dict, got %.100s", Py_TYPE(d)->tp_name);
        return -1;
    }
    PyObject *key, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &v)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!k) {
            PyErr_SetString(PyExc_TypeError, "preprocess: config keys must be str");
            return -1;
        }
        if (v == Py_None) continue;
        int rc = 0, tmp = 0;
        if (!strcmp(k, "do_resize")) rc = cfg_bool(v, &cfg->do_resize);
        else if (!strcmp(k, "resize_mode")) {
            const char *m = PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
            if (m && !strcmp(m, "shortest_edge")) cfg->resize_mode = MMS_RESIZE_SHORTEST_EDGE;
            else if (m && !strcmp(m, "exact")) cfg->resize_mode = MMS_RESIZE_EXACT;
            else {
                PyErr_SetString(PyExc_ValueError,
                                "preprocess: config['resize_mode'] must be 'shortest_edge' or 'exact'");
                return -1;
            }
        } else if (!strcmp(k, "shortest_edge")) rc = cfg_int(v, k, &cfg->shortest_edge);
        else if (!strcmp(k, "height")) rc = cfg_int(v, k, &cfg->height);
        else if (!strcmp(k, "width")) rc = cfg_int(v, k, &cfg->width);
        else if (!strcmp(k, "resample")) {
            rc = cfg_int(v, k, &tmp);
            cfg->resample = (mms_resample)tmp;
        } else if (!strcmp(k, "do_center_crop")) rc = cfg_bool(v, &cfg->do_center_crop);
        else if (!strcmp(k, "crop_height")) rc = cfg_int(v, k, &cfg->crop_height);
        else if (!strcmp(k, "crop_width")) rc = cfg_int(v, k, &cfg->crop_width);
        else if (!strcmp(k, "do_rescale")) rc = cfg_bool(v, &cfg->do_rescale);
        else if (!strcmp(k, "rescale_factor")) {
            cfg->rescale_factor = PyFloat_AsDouble(v);
            rc = (cfg->rescale_factor == -1.0 && PyErr_Occurred()) ? -1 : 0;
        } else if (!strcmp(k, "do_normalize")) rc = cfg_bool(v, &cfg->do_normalize);
        else if (!strcmp(k, "image_mean")) rc = cfg_float3(v, k, cfg->image_mean);
        else if (!strcmp(k, "image_std")) rc = cfg_float3(v, k, cfg->image_std);
        else if (!strcmp(k, "do_convert_rgb")) continue; /* decoded images are always RGB */
        else if (!strcmp(k, "jpeg_draft")) rc = cfg_bool(v, &cfg->jpeg_draft);
        else {
            PyErr_Format(PyExc_ValueError, "preprocess: unknown config key '%s'", k);
            return -1;
        }
        if (rc < 0) return -1;
    }
    mms_error err = {MMS_OK, ""};
    if (mms_preprocess_validate(cfg, &err)) {
        mms_py_raise(&err);
        return -1;
    }
    return 0;
}

/* Output size when it depends on the image (no crop, no exact resize): from the first one. */
static mms_status first_image_size(const mms_image_source *src, int *w, int *h, mms_error *err) {
    if (src->kind == MMS_IMAGE_SOURCE_PIXELS) {
        *w = src->pixels.width;
        *h = src->pixels.height;
        return MMS_OK;
    }
    if (src->kind == MMS_IMAGE_SOURCE_BYTES) {
        mms_status st = mms_image_probe_memory(src->data, src->size, w, h, err);
        if (st) mms_error_prefix(err, "image 0 (<bytes>)");
        return st;
    }
    uint8_t *data = NULL;
    size_t size = 0;
    mms_status st = mms_image_read_file(src->path, &data, &size, err);
    if (st) {
        mms_error_prefix(err, "image 0");
        return st;
    }
    st = mms_image_probe_memory(data, size, w, h, err);
    mms_free(data);
    if (st) mms_error_prefix(err, "image 0 ('%s')", src->path);
    return st;
}

static PyObject *py_preprocess(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *kwlist[] = {"sources", "config", NULL};
    PyObject *sources_o, *config_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:preprocess", kwlist, &sources_o, &config_o))
        return NULL;
    mms_preprocess_config cfg;
    if (parse_config(config_o, &cfg) < 0) return NULL;
    if (PyUnicode_Check(sources_o) || PyBytes_Check(sources_o) || PyObject_CheckBuffer(sources_o)) {
        PyErr_SetString(PyExc_TypeError, "preprocess: sources must be a list of images");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(sources_o, "preprocess: sources must be a list of images");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0 || n > 1000000) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, n == 0 ? "preprocess: empty batch (sources is empty)"
                                                 : "preprocess: too many sources");
        return NULL;
    }
    PyObject *out = NULL;
    source_hold *holds = (source_hold *)PyMem_Calloc((size_t)n, sizeof(source_hold));
    mms_image_source *srcs = (mms_image_source *)PyMem_Calloc((size_t)n, sizeof(mms_image_source));
    Py_ssize_t n_held = 0;
    if (!holds || !srcs) {
        PyErr_NoMemory();
        goto done;
    }
    for (; n_held < n; n_held++) {
        char what[64];
        snprintf(what, sizeof what, "preprocess: sources[%zd]", n_held);
        if (source_from_object(PySequence_Fast_GET_ITEM(seq, n_held), what, 1, &holds[n_held],
                               &srcs[n_held]) < 0)
            goto done;
    }
    mms_error err = {MMS_OK, ""};
    int out_w = cfg.crop_width, out_h = cfg.crop_height;
    if (!cfg.do_center_crop) {
        int in_w = 0, in_h = 0;
        mms_status st;
        Py_BEGIN_ALLOW_THREADS
        st = first_image_size(&srcs[0], &in_w, &in_h, &err);
        if (!st) st = mms_preprocess_output_size(&cfg, in_w, in_h, &out_w, &out_h, &err);
        Py_END_ALLOW_THREADS
        if (st) {
            mms_py_raise(&err);
            goto done;
        }
    }
    npy_intp dims[4] = {n, 3, out_h, out_w};
    out = PyArray_SimpleNew(4, dims, NPY_FLOAT32);
    if (!out) goto done;
    float *dst = (float *)PyArray_DATA((PyArrayObject *)out);
    mms_status st;
    Py_BEGIN_ALLOW_THREADS
    st = mms_preprocess_batch(&cfg, srcs, (int)n, dst, out_w, out_h, &err);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_CLEAR(out);
        mms_py_raise(&err);
    }
done:
    for (Py_ssize_t i = 0; i < n_held; i++) hold_release(&holds[i]);
    PyMem_Free(holds);
    PyMem_Free(srcs);
    Py_DECREF(seq);
    return out;
}

static PyObject *py_image_set_simd(PyObject *self, PyObject *arg) {
    (void)self;
    long level = PyLong_AsLong(arg);
    if (level == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLong(mms_image_resize_set_simd((int)(level < 0 ? 0 : level > 2 ? 2 : level)));
}

static PyMethodDef image_methods[] = {
    {"decode_image", (PyCFunction)(void (*)(void))py_decode_image, METH_VARARGS | METH_KEYWORDS,
     "decode_image(src) -> uint8 (H, W, 3) RGB array.\n"
     "src: file path (str / os.PathLike) or encoded PNG/JPEG bytes (bytes, bytearray, memoryview).\n"
     "Pixels equal PIL Image.open(src).convert('RGB'); the array wraps the decoder's buffer."},
    {"resize_image", (PyCFunction)(void (*)(void))py_resize_image, METH_VARARGS | METH_KEYWORDS,
     "resize_image(image, width, height, resample=3) -> new uint8 (height, width, 3) array,\n"
     "bit-exact with PIL Image.resize((width, height), resample) (PIL filter numbering)."},
    {"preprocess", (PyCFunction)(void (*)(void))py_preprocess, METH_VARARGS | METH_KEYWORDS,
     "preprocess(sources, config) -> float32 (N, 3, H, W).\n"
     "sources: list of paths, encoded bytes or C-contiguous uint8 (H, W, 3) arrays.\n"
     "config keys (None = default, CLIP OpenAI 224 defaults otherwise): do_resize, resize_mode\n"
     "('shortest_edge' | 'exact'), shortest_edge, height, width, resample (PIL number),\n"
     "do_center_crop, crop_height, crop_width, do_rescale, rescale_factor, do_normalize,\n"
     "image_mean, image_std, do_convert_rgb (ignored: always RGB), jpeg_draft (fast, inexact)."},
    {"_image_set_simd", py_image_set_simd, METH_O,
     "Testing hook: best resize kernels allowed (0 scalar, 1 AVX2, 2 AVX-512BW = default, each\n"
     "only if the CPU has it; results are identical); returns the previous limit."},
    {NULL, NULL, 0, NULL},
};

int mms_py_init_image(PyObject *m) {
    if (_import_array() < 0) return -1;
    return PyModule_AddFunctions(m, image_methods);
}
