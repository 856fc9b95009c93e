/* test_ops.c - the CPU backend's normalisation, element-wise, pooling, linear and softmax
 * cross-entropy ops on tiny shapes: forward values against naive double references, every
 * backward against central finite differences of L = sum(y * r), the beta = 1 accumulation path,
 * thread independence. Convolution and the optimizers are in test_ops_conv_optim.c. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/backend.h"
#include "fd.h"
#include "harness.h"

/* ---- normalisation ---- */

typedef struct {
    float *x, *y, *gamma, *beta, *rm, *rv, *rm0, *rv0, *sm, *si;
    int M, C, N, HW, G, train;
} norm_ctx;

static void bn_fwd(void *p) {
    norm_ctx *c = p;
    memcpy(c->rm, c->rm0, c->C * sizeof(float));
    memcpy(c->rv, c->rv0, c->C * sizeof(float));
    be->batchnorm_forward(be, c->x, c->y, c->M, c->C, c->gamma, c->beta, c->rm, c->rv, 0.1f, 1e-5f,
                          c->train, c->sm, c->si);
}

static void test_batchnorm(int train) {
    int M = 12, C = 5;
    size_t n = (size_t)M * C;
    norm_ctx c = {.M = M, .C = C, .train = train};
    c.x = frand(n, -1, 1);
    for (size_t i = 0; i < n; i++) c.x[i] += 0.3f * (float)(i % C);
    c.y = fbuf(n), c.gamma = frand(C, 0.5f, 1.5f), c.beta = frand(C, -0.5f, 0.5f);
    c.rm0 = frand(C, -0.5f, 0.5f), c.rv0 = frand(C, 0.5f, 1.5f);
    c.rm = fbuf(C), c.rv = fbuf(C), c.sm = fbuf(C), c.si = fbuf(C);
    bn_fwd(&c);

    /* Forward against double: batch statistics (biased) or running ones, momentum 0.1. */
    double yref[60], mref[5], iref[5], rmref[5], rvref[5];
    for (int k = 0; k < C; k++) {
        double s = 0, q = 0;
        for (int m = 0; m < M; m++) s += c.x[m * C + k];
        double mean = s / M;
        for (int m = 0; m < M; m++) q += (c.x[m * C + k] - mean) * (c.x[m * C + k] - mean);
        double var = q / M;
        rmref[k] = train ? 0.9 * c.rm0[k] + 0.1 * mean : c.rm0[k];
        rvref[k] = train ? 0.9 * c.rv0[k] + 0.1 * var * M / (M - 1) : c.rv0[k];
        mref[k] = train ? mean : c.rm0[k];
        iref[k] = 1.0 / sqrt((train ? var : c.rv0[k]) + 1e-5);
        for (int m = 0; m < M; m++)
            yref[m * C + k] = (c.x[m * C + k] - mref[k]) * iref[k] * c.gamma[k] + c.beta[k];
    }
    CHECK_ARRAYS("bn y", c.y, fromd(yref, n), n, 1e-5, 0.1);
    CHECK_ARRAYS("bn save_mean", c.sm, fromd(mref, C), C, 1e-5, 1e-3);
    CHECK_ARRAYS("bn save_invstd", c.si, fromd(iref, C), C, 1e-5, 1e-3);
    CHECK_ARRAYS("bn running_mean", c.rm, fromd(rmref, C), C, 1e-5, 1e-3);
    CHECK_ARRAYS("bn running_var", c.rv, fromd(rvref, C), C, 1e-5, 1e-3);

    float *r = frand(n, -1, 1), *dx = fnan(n), *dg = fbuf(C), *db = fbuf(C);
    be->batchnorm_backward(be, c.x, r, dx, 0.0f, M, C, c.gamma, c.sm, c.si, train, dg, db);
    fd_obj o = {bn_fwd, &c, c.y, r, n};
    FD_CHECK(train ? "bn(train) dx" : "bn(eval) dx", &o, c.x, dx, n, 1e-2f);
    FD_CHECK("bn dgamma", &o, c.gamma, dg, C, 1e-2f);
    FD_CHECK("bn dbeta", &o, c.beta, db, C, 1e-2f);
    float *d0 = frand(n, -1, 1), *acc = fcopy(d0, n);
    be->batchnorm_backward(be, c.x, r, acc, 1.0f, M, C, c.gamma, c.sm, c.si, train, dg, db);
    CHECK_BETA1("bn dx beta=1", acc, d0, dx, n);
    tfree();
}

