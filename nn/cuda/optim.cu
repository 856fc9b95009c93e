/* optim.cu - the optimizer updates on the GPU over flat parameter slabs: SGD (momentum,
 * Nesterov, weight decay) and AdamW, with backend.h's formulas written as nn/cpu/optim.c writes
 * them (torch.optim's single-tensor code path). One element-wise kernel each, no state beyond
 * the slabs. Not a scheduler: the learning rate and step count come from the caller. */
#include "cuda_impl.h"

#include <math.h>

#define THREADS 256u

#define FOR_EACH(i, n)                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

/* w, g and the state are distinct slabs. */
static __global__ void sgd_plain_k(float *__restrict__ w, const float *__restrict__ g, size_t n,
                                   float lr, float wd) {
    FOR_EACH(i, n) w[i] -= lr * (g[i] + wd * w[i]);
}

static __global__ void sgd_momentum_k(float *__restrict__ w, const float *__restrict__ g,
                                      float *__restrict__ buf, size_t n, float lr, float momentum,
                                      float wd, int nesterov) {
    FOR_EACH(i, n) {
        float d = g[i] + wd * w[i];
        float b = momentum * buf[i] + d; /* buf starts at 0 (dampening 0) */
        buf[i] = b;
        w[i] -= lr * (nesterov ? d + momentum * b : b);
    }
}

void fl_cuda_sgd_step(fl_backend *be, float *w, const float *g, float *buf, size_t n, float lr,
                      float momentum, float wd, int nesterov) {
    if (n == 0) return;
    cudaStream_t st = FL_CUDA(be)->stream;
    if (momentum == 0.0f || !buf)
        sgd_plain_k<<<fl_cuda_blocks(n, THREADS), THREADS, 0, st>>>(w, g, n, lr, wd);
    else
        sgd_momentum_k<<<fl_cuda_blocks(n, THREADS), THREADS, 0, st>>>(w, g, buf, n, lr, momentum,
                                                                       wd, nesterov);
    FL_CU_LAUNCHED();
}

/* As torch.optim.AdamW: w = w*(1 - lr*wd) - step_size * m / (sqrt(v)/sqrt(1 - b2^t) + eps),
 * step_size = lr / (1 - b1^t); the first moment moves by lerp, m += (1 - b1) * (g - m). */
static __global__ void adamw_k(float *__restrict__ w, const float *__restrict__ g,
                               float *__restrict__ m, float *__restrict__ v, size_t n, float a1,
                               float b2, float a2, float decay, float step_size, float inv_bc2_sqrt,
                               float eps) {
    FOR_EACH(i, n) {
        float gi = g[i];
        float mi = m[i] + a1 * (gi - m[i]);
        float vi = b2 * v[i] + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] * decay - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
    }
}

void fl_cuda_adamw_step(fl_backend *be, float *w, const float *g, float *m, float *v, size_t n,
                        float lr, float b1, float b2, float eps, float wd, int step) {
    if (n == 0) return;
    /* The scalars on the host, exactly as the CPU computes them. */
    double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
    float decay = 1.0f - lr * wd;
    float step_size = (float)(lr / bc1);
    float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    float a1 = 1.0f - b1, a2 = 1.0f - b2;
    adamw_k<<<fl_cuda_blocks(n, THREADS), THREADS, 0, FL_CUDA(be)->stream>>>(
        w, g, m, v, n, a1, b2, a2, decay, step_size, inv_bc2_sqrt, eps);
    FL_CU_LAUNCHED();
}
