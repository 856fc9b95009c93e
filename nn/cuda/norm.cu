/* norm.cu - batch, group and layer normalisation on the GPU over channels-last rows. Batchnorm in
 * training runs through cuDNN's batchnorm (spatial mode); eval-mode batchnorm, the backward with
 * frozen statistics, groupnorm and layernorm are our kernels on nn/cpu/norm.c's formulas (biased
 * variance, shifted sums in double, the same coefficient algebra). Every reduction has a fixed
 * order (no atomics), so a shape gives the same bits on every run. Not fused with ReLU. */
#include "kernels.cuh"

#define BN_MODE CUDNN_BATCHNORM_SPATIAL

/* ---- cuDNN descriptors for batchnorm ----
 * x (M, C) is described to cuDNN as an NHWC tensor (n, C, h, w) with n*h*w = M: in NHWC any such
 * factorisation is the same bytes, and spatial batchnorm reduces over all of n, h and w. A
 * factorisation rather than (M, C, 1, 1), because M = N*H*W runs to millions and PyTorch keeps
 * cuDNN's batchnorm to batches of at most 880801 ("cudnn has a limit on batch size"): n is the
 * largest divisor of M up to 1024, h the largest of the rest up to 4096. The NHWC tag lets cuDNN
 * pick its channels-last kernels. The descriptors depend on (M, C) only and are host objects,
 * not tied to a handle or device, so a small cache per host thread serves every backend (cuDNN
 * reads a descriptor only during the call); it is freed when the thread exits. */
struct bn_desc {
    int M, C;
    cudnnTensorDescriptor_t x; /* (n, C, h, w) NHWC, n*h*w = M */
    cudnnTensorDescriptor_t p; /* (1, C, 1, 1): gamma, beta, means, variances */
};

struct bn_cache {
    enum { SLOTS = 32 };
    bn_desc e[SLOTS] = {};
    int n = 0, next = 0;
    ~bn_cache() {
        for (int i = 0; i < n; i++) {
            (void)cudnnDestroyTensorDescriptor(e[i].x);
            (void)cudnnDestroyTensorDescriptor(e[i].p);
        }
    }
};

static thread_local bn_cache t_bn;

/* The largest divisor of m (>= 1) that is at most cap. */
static int largest_divisor(int m, int cap) {
    for (int d = m < cap ? m : cap; d > 1; d--)
        if (m % d == 0) return d;
    return 1;
}

/* The descriptors for (M, C), made on first use; a full cache reuses its slots in turn. A cuDNN
 * failure here aborts (a lost library or an impossible shape, like any op's). */
static const bn_desc *bn_descs(int M, int C) {
    bn_cache *c = &t_bn;
    for (int i = 0; i < c->n; i++)
        if (c->e[i].M == M && c->e[i].C == C) return &c->e[i];
    bn_desc *d;
    if (c->n < bn_cache::SLOTS) {
        d = &c->e[c->n];
        FL_CUDNN(cudnnCreateTensorDescriptor(&d->x));
        cudnnStatus_t e = cudnnCreateTensorDescriptor(&d->p);
        if (e != CUDNN_STATUS_SUCCESS) (void)cudnnDestroyTensorDescriptor(d->x);
        FL_CUDNN(e);
        c->n++;
    } else {
        d = &c->e[c->next];
        c->next = (c->next + 1) % bn_cache::SLOTS;
    }
    d->M = d->C = -1; /* not a match until both are set */
    int n = largest_divisor(M, 1024), h = largest_divisor(M / n, 4096), w = M / n / h;
    FL_CUDNN(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, n, C, h, w));
    FL_CUDNN(cudnnDeriveBNTensorDescriptor(d->p, d->x, BN_MODE));
    d->M = M;
    d->C = C;
    return d;
}

/* ---- shared kernels ---- */

#define FOR_EACH(i, n)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); \
         i += (size_t)gridDim.x * blockDim.x)

#define LAUNCH(st, n, kernel, ...)                                                               \
    do {                                                                                         \
        if ((size_t)(n) == 0) break;                                                             \
        kernel<<<fl_cuda_blocks((size_t)(n), FL_K_THREADS), FL_K_THREADS, 0, st>>>(__VA_ARGS__); \
        FL_CU_LAUNCHED();                                                                        \
    } while (0)

