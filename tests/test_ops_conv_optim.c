/* test_ops_conv_optim.c - the CPU backend's convolution (oneDNN) on tiny shapes against a naive
 * double reference, its backward against central finite differences of L = sum(y * r) and the
 * beta = 1 accumulation path; SGD (momentum, Nesterov, weight decay) and AdamW steps against
 * hand-written references. The other ops are in test_ops.c. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/backend.h"
#include "fd.h"
#include "harness.h"

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
    if (fd_backend_open() != 0) return 1;
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
    fd_backend_close();
    return fl_test_summary("test_ops_conv_optim");
}
