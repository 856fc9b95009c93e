/* test_cuda.c - the CUDA backend against the CPU backend, and the host<->device transfer count
 * of a training step on both. Always: --device parsing, the loader's one-sentence failures, and
 * the CPU's transfer count; with a usable GPU: every op of the table on both backends on the same
 * seeded inputs (normalized error max|a-b| / max(1, max|b|) < 1e-5 in fp32, forward and
 * backward with beta 0 and 1, one line per output), then the same transfer count on CUDA.
 * Without a GPU the op cases run CPU against CPU (a self-check of this harness), then it prints
 * "SKIP: no GPU: <why>" and passes. ctest points FEDLUNG_CUDA_MODULE at the build's module; run
 * by hand, set it (the binary is not next to the module). Not a benchmark. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/backend.h"
#include "../nn/optim.h"
#include "../nn/resnet.h"
#include "harness.h"

#define TOL 1e-5

static fl_backend *cpu, *gpu;
static const char *dut = "cuda"; /* what gpu is: "cpu" in the self-check without a GPU */

/* ---- host buffers (freed together by hfree) and seeded random numbers ---- */

static void *hallocs[512];
static int n_hallocs;

static void *halloc(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p || n_hallocs == 512) abort();
    hallocs[n_hallocs++] = p;
    return p;
}

static float *hbuf(size_t n) {
    return halloc(n * sizeof(float));
}

static void hfree(void) {
    while (n_hallocs) free(hallocs[--n_hallocs]);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float urand(float lo, float hi) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    double u = (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
    return lo + (float)u * (hi - lo);
}

static float *hrand(size_t n, float lo, float hi) {
    float *p = hbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}

static float *hnan(size_t n) {
    float *p = hbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* ---- device buffers of one backend (freed together by dfree) ---- */

typedef struct {
    fl_backend *b;
    void *p[64];
    int n;
} devs;

static void *dalloc(devs *d, size_t bytes) {
    void *p = d->b->alloc(d->b, bytes);
    if (!p || d->n == 64) abort();
    d->p[d->n++] = p;
    return p;
}

/* n floats on d's backend holding h (zeros when h is NULL). */
static float *dput(devs *d, const float *h, size_t n) {
    float *p = dalloc(d, n * sizeof(float));
    if (h) d->b->upload(d->b, p, h, n * sizeof(float));
    return p;
}

static void dset(devs *d, float *p, const float *h, size_t n) {
    d->b->upload(d->b, p, h, n * sizeof(float));
}

static void dget(devs *d, float *h, const float *p, size_t n) {
    d->b->download(d->b, h, p, n * sizeof(float));
}

static void dfree(devs *d) {
    while (d->n) d->b->free(d->b, d->p[--d->n]);
}

/* ---- comparison ---- */

/* max|a-b| / max(1, max|b|); infinite when exactly one side is NaN at some element. */
static double nerr(const float *a, const float *b, size_t n) {
    double diff = 0, scale = 1;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        if (isnan(a[i])) continue;
        if (isinf(a[i]) || isinf(b[i])) {
            if (a[i] != b[i]) return INFINITY;
            continue;
        }
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)b[i]));
    }
    return diff / scale;
}

/* One line per compared output; a failed check prints where the worst element is. */
static void report(const char *op, const char *what, const float *got, const float *ref, size_t n) {
    double e = nerr(got, ref, n);
    printf("  %-26s %-18s n=%-6zu err %.3g%s\n", op, what, n, e, e < TOL ? "" : "  FAIL");
    fl_test_checks++;
    if (!(e < TOL)) {
        size_t at = 0;
        double worst = -1;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - ref[i]);
            if (isnan(d) || d > worst) {
                worst = isnan(d) ? INFINITY : d;
                at = i;
            }
        }
        fl_test_fail_at(__FILE__, __LINE__,
                        "%s %s: normalized error %.3g >= %g at [%zu]: %s %.9g, cpu %.9g", op, what,
                        e, TOL, at, dut, (double)got[at], (double)ref[at]);
    }
}

static void report_int(const char *op, const char *what, const int32_t *got, const int32_t *ref,
                       size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i] && bad++ == 0) first = i;
    printf("  %-26s %-18s n=%-6zu %zu differ%s\n", op, what, n, bad, bad ? "  FAIL" : "");
    fl_test_checks++;
    if (bad)
        fl_test_fail_at(__FILE__, __LINE__, "%s %s: %zu of %zu differ, first [%zu]: %s %d, cpu %d",
                        op, what, bad, n, first, dut, got[first], ref[first]);
}

/* Each case runs its op through run(backend, outputs) on the CPU (k = 0) and on CUDA (k = 1)
 * from the same host inputs, then compares out[1] with out[0]. */
#define BOTH(k) for (int k = 0; k < 2; k++)
#define BE(k) ((k) ? gpu : cpu)

/* ---- layout ---- */

