/* norm.c - batch, group and layer normalisation on the CPU over channels-last rows. Statistics
 * are shifted sums (float over 16 rows, then double) over a row chunking fixed by the shape, so
 * results are bitwise the same for any thread count. Not fused with ReLU. */
#include "cpu_impl.h"

#include <math.h>
#include <stdlib.h>

/* A segment of R rows is cut into at most NORM_MAX_TASKS / n_segments chunks of at least
 * NORM_MIN_ROWS rows; partial sums are combined in chunk order. */
#define NORM_MAX_TASKS 256
#define NORM_MIN_ROWS 16

static int norm_chunks(int n_seg, int R) {
    int nc = (R + NORM_MIN_ROWS - 1) / NORM_MIN_ROWS;
    int cap = NORM_MAX_TASKS / (n_seg > 0 ? n_seg : 1);
    if (nc > cap) nc = cap;
    return nc < 1 ? 1 : nc;
}

/* An allocation failure cannot be returned by a void op; NaN outputs make it loud instead. */
static void poison(float *p, size_t n) {
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* Rows summed in float before each flush into the double totals: float keeps the inner loop
 * twice as wide, the shift keeps the terms small, and 16 terms lose nothing that matters. */
#define NORM_FLUSH_ROWS 16

/* Column sums over S segments of R rows of C columns (x, dy: (S, R, C)), per segment:
 *   dy == NULL: s1[s,c] = sum_r (x - k[s,c]),  s2[s,c] = sum_r (x - k[s,c])^2
 *   dy != NULL: s1[s,c] = sum_r dy,            s2[s,c] = sum_r dy * (x - k[s,c])
 * k holds values that are exact in float (not modified; non-const only because gcc's
 * -Wmaybe-uninitialized cannot see that callers fill it). part holds the scratch counted by
 * moments_doubles; s1, s2 are S*C. */
static void col_moments(const float *x, const float *dy, double *k, int S, int R, int C,
                        double *part, double *s1, double *s2) {
    int nc = norm_chunks(S, R);
    int tasks = S * nc;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        int s = t / nc, j = t % nc;
        double *p1 = part + (size_t)4 * C * t, *p2 = p1 + C;
        float *kf = (float *)(p2 + C), *f1 = kf + C, *f2 = f1 + C;
        size_t r0 = (size_t)s * R + (size_t)((long long)R * j / nc);
        size_t r1 = (size_t)s * R + (size_t)((long long)R * (j + 1) / nc);
        for (int c = 0; c < C; c++) {
            p1[c] = p2[c] = 0;
            kf[c] = (float)k[(size_t)s * C + c];
        }
        for (size_t rb = r0; rb < r1; rb += NORM_FLUSH_ROWS) {
            size_t re = rb + NORM_FLUSH_ROWS < r1 ? rb + NORM_FLUSH_ROWS : r1;
            for (int c = 0; c < C; c++) f1[c] = f2[c] = 0;
            for (size_t r = rb; r < re; r++) {
                const float *xr = x + r * C;
                if (!dy) {
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float d = xr[c] - kf[c];
                        f1[c] += d;
                        f2[c] += d * d;
                    }
                } else {
                    const float *gr = dy + r * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        f1[c] += gr[c];
                        f2[c] += gr[c] * (xr[c] - kf[c]);
                    }
                }
            }
#pragma omp simd
            for (int c = 0; c < C; c++) {
                p1[c] += f1[c];
                p2[c] += f2[c];
            }
        }
    }
    int SC = S * C;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < SC; i++) {
        int s = i / C, c = i % C;
        double a = 0, b = 0;
        for (int j = 0; j < nc; j++) {
            const double *p1 = part + (size_t)4 * C * ((size_t)s * nc + j);
            a += p1[c];
            b += p1[C + c];
        }
        s1[i] = a;
        s2[i] = b;
    }
}

/* Doubles of scratch for col_moments (per task: p1, p2, then kf, f1, f2 as floats) plus k, s1
 * and s2 of S*C each. */
static size_t moments_doubles(int S, int R, int C) {
    return (size_t)S * norm_chunks(S, R) * 4 * C + (size_t)3 * S * C;
}

