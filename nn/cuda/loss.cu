/* loss.cu - softmax and softmax cross-entropy on the GPU with PyTorch's CrossEntropyLoss
 * semantics (class weights, weighted mean, ignored rows), as nn/cpu/loss.c: the same
 * log-sum-exp in double, the same gradient formulas. One warp per row; the loss is reduced in a
 * fixed order (deterministic) and is the one value read back. Not label smoothing nor soft
 * targets.
 *
 * Labels and class weights are device pointers (the model uploads them before the call). */
#include "cuda_impl.h"
#include "kernels.cuh"

#include <math.h>

#define THREADS 256u
#define WARPS (THREADS / 32u) /* rows in flight per block */

/* Layout of the reduce scratch during softmax_ce: [0] the weighted count, [1] 1 if a label is
 * outside [-1, K), [2] the loss, [3 ..] one partial loss per block of the row pass. */
#define R_WSUM 0
#define R_BAD 1
#define R_LOSS 2
#define R_PARTS 3
#define MAX_ROW_BLOCKS (FL_CUDA_REDUCE_SLOTS - R_PARTS)


/* log(sum(exp(l))) over a row of K logits, computed by the 32 lanes of a warp (each lane gets
 * it), as the CPU's softmax_row: the max ignores NaN, falls back to 0 when not finite (all -inf,
 * so the NaN/inf flows through), and the sum of exponentials is in double. The butterfly
 * reductions give every lane the same value in the same order: deterministic. */
__device__ static double warp_lse(const float *l, int K, unsigned lane) {
    float mx = -INFINITY;
    for (int k = (int)lane; k < K; k += 32) mx = fmaxf(mx, l[k]);
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
    if (!isfinite(mx)) mx = 0.0f;
    double s = 0;
    for (int k = (int)lane; k < K; k += 32) s += exp((double)l[k] - mx);
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    return mx + log(s);
}

/* ---- softmax ---- */

static __global__ void softmax_k(const float *__restrict__ logits, float *__restrict__ probs, int M,
                                 int K) {
    unsigned lane = threadIdx.x & 31u;
    /* Whole warps iterate together (the loop bound is the same for all 32 lanes). */
    for (size_t i = (size_t)blockIdx.x * WARPS + threadIdx.x / 32u; i < (size_t)M;
         i += (size_t)gridDim.x * WARPS) {
        const float *l = logits + i * K;
        double lse = warp_lse(l, K, lane);
        for (int k = (int)lane; k < K; k += 32) probs[i * K + k] = (float)exp((double)l[k] - lse);
    }
}

void fl_cuda_softmax(fl_backend *be, const float *logits, float *probs, int M, int K) {
    if (M <= 0 || K <= 0) return;
    softmax_k<<<fl_cuda_blocks((size_t)M, WARPS), THREADS, 0, FL_CUDA(be)->stream>>>(logits, probs,
                                                                                     M, K);
    FL_CU_LAUNCHED();
}

/* ---- softmax cross-entropy ---- */

/* Pass 1 (one block): the weighted count of non-ignored rows, and whether a label is bad. */
static __global__ void ce_count_k(const int32_t *__restrict__ labels,
                                  const float *__restrict__ class_w, int M, int K, double *red) {
    double acc = 0;
    int bad = 0;
    for (int i = (int)threadIdx.x; i < M; i += (int)blockDim.x) {
        int y = labels[i];
        if (y == -1) continue;
        if (y < 0 || y >= K) {
            bad = 1;
            continue;
        }
        acc += class_w ? (double)class_w[y] : 1.0;
    }
    bad = __syncthreads_or(bad);
    double total = fl_block_sum<THREADS>(acc);
    if (threadIdx.x == 0) {
        red[R_WSUM] = total;
        red[R_BAD] = bad;
    }
}

/* Pass 2: a warp per row writes dlogits (and probs); each block's partial loss goes to
 * red[R_PARTS + block]. Rows are assigned to warps by index alone, and summed in a fixed order. */
static __global__ void ce_rows_k(const float *__restrict__ logits,
                                 const int32_t *__restrict__ labels,
                                 const float *__restrict__ class_w, int M, int K,
                                 float *__restrict__ dlogits, float *__restrict__ probs,
                                 double *red) {
    __shared__ double warp_loss[WARPS];
    unsigned lane = threadIdx.x & 31u, warp = threadIdx.x / 32u;
    double wsum = red[R_WSUM];
    double inv = wsum != 0 ? 1.0 / wsum : 0.0;
    double acc = 0; /* this warp's loss, kept by every lane alike */
    for (size_t i = (size_t)blockIdx.x * WARPS + warp; i < (size_t)M;
         i += (size_t)gridDim.x * WARPS) {
        const float *l = logits + i * K;
        float *d = dlogits + i * K;
        int y = labels[i];
        int use = y >= 0 && y < K && wsum != 0;
        double lse = warp_lse(l, K, lane);
        double w = use ? (class_w ? (double)class_w[y] : 1.0) : 0.0;
        float sc = (float)(w * inv);
        /* p[y] as the CPU has it: the float probability, widened. */
        double py = use ? (double)(float)exp((double)l[y] - lse) : 0.0;
        for (int k = (int)lane; k < K; k += 32) {
            float p = (float)exp((double)l[k] - lse);
            if (probs) probs[i * K + k] = p;
            d[k] = !use ? 0.0f : k == y ? (float)((py - 1.0) * w * inv) : p * sc;
        }
        if (use) acc += w * (lse - (double)l[y]);
    }
    if (lane == 0) warp_loss[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (unsigned j = 0; j < WARPS; j++) total += warp_loss[j];
        red[R_PARTS + blockIdx.x] = total;
    }
}

/* Pass 3 (one block): the loss = sum of the parts / the weighted count; NaN for a bad label. */
static __global__ void ce_final_k(unsigned nparts, double *red) {
    double acc = 0;
    for (unsigned j = threadIdx.x; j < nparts; j += blockDim.x) acc += red[R_PARTS + j];
    double total = fl_block_sum<THREADS>(acc);
    if (threadIdx.x == 0) {
        double wsum = red[R_WSUM], inv = wsum != 0 ? 1.0 / wsum : 0.0;
        red[R_LOSS] = red[R_BAD] != 0 ? (double)NAN : total * inv;
    }
}

float fl_cuda_softmax_ce(fl_backend *be, const float *logits, const int32_t *labels,
                         const float *class_w, int M, int K, float *dlogits, float *probs) {
    fl_cuda *c = FL_CUDA(be);
    be->transfers++;
    if (M <= 0) return 0.0f;
    unsigned nb = fl_cuda_blocks((size_t)M, WARPS);
    if (nb > MAX_ROW_BLOCKS) nb = MAX_ROW_BLOCKS;
    ce_count_k<<<1, THREADS, 0, c->stream>>>(labels, class_w, M, K, c->reduce);
    FL_CU_LAUNCHED();
    ce_rows_k<<<nb, THREADS, 0, c->stream>>>(logits, labels, class_w, M, K, dlogits, probs,
                                             c->reduce);
    FL_CU_LAUNCHED();
    ce_final_k<<<1, THREADS, 0, c->stream>>>(nb, c->reduce);
    FL_CU_LAUNCHED();
    FL_CU(cudaMemcpyAsync(c->reduce_host, c->reduce + R_LOSS, sizeof(double),
                          cudaMemcpyDeviceToHost, c->stream));
    FL_CU(cudaStreamSynchronize(c->stream));
    return (float)c->reduce_host[0];
}