static void test_layout(void) {
    int N = 2, C = 5, H = 7, W = 9;
    size_t n = (size_t)N * C * H * W;
    float *x = hrand(n, -1, 1), *out[2][2];
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *Z = dput(&d, NULL, n);
        d.b->nchw_to_nhwc(d.b, X, Y, N, C, H, W);
        d.b->nhwc_to_nchw(d.b, X, Z, N, C, H, W);
        dget(&d, out[k][0] = hbuf(n), Y, n);
        dget(&d, out[k][1] = hbuf(n), Z, n);
        dfree(&d);
    }
    report("nchw_to_nhwc", "y", out[1][0], out[0][0], n);
    report("nhwc_to_nchw", "y", out[1][1], out[0][1], n);
    hfree();
}

/* ---- conv2d ---- */

static void test_conv(int C, int H, int K, int R, int stride, int pad, int bias) {
    fl_conv2d_shape s = {.N = 2,
                         .C = C,
                         .H = H,
                         .W = H + 1,
                         .K = K,
                         .R = R,
                         .S = R,
                         .stride = stride,
                         .pad = pad,
                         .has_bias = bias};
    s.P = (s.H + 2 * pad - R) / stride + 1;
    s.Q = (s.W + 2 * pad - R) / stride + 1;
    size_t nx = (size_t)s.N * s.H * s.W * C, nw = (size_t)K * C * R * R,
           ny = (size_t)s.N * s.P * s.Q * K;
    float *x = hrand(nx, -1, 1), *w = hrand(nw, -0.3f, 0.3f), *b = hrand(K, -0.5f, 0.5f);
    float *dy = hrand(ny, -1, 1), *d0 = hrand(nx, -1, 1), *out[2][5];
    BOTH(k) {
        fl_backend *be = BE(k);
        devs d = {.b = be};
        fl_err err = {{0}};
        void *plan = NULL;
        CHECK_OK(be->conv2d_plan(be, &s, &plan, &err), &err);
        if (!plan) return;
        float *X = dput(&d, x, nx), *Wt = dput(&d, w, nw), *B = bias ? dput(&d, b, K) : NULL;
        float *Y = dput(&d, NULL, ny), *DY = dput(&d, dy, ny), *DX = dput(&d, hnan(nx), nx);
        float *DW = dput(&d, hnan(nw), nw), *DB = bias ? dput(&d, hnan(K), K) : NULL;
        be->conv2d_forward(be, plan, X, Wt, B, Y);
        be->conv2d_backward(be, plan, X, Wt, DY, DX, 0.0f, DW, DB);
        dget(&d, out[k][0] = hbuf(ny), Y, ny);
        dget(&d, out[k][1] = hbuf(nx), DX, nx);
        dget(&d, out[k][3] = hbuf(nw), DW, nw);
        out[k][4] = hbuf(K);
        if (bias) dget(&d, out[k][4], DB, K);
        dset(&d, DX, d0, nx);
        be->conv2d_forward(be, plan, X, Wt, B, Y);
        be->conv2d_backward(be, plan, X, Wt, DY, DX, 1.0f, DW, DB);
        dget(&d, out[k][2] = hbuf(nx), DX, nx);
        be->conv2d_plan_free(be, plan);
        dfree(&d);
    }
    char op[64];
    snprintf(op, sizeof op, "conv %dx%d s%d p%d%s", R, R, stride, pad, bias ? " bias" : "");
    report(op, "y", out[1][0], out[0][0], ny);
    report(op, "dx beta 0", out[1][1], out[0][1], nx);
    report(op, "dx beta 1", out[1][2], out[0][2], nx);
    report(op, "dw", out[1][3], out[0][3], nw);
    if (bias) report(op, "db", out[1][4], out[0][4], K);
    hfree();
}

/* ---- normalisation ---- */

