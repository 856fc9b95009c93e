/* kernels.cuh - small device helpers shared by the CUDA ops: scratch carving, fp32 <-> bf16
 * copies (with the bias add and beta accumulation the ops fuse into them), bias broadcasts, and the
 * deterministic column reductions behind every bias, BN/GN/LN parameter gradient and GN
 * statistic. Header-only (templates and static inline wrappers), so each .cu that includes it
 * gets its own copy. Not a general reduction library: two fixed shapes of reduction only. */
#ifndef FL_CUDA_KERNELS_CUH
#define FL_CUDA_KERNELS_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda_impl.h"

#define FL_K_THREADS 256u

/* Scratch regions carved from one workspace request start on 256-byte boundaries (cuDNN and
 * cuBLAS like 128; vector loads need 16). */
static inline size_t fl_cuda_align(size_t bytes) {
    return (bytes + 255) & ~(size_t)255;
}

/* ---- fp32 <-> bf16 ---- */

/* dst[i] = bf16(src[i]), round to nearest even. vec: both pointers 16/8-byte aligned, so four
 * elements move per load. */
template <bool vec>
__global__ void fl_k_to_bf16(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                             size_t n) {
    size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x,
           step = (size_t)gridDim.x * blockDim.x;
    if (vec) {
        size_t n4 = n / 4;
        const float4 *s4 = (const float4 *)src;
        __nv_bfloat162 *d2 = (__nv_bfloat162 *)dst;
        for (size_t i = i0; i < n4; i += step) {
            float4 v = s4[i];
            d2[2 * i] = __floats2bfloat162_rn(v.x, v.y);
            d2[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
        }
        for (size_t i = n4 * 4 + i0; i < n; i += step) dst[i] = __float2bfloat16_rn(src[i]);
    } else {
        for (size_t i = i0; i < n; i += step) dst[i] = __float2bfloat16_rn(src[i]);
    }
}

static inline void fl_cuda_to_bf16(cudaStream_t st, const float *src, __nv_bfloat16 *dst,
                                   size_t n) {
    if (n == 0) return;
    unsigned blocks = fl_cuda_blocks(n / 4 + 1, FL_K_THREADS);
    if ((uintptr_t)src % 16 == 0 && (uintptr_t)dst % 8 == 0)
        fl_k_to_bf16<true><<<blocks, FL_K_THREADS, 0, st>>>(src, dst, n);
    else
        fl_k_to_bf16<false><<<blocks, FL_K_THREADS, 0, st>>>(src, dst, n);
    FL_CU_LAUNCHED();
}

/* dst[i] = beta*dst[i] + float(src[i]) + (bias ? bias[i % K] : 0). beta == 0 never reads dst
 * (it may hold NaN). src and dst do not alias. I: the index type (32-bit when n allows, as
 * 64-bit division costs more than the memory traffic). */
template <typename I, bool has_bias>
__global__ void fl_k_from_bf16(const __nv_bfloat16 *__restrict__ src, float *__restrict__ dst, I n,
                               float beta, const float *__restrict__ bias, I K) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        float v = __bfloat162float(src[i]);
        if (has_bias) v += bias[i % K];
        dst[i] = beta == 0.0f ? v : beta * dst[i] + v;
    }
}

/* Whether n elements (and a grid-stride step past the last) index in 32 bits. */
static inline bool fl_cuda_idx32(size_t n) {
    return n < ((size_t)1 << 31);
}

static inline void fl_cuda_from_bf16(cudaStream_t st, const __nv_bfloat16 *src, float *dst,
                                     size_t n, float beta, const float *bias, int K) {
    if (n == 0) return;
    unsigned blocks = fl_cuda_blocks(n, FL_K_THREADS);
    if (fl_cuda_idx32(n)) {
        if (bias)
            fl_k_from_bf16<uint32_t, true>
                <<<blocks, FL_K_THREADS, 0, st>>>(src, dst, (uint32_t)n, beta, bias, (uint32_t)K);
        else
            fl_k_from_bf16<uint32_t, false>
                <<<blocks, FL_K_THREADS, 0, st>>>(src, dst, (uint32_t)n, beta, bias, 1u);
    } else {
        if (bias)
            fl_k_from_bf16<size_t, true>
                <<<blocks, FL_K_THREADS, 0, st>>>(src, dst, n, beta, bias, (size_t)K);
        else
            fl_k_from_bf16<size_t, false>
                <<<blocks, FL_K_THREADS, 0, st>>>(src, dst, n, beta, bias, (size_t)1);
    }
    FL_CU_LAUNCHED();
}

