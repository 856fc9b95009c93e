/* test_ops.c - every op of the CPU backend on tiny shapes: forward values against naive double
 * references, every backward against central finite differences of L = sum(y * r), the beta = 1
 * accumulation path, optimizer steps against hand-written references, thread independence. */
#include "../nn/backend.h"
#include "harness.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fl_backend *be;

/* ---- allocation: every buffer of a test case is freed together by tfree() ---- */

static void *allocs[256];
static int n_allocs;

static float *fbuf(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p || n_allocs == 256) abort();
    allocs[n_allocs++] = p;
    return p;
}

static void tfree(void) {
    while (n_allocs) free(allocs[--n_allocs]);
}

/* ---- random numbers (xorshift64*, fixed seed) ---- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static float urand(float lo, float hi) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    double u = (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
    return lo + (float)u * (hi - lo);
}

static double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p || n_allocs == 256) abort();
    allocs[n_allocs++] = p;
    return p;
}

static float *frand(size_t n, float lo, float hi) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}

static float *fcopy(const float *src, size_t n) {
    float *p = fbuf(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

static float *fnan(size_t n) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* ---- finite differences ---- */

/* A forward pass under test: fwd(ctx) recomputes y (ny) from the current inputs. */
typedef struct {
    void (*fwd)(void *ctx);
    void *ctx;
    const float *y, *r;
    size_t ny;
} fd_obj;

static double fd_loss(const fd_obj *o) {
    o->fwd(o->ctx);
    double L = 0;
    for (size_t i = 0; i < o->ny; i++) L += (double)o->y[i] * o->r[i];
    return L;
}

/* Compares g (the analytic dL/dp, n elements) with central differences of L in every element
 * of p; prints the first few disagreements with both sides. */
static void fd_check_at(const char *what, const fd_obj *o, float *p, const float *g, size_t n,
                        float h, const char *file, int line) {
    int bad = 0;
    fl_test_checks++;
    /* One thread: thousands of tiny forwards, and a loaded machine makes every parallel region
     * wait for a descheduled thread. The analytic side ran with the backend's threads. */
    omp_set_num_threads(1);
    for (size_t i = 0; i < n; i++) {
        float p0 = p[i];
        p[i] = p0 + h;
        double lp = fd_loss(o);
        float up = p[i];
        p[i] = p0 - h;
        double lm = fd_loss(o);
        double num = (lp - lm) / ((double)up - (double)p[i]);
        p[i] = p0;
        if (!fl_test_close(g[i], num, 1e-2, 2e-3)) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: analytic %.7g, numeric %.7g\n", what, i, g[i], num);
            bad++;
        }
    }
    omp_set_num_threads(be->threads);
    o->fwd(o->ctx);
    if (bad) fl_test_fail_at(file, line, "%s: %d of %zu gradients off", what, bad, n);
}
#define FD_CHECK(what, o, p, g, n, h) fd_check_at(what, o, p, g, n, h, __FILE__, __LINE__)

/* dx_acc started as d0 and received beta = 1 accumulation; it must equal d0 + dx. */
static void check_beta1_at(const char *what, const float *dx_acc, const float *d0, const float *dx,
                           size_t n, const char *file, int line) {
    float *want = fbuf(n);
    for (size_t i = 0; i < n; i++) want[i] = d0[i] + dx[i];
    fl_test_arrays_close(what, dx_acc, want, n, 1e-5, 0.1, file, line);
}
#define CHECK_BETA1(what, acc, d0, dx, n) check_beta1_at(what, acc, d0, dx, n, __FILE__, __LINE__)

/* Loads a double reference into floats for CHECK_ARRAYS. */
static float *fromd(const double *d, size_t n) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)d[i];
    return p;
}

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

/* ---- convolution ---- */

typedef struct {
    fl_conv2d_shape s;
    void *plan;
    float *x, *w, *b, *y;
} conv_ctx;

static void conv_fwd(void *p) {
    conv_ctx *c = p;
    be->conv2d_forward(be, c->plan, c->x, c->w, c->b, c->y);
}