static void test_batchnorm(int train) {
    int M = 48, C = 6;
    size_t n = (size_t)M * C;
    float *x = hrand(n, -1, 2), *g = hrand(C, 0.5f, 1.5f), *bt = hrand(C, -0.5f, 0.5f);
    float *rm = hrand(C, -0.5f, 0.5f), *rv = hrand(C, 0.5f, 1.5f), *dy = hrand(n, -1, 1);
    float *d0 = hrand(n, -1, 1), *out[2][9];
    BOTH(k) {
        fl_backend *be = BE(k);
        devs d = {.b = be};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *G = dput(&d, g, C),
              *B = dput(&d, bt, C);
        float *RM = dput(&d, rm, C), *RV = dput(&d, rv, C), *SM = dput(&d, NULL, C);
        float *SI = dput(&d, NULL, C), *DY = dput(&d, dy, n), *DX = dput(&d, hnan(n), n);
        float *DG = dput(&d, hnan(C), C), *DB = dput(&d, hnan(C), C);
        be->batchnorm_forward(be, X, Y, M, C, G, B, RM, RV, 0.1f, 1e-5f, train, SM, SI);
        be->batchnorm_backward(be, X, DY, DX, 0.0f, M, C, G, SM, SI, train, DG, DB);
        float **o = out[k];
        dget(&d, o[0] = hbuf(n), Y, n);
        dget(&d, o[1] = hbuf(C), RM, C);
        dget(&d, o[2] = hbuf(C), RV, C);
        dget(&d, o[3] = hbuf(C), SM, C);
        dget(&d, o[4] = hbuf(C), SI, C);
        dget(&d, o[5] = hbuf(n), DX, n);
        dget(&d, o[7] = hbuf(C), DG, C);
        dget(&d, o[8] = hbuf(C), DB, C);
        dset(&d, DX, d0, n);
        be->batchnorm_backward(be, X, DY, DX, 1.0f, M, C, G, SM, SI, train, DG, DB);
        dget(&d, o[6] = hbuf(n), DX, n);
        dfree(&d);
    }
    const char *op = train ? "batchnorm train" : "batchnorm eval";
    const char *what[9] = {"y",         "running_mean", "running_var", "save_mean", "save_invstd",
                           "dx beta 0", "dx beta 1",    "dgamma",      "dbeta"};
    size_t len[9] = {n, C, C, C, C, n, n, C, C};
    for (int i = 0; i < 9; i++) report(op, what[i], out[1][i], out[0][i], len[i]);
    hfree();
}

static void test_groupnorm(void) {
    int N = 2, HW = 12, C = 8, G = 4;
    size_t n = (size_t)N * HW * C, ns = (size_t)N * G;
    float *x = hrand(n, -1, 2), *g = hrand(C, 0.5f, 1.5f), *bt = hrand(C, -0.5f, 0.5f);
    float *dy = hrand(n, -1, 1), *d0 = hrand(n, -1, 1), *out[2][7];
    BOTH(k) {
        fl_backend *be = BE(k);
        devs d = {.b = be};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *Gm = dput(&d, g, C);
        float *B = dput(&d, bt, C), *SM = dput(&d, NULL, ns), *SI = dput(&d, NULL, ns);
        float *DY = dput(&d, dy, n), *DX = dput(&d, hnan(n), n), *DG = dput(&d, hnan(C), C);
        float *DB = dput(&d, hnan(C), C);
        be->groupnorm_forward(be, X, Y, N, HW, C, G, Gm, B, 1e-5f, SM, SI);
        be->groupnorm_backward(be, X, DY, DX, 0.0f, N, HW, C, G, Gm, SM, SI, DG, DB);
        float **o = out[k];
        dget(&d, o[0] = hbuf(n), Y, n);
        dget(&d, o[1] = hbuf(ns), SM, ns);
        dget(&d, o[2] = hbuf(ns), SI, ns);
        dget(&d, o[3] = hbuf(n), DX, n);
        dget(&d, o[5] = hbuf(C), DG, C);
        dget(&d, o[6] = hbuf(C), DB, C);
        dset(&d, DX, d0, n);
        be->groupnorm_backward(be, X, DY, DX, 1.0f, N, HW, C, G, Gm, SM, SI, DG, DB);
        dget(&d, o[4] = hbuf(n), DX, n);
        dfree(&d);
    }
    const char *what[7] = {"y",         "save_mean", "save_invstd", "dx beta 0",
                           "dx beta 1", "dgamma",    "dbeta"};
    size_t len[7] = {n, ns, ns, n, n, C, C};
    for (int i = 0; i < 7; i++) report("groupnorm", what[i], out[1][i], out[0][i], len[i]);
    hfree();
}

static void test_layernorm(void) {
    int M = 6, F = 20;
    size_t n = (size_t)M * F;
    float *x = hrand(n, -1, 2), *g = hrand(F, 0.5f, 1.5f), *bt = hrand(F, -0.5f, 0.5f);
    float *dy = hrand(n, -1, 1), *d0 = hrand(n, -1, 1), *out[2][7];
    BOTH(k) {
        fl_backend *be = BE(k);
        devs d = {.b = be};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *Gm = dput(&d, g, F);
        float *B = dput(&d, bt, F), *SM = dput(&d, NULL, M), *SI = dput(&d, NULL, M);
        float *DY = dput(&d, dy, n), *DX = dput(&d, hnan(n), n), *DG = dput(&d, hnan(F), F);
        float *DB = dput(&d, hnan(F), F);
        be->layernorm_forward(be, X, Y, M, F, Gm, B, 1e-5f, SM, SI);
        be->layernorm_backward(be, X, DY, DX, 0.0f, M, F, Gm, SM, SI, DG, DB);
        float **o = out[k];
        dget(&d, o[0] = hbuf(n), Y, n);
        dget(&d, o[1] = hbuf(M), SM, M);
        dget(&d, o[2] = hbuf(M), SI, M);
        dget(&d, o[3] = hbuf(n), DX, n);
        dget(&d, o[5] = hbuf(F), DG, F);
        dget(&d, o[6] = hbuf(F), DB, F);
        dset(&d, DX, d0, n);
        be->layernorm_backward(be, X, DY, DX, 1.0f, M, F, Gm, SM, SI, DG, DB);
        dget(&d, o[4] = hbuf(n), DX, n);
        dfree(&d);
    }
    const char *what[7] = {"y",         "save_mean", "save_invstd", "dx beta 0",
                           "dx beta 1", "dgamma",    "dbeta"};
    size_t len[7] = {n, M, M, n, n, F, F};
    for (int i = 0; i < 7; i++) report("layernorm", what[i], out[1][i], out[0][i], len[i]);
    hfree();
}

