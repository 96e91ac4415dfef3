/* cuda_backend.c -- the CUDA backend: device memory, cuBLAS GEMMs (fp32 compute, no TF32,
 * bf16 weights when asked) and the kernels of cuda_kernels.cu behind the backend vtable.
 * All work goes to the legacy default stream; downloads synchronize. One cuBLAS handle per
 * host thread, so concurrent callers are safe. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <string.h>

#include "../backend.h"
#include "cuda_kernels.h"

static _Thread_local cublasHandle_t t_blas;

static mms_status cu_fail(mms_error *err, const char *what, int code) {
    return mms_error_set(err, MMS_ERR_INTERNAL, "CUDA %s failed: %s", what,
                         code ? cudaGetErrorString((cudaError_t)code) : "error");
}
#define CU(e, what) do { int _c = (int)(e); if (_c) return cu_fail(err, what, _c); } while (0)

/* Activations come from the stream-ordered pool (cudaMallocAsync): reused across calls, and a
 * free does not synchronize the device the way cudaFree does. */
static void *cu_alloc(mms_backend *be, size_t n) {
    (void)be;
    void *p = NULL;
    return cudaMallocAsync(&p, n ? n : 4, 0) == cudaSuccess ? p : NULL;
}
static void cu_free(mms_backend *be, void *p) { (void)be; if (p) cudaFreeAsync(p, 0); }
static mms_status cu_upload(mms_backend *be, void *dst, const void *src, size_t n, mms_error *err) {
    (void)be;
    CU(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "upload");
    return MMS_OK;
}
static mms_status cu_download(mms_backend *be, void *dst, const void *src, size_t n, mms_error *err) {
    (void)be;
    CU(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "download");
    return MMS_OK;
}
static mms_status cu_copy(mms_backend *be, void *dst, const void *src, size_t n, mms_error *err) {
    (void)be;
    if (n) CU(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, 0), "device copy");
    return MMS_OK;
}
static mms_status cu_sync(mms_backend *be, mms_error *err) {
    (void)be;
    CU(cudaDeviceSynchronize(), "synchronize");
    return MMS_OK;
}

