/* pool.cu - max pooling and global average pooling on the GPU over NHWC activations, forward
 * and backward, with the CPU's results: the same winner (the first maximum in row-major window
 * order; padding never wins; NaN propagates), the same summation order in both backwards, so
 * the results are deterministic and match nn/cpu/pool.c. Not windowed average pooling, nor
 * ceil-mode or dilated pooling (ResNet needs neither). */
#include "cuda_impl.h"

#include <limits.h>
#include <math.h>

#define THREADS 256u

#define FOR_EACH(i, n)                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- max pooling forward: one thread per output (n, op, oq, c); c is fastest, so a warp reads
 * 32 consecutive channels of each window position ---- */

static __global__ void maxpool_forward_k(const float *__restrict__ x, float *__restrict__ y,
                                         int32_t *__restrict__ idx, int H, int W, int C, int k,
                                         int s, int p, int P, int Q, size_t total) {
    FOR_EACH(o, total) {
        int c = (int)(o % C);
        size_t r = o / C;
        int oq = (int)(r % Q);
        r /= Q;
        int op = (int)(r % P);
        size_t n = r / P;
        int h0 = op * s - p, h1 = h0 + k, w0 = oq * s - p, w1 = w0 + k;
        if (h0 < 0) h0 = 0;
        if (h1 > H) h1 = H;
        if (w0 < 0) w0 = 0;
        if (w1 > W) w1 = W;
        if (h0 >= h1 || w0 >= w1) { /* a window entirely in the padding */
            y[o] = -INFINITY;
            idx[o] = -1;
            continue;
        }
        /* The first in-bounds element starts the scan; a later one wins only when strictly
         * greater, or NaN (which PyTorch propagates): nn/cpu/pool.c's rule exactly. */
        const float *xn = x + n * H * W * C + c;
        float best = xn[((size_t)h0 * W + w0) * C];
        int32_t at = h0 * W + w0;
        for (int h = h0; h < h1; h++) {
            for (int w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                float v = xn[((size_t)h * W + w) * C];
                if (v > best || v != v) {
                    best = v;
                    at = h * W + w;
                }
            }
        }
        y[o] = best;
        idx[o] = at;
    }
}

void fl_cuda_maxpool_forward(fl_backend *be, const float *x, float *y, int32_t *idx, int N, int H,
                             int W, int C, int k, int s, int p, int P, int Q) {
    size_t total = (size_t)N * P * Q * C;
    if (total == 0) return;
    maxpool_forward_k<<<fl_cuda_blocks(total, THREADS), THREADS, 0, FL_CUDA(be)->stream>>>(
        x, y, idx, H, W, C, k, s, p, P, Q, total);
    FL_CU_LAUNCHED();
}

/* ---- max pooling backward: a gather, deterministic and in the CPU's order ----
 * The signature carries no window (k, s, p), only idx. Each input element (n, h, w, c) sums
 * dy over the outputs whose winner it is, visiting them in row-major output order, as the CPU
 * scatter does, so the sums are bit-identical to the CPU's. Which outputs to visit comes from
 * idx itself: with a stride guess sr (any value >= 1 is correct, a good one is fast), pass 1
 * takes the range [dmin, dmax] of (winner row - op*sr) over all outputs; an output whose winner
 * lies in row h then has dmin <= h - op*sr <= dmax, i.e. op in [ceil((h-dmax)/sr),
 * floor((h-dmin)/sr)]; the same for columns. Pass 2 scans that range and keeps the outputs
 * whose idx equals h*W + w. With the true stride, the range is the ceil(k/s) windows that can
 * contain h (2 x 2 for ResNet's 3/2/1 pool). bounds[] = {dmin_r, dmax_r, dmin_c, dmax_c} lives
 * in the backend's reduce scratch (device-only, never read back). */

static __global__ void bounds_init_k(int *bounds) {
    bounds[0] = INT_MAX;
    bounds[1] = INT_MIN;
    bounds[2] = INT_MAX;
    bounds[3] = INT_MIN;
}