/* ---- relu, dropout ---- */

static void test_relu(void) {
    size_t n = 1000;
    float *x = hrand(n, -1, 1), *dy = hrand(n, -1, 1), *d0 = hrand(n, -1, 1), *out[2][3];
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *DY = dput(&d, dy, n);
        float *DX = dput(&d, hnan(n), n);
        d.b->relu_forward(d.b, X, Y, n);
        d.b->relu_backward(d.b, Y, DY, DX, 0.0f, n);
        dget(&d, out[k][0] = hbuf(n), Y, n);
        dget(&d, out[k][1] = hbuf(n), DX, n);
        dset(&d, DX, d0, n);
        d.b->relu_backward(d.b, Y, DY, DX, 1.0f, n);
        dget(&d, out[k][2] = hbuf(n), DX, n);
        dfree(&d);
    }
    report("relu", "y", out[1][0], out[0][0], n);
    report("relu", "dx beta 0", out[1][1], out[0][1], n);
    report("relu", "dx beta 1", out[1][2], out[0][2], n);
    hfree();
}

static void test_dropout(void) {
    size_t n = 5000;
    float *x = hrand(n, -1, 1), *dy = hrand(n, -1, 1), *d0 = hrand(n, -1, 1), *out[2][4];
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *X = dput(&d, x, n), *Y = dput(&d, NULL, n), *MK = dput(&d, NULL, n);
        float *DY = dput(&d, dy, n), *DX = dput(&d, hnan(n), n);
        d.b->dropout_forward(d.b, X, Y, MK, n, 0.3f, 0x1234567890ABCDEFull);
        d.b->dropout_backward(d.b, DY, MK, DX, 0.0f, n);
        dget(&d, out[k][0] = hbuf(n), Y, n);
        dget(&d, out[k][1] = hbuf(n), MK, n);
        dget(&d, out[k][2] = hbuf(n), DX, n);
        dset(&d, DX, d0, n);
        d.b->dropout_backward(d.b, DY, MK, DX, 1.0f, n);
        dget(&d, out[k][3] = hbuf(n), DX, n);
        dfree(&d);
    }
    report("dropout p=0.3", "y", out[1][0], out[0][0], n);
    /* The mask is drawn from (seed, i) alone: it must be the CPU's bit for bit. */
    int same = memcmp(out[1][1], out[0][1], n * sizeof(float)) == 0;
    printf("  %-26s %-18s n=%-6zu %s\n", "dropout p=0.3", "mask (bitwise)", n,
           same ? "identical" : "DIFFERS  FAIL");
    CHECK(same);
    report("dropout p=0.3", "dx beta 0", out[1][2], out[0][2], n);
    report("dropout p=0.3", "dx beta 1", out[1][3], out[0][3], n);
    hfree();
}

/* ---- pooling ---- */

/* Values drawn from {0, 1, 2, 3}, so most windows hold ties: the winner rule is tested. */
static void test_maxpool(int H, int W, int k_, int s, int p) {
    int N = 2, C = 5, P = (H + 2 * p - k_) / s + 1, Q = (W + 2 * p - k_) / s + 1;
    size_t nx = (size_t)N * H * W * C, ny = (size_t)N * P * Q * C;
    float *x = hbuf(nx), *dy = hrand(ny, -1, 1), *d0 = hrand(nx, -1, 1), *out[2][4];
    int32_t *idx[2];
    for (size_t i = 0; i < nx; i++) x[i] = floorf(urand(0, 4));
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *X = dput(&d, x, nx), *Y = dput(&d, NULL, ny), *DY = dput(&d, dy, ny);
        float *DX = dput(&d, hnan(nx), nx);
        int32_t *I = dalloc(&d, ny * sizeof(int32_t));
        d.b->maxpool_forward(d.b, X, Y, I, N, H, W, C, k_, s, p, P, Q);
        d.b->maxpool_backward(d.b, DY, I, DX, 0.0f, N, H, W, C, P, Q);
        dget(&d, out[k][0] = hbuf(ny), Y, ny);
        idx[k] = halloc(ny * sizeof(int32_t));
        d.b->download(d.b, idx[k], I, ny * sizeof(int32_t));
        dget(&d, out[k][1] = hbuf(nx), DX, nx);
        dset(&d, DX, d0, nx);
        d.b->maxpool_backward(d.b, DY, I, DX, 1.0f, N, H, W, C, P, Q);
        dget(&d, out[k][2] = hbuf(nx), DX, nx);
        dfree(&d);
    }
    char op[64];
    snprintf(op, sizeof op, "maxpool %d/%d/%d %dx%d", k_, s, p, H, W);
    report(op, "y", out[1][0], out[0][0], ny);
    report_int(op, "idx", idx[1], idx[0], ny);
    report(op, "dx beta 0", out[1][1], out[0][1], nx);
    report(op, "dx beta 1", out[1][2], out[0][2], nx);
    hfree();
}