static __global__ void fill_k(float *p, float v, int n) {
    FOR_EACH(i, n) p[i] = v;
}

/* y[s,r,c] = (x - mu[s,c]) * sc[s,c] + sh[c] over S segments of R rows (sh may be NULL). x and
 * y may be the same buffer (each element is read, then written, by one thread). I: the index
 * type, 32-bit when n allows (64-bit division costs more than the memory traffic). */
template <typename I>
static __global__ void apply_k(const float *x, float *y, I RC, I C, const float *__restrict__ mu,
                               const float *__restrict__ sc, const float *__restrict__ sh, I n) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I c = i % C, o = (i / RC) * C + c;
        float v = (x[i] - mu[o]) * sc[o];
        y[i] = sh ? v + sh[c] : v;
    }
}

/* dx[s,r,c] = beta*dx + A*dy + B*(x - mu) + D, coefficients per (s, c); co = {mu, A, B, D}, each
 * S*C. beta == 0 does not read dx. */
template <typename I>
static __global__ void apply_grad_k(const float *__restrict__ x, const float *__restrict__ dy,
                                    float *__restrict__ dx, float beta, I RC, I C,
                                    const float *__restrict__ co, I SC, I n) {
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (I)gridDim.x * blockDim.x) {
        I c = i % C, o = (i / RC) * C + c;
        float v = co[SC + o] * dy[i] + co[2 * SC + o] * (x[i] - co[o]) + co[3 * SC + o];
        dx[i] = beta == 0.0f ? v : beta * dx[i] + v;
    }
}

static void apply(cudaStream_t st, const float *x, float *y, int S, int R, int C, const float *mu,
                  const float *sc, const float *sh) {
    size_t n = (size_t)S * R * C, RC = (size_t)R * C;
    if (n == 0) return;
    unsigned blocks = fl_cuda_blocks(n, FL_K_THREADS);
    if (fl_cuda_idx32(n))
        apply_k<uint32_t><<<blocks, FL_K_THREADS, 0, st>>>(x, y, (uint32_t)RC, (uint32_t)C, mu, sc,
                                                           sh, (uint32_t)n);
    else
        apply_k<size_t><<<blocks, FL_K_THREADS, 0, st>>>(x, y, RC, (size_t)C, mu, sc, sh, n);
    FL_CU_LAUNCHED();
}

static void apply_grad(cudaStream_t st, const float *x, const float *dy, float *dx, float beta,
                       int S, int R, int C, const float *co) {
    size_t n = (size_t)S * R * C, RC = (size_t)R * C, SC = (size_t)S * C;
    if (n == 0) return;
    unsigned blocks = fl_cuda_blocks(n, FL_K_THREADS);
    if (fl_cuda_idx32(n))
        apply_grad_k<uint32_t><<<blocks, FL_K_THREADS, 0, st>>>(
            x, dy, dx, beta, (uint32_t)RC, (uint32_t)C, co, (uint32_t)SC, (uint32_t)n);
    else
        apply_grad_k<size_t>
            <<<blocks, FL_K_THREADS, 0, st>>>(x, dy, dx, beta, RC, (size_t)C, co, SC, n);
    FL_CU_LAUNCHED();
}

/* ---- batchnorm: x (M, C) ---- */

/* Whether cuDNN takes a training batch of M rows: not fewer than 2 (its running variance
 * divides by M - 1, where PyTorch refuses the batch and the CPU keeps the biased variance), and
 * fewer than 2^31 elements (its 32-bit indexing). Our kernels take the others, forward and
 * backward alike. */
static bool bn_cudnn(int M, int C) {
    return M >= 2 && (size_t)M * C < (size_t)INT32_MAX;
}

/* Eval mode: save_mean = running_mean, save_invstd = 1/sqrt(running_var + eps) (in double, as
 * the CPU), sc = gamma * save_invstd. */