static cudaDataType_t cu_type(mms_dtype d) { return d == MMS_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static mms_status cu_linear(mms_backend *be, const mms_tensor *x, const mms_linear *L, mms_act act,
                            const mms_tensor *residual, mms_tensor *y, mms_error *err) {
    (void)be;
    if (!t_blas && cublasCreate(&t_blas) != CUBLAS_STATUS_SUCCESS)
        return mms_error_set(err, MMS_ERR_INTERNAL, "cuBLAS handle creation failed");
    const int64_t K = mms_linear_in(L), N = mms_linear_out(L), M = mms_tensor_numel(x) / K;
    if (M == 0) return MMS_OK;
    void *xin = x->data, *xconv = NULL, *acc = y->data, *accbuf = NULL;
    mms_dtype xdt = x->dtype;
    if (xdt != L->w.dtype) { /* bf16 weights: bring x to bf16 */
        CU(cudaMallocAsync(&xconv, (size_t)(M * K) * 2, 0), "alloc");
        CU(mms_cu_f32_to_bf16(x->data, xconv, M * K, 0), "convert");
        xin = xconv;
        xdt = MMS_DTYPE_BF16;
    }
    const int need_epi = L->b.ndim || act != MMS_ACT_NONE || residual || y->dtype != MMS_DTYPE_F32;
    if (y->dtype != MMS_DTYPE_F32) {
        CU(cudaMallocAsync(&accbuf, (size_t)(M * N) * 4, 0), "alloc");
        acc = accbuf;
    }
    const float one = 1.f, zero = 0.f;
    cublasStatus_t s = cublasGemmEx(t_blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, L->w.data,
                                    cu_type(L->w.dtype), (int)K, xin, cu_type(xdt), (int)K, &zero, acc, CUDA_R_32F, (int)N,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    mms_status rc = MMS_OK;
    if (s != CUBLAS_STATUS_SUCCESS) rc = mms_error_set(err, MMS_ERR_INTERNAL, "cublasGemmEx failed (status %d)", (int)s);
    else if (need_epi) {
        int c = mms_cu_epilogue(acc, L->b.ndim ? L->b.data : NULL, residual ? residual->data : NULL, (int)act, y->data,
                                y->dtype == MMS_DTYPE_BF16, M, N, 0);
        if (c) rc = cu_fail(err, "epilogue", c);
    }
    if (xconv) cudaFreeAsync(xconv, 0);
    if (accbuf) cudaFreeAsync(accbuf, 0);
    return rc;
}

static mms_status cu_layernorm(mms_backend *be, const mms_tensor *x, const float *g, const float *b, float eps,
                               mms_tensor *y, mms_error *err) {
    (void)be;
    const int64_t D = x->ne[x->ndim - 1];
    CU(mms_cu_layernorm(x->data, g, b, eps, y->data, y->dtype == MMS_DTYPE_BF16, mms_tensor_numel(x) / D, D, 0), "layernorm");
    return MMS_OK;
}

static mms_status cu_attention(mms_backend *be, const mms_attn_args *a, mms_error *err) {
    (void)be;
    if (a->rel_bias)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "attention: relative position bias (T5) is not implemented on the cuda backend yet");
    CU(mms_cu_attention(a->batch, a->n_q, a->n_kv, a->n_heads, a->head_dim, a->q, a->q_row, a->q_batch, a->k, a->v,
                        a->kv_row, a->kv_batch, a->out, a->out_dtype == MMS_DTYPE_BF16, a->key_mask, a->causal, a->scale,
                        a->n_kv_heads, a->window, 0),
       "attention");
    return MMS_OK;
}

/* ---- decoder ops (decoder_kernels.cu) ---- */

static mms_status cu_rmsnorm(mms_backend *be, const mms_tensor *x, const float *g, float eps, mms_tensor *y,
                             mms_error *err) {
    (void)be;
    const int64_t D = x->ne[x->ndim - 1];
    CU(mms_cu_rmsnorm(x->data, g, eps, y->data, y->dtype == MMS_DTYPE_BF16, mms_tensor_numel(x) / D, D, 0), "rmsnorm");
    return MMS_OK;
}

static mms_status cu_rope(mms_backend *be, float *x, int64_t rows, int64_t stride, int64_t n_heads, int64_t head_dim,
                          int64_t rot_dim, const int64_t *pos, const float *inv_freq, float attn_factor, mms_error *err) {
    (void)be;
    if (rot_dim > MMS_CU_ROPE_MAX_ROT)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "rope: %lld rotated values per head (the cuda backend supports up to %d)",
                             (long long)rot_dim, MMS_CU_ROPE_MAX_ROT);
    CU(mms_cu_rope(x, rows, stride, n_heads, head_dim, rot_dim, pos, inv_freq, attn_factor, 0), "rope");
    return MMS_OK;
}

static mms_status cu_glu(mms_backend *be, const float *gate, int64_t gs, const float *up, int64_t us, int64_t rows,
                         int64_t F, mms_act act, mms_tensor *out, mms_error *err) {
    (void)be;
    CU(mms_cu_glu(gate, gs, up, us, rows, F, (int)act, out->data, out->dtype == MMS_DTYPE_BF16, 0), "glu");
    return MMS_OK;
}

static mms_status cu_store_rows(mms_backend *be, void *dst, mms_dtype dt, int64_t ds, const float *src, int64_t ss,
                                int64_t rows, int64_t cols, mms_error *err) {
    (void)be;
    CU(mms_cu_store_rows(dst, dt == MMS_DTYPE_BF16, ds, src, ss, rows, cols, 0), "store_rows");
    return MMS_OK;
}