static void test_gap(void) {
    int N = 2, HW = 12, C = 7;
    size_t nx = (size_t)N * HW * C, ny = (size_t)N * C;
    float *x = hrand(nx, -1, 1), *dy = hrand(ny, -1, 1), *d0 = hrand(nx, -1, 1), *out[2][3];
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *X = dput(&d, x, nx), *Y = dput(&d, NULL, ny), *DY = dput(&d, dy, ny);
        float *DX = dput(&d, hnan(nx), nx);
        d.b->gap_forward(d.b, X, Y, N, HW, C);
        d.b->gap_backward(d.b, DY, DX, 0.0f, N, HW, C);
        dget(&d, out[k][0] = hbuf(ny), Y, ny);
        dget(&d, out[k][1] = hbuf(nx), DX, nx);
        dset(&d, DX, d0, nx);
        d.b->gap_backward(d.b, DY, DX, 1.0f, N, HW, C);
        dget(&d, out[k][2] = hbuf(nx), DX, nx);
        dfree(&d);
    }
    report("gap", "y", out[1][0], out[0][0], ny);
    report("gap", "dx beta 0", out[1][1], out[0][1], nx);
    report("gap", "dx beta 1", out[1][2], out[0][2], nx);
    hfree();
}

/* ---- linear ---- */

static void test_linear(int bias) {
    int M = 5, IN = 12, OUT = 7;
    size_t nx = (size_t)M * IN, nw = (size_t)OUT * IN, ny = (size_t)M * OUT;
    float *x = hrand(nx, -1, 1), *w = hrand(nw, -0.5f, 0.5f), *b = hrand(OUT, -0.5f, 0.5f);
    float *dy = hrand(ny, -1, 1), *d0 = hrand(nx, -1, 1), *out[2][5];
    BOTH(k) {
        fl_backend *be = BE(k);
        devs d = {.b = be};
        float *X = dput(&d, x, nx), *Wt = dput(&d, w, nw), *B = bias ? dput(&d, b, OUT) : NULL;
        float *Y = dput(&d, NULL, ny), *DY = dput(&d, dy, ny), *DX = dput(&d, hnan(nx), nx);
        float *DW = dput(&d, hnan(nw), nw), *DB = bias ? dput(&d, hnan(OUT), OUT) : NULL;
        be->linear_forward(be, X, Wt, B, Y, M, IN, OUT);
        be->linear_backward(be, X, Wt, DY, DX, 0.0f, DW, DB, M, IN, OUT);
        dget(&d, out[k][0] = hbuf(ny), Y, ny);
        dget(&d, out[k][1] = hbuf(nx), DX, nx);
        dget(&d, out[k][3] = hbuf(nw), DW, nw);
        out[k][4] = hbuf(OUT);
        if (bias) dget(&d, out[k][4], DB, OUT);
        dset(&d, DX, d0, nx);
        be->linear_backward(be, X, Wt, DY, DX, 1.0f, DW, DB, M, IN, OUT);
        dget(&d, out[k][2] = hbuf(nx), DX, nx);
        dfree(&d);
    }
    const char *op = bias ? "linear bias" : "linear";
    report(op, "y", out[1][0], out[0][0], ny);
    report(op, "dx beta 0", out[1][1], out[0][1], nx);
    report(op, "dx beta 1", out[1][2], out[0][2], nx);
    report(op, "dw", out[1][3], out[0][3], nw);
    if (bias) report(op, "db", out[1][4], out[0][4], OUT);
    hfree();
}

/* ---- element-wise helpers ---- */