static __global__ void bounds_k(const int32_t *__restrict__ idx, int W, int C, int P, int Q, int sr,
                                int sc, size_t total, int *bounds) {
    int lo_r = INT_MAX, hi_r = INT_MIN, lo_c = INT_MAX, hi_c = INT_MIN;
    FOR_EACH(o, total) {
        int a = idx[o];
        if (a < 0) continue; /* a window entirely in the padding */
        size_t r = o / C;
        int oq = (int)(r % Q), op = (int)((r / Q) % P);
        int dr = a / W - op * sr, dc = a % W - oq * sc;
        lo_r = min(lo_r, dr);
        hi_r = max(hi_r, dr);
        lo_c = min(lo_c, dc);
        hi_c = max(hi_c, dc);
    }
    /* A warp reduction, then one atomic per warp: integer min/max, so order does not matter. */
    for (int off = 16; off > 0; off >>= 1) {
        lo_r = min(lo_r, __shfl_xor_sync(0xffffffffu, lo_r, off));
        hi_r = max(hi_r, __shfl_xor_sync(0xffffffffu, hi_r, off));
        lo_c = min(lo_c, __shfl_xor_sync(0xffffffffu, lo_c, off));
        hi_c = max(hi_c, __shfl_xor_sync(0xffffffffu, hi_c, off));
    }
    if ((threadIdx.x & 31) == 0 && lo_r != INT_MAX) {
        atomicMin(&bounds[0], lo_r);
        atomicMax(&bounds[1], hi_r);
        atomicMin(&bounds[2], lo_c);
        atomicMax(&bounds[3], hi_c);
    }
}

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
__device__ static inline int floor_div(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}
__device__ static inline int ceil_div(int a, int b) {
    return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

static __global__ void maxpool_backward_k(const float *__restrict__ dy,
                                          const int32_t *__restrict__ idx, float *__restrict__ dx,
                                          float beta, int H, int W, int C, int P, int Q, int sr,
                                          int sc, size_t total, const int *__restrict__ bounds) {
    int lo_r = bounds[0], hi_r = bounds[1], lo_c = bounds[2], hi_c = bounds[3];
    FOR_EACH(e, total) {
        int c = (int)(e % C);
        size_t r = e / C;
        int w = (int)(r % W);
        r /= W;
        int h = (int)(r % H);
        size_t n = r / H;
        /* As the CPU: start from 0 or beta*dx, then add the gradients in output order. */
        float acc = beta == 0.0f ? 0.0f : beta * dx[e];
        if (lo_r <= hi_r) { /* else no output has a winner */
            int op0 = max(ceil_div(h - hi_r, sr), 0), op1 = min(floor_div(h - lo_r, sr), P - 1);
            int oq0 = max(ceil_div(w - hi_c, sc), 0), oq1 = min(floor_div(w - lo_c, sc), Q - 1);
            int32_t me = h * W + w;
            for (int op = op0; op <= op1; op++) {
                for (int oq = oq0; oq <= oq1; oq++) {
                    size_t o = ((n * P + op) * Q + oq) * C + c;
                    if (idx[o] == me) acc += dy[o];
                }
            }
        }
        dx[e] = acc;
    }
}

void fl_cuda_maxpool_backward(fl_backend *be, const float *dy, const int32_t *idx, float *dx,
                              float beta_acc, int N, int H, int W, int C, int P, int Q) {
    size_t total_in = (size_t)N * H * W * C, total_out = (size_t)N * P * Q * C;
    if (total_in == 0 || !dx) return; /* !dx: "not needed" (backend.h) */
    fl_cuda *cu = FL_CUDA(be);
    int *bounds = (int *)cu->reduce;
    /* The stride guess: the output is about input/stride (round to nearest; >= 1). */
    int sr = P > 0 ? (H + P / 2) / P : 1, sc = Q > 0 ? (W + Q / 2) / Q : 1;
    if (sr < 1) sr = 1;
    if (sc < 1) sc = 1;
    bounds_init_k<<<1, 1, 0, cu->stream>>>(bounds);
    FL_CU_LAUNCHED();
    if (total_out) {
        bounds_k<<<fl_cuda_blocks(total_out, THREADS), THREADS, 0, cu->stream>>>(
            idx, W, C, P, Q, sr, sc, total_out, bounds);
        FL_CU_LAUNCHED();
    }
    maxpool_backward_k<<<fl_cuda_blocks(total_in, THREADS), THREADS, 0, cu->stream>>>(
        dy, idx, dx, beta_acc, H, W, C, P, Q, sr, sc, total_in, bounds);
    FL_CU_LAUNCHED();
}

/* ---- global average pool: x (N, HW, C) -> y (N, C) ---- */

/* One thread per (n, c), summing HW values in order in double, as the CPU: bit-identical. */
static __global__ void gap_forward_k(const float *__restrict__ x, float *__restrict__ y, int HW,
                                     int C, double inv, size_t total) {
    FOR_EACH(t, total) {
        size_t n = t / C;
        int c = (int)(t % C);
        const float *xn = x + n * HW * C + c;
        double acc = 0;
        for (int i = 0; i < HW; i++) acc += xn[(size_t)i * C];
        y[t] = (float)(acc * inv);
    }
}

static __global__ void gap_backward_k(const float *__restrict__ dy, float *__restrict__ dx,
                                      float beta, int HW, int C, float inv, size_t total) {
    FOR_EACH(e, total) {
        size_t n = e / ((size_t)HW * C);
        int c = (int)(e % C);
        float g = dy[n * C + c] * inv;
        dx[e] = beta == 0.0f ? g : beta * dx[e] + g;
    }
}

void fl_cuda_gap_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C) {
    size_t total = (size_t)N * C;
    if (total == 0) return;
    double inv = HW > 0 ? 1.0 / HW : 0.0;
    gap_forward_k<<<fl_cuda_blocks(total, THREADS), THREADS, 0, FL_CUDA(be)->stream>>>(x, y, HW, C,
                                                                                       inv, total);
    FL_CU_LAUNCHED();
}

void fl_cuda_gap_backward(fl_backend *be, const float *dy, float *dx, float beta_acc, int N, int HW,
                          int C) {
    size_t total = (size_t)N * HW * C;
    if (total == 0 || !dx) return;
    float inv = HW > 0 ? 1.0f / HW : 0.0f;
    gap_backward_k<<<fl_cuda_blocks(total, THREADS), THREADS, 0, FL_CUDA(be)->stream>>>(
        dy, dx, beta_acc, HW, C, inv, total);
    FL_CU_LAUNCHED();
}