static mms_status cu_kv_attention(mms_backend *be, const mms_kv_attn_args *a, mms_error *err) {
    (void)be;
    if (a->rel_bias)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "kv_attention: relative position bias (T5) is not implemented on the cuda backend yet");
    if (a->head_dim > MMS_CU_KV_MAX_HD)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "kv_attention: head_dim %lld (the cuda backend supports up to %d)",
                             (long long)a->head_dim, MMS_CU_KV_MAX_HD);
    CU(mms_cu_kv_attention(a->n_q, a->n_kv, a->n_heads, a->n_kv_heads, a->head_dim, a->q, a->q_row, a->k, a->v,
                           a->kv_dtype == MMS_DTYPE_BF16, a->kv_row, a->out, a->out_dtype == MMS_DTYPE_BF16, a->out_row,
                           a->window, a->scale, a->full, 0),
       "kv_attention");
    return MMS_OK;
}

static mms_status cu_softmax(mms_backend *be, mms_tensor *x, mms_error *err) {
    (void)be;
    const int64_t C = x->ne[x->ndim - 1];
    CU(mms_cu_softmax(x->data, mms_tensor_numel(x) / C, C, 0), "softmax");
    return MMS_OK;
}

static mms_status cu_activation(mms_backend *be, mms_tensor *x, mms_act act, mms_error *err) {
    (void)be;
    CU(mms_cu_activation(x->data, mms_tensor_numel(x), (int)act, 0), "activation");
    return MMS_OK;
}

static mms_status cu_add(mms_backend *be, mms_tensor *y, const mms_tensor *v, mms_error *err) {
    (void)be;
    const int64_t C = y->ne[y->ndim - 1], n = mms_tensor_numel(y);
    CU(mms_cu_add(y->data, v->data, n / C, C, mms_tensor_numel(v) == C && n != C, 0), "add");
    return MMS_OK;
}

static mms_status cu_embedding(mms_backend *be, const mms_tensor *table, const mms_tensor *ids, mms_tensor *out,
                               mms_error *err) {
    (void)be;
    int *flag = NULL, host = 0;
    if (mms_tensor_numel(ids) == 0) return MMS_OK;
    /* pooled (cudaFree would synchronize the device); the flag's download synchronizes anyway */
    CU(cudaMallocAsync((void **)&flag, sizeof(int), 0), "alloc");
    int c = (int)cudaMemsetAsync(flag, 0, sizeof(int), 0);
    int dt = table->dtype == MMS_DTYPE_F32 ? 0 : table->dtype == MMS_DTYPE_F16 ? 1 : 2;
    if (!c) c = mms_cu_embedding(table->data, dt, table->ne[1], ids->data, mms_tensor_numel(ids), table->ne[0], out->data, flag, 0);
    if (!c) c = (int)cudaMemcpy(&host, flag, sizeof(int), cudaMemcpyDeviceToHost);
    cudaFreeAsync(flag, 0);
    if (c) return cu_fail(err, "embedding", c);
    if (host) return mms_error_set(err, MMS_ERR_VALUE, "input_ids: a token id is outside the vocabulary [0, %lld)", (long long)table->ne[0]);
    return MMS_OK;
}

static mms_status cu_im2col(mms_backend *be, const mms_tensor *px, int p, mms_tensor *out, mms_error *err) {
    (void)be;
    CU(mms_cu_im2col(px->data, px->ne[0], px->ne[1], px->ne[2], px->ne[3], px->nb[0] / 4, px->nb[1] / 4, px->nb[2] / 4,
                     px->nb[3] / 4, p, out->data, 0), "im2col");
    return MMS_OK;
}

static mms_status cu_copy2d(mms_backend *be, float *dst, int64_t ds, const float *src, int64_t ss, int64_t rows,
                            int64_t cols, mms_error *err) {
    (void)be;
    if (rows == 0 || cols == 0) return MMS_OK;
    CU(mms_cu_copy2d(dst, ds, src, ss, rows, cols, 0), "copy2d");
    return MMS_OK;
}