static void test_conv(int N, int C, int H, int K, int R, int stride, int pad, int bias) {
    fl_err err = {{0}};
    conv_ctx c = {.s = {.N = N, .C = C, .H = H, .W = H, .K = K, .R = R, .S = R}};
    c.s.stride = stride, c.s.pad = pad, c.s.has_bias = bias;
    c.s.P = c.s.Q = (H + 2 * pad - R) / stride + 1;
    int P = c.s.P, Q = c.s.Q;
    size_t nx = (size_t)N * H * H * C, nw = (size_t)K * C * R * R, ny = (size_t)N * P * Q * K;
    CHECK_OK(be->conv2d_plan(be, &c.s, &c.plan, &err), &err);
    if (!c.plan) return;
    c.x = frand(nx, -1, 1), c.w = frand(nw, -0.5f, 0.5f), c.b = bias ? frand(K, -1, 1) : NULL;
    c.y = fbuf(ny);
    conv_fwd(&c);
    float *ref = fbuf(ny);
    for (int n = 0; n < N; n++)
        for (int op = 0; op < P; op++)
            for (int oq = 0; oq < Q; oq++)
                for (int k = 0; k < K; k++) {
                    double s = bias ? c.b[k] : 0;
                    for (int ch = 0; ch < C; ch++)
                        for (int i = 0; i < R; i++)
                            for (int j = 0; j < R; j++) {
                                int h = op * stride - pad + i, w = oq * stride - pad + j;
                                if (h < 0 || h >= H || w < 0 || w >= H) continue;
                                s += (double)c.x[((n * H + h) * H + w) * C + ch] *
                                     c.w[((k * C + ch) * R + i) * R + j];
                            }
                    ref[((n * P + op) * Q + oq) * K + k] = (float)s;
                }
    char what[96];
    snprintf(what, sizeof what, "conv %dx%d/%d pad %d%s", R, R, stride, pad, bias ? " bias" : "");
    CHECK_ARRAYS(what, c.y, ref, ny, 1e-4, 1e-2);

    float *r = frand(ny, -1, 1), *dx = fnan(nx), *dw = fnan(nw), *db = bias ? fnan(K) : NULL;
    be->conv2d_backward(be, c.plan, c.x, c.w, r, dx, 0.0f, dw, db);
    /* beta = 1 adds into dx; dw and db are overwritten whatever they held. */
    float *d0 = frand(nx, -1, 1), *acc = fcopy(d0, nx), *dw2 = frand(nw, -1, 1);
    float *db2 = frand(K, -1, 1);
    conv_fwd(&c);
    be->conv2d_backward(be, c.plan, c.x, c.w, r, acc, 1.0f, dw2, bias ? db2 : NULL);
    CHECK_BETA1("conv dx beta=1", acc, d0, dx, nx);
    CHECK_ARRAYS("conv dw overwritten", dw2, dw, nw, 1e-5, 0.1);
    if (bias) CHECK_ARRAYS("conv db overwritten", db2, db, K, 1e-5, 0.1);
    /* The differences run on a second plan built for one thread: oneDNN keeps the thread count
     * of its plan, and thousands of tiny two-thread forwards crawl on a loaded machine. */
    void *plan2 = c.plan;
    omp_set_num_threads(1);
    CHECK_OK(be->conv2d_plan(be, &c.s, &c.plan, &err), &err);
    omp_set_num_threads(be->threads);
    if (!c.plan) {
        be->conv2d_plan_free(be, plan2);
        tfree();
        return;
    }
    fd_obj o = {conv_fwd, &c, c.y, r, ny};
    size_t len = strlen(what);
    snprintf(what + len, sizeof what - len, " dx");
    FD_CHECK(what, &o, c.x, dx, nx, 1e-2f);
    what[len + 2] = 'w';
    FD_CHECK(what, &o, c.w, dw, nw, 1e-2f);
    what[len + 2] = 'b';
    if (bias) FD_CHECK(what, &o, c.b, db, K, 1e-2f);
    be->conv2d_plan_free(be, c.plan);
    be->conv2d_plan_free(be, plan2);
    tfree();
}

/* ---- optimizers ---- */

static void test_sgd(float momentum, int nesterov, float wd) {
    enum { n = 7 };
    float w[n], buf[n] = {0}, g[n];
    double wr[n], br[n] = {0};
    for (int i = 0; i < n; i++) wr[i] = w[i] = urand(-1, 1);
    float lr = 0.1f;
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < n; i++) g[i] = urand(-1, 1);
        be->sgd_step(be, w, g, momentum > 0 ? buf : NULL, n, lr, momentum, wd, nesterov);
        for (int i = 0; i < n; i++) {
            double d = g[i] + (double)wd * wr[i];
            if (momentum > 0) {
                br[i] = momentum * br[i] + d;
                d = nesterov ? d + momentum * br[i] : br[i];
            }
            wr[i] -= lr * d;
        }
    }
    for (int i = 0; i < n; i++) CHECK_CLOSE(w[i], wr[i], 1e-5, 1e-6);
    if (momentum > 0)
        for (int i = 0; i < n; i++) CHECK_CLOSE(buf[i], br[i], 1e-5, 1e-6);
}

static void test_adamw(void) {
    enum { n = 7 };
    float w[n], m[n] = {0}, v[n] = {0}, g[n];
    double wr[n], mr[n] = {0}, vr[n] = {0};
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.05f;
    for (int i = 0; i < n; i++) wr[i] = w[i] = urand(-1, 1);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < n; i++) g[i] = urand(-1, 1);
        be->adamw_step(be, w, g, m, v, n, lr, b1, b2, eps, wd, t);
        for (int i = 0; i < n; i++) {
            wr[i] *= 1 - (double)lr * wd;
            mr[i] = b1 * mr[i] + (1 - (double)b1) * g[i];
            vr[i] = b2 * vr[i] + (1 - (double)b2) * g[i] * g[i];
            double mh = mr[i] / (1 - pow(b1, t)), vh = vr[i] / (1 - pow(b2, t));
            wr[i] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (int i = 0; i < n; i++) {
        CHECK_CLOSE(w[i], wr[i], 1e-6, 1e-6);
        CHECK_CLOSE(m[i], mr[i], 1e-5, 1e-7);
        CHECK_CLOSE(v[i], vr[i], 1e-5, 1e-8);
    }
}

int main(void) {
    fl_err err = {{0}};
    be = fl_backend_cpu_new(2, &err);
    if (!be) {
        fprintf(stderr, "fl_backend_cpu_new: %s\n", err.msg);
        return 1;
    }
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
    test_conv(2, 3, 5, 4, 1, 1, 0, 1);
    test_conv(2, 4, 6, 3, 1, 2, 0, 0);
    test_conv(2, 3, 5, 4, 3, 1, 1, 0);
    test_conv(2, 3, 6, 4, 3, 2, 1, 1);
    test_conv(1, 3, 6, 2, 3, 1, 0, 1);
    test_conv(1, 2, 9, 3, 7, 2, 1, 0);
    test_conv(1, 2, 9, 3, 7, 1, 0, 1);
    test_sgd(0.9f, 0, 1e-2f);
    test_sgd(0.9f, 1, 1e-2f);
    test_sgd(0.0f, 0, 0.1f);
    test_adamw();
    be->destroy(be);
    return fl_test_summary("test_ops");
}