static __global__ void bn_eval_coef_k(const float *rm, const float *rv, const float *gamma,
                                      float eps, int C, float *save_mean, float *save_invstd,
                                      float *sc) {
    FOR_EACH(c, C) {
        float is = (float)(1.0 / sqrt((double)rv[c] + eps));
        save_mean[c] = rm[c];
        save_invstd[c] = is;
        sc[c] = gamma ? gamma[c] * is : is;
    }
}

/* Training statistics from our own sums, where cuDNN does not take the batch (!bn_cudnn):
 * s1 = sum (x - k), s2 = sum (x - k)^2 with k the first row (nn/cpu/norm.c's shift); mean,
 * biased variance, the running update with the unbiased one (the biased one for a single row),
 * in double, as the CPU; and sc = gamma * save_invstd for apply. */
static __global__ void bn_train_stats_k(const double *s1, const double *s2, const float *k, int M,
                                        const float *gamma, float momentum, float eps, int C,
                                        float *rm, float *rv, float *save_mean, float *save_invstd,
                                        float *sc) {
    FOR_EACH(c, C) {
        double d = M > 0 ? s1[c] / M : 0.0, var = M > 0 ? s2[c] / M - d * d : 0.0;
        if (var < 0) var = 0;
        double mean = (M > 0 ? (double)k[c] : 0.0) + d;
        float is = (float)(1.0 / sqrt(var + eps));
        save_mean[c] = (float)mean;
        save_invstd[c] = is;
        sc[c] = gamma ? gamma[c] * is : is;
        if (rm && rv) {
            double unbiased = M > 1 ? var * M / (M - 1) : var;
            rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * mean);
            rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * unbiased);
        }
    }
}

void fl_cuda_batchnorm_forward(fl_backend *be, const float *x, float *y, int M, int C,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, float momentum, float eps, int train,
                               float *save_mean, float *save_invstd) {
    fl_cuda *cu = FL_CUDA(be);
    cudaStream_t st = cu->stream;
    if (C <= 0) return;
    if (M < 0) M = 0;
    if (!train) {
        float *sc = (float *)fl_cuda_workspace(be, (size_t)C * sizeof(float));
        LAUNCH(st, C, bn_eval_coef_k, running_mean, running_var, gamma, eps, C, save_mean,
               save_invstd, sc);
        if (M > 0) apply(st, x, y, 1, M, C, save_mean, sc, beta);
        return;
    }
    float *rm = running_mean && running_var ? running_mean : NULL;
    float *rv = rm ? running_var : NULL;
    if (!bn_cudnn(M, C)) {
        int R = M;
        size_t nd = fl_cuda_col_doubles(1, R, C);
        char *ws = (char *)fl_cuda_workspace(be, fl_cuda_align(nd * 8) + (size_t)C * 4);
        float *sc = (float *)(ws + fl_cuda_align(nd * 8));
        double *s1, *s2;
        fl_cuda_col_moments<FL_COL_SHIFT>(st, x, NULL, x, NULL, NULL, 1, R, C, (double *)ws, &s1,
                                          &s2, NULL);
        LAUNCH(st, C, bn_train_stats_k, s1, s2, x, R, gamma, momentum, eps, C, rm, rv, save_mean,
               save_invstd, sc);
        apply(st, x, y, 1, R, C, save_mean, sc, beta);
        return;
    }
    /* cuDNN wants scale and bias: ones and zeros stand in for absent ones. */
    const float *g = gamma, *b = beta;
    if (!g || !b) {
        float *ws = (float *)fl_cuda_workspace(be, (size_t)2 * C * sizeof(float));
        if (!g) {
            LAUNCH(st, C, fill_k, ws, 1.0f, C);
            g = ws;
        }
        if (!b) {
            LAUNCH(st, C, fill_k, ws + C, 0.0f, C);
            b = ws + C;
        }
    }
    /* Batch mean and biased variance normalise; running = (1-momentum)*running + momentum*batch
     * with the unbiased variance (cuDNN's exponentialAverageFactor is PyTorch's momentum, and it
     * uses M/(M-1) for the running variance as PyTorch does); save_invstd = 1/sqrt(var + eps). */
    const bn_desc *d = bn_descs(M, C);
    const float one = 1.0f, zero = 0.0f;
    FL_CUDNN(cudnnBatchNormalizationForwardTraining(cu->dnn, BN_MODE, &one, &zero, d->x, x, d->x, y,
                                                    d->p, g, b, (double)momentum, rm, rv,
                                                    (double)eps, save_mean, save_invstd));
}