static void test_arith(void) {
    size_t n = 3001;
    int M = 7, F = 9, lds = 13, ldd = 11;
    size_t ncs = (size_t)M * lds, ncd = (size_t)M * ldd;
    float *a = hrand(n, -2, 2), *b = hrand(n, -2, 2), *cs = hrand(ncs, -1, 1);
    float *cd = hrand(ncd, -1, 1), *rs = hrand(M, -2, 2), *out[2][9];
    double sq[2];
    BOTH(k) {
        devs d = {.b = BE(k)};
        fl_backend *be = d.b;
        float *A = dput(&d, a, n), *B = dput(&d, b, n), *Y = dput(&d, NULL, n);
        float *CS = dput(&d, cs, ncs), *CD = dput(&d, cd, ncd), *RS = dput(&d, rs, M);
        be->add(be, A, B, Y, n);
        dget(&d, out[k][0] = hbuf(n), Y, n);
        be->sub(be, A, B, Y, n);
        dget(&d, out[k][1] = hbuf(n), Y, n);
        dset(&d, Y, a, n);
        be->sub(be, Y, B, Y, n); /* in place, y == a */
        dget(&d, out[k][2] = hbuf(n), Y, n);
        be->axpy(be, Y, A, -0.75f, n);
        dget(&d, out[k][3] = hbuf(n), Y, n);
        be->accumulate(be, Y, B, 1.0f, n);
        be->scale(be, Y, 0.3f, n);
        dget(&d, out[k][4] = hbuf(n), Y, n);
        be->accumulate(be, Y, A, 0.0f, n);
        dget(&d, out[k][5] = hbuf(n), Y, n);
        be->copy_cols(be, CS + 2, lds, CD + 1, ldd, M, F, 1.0f);
        be->copy_cols(be, CS, lds, CD + 2, ldd, M, 3, 0.0f);
        dget(&d, out[k][6] = hbuf(ncd), CD, ncd);
        be->rowscale(be, CS, RS, CS, M, lds); /* y == x */
        dget(&d, out[k][7] = hbuf(ncs), CS, ncs);
        sq[k] = be->sumsq(be, A, n);
        dfree(&d);
    }
    report("add", "y", out[1][0], out[0][0], n);
    report("sub", "y", out[1][1], out[0][1], n);
    report("sub in place", "y", out[1][2], out[0][2], n);
    report("axpy", "y", out[1][3], out[0][3], n);
    report("accumulate 1 + scale", "y", out[1][4], out[0][4], n);
    report("accumulate 0", "y", out[1][5], out[0][5], n);
    report("copy_cols beta 1, 0", "dst", out[1][6], out[0][6], ncd);
    report("rowscale in place", "y", out[1][7], out[0][7], ncs);
    float s[2] = {(float)(sq[0] / fmax(1, sq[0])), (float)(sq[1] / fmax(1, sq[0]))};
    report("sumsq", "relative", &s[1], &s[0], 1);
    hfree();
}

/* ---- softmax cross-entropy ---- */

static void test_softmax_ce(int weighted) {
    int M = 37, K = 5; /* more rows than a block of warps, so several blocks reduce the loss */
    size_t n = (size_t)M * K;
    float *l = hrand(n, -4, 4), *cw = hrand(K, 0.2f, 2.0f), *out[2][4], loss[2][2];
    int32_t *lab = halloc(M * sizeof(int32_t));
    for (int i = 0; i < M; i++) lab[i] = i % 4 == 3 ? -1 : (int32_t)((i * 7) % K);
    l[2 * K + 1] = 80.0f; /* a large logit: the log-sum-exp must stay stable */
    BOTH(k) {
        devs d = {.b = BE(k)};
        fl_backend *be = d.b;
        float *L = dput(&d, l, n), *CW = weighted ? dput(&d, cw, K) : NULL;
        float *DL = dput(&d, hnan(n), n), *PR = dput(&d, hnan(n), n), *SP = dput(&d, NULL, n);
        int32_t *LB = dalloc(&d, M * sizeof(int32_t));
        be->upload(be, LB, lab, M * sizeof(int32_t));
        loss[k][0] = be->softmax_ce(be, L, LB, CW, M, K, DL, PR);
        dget(&d, out[k][0] = hbuf(n), DL, n);
        dget(&d, out[k][1] = hbuf(n), PR, n);
        be->softmax(be, L, SP, M, K);
        dget(&d, out[k][2] = hbuf(n), SP, n);
        dset(&d, DL, hnan(n), n);
        loss[k][1] = be->softmax_ce(be, L, LB, CW, M, K, DL, NULL); /* probs not wanted */
        dget(&d, out[k][3] = hbuf(n), DL, n);
        dfree(&d);
    }
    const char *op = weighted ? "softmax_ce weighted" : "softmax_ce";
    report(op, "loss", &loss[1][0], &loss[0][0], 1);
    report(op, "dlogits", out[1][0], out[0][0], n);
    report(op, "probs", out[1][1], out[0][1], n);
    report(op, "loss, no probs", &loss[1][1], &loss[0][1], 1);
    report(op, "dlogits, no probs", out[1][3], out[0][3], n);
    if (!weighted) report("softmax", "probs", out[1][2], out[0][2], n);
    hfree();
}

/* ---- optimizers: three steps each ---- */