/* y (rows, K) = (accumulate ? y : 0) + b[i % K]: the bias of a convolution (after cuDNN) or a
 * linear layer (before cuBLAS adds into it). */
template <typename I, bool accumulate>
__global__ void fl_k_bias(float *__restrict__ y, const float *__restrict__ b, I n, I K) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x)
        y[i] = accumulate ? y[i] + b[i % K] : b[i % K];
}

template <bool accumulate>
static inline void fl_cuda_bias(cudaStream_t st, float *y, const float *b, size_t n, int K) {
    if (n == 0) return;
    unsigned blocks = fl_cuda_blocks(n, FL_K_THREADS);
    if (fl_cuda_idx32(n))
        fl_k_bias<uint32_t, accumulate>
            <<<blocks, FL_K_THREADS, 0, st>>>(y, b, (uint32_t)n, (uint32_t)K);
    else
        fl_k_bias<size_t, accumulate><<<blocks, FL_K_THREADS, 0, st>>>(y, b, n, (size_t)K);
    FL_CU_LAUNCHED();
}

/* ---- deterministic column reductions ----
 * Data: S segments of R rows of C columns, element (s, r, c) at ((s*R + r)*C + c). Per (s, c):
 *   FL_COL_SUM:   s1 = sum_r dy
 *   FL_COL_SHIFT: s1 = sum_r (x - k),  s2 = sum_r (x - k)^2          k (S, C), exact floats
 *   FL_COL_GRAD:  s1 = sum_r dy,       s2 = sum_r dy * (x - k)
 *   FL_COL_ROW:   s1 = sum_r dy,       s2 = sum_r dy * (x - rm[r]) * rs[r]   (S = 1; rows' own
 *                                                                     mean and 1/std: layernorm)
 * in double. Rows are cut into a number of chunks fixed by the shape; a block sums 32 columns
 * of one chunk (8 row lanes, combined in lane order), a second kernel adds the chunks in chunk
 * order. No atomics: the same shape gives the same bits on every run. */
enum { FL_COL_SUM = 0, FL_COL_SHIFT = 1, FL_COL_GRAD = 2, FL_COL_ROW = 3 };

/* Chunks per segment: at least 64 rows each, about 1024 blocks in all (8 per SM of an H100). */
static inline int fl_cuda_col_chunks(int S, int R, int C) {
    long long cb = C > 0 ? ((long long)C + 31) / 32 : 1, seg = S > 0 ? S : 1;
    long long want = ((long long)R + 63) / 64, cap = 1024 / (cb * seg);
    long long nc = want < cap ? want : cap;
    return (int)(nc < 1 ? 1 : nc);
}

/* Doubles of scratch fl_cuda_col_moments needs: the chunk partials, then s1 and s2. */
static inline size_t fl_cuda_col_doubles(int S, int R, int C) {
    return (size_t)S * fl_cuda_col_chunks(S, R, C) * 2 * C + (size_t)2 * S * C;
}

