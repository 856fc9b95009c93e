/* fd.c - the op tests' scratch buffers, seeded random numbers and finite-difference checks (see
 * fd.h). Single-threaded test code: the pool and the generator are plain globals. */
#include "fd.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

fl_backend *be;

int fd_backend_open(void) {
    fl_err err = {{0}};
    be = fl_backend_cpu_new(2, &err);
    if (!be) {
        fprintf(stderr, "fl_backend_cpu_new: %s\n", err.msg);
        return -1;
    }
    return 0;
}

void fd_backend_close(void) {
    if (be) be->destroy(be);
    be = NULL;
}

/* ---- allocation ---- */

static void *allocs[256];
static int n_allocs;

float *fbuf(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p || n_allocs == 256) abort();
    allocs[n_allocs++] = p;
    return p;
}

void tfree(void) {
    while (n_allocs) free(allocs[--n_allocs]);
}

/* ---- random numbers (xorshift64*, fixed seed) ---- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

float urand(float lo, float hi) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    double u = (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
    return lo + (float)u * (hi - lo);
}

double *dbuf(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p || n_allocs == 256) abort();
    allocs[n_allocs++] = p;
    return p;
}

float *frand(size_t n, float lo, float hi) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}

float *fcopy(const float *src, size_t n) {
    float *p = fbuf(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

float *fnan(size_t n) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

/* ---- finite differences ---- */

static double fd_loss(const fd_obj *o) {
    o->fwd(o->ctx);
    double L = 0;
    for (size_t i = 0; i < o->ny; i++) L += (double)o->y[i] * o->r[i];
    return L;
}

void fd_check_at(const char *what, const fd_obj *o, float *p, const float *g, size_t n, float h,
                 const char *file, int line) {
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

void check_beta1_at(const char *what, const float *dx_acc, const float *d0, const float *dx,
                    size_t n, const char *file, int line) {
    float *want = fbuf(n);
    for (size_t i = 0; i < n; i++) want[i] = d0[i] + dx[i];
    fl_test_arrays_close(what, dx_acc, want, n, 1e-5, 0.1, file, line);
}

float *fromd(const double *d, size_t n) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)d[i];
    return p;
}