static void test_sgd(float momentum, int nesterov) {
    size_t n = 1537;
    float *w = hrand(n, -1, 1), *out[2][2];
    float *g[3] = {hrand(n, -1, 1), hrand(n, -1, 1), hrand(n, -1, 1)};
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *Wt = dput(&d, w, n), *G = dput(&d, NULL, n), *BUF = dput(&d, NULL, n);
        for (int t = 0; t < 3; t++) {
            dset(&d, G, g[t], n);
            d.b->sgd_step(d.b, Wt, G, BUF, n, 0.1f, momentum, 1e-2f, nesterov);
        }
        dget(&d, out[k][0] = hbuf(n), Wt, n);
        dget(&d, out[k][1] = hbuf(n), BUF, n);
        dfree(&d);
    }
    char op[64];
    snprintf(op, sizeof op, "sgd m=%.1f%s", momentum, nesterov ? " nesterov" : "");
    report(op, "w", out[1][0], out[0][0], n);
    if (momentum > 0) report(op, "momentum", out[1][1], out[0][1], n);
    hfree();
}

static void test_adamw(void) {
    size_t n = 1537;
    float *w = hrand(n, -1, 1), *out[2][3];
    float *g[3] = {hrand(n, -1, 1), hrand(n, -1, 1), hrand(n, -1, 1)};
    BOTH(k) {
        devs d = {.b = BE(k)};
        float *Wt = dput(&d, w, n), *G = dput(&d, NULL, n), *Mm = dput(&d, NULL, n);
        float *V = dput(&d, NULL, n);
        for (int t = 0; t < 3; t++) {
            dset(&d, G, g[t], n);
            d.b->adamw_step(d.b, Wt, G, Mm, V, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, t + 1);
        }
        dget(&d, out[k][0] = hbuf(n), Wt, n);
        dget(&d, out[k][1] = hbuf(n), Mm, n);
        dget(&d, out[k][2] = hbuf(n), V, n);
        dfree(&d);
    }
    report("adamw", "w", out[1][0], out[0][0], n);
    report("adamw", "m", out[1][1], out[0][1], n);
    report("adamw", "v", out[1][2], out[0][2], n);
    hfree();
}

static void test_ops_parity(void) {
    printf("ops, %s against cpu (normalized error max|a-b|/max(1,max|b|) < %g):\n", dut, TOL);
    test_layout();
    test_conv(4, 9, 8, 3, 1, 1, 0);
    test_conv(4, 9, 8, 3, 1, 1, 1);
    test_conv(6, 9, 8, 1, 2, 0, 0);
    test_conv(6, 9, 8, 1, 2, 0, 1);
    test_conv(3, 16, 8, 7, 2, 3, 0);
    test_conv(3, 16, 8, 7, 2, 3, 1);
    test_batchnorm(1);
    test_batchnorm(0);
    test_groupnorm();
    test_layernorm();
    test_relu();
    test_maxpool(9, 9, 3, 2, 1);
    test_maxpool(8, 11, 3, 2, 1);
    test_maxpool(8, 8, 2, 2, 0);
    test_maxpool(7, 6, 3, 1, 1);
    test_gap();
    test_linear(0);
    test_linear(1);
    test_dropout();
    test_softmax_ce(0);
    test_softmax_ce(1);
    test_sgd(0.9f, 1);
    test_sgd(0.9f, 0);
    test_sgd(0.0f, 0);
    test_adamw();
    test_arith();
}

/* ---- host<->device transfers of a training step ---- */

/* A ResNet-18 at width 1/8 on 32 px tiles with the ImageNet stem (so it has the max pool), batch
 * 4, SGD with momentum. Counts be->transfers around each part of a step and returns the loss of
 * the first forward (-1 on failure). */