/* A large mean over a small spread, and a shape with several row chunks: the statistics must
 * stay accurate, and results must not depend on the thread count. */
static void test_batchnorm_stats(void) {
    int M = 3000, C = 8;
    size_t n = (size_t)M * C;
    float *x = frand(n, -1, 1), *y1 = fbuf(n), *y2 = fbuf(n);
    for (size_t i = 0; i < n; i++) x[i] += 1000.0f;
    float *g = frand(C, 0.5f, 1.5f), *b = frand(C, -1, 1), *rm = fbuf(C), *rv = fbuf(C);
    float *sm = fbuf(C), *si = fbuf(C), *sm2 = fbuf(C), *si2 = fbuf(C);
    double mref[8], iref[8];
    for (int k = 0; k < C; k++) {
        double s = 0, q = 0;
        for (int m = 0; m < M; m++) s += x[(size_t)m * C + k];
        mref[k] = s / M;
        for (int m = 0; m < M; m++) q += pow(x[(size_t)m * C + k] - mref[k], 2);
        iref[k] = 1 / sqrt(q / M + 1e-5);
    }
    omp_set_num_threads(1);
    be->batchnorm_forward(be, x, y1, M, C, g, b, rm, rv, 0.1f, 1e-5f, 1, sm, si);
    omp_set_num_threads(2);
    be->batchnorm_forward(be, x, y2, M, C, g, b, rm, rv, 0.1f, 1e-5f, 1, sm2, si2);
    omp_set_num_threads(be->threads);
    CHECK_ARRAYS("bn mean at 1000", sm, fromd(mref, C), C, 1e-7, 1.0);
    CHECK_ARRAYS("bn invstd at 1000", si, fromd(iref, C), C, 1e-4, 1e-3);
    CHECK(memcmp(y1, y2, n * sizeof(float)) == 0);
    CHECK(memcmp(si, si2, C * sizeof(float)) == 0);
    float *dy = frand(n, -1, 1), *dx1 = fbuf(n), *dx2 = fbuf(n), *dg1 = fbuf(C), *dg2 = fbuf(C);
    float *db = fbuf(C);
    omp_set_num_threads(1);
    be->batchnorm_backward(be, x, dy, dx1, 0.0f, M, C, g, sm, si, 1, dg1, db);
    omp_set_num_threads(2);
    be->batchnorm_backward(be, x, dy, dx2, 0.0f, M, C, g, sm, si, 1, dg2, db);
    omp_set_num_threads(be->threads);
    CHECK(memcmp(dx1, dx2, n * sizeof(float)) == 0);
    CHECK(memcmp(dg1, dg2, C * sizeof(float)) == 0);
    tfree();
}

static void gn_fwd(void *p) {
    norm_ctx *c = p;
    be->groupnorm_forward(be, c->x, c->y, c->N, c->HW, c->C, c->G, c->gamma, c->beta, 1e-5f, c->sm,
                          c->si);
}

/* Forward against double statistics; backward against a double reference of the textbook
 * formula and, on small shapes, against finite differences. */