static mms_status cu_l2(mms_backend *be, mms_tensor *x, mms_error *err) {
    (void)be;
    const int64_t D = x->ne[x->ndim - 1];
    CU(mms_cu_l2norm(x->data, mms_tensor_numel(x) / D, D, 0), "l2norm");
    return MMS_OK;
}

static void dev_storage_destroy(mms_storage *s) {
    cudaFree(s->data);
    mms_free(s);
}

/* host tensor (any float dtype) -> new device tensor of dtype `want` */
static mms_status to_device(const mms_tensor *src, mms_dtype want, mms_tensor *out, mms_error *err) {
    if (!mms_tensor_is_contiguous(src)) return mms_error_set(err, MMS_ERR_VALUE, "weight is not contiguous");
    const int64_t n = mms_tensor_numel(src);
    const size_t bytes = (size_t)n * mms_dtype_size(want);
    void *host = mms_malloc(bytes);
    if (!host) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    mms_status rc = mms_convert(src->data, src->dtype, host, want, n, err);
    mms_storage *s = rc == MMS_OK ? mms_calloc(1, sizeof *s) : NULL;
    if (rc == MMS_OK && !s) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    if (rc == MMS_OK) {
        int c = (int)cudaMalloc(&s->data, bytes ? bytes : 4);
        if (!c) c = (int)cudaMemcpy(s->data, host, bytes, cudaMemcpyHostToDevice);
        if (c) {
            if (s->data) cudaFree(s->data);
            mms_free(s);
            s = NULL;
            rc = cu_fail(err, "weight upload", c);
        }
    }
    mms_free(host);
    if (rc != MMS_OK) return rc;
    s->refs = 1;
    s->size = bytes;
    s->device = MMS_DEVICE_CUDA;
    s->destroy = dev_storage_destroy;
    *out = mms_tensor_view(s->data, want, src->ndim, src->ne);
    out->device = MMS_DEVICE_CUDA;
    out->storage = s;
    return MMS_OK;
}

static mms_status cu_tensor_prepare(mms_backend *be, const mms_tensor *src, mms_dtype dtype, mms_tensor *out,
                                    mms_error *err) {
    (void)be;
    return to_device(src, dtype, out, err);
}

static void cu_destroy(mms_backend *be) { (void)be; }

static const mms_backend_vtable k_cuda_vt = {
    .name = "cuda", .alloc = cu_alloc, .free = cu_free, .upload = cu_upload, .download = cu_download,
    .copy = cu_copy, .sync = cu_sync, .linear = cu_linear, .layernorm = cu_layernorm, .attention = cu_attention,
    .rmsnorm = cu_rmsnorm, .rope = cu_rope, .glu = cu_glu, .store_rows = cu_store_rows, .kv_attention = cu_kv_attention,
    .softmax = cu_softmax, .activation = cu_activation, .add = cu_add, .embedding = cu_embedding, .im2col = cu_im2col,
    .copy2d = cu_copy2d, .l2_normalize = cu_l2, .tensor_prepare = cu_tensor_prepare,
    .destroy = cu_destroy,
};

static mms_backend g_cuda = {&k_cuda_vt, MMS_DEVICE_CUDA, NULL};
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_status;

static void cuda_init(void) {
    int n = 0;
    g_status = (int)cudaGetDeviceCount(&n);
    if (!g_status && n == 0) g_status = -1;
    if (!g_status) { /* keep freed pool memory cached instead of returning it at each sync */
        cudaMemPool_t pool;
        if (cudaDeviceGetDefaultMemPool(&pool, 0) == cudaSuccess) {
            uint64_t keep = UINT64_MAX;
            cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
        }
    }
}

mms_backend *mms_backend_cuda(mms_error *err) {
    pthread_once(&g_once, cuda_init);
    if (g_status) {
        mms_error_set(err, MMS_ERR_UNSUPPORTED, "device='cuda': no usable CUDA device (%s)",
                      g_status < 0 ? "no GPU found" : cudaGetErrorString((cudaError_t)g_status));
        return NULL;
    }
    return &g_cuda;
}