static float check_transfers(fl_backend *be) {
    enum { B = 4, T = 32 };
    fl_err err = {{0}};
    fl_resnet_config rc;
    fl_resnet_config_default(&rc);
    rc.depth = 18;
    rc.tile = T;
    rc.stem = FL_STEM_IMAGENET;
    rc.width = 0.125f;
    fl_graph *g = NULL;
    fl_model *m = NULL;
    CHECK_OK(fl_resnet_build(&g, &rc, &err), &err);
    if (!g) return -1;
    CHECK_OK(fl_model_new(&m, g, be, B, 7, &err), &err);
    if (!m) return -1;
    fl_optim opt, clip;
    fl_optim_config oc;
    fl_optim_config_default(&oc);
    CHECK_OK(fl_optim_init(&opt, m, &oc, &err), &err);
    oc.clip_norm = 1.0f;
    CHECK_OK(fl_optim_init(&clip, m, &oc, &err), &err);
    float *x = hbuf((size_t)B * 3 * T * T), loss = -1, loss_w = -1;
    rng_state = 0x5DEECE66Dull; /* the same images on every backend */
    for (size_t i = 0; i < (size_t)B * 3 * T * T; i++) x[i] = urand(-2, 2);
    int32_t labels[B] = {0, 2, -1, 1};
    float cw[3] = {1.0f, 2.0f, 0.5f};

    uint64_t t = be->transfers;
    CHECK_OK(fl_model_set_input(m, 0, x, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 1); /* the images */
    t = be->transfers;
    CHECK_OK(fl_model_forward(m, 1, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 0);
    /* fl_model_loss_ce uploads the labels (1) and reads the loss back (1); class weights add
     * their own upload (1). */
    t = be->transfers;
    CHECK_OK(fl_model_loss_ce(m, 0, labels, NULL, &loss, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 2);
    t = be->transfers;
    CHECK_OK(fl_model_loss_ce(m, 0, labels, cw, &loss_w, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 3);
    t = be->transfers;
    CHECK_OK(fl_model_backward(m, &err), &err);
    CHECK_OK(fl_optim_step(&opt, NULL, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 0);
    /* Clipping by the global norm reads the sum of squares back (1). */
    t = be->transfers;
    CHECK_OK(fl_optim_step(&clip, NULL, &err), &err);
    CHECK_EQ_INT(be->transfers - t, 1);
    printf("transfers on %s: set_input 1, forward 0, loss 2 (+1 with class weights), backward + "
           "step 0, clipped step 1\n",
           be->name);
    fl_optim_destroy(&clip);
    fl_optim_destroy(&opt);
    fl_model_free(m);
    hfree();
    return loss;
}

/* ---- --device names and the loader's messages (no GPU needed) ---- */

static int one_line(const char *s) {
    return s[0] && !strchr(s, '\n') && !strchr(s, '\r');
}

static void test_select(void) {
    fl_err err = {{0}};
    fl_precision p = FL_PREC_FP32;
    CHECK_OK(fl_precision_parse("bf16", &p, &err), &err);
    CHECK_EQ_INT(p, FL_PREC_BF16);
    CHECK_OK(fl_precision_parse("tf32", &p, &err), &err);
    CHECK_EQ_INT(p, FL_PREC_TF32);
    CHECK_EQ_INT(fl_precision_parse("fp16", &p, &err), FL_EINVAL);
    CHECK_MSG(err, "fp16");
    CHECK(fl_backend_new("cpu", 1, FL_PREC_TF32, &err) == NULL);
    CHECK_MSG(err, "fp32");
    CHECK(fl_backend_new("tpu", 1, FL_PREC_FP32, &err) == NULL);
    CHECK_MSG(err, "unknown device");
    CHECK(fl_backend_new("cuda:x", 1, FL_PREC_FP32, &err) == NULL);
    CHECK_MSG(err, "ordinal");
    CHECK(fl_backend_new("cuda:", 1, FL_PREC_FP32, &err) == NULL);
    CHECK_MSG(err, "ordinal");
    fl_backend *b = fl_backend_new("cpu", 1, FL_PREC_FP32, &err);
    CHECK(b && strcmp(b->name, "cpu") == 0);
    if (b) b->destroy(b);

    /* A module that is not there: one sentence naming it. Before any successful load (the
     * loader keeps the first module it loads). */
    const char *saved = getenv("FEDLUNG_CUDA_MODULE");
    char keep[4096] = "";
    if (saved) snprintf(keep, sizeof keep, "%s", saved);
    setenv("FEDLUNG_CUDA_MODULE", "/nonexistent/libfedlung_cuda.so", 1);
    CHECK(fl_backend_cuda_new(NULL, &err) == NULL);
    CHECK_MSG(err, "/nonexistent/libfedlung_cuda.so");
    CHECK(one_line(err.msg));
    if (saved)
        setenv("FEDLUNG_CUDA_MODULE", keep, 1);
    else
        unsetenv("FEDLUNG_CUDA_MODULE");
}

int main(void) {
    fl_err err = {{0}};
    test_select();
    cpu = fl_backend_new("cpu", 2, FL_PREC_FP32, &err);
    if (!cpu) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    float cpu_loss = check_transfers(cpu);

    /* (a) the CUDA backend starts, or says why not in one line: the visible skip. */
    memset(&err, 0, sizeof err);
    gpu = fl_backend_new("cuda", 0, FL_PREC_FP32, &err);
    if (!gpu) {
        CHECK(one_line(err.msg));
        /* The parity cases still run, CPU against CPU (all errors 0): the harness is checked
         * here rather than on a GPU machine's scarce time. */
        fl_err e2 = {{0}};
        dut = "cpu";
        gpu = fl_backend_new("cpu", 2, FL_PREC_FP32, &e2);
        CHECK(gpu != NULL);
        if (gpu) {
            test_ops_parity();
            gpu->destroy(gpu);
        }
        printf("SKIP: no GPU: %s\n", err.msg);
        cpu->destroy(cpu);
        return fl_test_summary("test_cuda");
    }
    CHECK(strcmp(gpu->name, "cuda") == 0 && gpu->device == FL_DEVICE_CUDA);
    test_ops_parity();
    float gpu_loss = check_transfers(gpu);
    /* The same model, seed and batch on both: the first loss agrees (accumulation order aside). */
    printf("training-step loss: cpu %.7f, cuda %.7f\n", cpu_loss, gpu_loss);
    CHECK_CLOSE(gpu_loss, cpu_loss, 1e-4, 1e-6);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return fl_test_summary("test_cuda");
}