static void test_groupnorm(int N, int HW, int C, int G) {
    int Cg = C / G;
    size_t n = (size_t)N * HW * C;
    norm_ctx c = {.N = N, .HW = HW, .C = C, .G = G};
    c.x = frand(n, -1, 1), c.y = fbuf(n), c.gamma = frand(C, 0.5f, 1.5f);
    c.beta = frand(C, -0.5f, 0.5f), c.sm = fbuf(N * G), c.si = fbuf(N * G);
    for (size_t i = 0; i < n; i++) c.x[i] += 2.0f;
    gn_fwd(&c);
    float *r = frand(n, -1, 1), *dx = fnan(n), *dg = fbuf(C), *db = fbuf(C);
    double *yref = dbuf(n), *dxref = dbuf(n), *dgref = dbuf(C), *dbref = dbuf(C);
    for (int s = 0; s < N; s++) {
        for (int g = 0; g < G; g++) {
            double sum = 0, q = 0, cnt = (double)HW * Cg, a = 0, b = 0;
            for (int i = 0; i < HW; i++)
                for (int k = g * Cg; k < (g + 1) * Cg; k++)
                    sum += c.x[((size_t)s * HW + i) * C + k];
            double mean = sum / cnt;
            for (int i = 0; i < HW; i++)
                for (int k = g * Cg; k < (g + 1) * Cg; k++)
                    q += pow(c.x[((size_t)s * HW + i) * C + k] - mean, 2);
            double is = 1 / sqrt(q / cnt + 1e-5);
            CHECK_CLOSE(c.sm[s * G + g], mean, 1e-6, 1e-6);
            CHECK_CLOSE(c.si[s * G + g], is, 1e-5, 1e-6);
            for (int i = 0; i < HW; i++)
                for (int k = g * Cg; k < (g + 1) * Cg; k++) {
                    size_t at = ((size_t)s * HW + i) * C + k;
                    double xh = (c.x[at] - mean) * is;
                    yref[at] = xh * c.gamma[k] + c.beta[k];
                    dbref[k] += r[at];
                    dgref[k] += r[at] * xh;
                    a += r[at] * c.gamma[k];
                    b += r[at] * c.gamma[k] * xh;
                }
            for (int i = 0; i < HW; i++)
                for (int k = g * Cg; k < (g + 1) * Cg; k++) {
                    size_t at = ((size_t)s * HW + i) * C + k;
                    double xh = (c.x[at] - mean) * is;
                    dxref[at] = is * (r[at] * c.gamma[k] - a / cnt - xh * b / cnt);
                }
        }
    }
    CHECK_ARRAYS("gn y", c.y, fromd(yref, n), n, 1e-5, 0.1);
    be->groupnorm_backward(be, c.x, r, dx, 0.0f, N, HW, C, G, c.gamma, c.sm, c.si, dg, db);
    CHECK_ARRAYS("gn dx (reference)", dx, fromd(dxref, n), n, 1e-4, 1e-2);
    CHECK_ARRAYS("gn dgamma (reference)", dg, fromd(dgref, C), C, 1e-4, 1e-2);
    CHECK_ARRAYS("gn dbeta (reference)", db, fromd(dbref, C), C, 1e-4, 1e-2);
    if (n <= 200) {
        fd_obj o = {gn_fwd, &c, c.y, r, n};
        FD_CHECK("gn dx", &o, c.x, dx, n, 1e-2f);
        FD_CHECK("gn dgamma", &o, c.gamma, dg, C, 1e-2f);
        FD_CHECK("gn dbeta", &o, c.beta, db, C, 1e-2f);
    }
    float *d0 = frand(n, -1, 1), *acc = fcopy(d0, n);
    be->groupnorm_backward(be, c.x, r, acc, 1.0f, N, HW, C, G, c.gamma, c.sm, c.si, dg, db);
    CHECK_BETA1("gn dx beta=1", acc, d0, dx, n);
    tfree();
}

static void ln_fwd(void *p) {
    norm_ctx *c = p;
    be->layernorm_forward(be, c->x, c->y, c->M, c->C, c->gamma, c->beta, 1e-5f, c->sm, c->si);
}

static void test_layernorm(int M, int F) {
    size_t n = (size_t)M * F;
    norm_ctx c = {.M = M, .C = F};
    c.x = frand(n, -1, 1), c.y = fbuf(n), c.gamma = frand(F, 0.5f, 1.5f);
    c.beta = frand(F, -0.5f, 0.5f), c.sm = fbuf(M), c.si = fbuf(M);
    ln_fwd(&c);
    double *yref = dbuf(n);
    for (int m = 0; m < M; m++) {
        double s = 0, q = 0;
        for (int f = 0; f < F; f++) s += c.x[m * F + f];
        double mean = s / F;
        for (int f = 0; f < F; f++) q += pow(c.x[m * F + f] - mean, 2);
        double is = 1 / sqrt(q / F + 1e-5);
        CHECK_CLOSE(c.sm[m], mean, 1e-5, 1e-6);
        CHECK_CLOSE(c.si[m], is, 1e-5, 1e-6);
        for (int f = 0; f < F; f++)
            yref[m * F + f] = (c.x[m * F + f] - mean) * is * c.gamma[f] + c.beta[f];
    }
    CHECK_ARRAYS("ln y", c.y, fromd(yref, n), n, 1e-5, 0.1);

    float *r = frand(n, -1, 1), *dx = fnan(n), *dg = fbuf(F), *db = fbuf(F);
    be->layernorm_backward(be, c.x, r, dx, 0.0f, M, F, c.gamma, c.sm, c.si, dg, db);
    fd_obj o = {ln_fwd, &c, c.y, r, n};
    FD_CHECK("ln dx", &o, c.x, dx, n, 1e-2f);
    FD_CHECK("ln dgamma", &o, c.gamma, dg, F, 1e-2f);
    FD_CHECK("ln dbeta", &o, c.beta, db, F, 1e-2f);
    float *d0 = frand(n, -1, 1), *acc = fcopy(d0, n);
    be->layernorm_backward(be, c.x, r, acc, 1.0f, M, F, c.gamma, c.sm, c.si, dg, db);
    CHECK_BETA1("ln dx beta=1", acc, d0, dx, n);
    tfree();
}