/* y[s,r,c] = (x - mu[s,c]) * sc[s,c] + sh[c] over S segments of R rows (sh may be NULL). */
static void norm_apply(const float *x, float *y, int S, int R, int C, const float *mu,
                       const float *sc, const float *sh) {
    size_t rows = (size_t)S * R;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t o = (size_t)(r / R) * C;
        const float *xr = x + r * C, *m = mu + o, *a = sc + o;
        float *yr = y + r * C;
        if (sh) {
#pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = (xr[c] - m[c]) * a[c] + sh[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = (xr[c] - m[c]) * a[c];
        }
    }
}

/* dx[s,r,c] = beta*dx + A*dy + B*(x - mu) + D, coefficients per (s, c); co = {mu, A, B, D}. */
static void norm_apply_grad(const float *x, const float *dy, float *dx, float beta_acc, int S,
                            int R, int C, const float *co) {
    size_t rows = (size_t)S * R, SC = (size_t)S * C;
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t o = (size_t)(r / R) * C;
        const float *m = co + o, *A = co + SC + o, *B = co + 2 * SC + o, *D = co + 3 * SC + o;
        const float *xr = x + r * C, *gr = dy + r * C;
        float *dr = dx + r * C;
        if (beta_acc == 0.0f) {
#pragma omp simd
            for (int c = 0; c < C; c++) dr[c] = A[c] * gr[c] + B[c] * (xr[c] - m[c]) + D[c];
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++)
                dr[c] = beta_acc * dr[c] + A[c] * gr[c] + B[c] * (xr[c] - m[c]) + D[c];
        }
    }
}

/* ---- batchnorm: x (M, C) ---- */

void fl_cpu_batchnorm_forward(fl_backend *be, const float *x, float *y, int M, int C,
                              const float *gamma, const float *beta, float *running_mean,
                              float *running_var, float momentum, float eps, int train,
                              float *save_mean, float *save_invstd) {
    size_t nd = train ? moments_doubles(1, M, C) : 0;
    double *buf = fl_cpu_scratch(be, nd * sizeof(double) + (size_t)2 * C * sizeof(float) + 1);
    if (!buf) {
        poison(y, (size_t)M * C);
        poison(save_mean, C);
        poison(save_invstd, C);
        return;
    }
    float *mu = (float *)(buf + nd), *sc = mu + C;
    if (train) {
        double *k = buf, *s1 = k + C, *s2 = s1 + C, *part = s2 + C;
        for (int c = 0; c < C; c++) k[c] = M > 0 ? x[c] : 0.0;
        col_moments(x, NULL, k, 1, M, C, part, s1, s2);
        for (int c = 0; c < C; c++) {
            double d = M > 0 ? s1[c] / M : 0.0;
            double var = M > 0 ? s2[c] / M - d * d : 0.0;
            if (var < 0) var = 0;
            double mean = k[c] + d;
            mu[c] = (float)mean;
            save_mean[c] = (float)mean;
            save_invstd[c] = (float)(1.0 / sqrt(var + eps));
            if (running_mean && running_var) {
                double unbiased = M > 1 ? var * M / (M - 1) : var;
                running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
                running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
            }
        }
    } else {
        for (int c = 0; c < C; c++) {
            mu[c] = running_mean[c];
            save_mean[c] = running_mean[c];
            save_invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        }
    }
    for (int c = 0; c < C; c++) sc[c] = gamma ? gamma[c] * save_invstd[c] : save_invstd[c];
    norm_apply(x, y, 1, M, C, mu, sc, beta);
}

void fl_cpu_batchnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int C, const float *gamma,
                               const float *save_mean, const float *save_invstd, int train,
                               float *dgamma, float *dbeta) {
    int need_sums = train || dgamma || dbeta;
    size_t nd = need_sums ? moments_doubles(1, M, C) : 0;
    double *buf = fl_cpu_scratch(be, nd * sizeof(double) + (size_t)4 * C * sizeof(float) + 1);
    if (!buf) {
        poison(dgamma, C);
        poison(dbeta, C);
        if (dx) poison(dx, (size_t)M * C);
        return;
    }
    double *k = buf, *s1 = k + C, *s2 = s1 + C, *part = s2 + C;
    float *co = (float *)(buf + nd), *mu = co, *A = co + C, *B = co + 2 * C, *D = co + 3 * C;
    if (need_sums) {
        for (int c = 0; c < C; c++) k[c] = save_mean[c];
        col_moments(x, dy, k, 1, M, C, part, s1, s2);
    }
    for (int c = 0; c < C; c++) {
        double g = gamma ? gamma[c] : 1.0, is = save_invstd[c];
        if (dbeta) dbeta[c] = (float)s1[c];
        if (dgamma) dgamma[c] = (float)(s2[c] * is);
        mu[c] = save_mean[c];
        A[c] = (float)(g * is);
        B[c] = train && M > 0 ? (float)(-g * is * is * is * s2[c] / M) : 0.0f;
        D[c] = train && M > 0 ? (float)(-g * is * s1[c] / M) : 0.0f;
    }
    if (dx) norm_apply_grad(x, dy, dx, beta_acc, 1, M, C, co);
}