/* Per channel, from s1 = sum dy and s2 = sum dy*(x - mean): the parameter gradients and the dx
 * coefficients co = {mu, A, B, D} (nn/cpu/norm.c's algebra; B = D = 0 for frozen statistics). */
static __global__ void bn_bwd_coef_k(const double *s1, const double *s2, const float *gamma,
                                     const float *save_mean, const float *save_invstd, int M, int C,
                                     int train, float *dgamma, float *dbeta, float *co) {
    FOR_EACH(c, C) {
        double g = gamma ? gamma[c] : 1.0, is = save_invstd[c];
        if (dbeta) dbeta[c] = (float)s1[c];
        if (dgamma) dgamma[c] = (float)(s2[c] * is);
        co[c] = save_mean[c];
        co[C + c] = (float)(g * is);
        co[2 * C + c] = train && M > 0 ? (float)(-g * is * is * is * s2[c] / M) : 0.0f;
        co[3 * C + c] = train && M > 0 ? (float)(-g * is * s1[c] / M) : 0.0f;
    }
}

/* The batch normalization backward's epsilon: cuDNN is given the saved mean and 1/std, from
 * which it needs no epsilon, and the interface passes none; this satisfies its >= check. */
#define BN_BWD_EPS 1e-5

void fl_cuda_batchnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int M, int C, const float *gamma,
                                const float *save_mean, const float *save_invstd, int train,
                                float *dgamma, float *dbeta) {
    fl_cuda *cu = FL_CUDA(be);
    cudaStream_t st = cu->stream;
    if (C <= 0) return;
    if (M < 0) M = 0;
    if (train && dx && bn_cudnn(M, C)) {
        /* cuDNN: dx = 1*grad + beta_acc*dx, parameter gradients overwritten (beta 0). It needs
         * scale and both parameter outputs: ones and scratch stand in for absent ones. */
        float *ws = NULL;
        if (!gamma || !dgamma || !dbeta) ws = (float *)fl_cuda_workspace(be, 3 * (size_t)C * 4);
        const float *g = gamma;
        if (!g) {
            LAUNCH(st, C, fill_k, ws, 1.0f, C);
            g = ws;
        }
        float *dg = dgamma ? dgamma : ws + C, *db = dbeta ? dbeta : ws + 2 * C;
        const bn_desc *d = bn_descs(M, C);
        const float one = 1.0f, zero = 0.0f;
        FL_CUDNN(cudnnBatchNormalizationBackward(cu->dnn, BN_MODE, &one, &beta_acc, &one, &zero,
                                                 d->x, x, d->x, dy, d->x, dx, d->p, g, dg, db,
                                                 BN_BWD_EPS, save_mean, save_invstd));
        return;
    }
    /* Frozen statistics (dx = gamma*invstd*dy), only the parameter gradients wanted, or a batch
     * cuDNN does not take (!bn_cudnn). */
    if (!dx && !dgamma && !dbeta) return;
    size_t nd = fl_cuda_col_doubles(1, M, C);
    char *ws = (char *)fl_cuda_workspace(be, fl_cuda_align(nd * 8) + (size_t)4 * C * 4);
    float *co = (float *)(ws + fl_cuda_align(nd * 8));
    double *s1, *s2;
    fl_cuda_col_moments<FL_COL_GRAD>(st, x, dy, save_mean, NULL, NULL, 1, M, C, (double *)ws, &s1,
                                     &s2, NULL);
    LAUNCH(st, C, bn_bwd_coef_k, s1, s2, gamma, save_mean, save_invstd, M, C, train, dgamma, dbeta,
           co);
    if (dx) apply_grad(st, x, dy, dx, beta_acc, 1, M, C, co);
}

/* ---- groupnorm: x (N, HW, C), group g holds channels [g*C/G, (g+1)*C/G) ---- */

/* k[n,c] = the first element of sample n's group of c: each group's sums are shifted by it, so
 * the one-pass variance does not cancel (as the CPU). */