/* ---- element-wise ---- */

typedef struct {
    float *x, *x2, *y, *s;
    size_t n;
    int M, F, ld_src, ld_dst, col_src, col_dst;
    float p;
    uint64_t seed;
} ew_ctx;

static void relu_fwd(void *p) {
    ew_ctx *c = p;
    be->relu_forward(be, c->x, c->y, c->n);
}

static void test_relu(void) {
    size_t n = 40;
    ew_ctx c = {.n = n};
    c.x = frand(n, 0.1f, 1), c.y = fbuf(n);
    for (size_t i = 0; i < n; i += 2) c.x[i] = -c.x[i]; /* |x| >= 0.1: away from the kink */
    relu_fwd(&c);
    float *ref = fbuf(n), *inplace = fcopy(c.x, n);
    for (size_t i = 0; i < n; i++) ref[i] = c.x[i] > 0 ? c.x[i] : 0;
    CHECK_ARRAYS("relu y", c.y, ref, n, 0, 1);
    be->relu_forward(be, inplace, inplace, n);
    CHECK_ARRAYS("relu in place", inplace, ref, n, 0, 1);

    float *r = frand(n, -1, 1), *dx = fnan(n);
    be->relu_backward(be, c.y, r, dx, 0.0f, n);
    fd_obj o = {relu_fwd, &c, c.y, r, n};
    FD_CHECK("relu dx", &o, c.x, dx, n, 1e-2f);
    float *alias = fcopy(r, n);
    be->relu_backward(be, c.y, alias, alias, 0.0f, n);
    CHECK_ARRAYS("relu dx aliasing dy", alias, dx, n, 0, 1);
    float *d0 = frand(n, -1, 1), *acc = fcopy(d0, n);
    be->relu_backward(be, c.y, r, acc, 1.0f, n);
    CHECK_BETA1("relu dx beta=1", acc, d0, dx, n);
    tfree();
}

static void dropout_fwd(void *p) {
    ew_ctx *c = p;
    be->dropout_forward(be, c->x, c->y, c->s, c->n, c->p, c->seed);
}

static void test_dropout(void) {
    size_t n = 20000;
    ew_ctx c = {.n = n, .p = 0.3f, .seed = 42};
    c.x = frand(n, -1, 1), c.y = fbuf(n), c.s = fbuf(n);
    dropout_fwd(&c);
    size_t zeros = 0, odd = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += c.s[i] == 0.0f;
        odd += c.s[i] != 0.0f && c.s[i] != 1.0f / 0.7f;
        odd += c.y[i] != c.x[i] * c.s[i];
    }
    CHECK_EQ_INT(odd, 0);
    CHECK_CLOSE((double)zeros / n, 0.3, 0, 0.02);

    /* The same seed gives the same mask with 1 and 2 threads; another seed does not. */
    float *m1 = fbuf(n), *m2 = fbuf(n), *m3 = fbuf(n), *y = fbuf(n);
    omp_set_num_threads(1);
    be->dropout_forward(be, c.x, y, m1, n, c.p, c.seed);
    omp_set_num_threads(2);
    be->dropout_forward(be, c.x, y, m2, n, c.p, c.seed);
    omp_set_num_threads(be->threads);
    be->dropout_forward(be, c.x, y, m3, n, c.p, c.seed + 1);
    CHECK(memcmp(m1, c.s, n * sizeof(float)) == 0);
    CHECK(memcmp(m2, c.s, n * sizeof(float)) == 0);
    CHECK(memcmp(m3, c.s, n * sizeof(float)) != 0);
    be->dropout_forward(be, c.x, y, m3, n, 0.0f, c.seed);
    size_t ones = 0;
    for (size_t i = 0; i < n; i++) ones += m3[i] == 1.0f && y[i] == c.x[i];
    CHECK_EQ_INT(ones, n);

    c.n = n = 50; /* finite differences on a prefix, same seed, so the same mask */
    float *r = frand(n, -1, 1), *dx = fnan(n);
    dropout_fwd(&c);
    be->dropout_backward(be, r, c.s, dx, 0.0f, n);
    fd_obj o = {dropout_fwd, &c, c.y, r, n};
    FD_CHECK("dropout dx", &o, c.x, dx, n, 1e-2f);
    float *d0 = frand(n, -1, 1), *acc = fcopy(d0, n);
    be->dropout_backward(be, r, c.s, acc, 1.0f, n);
    CHECK_BETA1("dropout dx beta=1", acc, d0, dx, n);
    tfree();
}

