/* pool.c - max pooling and global average pooling on the CPU over NHWC activations, forward
 * and backward; inner loops run over the contiguous channels. Not average pooling with a
 * window, nor ceil-mode or dilated pooling (ResNet needs neither). */
#include "cpu_impl.h"

#include <math.h>

/* Widest channel block of the global average pool (double accumulators on the stack). */
#define POOL_CBLOCK 512

/* Splits C channels into blocks of whole cache lines (16 floats), at most max_w wide, and only
 * as many as the thread count needs beside the N samples: wide blocks keep rows contiguous.
 * Returns the block count; *cw receives the width. */
static int channel_blocks(const fl_backend *be, int N, int C, int max_w, int *cw) {
    int threads = be && be->threads > 0 ? be->threads : 1;
    int nb = (threads + N - 1) / (N > 0 ? N : 1), max_nb = (C + 15) / 16;
    if (nb > max_nb) nb = max_nb;
    if (nb < 1) nb = 1;
    int w = ((C + nb - 1) / nb + 15) / 16 * 16;
    if (w > max_w) w = max_w;
    if (w < 16) w = 16;
    *cw = w;
    return (C + w - 1) / w;
}

void fl_cpu_maxpool_forward(fl_backend *be, const float *x, float *y, int32_t *idx, int N, int H,
                            int W, int C, int k, int s, int p, int P, int Q) {
    (void)be;
    long rows = (long)N * P;
#pragma omp parallel for schedule(static)
    for (long row = 0; row < rows; row++) {
        int n = (int)(row / P), op = (int)(row % P);
        int h0 = op * s - p, h1 = h0 + k;
        if (h0 < 0) h0 = 0;
        if (h1 > H) h1 = H;
        for (int oq = 0; oq < Q; oq++) {
            int w0 = oq * s - p, w1 = w0 + k;
            if (w0 < 0) w0 = 0;
            if (w1 > W) w1 = W;
            size_t o = (((size_t)n * P + op) * Q + oq) * C;
            float *yr = y + o;
            int32_t *ir = idx + o;
            if (h0 >= h1 || w0 >= w1) { /* a window entirely in the padding */
                for (int c = 0; c < C; c++) {
                    yr[c] = -INFINITY;
                    ir[c] = -1;
                }
                continue;
            }
            /* The first in-bounds element starts the scan; later ones win only when strictly
             * greater (or NaN, which PyTorch propagates), so ties keep the first in row-major
             * window order and padding never takes part. */
            const float *xr = x + (((size_t)n * H + h0) * W + w0) * C;
            int32_t first = h0 * W + w0;
            for (int c = 0; c < C; c++) {
                yr[c] = xr[c];
                ir[c] = first;
            }
            for (int h = h0; h < h1; h++) {
                for (int w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                    const float *xv = x + (((size_t)n * H + h) * W + w) * C;
                    int32_t at = h * W + w;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float v = xv[c];
                        int win = v > yr[c] || v != v;
                        yr[c] = win ? v : yr[c];
                        ir[c] = win ? at : ir[c];
                    }
                }
            }
        }
    }
}

void fl_cpu_maxpool_backward(fl_backend *be, const float *dy, const int32_t *idx, float *dx,
                             float beta_acc, int N, int H, int W, int C, int P, int Q) {
    /* Windows overlap, so tasks own disjoint (sample, channel block) slices of dx and scatter
     * into them in output order: the result does not depend on the threads. Blocks are as wide
     * as the thread count allows (whole rows when N >= threads), for contiguous access. */
    int cw, nb = channel_blocks(be, N, C, C > 16 ? C : 16, &cw);
    long tasks = (long)N * nb;
    size_t HW = (size_t)H * W, PQ = (size_t)P * Q;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; t++) {
        int n = (int)(t / nb), c0 = (int)(t % nb) * cw;
        int c1 = c0 + cw < C ? c0 + cw : C;
        float *dxn = dx + (size_t)n * HW * C;
        for (size_t i = 0; i < HW; i++) {
            float *d = dxn + i * C;
            if (beta_acc == 0.0f) {
#pragma omp simd
                for (int c = c0; c < c1; c++) d[c] = 0.0f;
            } else {
#pragma omp simd
                for (int c = c0; c < c1; c++) d[c] *= beta_acc;
            }
        }
        const float *gn = dy + (size_t)n * PQ * C;
        const int32_t *in = idx + (size_t)n * PQ * C;
        for (size_t i = 0; i < PQ; i++) {
            const float *g = gn + i * C;
            const int32_t *a = in + i * C;
            for (int c = c0; c < c1; c++)
                if (a[c] >= 0) dxn[(size_t)a[c] * C + c] += g[c];
        }
    }
}

void fl_cpu_gap_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C) {
    int cw, nb = channel_blocks(be, N, C, POOL_CBLOCK, &cw);
    long tasks = (long)N * nb;
    double inv = HW > 0 ? 1.0 / HW : 0.0;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < tasks; t++) {
        int n = (int)(t / nb), c0 = (int)(t % nb) * cw;
        int cn = c0 + cw < C ? cw : C - c0;
        double acc[POOL_CBLOCK];
        for (int c = 0; c < cn; c++) acc[c] = 0;
        const float *xn = x + (size_t)n * HW * C + c0;
        for (int i = 0; i < HW; i++) {
            const float *xr = xn + (size_t)i * C;
#pragma omp simd
            for (int c = 0; c < cn; c++) acc[c] += xr[c];
        }
        for (int c = 0; c < cn; c++) y[(size_t)n * C + c0 + c] = (float)(acc[c] * inv);
    }
}

void fl_cpu_gap_backward(fl_backend *be, const float *dy, float *dx, float beta_acc, int N, int HW,
                         int C) {
    (void)be;
    long rows = (long)N * HW;
    float inv = HW > 0 ? 1.0f / HW : 0.0f;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *g = dy + (size_t)(r / HW) * C;
        float *d = dx + (size_t)r * C;
        if (beta_acc == 0.0f) {
#pragma omp simd
            for (int c = 0; c < C; c++) d[c] = g[c] * inv;
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) d[c] = beta_acc * d[c] + g[c] * inv;
        }
    }
}