/* ---- groupnorm: x (N, HW, C), group g holds channels [g*C/G, (g+1)*C/G) ---- */

void fl_cpu_groupnorm_forward(fl_backend *be, const float *x, float *y, int N, int HW, int C, int G,
                              const float *gamma, const float *beta, float eps, float *save_mean,
                              float *save_invstd) {
    int Cg = C / G;
    size_t NC = (size_t)N * C, nd = moments_doubles(N, HW, C);
    double *buf = fl_cpu_scratch(be, nd * sizeof(double) + 2 * NC * sizeof(float) + 1);
    if (!buf) {
        poison(y, NC * HW);
        poison(save_mean, (size_t)N * G);
        poison(save_invstd, (size_t)N * G);
        return;
    }
    double *k = buf, *s1 = k + NC, *s2 = s1 + NC, *part = s2 + NC;
    float *mu = (float *)(buf + nd), *sc = mu + NC;
    /* Shift each group by its first element, so the one-pass variance does not cancel. */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            k[(size_t)n * C + c] = HW > 0 ? x[(size_t)n * HW * C + (size_t)(c / Cg) * Cg] : 0.0;
    col_moments(x, NULL, k, N, HW, C, part, s1, s2);
    double cnt = (double)HW * Cg;
    for (int n = 0; n < N; n++) {
        for (int g = 0; g < G; g++) {
            size_t o = (size_t)n * C + (size_t)g * Cg;
            double a = 0, b = 0;
            for (int c = 0; c < Cg; c++) {
                a += s1[o + c];
                b += s2[o + c];
            }
            double d = cnt > 0 ? a / cnt : 0.0, var = cnt > 0 ? b / cnt - d * d : 0.0;
            if (var < 0) var = 0;
            double mean = k[o] + d, is = 1.0 / sqrt(var + eps);
            save_mean[n * G + g] = (float)mean;
            save_invstd[n * G + g] = (float)is;
            for (int c = 0; c < Cg; c++) {
                mu[o + c] = (float)mean;
                sc[o + c] = (float)(gamma ? gamma[g * Cg + c] * is : is);
            }
        }
    }
    norm_apply(x, y, N, HW, C, mu, sc, beta);
}

void fl_cpu_groupnorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int N, int HW, int C, int G, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta) {
    int Cg = C / G;
    size_t NC = (size_t)N * C, nd = moments_doubles(N, HW, C);
    double *buf = fl_cpu_scratch(be, nd * sizeof(double) + 4 * NC * sizeof(float) + 1);
    if (!buf) {
        poison(dgamma, C);
        poison(dbeta, C);
        if (dx) poison(dx, NC * HW);
        return;
    }
    double *k = buf, *s1 = k + NC, *s2 = s1 + NC, *part = s2 + NC;
    float *co = (float *)(buf + nd), *mu = co, *A = co + NC, *B = co + 2 * NC, *D = co + 3 * NC;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) k[(size_t)n * C + c] = save_mean[n * G + c / Cg];
    col_moments(x, dy, k, N, HW, C, part, s1, s2);
    /* Parameter gradients, summed over the batch in sample order. */
    for (int c = 0; c < C; c++) {
        double gb = 0, gg = 0;
        for (int n = 0; n < N; n++) {
            gb += s1[(size_t)n * C + c];
            gg += s2[(size_t)n * C + c] * save_invstd[n * G + c / Cg];
        }
        if (dbeta) dbeta[c] = (float)gb;
        if (dgamma) dgamma[c] = (float)gg;
    }
    /* dx = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = gamma * dy. */
    double cnt = (double)HW * Cg;
    for (int n = 0; n < N; n++) {
        for (int g = 0; g < G; g++) {
            size_t o = (size_t)n * C + (size_t)g * Cg;
            double is = save_invstd[n * G + g], a = 0, b = 0;
            for (int c = 0; c < Cg; c++) {
                double gm = gamma ? gamma[g * Cg + c] : 1.0;
                a += gm * s1[o + c];
                b += gm * s2[o + c];
            }
            for (int c = 0; c < Cg; c++) {
                double gm = gamma ? gamma[g * Cg + c] : 1.0;
                mu[o + c] = save_mean[n * G + g];
                A[o + c] = (float)(gm * is);
                B[o + c] = cnt > 0 ? (float)(-is * is * is * b / cnt) : 0.0f;
                D[o + c] = cnt > 0 ? (float)(-is * a / cnt) : 0.0f;
            }
        }
    }
    if (dx) norm_apply_grad(x, dy, dx, beta_acc, N, HW, C, co);
}