static void add_fwd(void *p) {
    ew_ctx *c = p;
    be->add(be, c->x, c->x2, c->y, c->n);
}

static void rowscale_fwd(void *p) {
    ew_ctx *c = p;
    be->rowscale(be, c->x, c->s, c->y, c->M, c->F);
}

static void copy_cols_fwd(void *p) {
    ew_ctx *c = p;
    memset(c->y, 0, (size_t)c->M * c->ld_dst * sizeof(float));
    be->copy_cols(be, c->x + c->col_src, c->ld_src, c->y + c->col_dst, c->ld_dst, c->M, c->F, 0);
}

/* add, rowscale and copy_cols have no backward op: their gradients are built from the ops
 * themselves (add: dy to both; rowscale: rowscale(dy, s) and row dots; copy_cols: the block). */
static void test_add_rowscale_copy(void) {
    size_t n = 12;
    ew_ctx c = {.n = n};
    c.x = frand(n, -1, 1), c.x2 = frand(n, -1, 1), c.y = fbuf(n);
    add_fwd(&c);
    for (size_t i = 0; i < n; i++) CHECK(c.y[i] == c.x[i] + c.x2[i]);
    float *r = frand(n, -1, 1);
    fd_obj o = {add_fwd, &c, c.y, r, n};
    FD_CHECK("add da", &o, c.x, r, n, 1e-2f);
    FD_CHECK("add db", &o, c.x2, r, n, 1e-2f);

    int M = 4, F = 5;
    ew_ctx s = {.M = M, .F = F};
    n = (size_t)M * F;
    s.x = frand(n, -1, 1), s.s = frand(M, -2, 2), s.y = fbuf(n);
    rowscale_fwd(&s);
    float *ref = fbuf(n), *inplace = fcopy(s.x, n);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < F; j++) ref[i * F + j] = s.s[i] * s.x[i * F + j];
    CHECK_ARRAYS("rowscale y", s.y, ref, n, 0, 1);
    be->rowscale(be, inplace, s.s, inplace, M, F);
    CHECK_ARRAYS("rowscale in place", inplace, ref, n, 0, 1);
    float *r2 = frand(n, -1, 1), *dx = fbuf(n), *ds = fbuf(M);
    be->rowscale(be, r2, s.s, dx, M, F);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < F; j++) ds[i] += r2[i * F + j] * s.x[i * F + j];
    fd_obj o2 = {rowscale_fwd, &s, s.y, r2, n};
    FD_CHECK("rowscale dx", &o2, s.x, dx, n, 1e-2f);
    FD_CHECK("rowscale ds", &o2, s.s, ds, M, 1e-2f);

    ew_ctx k = {.M = 3, .F = 4, .ld_src = 7, .ld_dst = 9, .col_src = 2, .col_dst = 3};
    size_t ns = 3 * 7, nd = 3 * 9;
    k.x = frand(ns, -1, 1), k.y = fbuf(nd);
    float *r3 = frand(nd, -1, 1), *gs = fbuf(ns), *d0 = frand(nd, -1, 1), *acc = fcopy(d0, nd);
    copy_cols_fwd(&k);
    be->copy_cols(be, k.x + 2, 7, acc + 3, 9, 3, 4, 1.0f);
    int wrong = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 9; j++) {
            int in = j >= 3 && j < 7;
            float v = in ? k.x[i * 7 + j - 1] : 0.0f;
            wrong += k.y[i * 9 + j] != v;
            wrong += acc[i * 9 + j] != (in ? d0[i * 9 + j] + v : d0[i * 9 + j]);
            if (in) gs[i * 7 + j - 1] = r3[i * 9 + j];
        }
    CHECK_EQ_INT(wrong, 0);
    fd_obj o3 = {copy_cols_fwd, &k, k.y, r3, nd};
    FD_CHECK("copy_cols dsrc", &o3, k.x, gs, ns, 1e-2f);
    tfree();
}

