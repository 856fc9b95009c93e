/* linear.c - the fully connected layer on the CPU: three OpenBLAS SGEMMs (forward, dx, dw)
 * and a deterministic column sum for the bias gradient. Weights keep PyTorch's (OUT, IN).
 * Not a general GEMM wrapper: only the three products a linear layer needs. */
#include "cpu_impl.h"

#include <cblas.h>

/* Output columns per bias-gradient task (double accumulators on the stack). */
#define LINEAR_COLS 64

void fl_cpu_linear_forward(fl_backend *be, const float *x, const float *w, const float *b, float *y,
                           int M, int IN, int OUT) {
    (void)be;
    if (M <= 0 || OUT <= 0) return;
    if (b) {
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++)
            for (int o = 0; o < OUT; o++) y[(size_t)m * OUT + o] = b[o];
    }
    if (IN <= 0) {
        if (!b)
            for (size_t i = 0; i < (size_t)M * OUT; i++) y[i] = 0.0f;
        return;
    }
    /* y (M,OUT) = x (M,IN) * w^T (IN,OUT) [+ y] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OUT, IN, 1.0f, x, IN, w, IN,
                b ? 1.0f : 0.0f, y, OUT);
}

void fl_cpu_linear_backward(fl_backend *be, const float *x, const float *w, const float *dy,
                            float *dx, float beta_acc, float *dw, float *db, int M, int IN,
                            int OUT) {
    (void)be;
    if (M <= 0 || IN <= 0 || OUT <= 0) {
        /* Degenerate shapes: parameter gradients are empty sums. */
        if (dw)
            for (size_t i = 0; i < (size_t)OUT * IN; i++) dw[i] = 0.0f;
        if (db)
            for (int o = 0; o < OUT; o++) db[o] = 0.0f;
        if (dx && beta_acc == 0.0f)
            for (size_t i = 0; i < (size_t)M * IN; i++) dx[i] = 0.0f;
        return;
    }
    /* dx (M,IN) = beta*dx + dy (M,OUT) * w (OUT,IN) */
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, IN, OUT, 1.0f, dy, OUT, w, IN,
                    beta_acc, dx, IN);
    /* dw (OUT,IN) = dy^T (OUT,M) * x (M,IN) */
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, M, 1.0f, dy, OUT, x, IN, 0.0f,
                    dw, IN);
    if (db) {
        int nb = (OUT + LINEAR_COLS - 1) / LINEAR_COLS;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < nb; t++) {
            int o0 = t * LINEAR_COLS, on = o0 + LINEAR_COLS < OUT ? LINEAR_COLS : OUT - o0;
            double acc[LINEAR_COLS] = {0};
            for (int m = 0; m < M; m++) {
                const float *g = dy + (size_t)m * OUT + o0;
#pragma omp simd
                for (int o = 0; o < on; o++) acc[o] += g[o];
            }
            for (int o = 0; o < on; o++) db[o0 + o] = (float)acc[o];
        }
    }
}
