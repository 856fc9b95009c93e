/* optim.c - the optimizer updates on the CPU over flat parameter slabs: SGD (momentum,
 * Nesterov, weight decay) and AdamW, following torch.optim's single-tensor code path.
 * Not a scheduler: the learning rate and step count come from the caller. */
#include "cpu_impl.h"

#include <math.h>

void fl_cpu_sgd_step(fl_backend *be, float *w, const float *g, float *buf, size_t n, float lr,
                     float momentum, float wd, int nesterov) {
    (void)be;
    if (momentum == 0.0f || !buf) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) w[i] -= lr * (g[i] + wd * w[i]);
        return;
    }
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        float b = momentum * buf[i] + d;
        buf[i] = b;
        w[i] -= lr * (nesterov ? d + momentum * b : b);
    }
}

void fl_cpu_adamw_step(fl_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                       float lr, float b1, float b2, float eps, float wd, int step) {
    (void)be;
    /* As torch.optim.AdamW: step_size = lr / (1 - b1^t), denom = sqrt(v) / sqrt(1 - b2^t) +
     * eps; the first moment moves by lerp, m += (1 - b1) * (g - m). */
    double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
    float decay = 1.0f - lr * wd;
    float step_size = (float)(lr / bc1);
    float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    float a1 = 1.0f - b1, a2 = 1.0f - b2;
    /* No simd: sqrtf may set errno, so neither gcc nor clang vectorise it; memory bounds it. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = m[i] + a1 * (gi - m[i]);
        float vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * decay - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}