static void test_misc_eltwise(void) {
    size_t n = 100003;
    float *x = frand(n, -2, 2), *a = frand(n, -1, 1), *b = fcopy(a, n);
    be->accumulate(be, b, x, 1.0f, n);
    int wrong = 0;
    for (size_t i = 0; i < n; i++) wrong += b[i] != a[i] + x[i];
    be->accumulate(be, b, x, 0.0f, n);
    for (size_t i = 0; i < n; i++) wrong += b[i] != x[i];
    be->scale(be, b, 0.5f, n);
    for (size_t i = 0; i < n; i++) wrong += b[i] != x[i] * 0.5f;
    CHECK_EQ_INT(wrong, 0);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    omp_set_num_threads(1);
    double s1 = be->sumsq(be, x, n);
    omp_set_num_threads(2);
    double s2 = be->sumsq(be, x, n);
    omp_set_num_threads(be->threads);
    CHECK_CLOSE(s1, ref, 1e-10, 0);
    CHECK(s1 == s2);
    CHECK(be->sumsq(be, x, 0) == 0.0);

    int N = 2, C = 3, H = 4, W = 5;
    size_t m = (size_t)N * C * H * W;
    float *nchw = frand(m, -1, 1), *nhwc = fbuf(m), *back = fbuf(m);
    be->nchw_to_nhwc(be, nchw, nhwc, N, C, H, W);
    be->nhwc_to_nchw(be, nhwc, back, N, C, H, W);
    wrong = 0;
    for (int s = 0; s < N; s++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H * W; i++)
                wrong += nhwc[(s * H * W + i) * C + c] != nchw[(s * C + c) * H * W + i];
    CHECK_EQ_INT(wrong, 0);
    CHECK(memcmp(back, nchw, m * sizeof(float)) == 0);
    tfree();
}

/* ---- pooling ---- */

typedef struct {
    float *x, *y;
    int32_t *idx;
    int N, H, W, C, k, s, p, P, Q;
} pool_ctx;

static void maxpool_fwd(void *p) {
    pool_ctx *c = p;
    be->maxpool_forward(be, c->x, c->y, c->idx, c->N, c->H, c->W, c->C, c->k, c->s, c->p, c->P,
                        c->Q);
}

/* The naive reference: windows scanned in row-major order, strictly greater wins. */
static void maxpool_ref(const pool_ctx *c, float *y, int32_t *idx) {
    for (int n = 0; n < c->N; n++)
        for (int op = 0; op < c->P; op++)
            for (int oq = 0; oq < c->Q; oq++)
                for (int ch = 0; ch < c->C; ch++) {
                    float best = -INFINITY;
                    int32_t at = -1;
                    for (int i = 0; i < c->k; i++)
                        for (int j = 0; j < c->k; j++) {
                            int h = op * c->s - c->p + i, w = oq * c->s - c->p + j;
                            if (h < 0 || h >= c->H || w < 0 || w >= c->W) continue;
                            float v = c->x[((n * c->H + h) * c->W + w) * c->C + ch];
                            if (at < 0 || v > best) best = v, at = h * c->W + w;
                        }
                    size_t o = ((size_t)(n * c->P + op) * c->Q + oq) * c->C + ch;
                    y[o] = best;
                    idx[o] = at;
                }
}

static void test_maxpool(int k, int s, int p, int H, int N, int C) {
    pool_ctx c = {.N = N, .H = H, .W = H, .C = C, .k = k, .s = s, .p = p};
    c.P = c.Q = (H + 2 * p - k) / s + 1;
    size_t nx = (size_t)c.N * H * H * c.C, ny = (size_t)c.N * c.P * c.Q * c.C;
    c.x = fbuf(nx), c.y = fbuf(ny);
    c.idx = (int32_t *)fbuf(ny);
    /* Distinct values 0.07 apart (a shuffled ramp), so a step of 0.01 never reorders them. */
    for (size_t i = 0; i < nx; i++) c.x[i] = 0.07f * (float)i - 0.035f * (float)nx;
    for (size_t i = nx - 1; i > 0; i--) {
        size_t j = (size_t)urand(0, (float)i + 0.999f);
        float t = c.x[i];
        c.x[i] = c.x[j], c.x[j] = t;
    }
    float *yref = fbuf(ny);
    int32_t *iref = (int32_t *)fbuf(ny);
    maxpool_fwd(&c);
    maxpool_ref(&c, yref, iref);
    CHECK_ARRAYS("maxpool y", c.y, yref, ny, 0, 1);
    CHECK(memcmp(c.idx, iref, ny * sizeof(int32_t)) == 0);

    float *r = frand(ny, -1, 1), *dx = fnan(nx);
    be->maxpool_backward(be, r, c.idx, dx, 0.0f, c.N, H, H, c.C, c.P, c.Q);
    fd_obj o = {maxpool_fwd, &c, c.y, r, ny};
    char what[64];
    snprintf(what, sizeof what, "maxpool %dx%d/%d pad %d dx", k, k, s, p);
    FD_CHECK(what, &o, c.x, dx, nx, 1e-2f);
    float *d0 = frand(nx, -1, 1), *acc = fcopy(d0, nx);
    be->maxpool_backward(be, r, c.idx, acc, 1.0f, c.N, H, H, c.C, c.P, c.Q);
    CHECK_BETA1("maxpool dx beta=1", acc, d0, dx, nx);

    /* Ties among negative values: the first in row-major order wins, padding (0) never does. */
    for (size_t i = 0; i < nx; i++) c.x[i] = urand(0, 1) < 0.5f ? -1.0f : -2.0f;
    maxpool_fwd(&c);
    maxpool_ref(&c, yref, iref);
    CHECK_ARRAYS("maxpool y (ties)", c.y, yref, ny, 0, 1);
    CHECK(memcmp(c.idx, iref, ny * sizeof(int32_t)) == 0);
    tfree();
}