static __global__ void gn_shift_k(const float *x, int HW, int C, int Cg, float *k, size_t NC) {
    FOR_EACH(i, NC) {
        size_t n = i / C, c = i % C;
        k[i] = HW > 0 ? x[n * HW * C + (c / Cg) * Cg] : 0.0f;
    }
}

/* Per (n, g): mean and 1/std from the shifted channel sums; mu and sc per (n, c). */
static __global__ void gn_stats_k(const double *s1, const double *s2, const float *k,
                                  const float *gamma, int HW, int C, int G, float eps,
                                  float *save_mean, float *save_invstd, float *mu, float *sc,
                                  int NG) {
    FOR_EACH(i, NG) {
        int n = (int)i / G, g = (int)i % G, Cg = C / G;
        size_t o = (size_t)n * C + (size_t)g * Cg;
        double a = 0, b = 0, cnt = (double)HW * Cg;
        for (int c = 0; c < Cg; c++) {
            a += s1[o + c];
            b += s2[o + c];
        }
        double d = cnt > 0 ? a / cnt : 0.0, var = cnt > 0 ? b / cnt - d * d : 0.0;
        if (var < 0) var = 0;
        double mean = k[o] + d, is = 1.0 / sqrt(var + eps);
        save_mean[i] = (float)mean;
        save_invstd[i] = (float)is;
        for (int c = 0; c < Cg; c++) {
            mu[o + c] = (float)mean;
            sc[o + c] = (float)(gamma ? gamma[g * Cg + c] * is : is);
        }
    }
}

void fl_cuda_groupnorm_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C,
                               int G, const float *gamma, const float *beta, float eps,
                               float *save_mean, float *save_invstd) {
    cudaStream_t st = FL_CUDA(be)->stream;
    if (N <= 0 || C <= 0 || G <= 0) return;
    int Cg = C / G;
    size_t NC = (size_t)N * C, nd = fl_cuda_col_doubles(N, HW, C), fb = fl_cuda_align(NC * 4);
    char *ws = (char *)fl_cuda_workspace(be, fl_cuda_align(nd * 8) + 3 * fb);
    float *k = (float *)(ws + fl_cuda_align(nd * 8)), *mu = (float *)((char *)k + fb);
    float *sc = (float *)((char *)mu + fb);
    LAUNCH(st, NC, gn_shift_k, x, HW, C, Cg, k, NC);
    double *s1, *s2;
    fl_cuda_col_moments<FL_COL_SHIFT>(st, x, NULL, k, NULL, NULL, N, HW, C, (double *)ws, &s1, &s2,
                                      NULL);
    LAUNCH(st, N * G, gn_stats_k, s1, s2, k, gamma, HW, C, G, eps, save_mean, save_invstd, mu, sc,
           N * G);
    apply(st, x, y, N, HW, C, mu, sc, beta);
}

/* k[n,c] = save_mean[n, c/Cg] */
static __global__ void gn_mean_k(const float *save_mean, int C, int G, float *k, size_t NC) {
    FOR_EACH(i, NC) {
        size_t n = i / C, c = i % C;
        k[i] = save_mean[n * G + c / (C / G)];
    }
}

/* dbeta[c] = sum_n s1[n,c], dgamma[c] = sum_n s2[n,c] * invstd[n, c/Cg], in sample order. */
static __global__ void gn_param_k(const double *s1, const double *s2, const float *save_invstd,
                                  int N, int C, int G, float *dgamma, float *dbeta) {
    FOR_EACH(c, C) {
        double gb = 0, gg = 0;
        for (int n = 0; n < N; n++) {
            gb += s1[(size_t)n * C + c];
            gg += s2[(size_t)n * C + c] * save_invstd[(size_t)n * G + c / (C / G)];
        }
        if (dbeta) dbeta[c] = (float)gb;
        if (dgamma) dgamma[c] = (float)gg;
    }
}

/* dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = gamma * dy, as
 * coefficients co = {mu, A, B, D} per (n, c) (NC each). */
