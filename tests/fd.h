/* fd.h - what the op tests (test_ops*.c) share: a pool of scratch buffers freed together, seeded
 * random numbers, and the finite-difference check of a backward against its forward. Test code
 * only: the names are short on purpose and live only in the test executables. */
#ifndef FL_TEST_FD_H
#define FL_TEST_FD_H

#include <stddef.h>

#include "../nn/backend.h"

/* The backend under test (fd_check_at restores its thread count after its own single-threaded
 * forwards): fd_backend_open makes it the CPU backend with two threads, or prints why not and
 * returns -1; fd_backend_close destroys it. */
extern fl_backend *be;
int fd_backend_open(void);
void fd_backend_close(void);

/* ---- allocation: every buffer of a test case is freed together by tfree() ---- */

float *fbuf(size_t n);  /* n zeros */
double *dbuf(size_t n); /* n zeros */
void tfree(void);

/* ---- random numbers (xorshift64*, a fixed seed: every run draws the same values) ---- */

float urand(float lo, float hi);            /* uniform in [lo, hi) */
float *frand(size_t n, float lo, float hi); /* n of them */
float *fcopy(const float *src, size_t n);   /* a pooled copy */
float *fnan(size_t n);                      /* n NaNs: an output that must be overwritten */
float *fromd(const double *d, size_t n);    /* a double reference as floats, for CHECK_ARRAYS */

/* ---- finite differences ---- */

/* A forward pass under test: fwd(ctx) recomputes y (ny) from the current inputs; the loss is
 * L = sum(y * r). */
typedef struct {
    void (*fwd)(void *ctx);
    void *ctx;
    const float *y, *r;
    size_t ny;
} fd_obj;

/* Compares g (the analytic dL/dp, n elements) with central differences of L in every element
 * of p (step h, on one thread), then reruns the forward; prints the first few disagreements
 * with both sides and counts one failed check if any. */
void fd_check_at(const char *what, const fd_obj *o, float *p, const float *g, size_t n, float h,
                 const char *file, int line);
#define FD_CHECK(what, o, p, g, n, h) fd_check_at(what, o, p, g, n, h, __FILE__, __LINE__)

/* dx_acc started as d0 and received beta = 1 accumulation; it must equal d0 + dx. */
void check_beta1_at(const char *what, const float *dx_acc, const float *d0, const float *dx,
                    size_t n, const char *file, int line);
#define CHECK_BETA1(what, acc, d0, dx, n) check_beta1_at(what, acc, d0, dx, n, __FILE__, __LINE__)

#endif