/* ---- layernorm: x (M, F), each row normalised over its F features ---- */

void fl_cpu_layernorm_forward(fl_backend *be, const float *x, float *y, int M, int F,
                              const float *gamma, const float *beta, float eps, float *save_mean,
                              float *save_invstd) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * F;
        float *yr = y + (size_t)m * F;
        double s = 0, q = 0;
#pragma omp simd reduction(+ : s)
        for (int f = 0; f < F; f++) s += xr[f];
        double mean = F > 0 ? s / F : 0.0;
#pragma omp simd reduction(+ : q)
        for (int f = 0; f < F; f++) q += ((double)xr[f] - mean) * ((double)xr[f] - mean);
        double is = 1.0 / sqrt((F > 0 ? q / F : 0.0) + eps);
        float mf = (float)mean, isf = (float)is;
        save_mean[m] = mf;
        save_invstd[m] = isf;
        for (int f = 0; f < F; f++) {
            float v = (xr[f] - mf) * isf;
            yr[f] = (gamma ? v * gamma[f] : v) + (beta ? beta[f] : 0.0f);
        }
    }
}

void fl_cpu_layernorm_backward(fl_backend *be, const float *x, const float *dy, float *dx,
                               float beta_acc, int M, int F, const float *gamma,
                               const float *save_mean, const float *save_invstd, float *dgamma,
                               float *dbeta) {
    int nc = norm_chunks(1, M);
    double *part = fl_cpu_scratch(be, (size_t)nc * 2 * F * sizeof(double) + 1);
    if (!part) {
        poison(dgamma, F);
        poison(dbeta, F);
        if (dx) poison(dx, (size_t)M * F);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int j = 0; j < nc; j++) {
        double *pb = part + (size_t)2 * F * j, *pg = pb + F;
        for (int f = 0; f < F; f++) pb[f] = pg[f] = 0;
        int m0 = (int)((long long)M * j / nc), m1 = (int)((long long)M * (j + 1) / nc);
        for (int m = m0; m < m1; m++) {
            const float *xr = x + (size_t)m * F, *gr = dy + (size_t)m * F;
            double mean = save_mean[m], is = save_invstd[m], a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
            for (int f = 0; f < F; f++) {
                double xh = ((double)xr[f] - mean) * is, gd = gr[f];
                double dxh = gamma ? gd * gamma[f] : gd;
                pb[f] += gd;
                pg[f] += gd * xh;
                a += dxh;
                b += dxh * xh;
            }
            if (!dx) continue;
            float *dr = dx + (size_t)m * F;
            float isf = (float)is, mf = (float)mean;
            float am = F > 0 ? (float)(a / F) : 0.0f, bm = F > 0 ? (float)(b / F) : 0.0f;
            for (int f = 0; f < F; f++) {
                float xh = (xr[f] - mf) * isf;
                float dxh = gamma ? gr[f] * gamma[f] : gr[f];
                float v = isf * (dxh - am - xh * bm);
                dr[f] = beta_acc == 0.0f ? v : beta_acc * dr[f] + v;
            }
        }
    }
    for (int f = 0; f < F; f++) {
        double gb = 0, gg = 0;
        for (int j = 0; j < nc; j++) {
            gb += part[(size_t)2 * F * j + f];
            gg += part[(size_t)2 * F * j + F + f];
        }
        if (dbeta) dbeta[f] = (float)gb;
        if (dgamma) dgamma[f] = (float)gg;
    }
}