static __global__ void gn_coef_k(const double *s1, const double *s2, const float *gamma,
                                 const float *save_mean, const float *save_invstd, int HW, int C,
                                 int G, float *co, size_t NC, int NG) {
    FOR_EACH(i, NG) {
        int n = (int)i / G, g = (int)i % G, Cg = C / G;
        size_t o = (size_t)n * C + (size_t)g * Cg;
        double is = save_invstd[i], a = 0, b = 0, cnt = (double)HW * Cg;
        for (int c = 0; c < Cg; c++) {
            double gm = gamma ? gamma[g * Cg + c] : 1.0;
            a += gm * s1[o + c];
            b += gm * s2[o + c];
        }
        for (int c = 0; c < Cg; c++) {
            double gm = gamma ? gamma[g * Cg + c] : 1.0;
            co[o + c] = save_mean[i];
            co[NC + o + c] = (float)(gm * is);
            co[2 * NC + o + c] = cnt > 0 ? (float)(-is * is * is * b / cnt) : 0.0f;
            co[3 * NC + o + c] = cnt > 0 ? (float)(-is * a / cnt) : 0.0f;
        }
    }
}

void fl_cuda_groupnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int N, int HW, int C, int G, const float *gamma,
                                const float *save_mean, const float *save_invstd, float *dgamma,
                                float *dbeta) {
    cudaStream_t st = FL_CUDA(be)->stream;
    if (C <= 0 || G <= 0) return;
    if (N <= 0) {
        /* Empty batch: the parameter gradients are empty sums. */
        if (dgamma) FL_CU(cudaMemsetAsync(dgamma, 0, (size_t)C * 4, st));
        if (dbeta) FL_CU(cudaMemsetAsync(dbeta, 0, (size_t)C * 4, st));
        return;
    }
    size_t NC = (size_t)N * C, nd = fl_cuda_col_doubles(N, HW, C), fb = fl_cuda_align(NC * 4);
    char *ws = (char *)fl_cuda_workspace(be, fl_cuda_align(nd * 8) + 5 * fb);
    float *k = (float *)(ws + fl_cuda_align(nd * 8)), *co = (float *)((char *)k + fb);
    LAUNCH(st, NC, gn_mean_k, save_mean, C, G, k, NC);
    double *s1, *s2;
    fl_cuda_col_moments<FL_COL_GRAD>(st, x, dy, k, NULL, NULL, N, HW, C, (double *)ws, &s1, &s2,
                                     NULL);
    if (dgamma || dbeta) LAUNCH(st, C, gn_param_k, s1, s2, save_invstd, N, C, G, dgamma, dbeta);
    if (!dx) return;
    LAUNCH(st, N * G, gn_coef_k, s1, s2, gamma, save_mean, save_invstd, HW, C, G, co, NC, N * G);
    apply_grad(st, x, dy, dx, beta_acc, N, HW, C, co);
}

/* ---- layernorm: x (M, F), each row normalised over its F features ----
 * One warp per row (rows grid-strided over warps); the lanes' partial sums meet in a butterfly,
 * which gives every lane the same bits in the same order on every run. */

static __device__ inline double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Mean and variance in double (two passes over the row, the second from cache), y in float as
 * the CPU: ((x - mean) * invstd) * gamma + beta. y may be x. */
static __global__ void ln_fwd_k(const float *x, float *y, int M, int F,
                                const float *__restrict__ gamma, const float *__restrict__ beta,
                                float eps, float *__restrict__ save_mean,
                                float *__restrict__ save_invstd) {
    int lane = threadIdx.x % 32;
    size_t warps = (size_t)gridDim.x * (blockDim.x / 32);
    for (size_t m = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; m < (size_t)M;
         m += warps) {
        const float *xr = x + m * F;
        float *yr = y + m * F;
        double s = 0, q = 0;
        for (int f = lane; f < F; f += 32) s += xr[f];
        s = warp_sum(s);
        double mean = F > 0 ? s / F : 0.0;
        for (int f = lane; f < F; f += 32) {
            double d = (double)xr[f] - mean;
            q += d * d;
        }
        q = warp_sum(q);
        double is = 1.0 / sqrt((F > 0 ? q / F : 0.0) + eps);
        float mf = (float)mean, isf = (float)is;
        if (lane == 0) {
            save_mean[m] = mf;
            save_invstd[m] = isf;
        }
        for (int f = lane; f < F; f += 32) {
            float v = (xr[f] - mf) * isf;
            yr[f] = (gamma ? v * gamma[f] : v) + (beta ? beta[f] : 0.0f);
        }
    }
}