template <int MODE>
__global__ void fl_k_col_part(const float *__restrict__ x, const float *__restrict__ dy,
                              const float *__restrict__ k, const float *__restrict__ rm,
                              const float *__restrict__ rs, int R, int C, int nchunk,
                              double *__restrict__ part) {
    __shared__ double sh[2][8][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.x * 32 + tx, j = blockIdx.y, s = blockIdx.z;
    long long r0 = (long long)R * j / nchunk, r1 = (long long)R * (j + 1) / nchunk;
    double a = 0.0, b = 0.0;
    if (c < C && r0 + ty < r1) { /* (no rows: k may be empty) */
        float kc = (MODE == FL_COL_SHIFT || MODE == FL_COL_GRAD) ? k[(size_t)s * C + c] : 0.0f;
        size_t base = (size_t)s * R;
#pragma unroll 4
        for (long long r = r0 + ty; r < r1; r += 8) {
            size_t i = (base + (size_t)r) * C + c;
            if (MODE == FL_COL_SUM) {
                a += dy[i];
            } else if (MODE == FL_COL_SHIFT) {
                double d = x[i] - kc;
                a += d;
                b += d * d;
            } else if (MODE == FL_COL_GRAD) {
                double g = dy[i];
                a += g;
                b += g * (double)(x[i] - kc);
            } else {
                double g = dy[i];
                a += g;
                b += g * (((double)x[i] - rm[r]) * rs[r]);
            }
        }
    }
    sh[0][ty][tx] = a;
    sh[1][ty][tx] = b;
    __syncthreads();
    if (ty == 0 && c < C) {
        for (int t = 1; t < 8; t++) {
            a += sh[0][t][tx];
            b += sh[1][t][tx];
        }
        double *p = part + ((size_t)s * nchunk + j) * 2 * C;
        p[c] = a;
        if (MODE != FL_COL_SUM) p[C + c] = b;
    }
}

/* s1[s,c] = sum_j part[s,j,0,c], s2 likewise (two = 0: s1 only); out1, if given, (float)s1. */
template <int two>
__global__ void fl_k_col_join(const double *__restrict__ part, int S, int C, int nchunk,
                              double *__restrict__ s1, double *__restrict__ s2,
                              float *__restrict__ out1) {
    size_t SC = (size_t)S * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < SC;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t s = i / C, c = i % C;
        const double *p = part + s * nchunk * 2 * C + c;
        double a = 0.0, b = 0.0;
        for (int j = 0; j < nchunk; j++) {
            a += p[(size_t)j * 2 * C];
            if (two) b += p[(size_t)j * 2 * C + C];
        }
        if (s1) s1[i] = a;
        if (two) s2[i] = b;
        if (out1) out1[i] = (float)a;
    }
}

/* Runs the reduction MODE over scratch (fl_cuda_col_doubles(S, R, C) doubles); *s1 and *s2
 * (S*C each) point into scratch afterwards. out1 (S*C floats) may receive (float)s1. */
template <int MODE>
static inline void fl_cuda_col_moments(cudaStream_t st, const float *x, const float *dy,
                                       const float *k, const float *rm, const float *rs, int S,
                                       int R, int C, double *scratch, double **s1, double **s2,
                                       float *out1) {
    int nc = fl_cuda_col_chunks(S, R, C);
    double *part = scratch, *t1 = part + (size_t)S * nc * 2 * C, *t2 = t1 + (size_t)S * C;
    if (s1) *s1 = t1;
    if (s2) *s2 = t2;
    if (S <= 0 || C <= 0) return;
    dim3 grid((unsigned)((C + 31) / 32), (unsigned)nc, (unsigned)S), block(32, 8);
    fl_k_col_part<MODE><<<grid, block, 0, st>>>(x, dy, k, rm, rs, R, C, nc, part);
    FL_CU_LAUNCHED();
    size_t SC = (size_t)S * C;
    unsigned blocks = fl_cuda_blocks(SC, FL_K_THREADS);
    if (MODE == FL_COL_SUM)
        fl_k_col_join<0><<<blocks, FL_K_THREADS, 0, st>>>(part, S, C, nc, t1, t2, out1);
    else
        fl_k_col_join<1><<<blocks, FL_K_THREADS, 0, st>>>(part, S, C, nc, t1, t2, out1);
    FL_CU_LAUNCHED();
}

/* out[c] = sum over M rows of dy (M, C), in double, deterministic: bias gradients. scratch
 * holds fl_cuda_col_doubles(1, M, C) doubles. M == 0 writes zeros. */
static inline void fl_cuda_colsum(cudaStream_t st, const float *dy, int M, int C, double *scratch,
                                  float *out) {
    fl_cuda_col_moments<FL_COL_SUM>(st, NULL, dy, NULL, NULL, NULL, 1, M, C, scratch, NULL, NULL,
                                    out);
}

/* Sums v over the block (blockDim.x == N, a power of two) by a fixed tree, so the result is the
 * same on every run; every thread gets the total, and the shared memory is free again on return. */
template <unsigned N>
__device__ static inline double fl_block_sum(double v) {
    __shared__ double s[N];
    s[threadIdx.x] = v;
    __syncthreads();
    for (unsigned h = N / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) s[threadIdx.x] += s[threadIdx.x + h];
        __syncthreads();
    }
    double total = s[0];
    __syncthreads();
    return total;
}

#endif