static void gap_fwd(void *p) {
    pool_ctx *c = p;
    be->gap_forward(be, c->x, c->y, c->N, c->H, c->C);
}

static void test_gap(int N, int C) {
    pool_ctx c = {.N = N, .H = 5, .C = C}; /* H holds HW */
    size_t nx = (size_t)c.N * c.H * c.C, ny = (size_t)c.N * c.C;
    c.x = frand(nx, -1, 1), c.y = fbuf(ny);
    gap_fwd(&c);
    float *ref = fbuf(ny);
    for (int n = 0; n < c.N; n++)
        for (int ch = 0; ch < c.C; ch++) {
            double s = 0;
            for (int i = 0; i < c.H; i++) s += c.x[(n * c.H + i) * c.C + ch];
            ref[n * c.C + ch] = (float)(s / c.H);
        }
    CHECK_ARRAYS("gap y", c.y, ref, ny, 1e-6, 1e-3);
    float *r = frand(ny, -1, 1), *dx = fnan(nx);
    be->gap_backward(be, r, dx, 0.0f, c.N, c.H, c.C);
    fd_obj o = {gap_fwd, &c, c.y, r, ny};
    FD_CHECK("gap dx", &o, c.x, dx, nx, 1e-2f);
    float *d0 = frand(nx, -1, 1), *acc = fcopy(d0, nx);
    be->gap_backward(be, r, acc, 1.0f, c.N, c.H, c.C);
    CHECK_BETA1("gap dx beta=1", acc, d0, dx, nx);
    tfree();
}

/* ---- linear ---- */

typedef struct {
    float *x, *w, *b, *y;
    int M, IN, OUT;
} lin_ctx;

static void linear_fwd(void *p) {
    lin_ctx *c = p;
    be->linear_forward(be, c->x, c->w, c->b, c->y, c->M, c->IN, c->OUT);
}

static void test_linear(int M, int IN, int OUT, int bias) {
    lin_ctx c = {.M = M, .IN = IN, .OUT = OUT};
    size_t nx = (size_t)M * IN, nw = (size_t)OUT * IN, ny = (size_t)M * OUT;
    c.x = frand(nx, -1, 1), c.w = frand(nw, -1, 1), c.b = bias ? frand(OUT, -1, 1) : NULL;
    c.y = fnan(ny);
    linear_fwd(&c);
    float *ref = fbuf(ny);
    for (int m = 0; m < M; m++)
        for (int o = 0; o < OUT; o++) {
            double s = bias ? c.b[o] : 0;
            for (int i = 0; i < IN; i++) s += (double)c.x[m * IN + i] * c.w[o * IN + i];
            ref[m * OUT + o] = (float)s;
        }
    CHECK_ARRAYS(bias ? "linear y" : "linear y (no bias)", c.y, ref, ny, 1e-5, 1e-2);
    float *r = frand(ny, -1, 1), *dx = fnan(nx), *dw = fnan(nw), *db = bias ? fnan(OUT) : NULL;
    be->linear_backward(be, c.x, c.w, r, dx, 0.0f, dw, db, M, IN, OUT);
    fd_obj o = {linear_fwd, &c, c.y, r, ny};
    FD_CHECK("linear dx", &o, c.x, dx, nx, 1e-2f);
    FD_CHECK("linear dw", &o, c.w, dw, nw, 1e-2f);
    if (bias) FD_CHECK("linear db", &o, c.b, db, OUT, 1e-2f);
    float *d0 = frand(nx, -1, 1), *acc = fcopy(d0, nx);
    be->linear_backward(be, c.x, c.w, r, acc, 1.0f, dw, db, M, IN, OUT);
    CHECK_BETA1("linear dx beta=1", acc, d0, dx, nx);
    tfree();
}