void fl_cuda_layernorm_forward(fl_backend *be, const float *x, float *y, int M, int F,
                               const float *gamma, const float *beta, float eps, float *save_mean,
                               float *save_invstd) {
    cudaStream_t st = FL_CUDA(be)->stream;
    if (M <= 0) return;
    ln_fwd_k<<<fl_cuda_blocks((size_t)M * 32, FL_K_THREADS), FL_K_THREADS, 0, st>>>(
        x, y, M, F, gamma, beta, eps, save_mean, save_invstd);
    FL_CU_LAUNCHED();
}

/* dx per row: a = sum dxhat, b = sum dxhat*xhat in double, then in float
 * dx = invstd * (dxhat - a/F - xhat * b/F), dxhat = gamma * dy. */
static __global__ void ln_bwd_k(const float *__restrict__ x, const float *__restrict__ dy,
                                float *__restrict__ dx, float beta_acc, int M, int F,
                                const float *__restrict__ gamma,
                                const float *__restrict__ save_mean,
                                const float *__restrict__ save_invstd) {
    int lane = threadIdx.x % 32;
    size_t warps = (size_t)gridDim.x * (blockDim.x / 32);
    for (size_t m = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; m < (size_t)M;
         m += warps) {
        const float *xr = x + m * F, *gr = dy + m * F;
        float *dr = dx + m * F;
        double mean = save_mean[m], is = save_invstd[m], a = 0, b = 0;
        for (int f = lane; f < F; f += 32) {
            double xh = ((double)xr[f] - mean) * is, gd = gr[f];
            double dxh = gamma ? gd * gamma[f] : gd;
            a += dxh;
            b += dxh * xh;
        }
        a = warp_sum(a);
        b = warp_sum(b);
        float isf = (float)is, mf = (float)mean;
        float am = F > 0 ? (float)(a / F) : 0.0f, bm = F > 0 ? (float)(b / F) : 0.0f;
        for (int f = lane; f < F; f += 32) {
            float xh = (xr[f] - mf) * isf;
            float dxh = gamma ? gr[f] * gamma[f] : gr[f];
            float v = isf * (dxh - am - xh * bm);
            dr[f] = beta_acc == 0.0f ? v : beta_acc * dr[f] + v;
        }
    }
}

static __global__ void ln_param_k(const double *s1, const double *s2, int F, float *dgamma,
                                  float *dbeta) {
    FOR_EACH(f, F) {
        if (dbeta) dbeta[f] = (float)s1[f];
        if (dgamma) dgamma[f] = (float)s2[f];
    }
}

void fl_cuda_layernorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                                float beta_acc, int M, int F, const float *gamma,
                                const float *save_mean, const float *save_invstd, float *dgamma,
                                float *dbeta) {
    cudaStream_t st = FL_CUDA(be)->stream;
    if (F <= 0) return;
    if (dgamma || dbeta) {
        /* dbeta[f] = sum_m dy, dgamma[f] = sum_m dy * (x - mean_m) * invstd_m, in double. */
        int R = M > 0 ? M : 0;
        double *ws = (double *)fl_cuda_workspace(be, fl_cuda_col_doubles(1, R, F) * 8);
        double *s1, *s2;
        fl_cuda_col_moments<FL_COL_ROW>(st, x, dy, NULL, save_mean, save_invstd, 1, R, F, ws, &s1,
                                        &s2, NULL);
        LAUNCH(st, F, ln_param_k, s1, s2, F, dgamma, dbeta);
    }
    if (dx && M > 0) {
        ln_bwd_k<<<fl_cuda_blocks((size_t)M * 32, FL_K_THREADS), FL_K_THREADS, 0, st>>>(
            x, dy, dx, beta_acc, M, F, gamma, save_mean, save_invstd);
        FL_CU_LAUNCHED();
    }
}
