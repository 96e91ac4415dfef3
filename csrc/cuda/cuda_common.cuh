// cuda_common.cuh -- device helpers shared by the CUDA backend's kernel files (each .cu is its
// own translation unit, compiled without relocatable device code, so these are static inline).
#ifndef MMS_CUDA_COMMON_CUH
#define MMS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#define ST(s) ((cudaStream_t)(s))

// activation codes: mms_act (backend.h)
static __device__ __forceinline__ float act_apply(float v, int act) {
    switch (act) {
    case 1: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));                                 // gelu
    case 2: return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));       // gelu tanh
    case 3: return v / (1.0f + expf(-1.702f * v));                                                       // quick gelu
    case 4: return v > 0.f ? v : 0.f;                                                                    // relu
    case 5: return v / (1.0f + expf(-v));                                                                // silu
    default: return v;
    }
}

// Block-wide sum / max (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
static __device__ __forceinline__ float block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.f;
    if (w == 0)
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffff, t, o);
    if (threadIdx.x == 0) sh[0] = t;
    __syncthreads();
    return sh[0];
}

static __device__ __forceinline__ float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    float t = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : -INFINITY;
    if (w == 0)
        for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffff, t, o));
    if (threadIdx.x == 0) sh[0] = t;
    __syncthreads();
    return sh[0];
}

static __device__ __forceinline__ void store_out(void *out, int64_t i, float v, int bf16) {
    if (bf16) ((__nv_bfloat16 *)out)[i] = __float2bfloat16(v);
    else ((float *)out)[i] = v;
}

static __device__ __forceinline__ float load_kv(const void *p, int64_t i, int bf16) {
    return bf16 ? __bfloat162float(((const __nv_bfloat16 *)p)[i]) : ((const float *)p)[i];
}

#endif