/* ---- softmax cross-entropy ---- */

typedef struct {
    float *logits, *cw, *dl, loss;
    int32_t *labels;
    int M, K;
} ce_ctx;

static void ce_fwd(void *p) {
    ce_ctx *c = p;
    c->loss = be->softmax_ce(be, c->logits, c->labels, c->cw, c->M, c->K, c->dl, NULL);
}

static void test_softmax_ce(int weighted) {
    int32_t labels[5] = {2, 0, -1, 3, 1};
    float cw[4] = {0.5f, 1.0f, 2.0f, 1.5f}, one = 1.0f;
    ce_ctx c = {.labels = labels, .cw = weighted ? cw : NULL, .M = 5, .K = 4};
    size_t n = 20;
    c.logits = frand(n, -2, 2), c.dl = fbuf(n);
    float *dl = fnan(n), *probs = fbuf(n), *sm = fbuf(n), *pref = fbuf(n);
    float loss = be->softmax_ce(be, c.logits, labels, c.cw, c.M, c.K, dl, probs);
    double num = 0, den = 0;
    for (int i = 0; i < c.M; i++) {
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < c.K; k++) mx = fmax(mx, c.logits[i * c.K + k]);
        for (int k = 0; k < c.K; k++) s += exp(c.logits[i * c.K + k] - mx);
        for (int k = 0; k < c.K; k++)
            pref[i * c.K + k] = (float)(exp(c.logits[i * c.K + k] - mx) / s);
        if (labels[i] < 0) continue;
        double w = weighted ? cw[labels[i]] : 1.0;
        num += w * -log(pref[i * c.K + labels[i]]);
        den += w;
    }
    CHECK_CLOSE(loss, num / den, 1e-5, 1e-6);
    CHECK_ARRAYS("ce probs", probs, pref, n, 1e-5, 1e-4);
    be->softmax(be, c.logits, sm, c.M, c.K);
    CHECK_ARRAYS("softmax", sm, pref, n, 1e-5, 1e-4);
    fd_obj o = {ce_fwd, &c, &c.loss, &one, 1};
    FD_CHECK(weighted ? "ce dlogits (weighted)" : "ce dlogits", &o, c.logits, dl, n, 1e-2f);
    CHECK_ARRAYS("ce dlogits without probs", c.dl, dl, n, 1e-6, 1e-4);

    /* Every row ignored: loss 0, no gradient. Huge logits: still finite. */
    int32_t none[5] = {-1, -1, -1, -1, -1};
    CHECK(be->softmax_ce(be, c.logits, none, c.cw, c.M, c.K, dl, NULL) == 0.0f);
    int nz = 0;
    for (size_t i = 0; i < n; i++) nz += dl[i] != 0.0f;
    CHECK_EQ_INT(nz, 0);
    float big[4] = {1000, 0, -1000, 500};
    int32_t l1[1] = {1};
    float lb = be->softmax_ce(be, big, l1, NULL, 1, 4, dl, NULL);
    CHECK_CLOSE(lb, 1000.0, 1e-6, 0);
    tfree();
}

int main(void) {
    if (fd_backend_open() != 0) return 1;
    test_batchnorm(1);
    test_batchnorm(0);
    test_batchnorm_stats();
    test_groupnorm(2, 6, 6, 3);
    test_groupnorm(3, 700, 8, 2); /* several row chunks per sample */
    test_layernorm(4, 7);
    test_layernorm(40, 5); /* several row chunks */
    test_relu();
    test_dropout();
    test_add_rowscale_copy();
    test_misc_eltwise();
    /* N = 1 with 40 channels: the backward splits channels across the two threads. */
    test_maxpool(3, 2, 1, 7, 2, 3);
    test_maxpool(2, 2, 0, 6, 2, 3);
    test_maxpool(3, 2, 1, 7, 1, 40);
    test_gap(2, 70);
    test_gap(1, 70);
    test_linear(3, 5, 70, 1);
    test_linear(4, 6, 3, 0);
    test_softmax_ce(0);
    test_softmax_ce(1);
    fd_backend_close();
    return fl_test_summary("test_ops");
}
