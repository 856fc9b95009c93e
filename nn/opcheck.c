/* opcheck.c - the op cases of opcheck.h: one function per kind of op, run twice per case, first
 * to declare the case's arrays (inputs drawn from the seed), then on a backend to compute its
 * outputs. Shapes are small (the whole list's files stay far under 1 MB) but odd-sized, so
 * vector tails and partial tiles are exercised. Not a test of speed. */
#include "opcheck.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

/* The state of one declaration or run of a case function. */
typedef struct {
    fl_opcheck_case *c;
    fl_backend *be; /* NULL while declaring */
    fl_rng rng;
    int next; /* run: index of the next array the case function names */
    fl_status status;
    fl_err *err;
} ctx;

typedef void (*case_fn)(ctx *t, const void *spec);

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static void fail(ctx *t, fl_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(ctx *t, fl_status s, const char *fmt, ...) {
    if (t->status != FL_OK) return;
    char msg[FL_ERR_LEN - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->status = fl_fail(t->err, s, "opcheck %s: %s", t->c->name, msg);
}

static void set_params(ctx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_params(ctx *t, const char *fmt, ...) {
    if (t->be) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->c->params, sizeof t->c->params, fmt, ap);
    va_end(ap);
}

/* Declares (first pass) or fetches (run) the next array; returns it, or NULL after a failure.
 * In the run, its device copy is allocated and filled: inputs and NaN-filled outputs by an
 * upload (an output overwritten with beta 0 must not read what was there), outputs with
 * `init_from` by a device copy of that input. */
static fl_opcheck_array *array(ctx *t, const char *name, fl_opcheck_role role, int is_int, int ndim,
                               const int64_t *shape, int reduction, const char *init_from) {
    fl_opcheck_case *c = t->c;
    if (t->status != FL_OK) return NULL;
    if (!t->be) {
        if (c->n == FL_OPCHECK_MAX_ARRAYS) {
            fail(t, FL_EINVAL, "more than %d arrays", FL_OPCHECK_MAX_ARRAYS);
            return NULL;
        }
        fl_opcheck_array *a = &c->a[c->n];
        memset(a, 0, sizeof *a);
        a->name = name;
        a->role = role;
        a->is_int = is_int;
        a->ndim = ndim;
        a->numel = 1;
        for (int d = 0; d < ndim; d++) {
            a->shape[d] = shape[d];
            a->numel *= (size_t)shape[d];
        }
        a->reduction = reduction;
        if (is_int)
            a->i = malloc(a->numel * sizeof *a->i);
        else
            a->f = malloc(a->numel * sizeof *a->f);
        if (!a->i && !a->f) {
            fail(t, FL_ENOMEM, "out of memory for %s", name);
            return NULL;
        }
        c->n++;
        if (role == FL_OPCHECK_OUT) /* the prefill the run uploads */
            for (size_t k = 0; k < a->numel; k++) {
                if (is_int)
                    a->i[k] = -7;
                else
                    a->f[k] = NAN;
            }
        return a;
    }
    if (t->next >= c->n || strcmp(c->a[t->next].name, name) != 0) {
        fail(t, FL_EINVAL, "array %s declared out of order", name);
        return NULL;
    }
    int k = t->next++;
    fl_opcheck_array *a = &c->a[k];
    size_t bytes = a->numel * 4;
    if (!(c->dev[k] = t->be->alloc(t->be, bytes))) {
        fail(t, FL_EBACKEND, "cannot allocate %zu bytes on %s", bytes, t->be->name);
        return NULL;
    }
    if (init_from) {
        fl_opcheck_array *src = fl_opcheck_find(c, init_from);
        if (!src || src->numel != a->numel) {
            fail(t, FL_EINVAL, "%s cannot start from %s", name, init_from);
            return NULL;
        }
        t->be->copy(t->be, c->dev[k], c->dev[src - c->a], bytes);
    } else {
        t->be->upload(t->be, c->dev[k], is_int ? (const void *)a->i : (const void *)a->f, bytes);
    }
    return a;
}

static void *dev_of(ctx *t, const fl_opcheck_array *a) {
    return t->be && a ? t->c->dev[a - t->c->a] : NULL;
}

/* Inputs: normal(0, scale), uniform [lo, hi), or given int32 values. */
static float *in_normal(ctx *t, const char *name, int ndim, const int64_t *shape, double scale) {
    fl_opcheck_array *a = array(t, name, FL_OPCHECK_IN, 0, ndim, shape, 0, NULL);
    if (a && !t->be)
        for (size_t k = 0; k < a->numel; k++) a->f[k] = (float)(scale * fl_rng_normal(&t->rng));
    return dev_of(t, a);
}

static float *in_uniform(ctx *t, const char *name, int ndim, const int64_t *shape, double lo,
                         double hi) {
    fl_opcheck_array *a = array(t, name, FL_OPCHECK_IN, 0, ndim, shape, 0, NULL);
    if (a && !t->be)
        for (size_t k = 0; k < a->numel; k++)
            a->f[k] = (float)(lo + (hi - lo) * fl_rng_uniform(&t->rng));
    return dev_of(t, a);
}

static int32_t *in_i32(ctx *t, const char *name, int n, const int32_t *values) {
    fl_opcheck_array *a = array(t, name, FL_OPCHECK_IN, 1, 1, SHAPE(n), 0, NULL);
    if (a && !t->be) memcpy(a->i, values, (size_t)n * sizeof *values);
    return dev_of(t, a);
}

/* Outputs; init_from names the input they start from (beta 1, in-place updates), else they
 * start as NaN. */
static float *out_f(ctx *t, const char *name, int ndim, const int64_t *shape, int reduction,
                    const char *init_from) {
    return dev_of(t, array(t, name, FL_OPCHECK_OUT, 0, ndim, shape, reduction, init_from));
}

static int32_t *out_i32(ctx *t, const char *name, int ndim, const int64_t *shape) {
    return dev_of(t, array(t, name, FL_OPCHECK_OUT, 1, ndim, shape, 0, NULL));
}

/* ---- convolution ---- */

typedef struct {
    int N, C, H, W, K, R, S, stride, pad, bias;
    int beta; /* dx = beta*dx + grad with beta 0 or 1; -1: dx NULL (a first layer) */
} conv_spec;

static void case_conv(ctx *t, const void *spec) {
    const conv_spec *s = spec;
    fl_conv2d_shape sh = {.N = s->N,
                          .C = s->C,
                          .H = s->H,
                          .W = s->W,
                          .K = s->K,
                          .R = s->R,
                          .S = s->S,
                          .stride = s->stride,
                          .pad = s->pad,
                          .has_bias = s->bias};
    sh.P = (s->H + 2 * s->pad - s->R) / s->stride + 1;
    sh.Q = (s->W + 2 * s->pad - s->S) / s->stride + 1;
    int crs = s->C * s->R * s->S, npq = s->N * sh.P * sh.Q;
    int back = s->K * ((s->R + s->stride - 1) / s->stride) * ((s->S + s->stride - 1) / s->stride);
    set_params(t, "{\"stride\": %d, \"pad\": %d, \"beta\": %d}", s->stride, s->pad, s->beta);
    float *x = in_normal(t, "x", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    float *w = in_normal(t, "w", 4, SHAPE(s->K, s->C, s->R, s->S), 1.0 / sqrt(crs));
    float *b = s->bias ? in_normal(t, "b", 1, SHAPE(s->K), 0.5) : NULL;
    float *dy = in_normal(t, "dy", 4, SHAPE(s->N, sh.P, sh.Q, s->K), 1.0);
    if (s->beta == 1) in_normal(t, "dx0", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    float *y = out_f(t, "y", 4, SHAPE(s->N, sh.P, sh.Q, s->K), crs, NULL);
    float *dx = s->beta >= 0 ? out_f(t, "dx", 4, SHAPE(s->N, s->H, s->W, s->C), back,
                                     s->beta == 1 ? "dx0" : NULL)
                             : NULL;
    float *dw = out_f(t, "dw", 4, SHAPE(s->K, s->C, s->R, s->S), npq, NULL);
    float *db = s->bias ? out_f(t, "db", 1, SHAPE(s->K), npq, NULL) : NULL;
    if (!t->be || t->status != FL_OK) return;
    void *plan = NULL;
    fl_err perr = {{0}};
    if (t->be->conv2d_plan(t->be, &sh, &plan, &perr) != FL_OK) {
        fail(t, FL_EBACKEND, "conv2d_plan: %s", perr.msg);
        return;
    }
    t->be->conv2d_forward(t->be, plan, x, w, b, y);
    t->be->conv2d_backward(t->be, plan, x, w, dy, dx, (float)(s->beta > 0), dw, db);
    t->be->conv2d_plan_free(t->be, plan);
}

/* ---- normalisation ---- */

typedef struct {
    int N, H, W, C, train, beta;
} bn_spec;

static void case_batchnorm(ctx *t, const void *spec) {
    const bn_spec *s = spec;
    int M = s->N * s->H * s->W;
    const float momentum = 0.1f, eps = 1e-5f;
    set_params(t, "{\"train\": %d, \"momentum\": %g, \"eps\": %g, \"beta\": %d}", s->train,
               (double)momentum, (double)eps, s->beta);
    float *x = in_normal(t, "x", 4, SHAPE(s->N, s->H, s->W, s->C), 1.5);
    float *gamma = in_uniform(t, "gamma", 1, SHAPE(s->C), 0.5, 1.5);
    float *beta = in_normal(t, "beta", 1, SHAPE(s->C), 0.3);
    in_normal(t, "running_mean0", 1, SHAPE(s->C), 0.3);
    in_uniform(t, "running_var0", 1, SHAPE(s->C), 0.5, 2.0);
    float *dy = in_normal(t, "dy", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    if (s->beta) in_normal(t, "dx0", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    float *y = out_f(t, "y", 4, SHAPE(s->N, s->H, s->W, s->C), 0, NULL);
    float *rm = out_f(t, "running_mean", 1, SHAPE(s->C), 0, "running_mean0");
    float *rv = out_f(t, "running_var", 1, SHAPE(s->C), 0, "running_var0");
    float *sm = out_f(t, "save_mean", 1, SHAPE(s->C), 0, NULL);
    float *si = out_f(t, "save_invstd", 1, SHAPE(s->C), 0, NULL);
    float *dx = out_f(t, "dx", 4, SHAPE(s->N, s->H, s->W, s->C), 0, s->beta ? "dx0" : NULL);
    float *dgamma = out_f(t, "dgamma", 1, SHAPE(s->C), 0, NULL);
    float *dbeta = out_f(t, "dbeta", 1, SHAPE(s->C), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->batchnorm_forward(t->be, x, y, M, s->C, gamma, beta, rm, rv, momentum, eps, s->train, sm,
                             si);
    t->be->batchnorm_backward(t->be, x, dy, dx, (float)s->beta, M, s->C, gamma, sm, si, s->train,
                              dgamma, dbeta);
}

typedef struct {
    int N, H, W, C, G, beta;
} gn_spec;

static void case_groupnorm(ctx *t, const void *spec) {
    const gn_spec *s = spec;
    const float eps = 1e-5f;
    int HW = s->H * s->W;
    set_params(t, "{\"groups\": %d, \"eps\": %g, \"beta\": %d}", s->G, (double)eps, s->beta);
    float *x = in_normal(t, "x", 4, SHAPE(s->N, s->H, s->W, s->C), 1.5);
    float *gamma = in_uniform(t, "gamma", 1, SHAPE(s->C), 0.5, 1.5);
    float *beta = in_normal(t, "beta", 1, SHAPE(s->C), 0.3);
    float *dy = in_normal(t, "dy", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    if (s->beta) in_normal(t, "dx0", 4, SHAPE(s->N, s->H, s->W, s->C), 1.0);
    float *y = out_f(t, "y", 4, SHAPE(s->N, s->H, s->W, s->C), 0, NULL);
    float *sm = out_f(t, "save_mean", 1, SHAPE(s->N * s->G), 0, NULL);
    float *si = out_f(t, "save_invstd", 1, SHAPE(s->N * s->G), 0, NULL);
    float *dx = out_f(t, "dx", 4, SHAPE(s->N, s->H, s->W, s->C), 0, s->beta ? "dx0" : NULL);
    float *dgamma = out_f(t, "dgamma", 1, SHAPE(s->C), 0, NULL);
    float *dbeta = out_f(t, "dbeta", 1, SHAPE(s->C), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->groupnorm_forward(t->be, x, y, s->N, HW, s->C, s->G, gamma, beta, eps, sm, si);
    t->be->groupnorm_backward(t->be, x, dy, dx, (float)s->beta, s->N, HW, s->C, s->G, gamma, sm, si,
                              dgamma, dbeta);
}

typedef struct {
    int M, F, beta;
} ln_spec;

static void case_layernorm(ctx *t, const void *spec) {
    const ln_spec *s = spec;
    const float eps = 1e-5f;
    set_params(t, "{\"eps\": %g, \"beta\": %d}", (double)eps, s->beta);
    float *x = in_normal(t, "x", 2, SHAPE(s->M, s->F), 1.5);
    float *gamma = in_uniform(t, "gamma", 1, SHAPE(s->F), 0.5, 1.5);
    float *beta = in_normal(t, "beta", 1, SHAPE(s->F), 0.3);
    float *dy = in_normal(t, "dy", 2, SHAPE(s->M, s->F), 1.0);
    if (s->beta) in_normal(t, "dx0", 2, SHAPE(s->M, s->F), 1.0);
    float *y = out_f(t, "y", 2, SHAPE(s->M, s->F), 0, NULL);
    float *sm = out_f(t, "save_mean", 1, SHAPE(s->M), 0, NULL);
    float *si = out_f(t, "save_invstd", 1, SHAPE(s->M), 0, NULL);
    float *dx = out_f(t, "dx", 2, SHAPE(s->M, s->F), 0, s->beta ? "dx0" : NULL);
    float *dgamma = out_f(t, "dgamma", 1, SHAPE(s->F), 0, NULL);
    float *dbeta = out_f(t, "dbeta", 1, SHAPE(s->F), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->layernorm_forward(t->be, x, y, s->M, s->F, gamma, beta, eps, sm, si);
    t->be->layernorm_backward(t->be, x, dy, dx, (float)s->beta, s->M, s->F, gamma, sm, si, dgamma,
                              dbeta);
}

/* ---- activations, pooling, linear, dropout ---- */

/* y = relu(x), and in place; dx with beta 0 and (dx_acc) beta 1. */
static void case_relu(ctx *t, const void *spec) {
    const int n = 1003;
    float *x = in_normal(t, "x", 1, SHAPE(n), 1.0);
    float *dy = in_normal(t, "dy", 1, SHAPE(n), 1.0);
    in_normal(t, "dx0", 1, SHAPE(n), 1.0);
    float *y = out_f(t, "y", 1, SHAPE(n), 0, NULL);
    float *yi = out_f(t, "y_inplace", 1, SHAPE(n), 0, "x");
    float *dx = out_f(t, "dx", 1, SHAPE(n), 0, NULL);
    float *dxa = out_f(t, "dx_acc", 1, SHAPE(n), 0, "dx0");
    set_params(t, "{}");
    if (!t->be || t->status != FL_OK) return;
    t->be->relu_forward(t->be, x, y, n);
    t->be->relu_forward(t->be, yi, yi, n);
    t->be->relu_backward(t->be, y, dy, dx, 0.0f, n);
    t->be->relu_backward(t->be, y, dy, dxa, 1.0f, n);
}

static void case_maxpool(ctx *t, const void *spec) {
    const int N = 2, H = 9, W = 9, C = 8, k = 3, s = 2, p = 1;
    const int P = (H + 2 * p - k) / s + 1, Q = (W + 2 * p - k) / s + 1;
    set_params(t, "{\"k\": %d, \"stride\": %d, \"pad\": %d}", k, s, p);
    float *x = in_normal(t, "x", 4, SHAPE(N, H, W, C), 1.0);
    float *dy = in_normal(t, "dy", 4, SHAPE(N, P, Q, C), 1.0);
    in_normal(t, "dx0", 4, SHAPE(N, H, W, C), 1.0);
    float *y = out_f(t, "y", 4, SHAPE(N, P, Q, C), 0, NULL);
    int32_t *idx = out_i32(t, "idx", 4, SHAPE(N, P, Q, C));
    float *dx = out_f(t, "dx", 4, SHAPE(N, H, W, C), 0, NULL);
    float *dxa = out_f(t, "dx_acc", 4, SHAPE(N, H, W, C), 0, "dx0");
    if (!t->be || t->status != FL_OK) return;
    t->be->maxpool_forward(t->be, x, y, idx, N, H, W, C, k, s, p, P, Q);
    t->be->maxpool_backward(t->be, dy, idx, dx, 0.0f, N, H, W, C, P, Q);
    t->be->maxpool_backward(t->be, dy, idx, dxa, 1.0f, N, H, W, C, P, Q);
}

static void case_gap(ctx *t, const void *spec) {
    const int N = 2, H = 3, W = 5, C = 12;
    set_params(t, "{}");
    float *x = in_normal(t, "x", 4, SHAPE(N, H, W, C), 1.0);
    float *dy = in_normal(t, "dy", 2, SHAPE(N, C), 1.0);
    in_normal(t, "dx0", 4, SHAPE(N, H, W, C), 1.0);
    float *y = out_f(t, "y", 2, SHAPE(N, C), 0, NULL);
    float *dx = out_f(t, "dx", 4, SHAPE(N, H, W, C), 0, NULL);
    float *dxa = out_f(t, "dx_acc", 4, SHAPE(N, H, W, C), 0, "dx0");
    if (!t->be || t->status != FL_OK) return;
    t->be->gap_forward(t->be, x, y, N, H * W, C);
    t->be->gap_backward(t->be, dy, dx, 0.0f, N, H * W, C);
    t->be->gap_backward(t->be, dy, dxa, 1.0f, N, H * W, C);
}

typedef struct {
    int M, IN, OUT, bias, beta;
} linear_spec;

static void case_linear(ctx *t, const void *spec) {
    const linear_spec *s = spec;
    set_params(t, "{\"beta\": %d}", s->beta);
    float *x = in_normal(t, "x", 2, SHAPE(s->M, s->IN), 1.0);
    float *w = in_normal(t, "w", 2, SHAPE(s->OUT, s->IN), 1.0 / sqrt(s->IN));
    float *b = s->bias ? in_normal(t, "b", 1, SHAPE(s->OUT), 0.5) : NULL;
    float *dy = in_normal(t, "dy", 2, SHAPE(s->M, s->OUT), 1.0);
    if (s->beta) in_normal(t, "dx0", 2, SHAPE(s->M, s->IN), 1.0);
    float *y = out_f(t, "y", 2, SHAPE(s->M, s->OUT), s->IN, NULL);
    float *dx = out_f(t, "dx", 2, SHAPE(s->M, s->IN), s->OUT, s->beta ? "dx0" : NULL);
    float *dw = out_f(t, "dw", 2, SHAPE(s->OUT, s->IN), s->M, NULL);
    float *db = s->bias ? out_f(t, "db", 1, SHAPE(s->OUT), s->M, NULL) : NULL;
    if (!t->be || t->status != FL_OK) return;
    t->be->linear_forward(t->be, x, w, b, y, s->M, s->IN, s->OUT);
    t->be->linear_backward(t->be, x, w, dy, dx, (float)s->beta, dw, db, s->M, s->IN, s->OUT);
}

/* The mask is a function of (seed, i) that every backend computes the same way, so it is
 * compared exactly; PyTorch checks y = x*mask and the keep rate instead. */
static void case_dropout(ctx *t, const void *spec) {
    const int n = 2000;
    const float p = 0.3f;
    const uint64_t seed = 20240607;
    set_params(t, "{\"p\": %g, \"seed\": %llu}", (double)p, (unsigned long long)seed);
    float *x = in_normal(t, "x", 1, SHAPE(n), 1.0);
    float *dy = in_normal(t, "dy", 1, SHAPE(n), 1.0);
    in_normal(t, "dx0", 1, SHAPE(n), 1.0);
    float *y = out_f(t, "y", 1, SHAPE(n), 0, NULL);
    float *mask = out_f(t, "mask", 1, SHAPE(n), 0, NULL);
    float *dx = out_f(t, "dx", 1, SHAPE(n), 0, NULL);
    float *dxa = out_f(t, "dx_acc", 1, SHAPE(n), 0, "dx0");
    if (!t->be || t->status != FL_OK) return;
    t->be->dropout_forward(t->be, x, y, mask, n, p, seed);
    t->be->dropout_backward(t->be, dy, mask, dx, 0.0f, n);
    t->be->dropout_backward(t->be, dy, mask, dxa, 1.0f, n);
}

/* ---- losses ---- */

typedef struct {
    int M, K, weighted, probs;
    const int32_t *labels; /* M, -1 = ignore */
} ce_spec;

static void case_softmax_ce(ctx *t, const void *spec) {
    const ce_spec *s = spec;
    set_params(t, "{\"ignore_index\": -1}");
    float *logits = in_normal(t, "logits", 2, SHAPE(s->M, s->K), 2.0);
    int32_t *labels = in_i32(t, "labels", s->M, s->labels);
    float *cw = s->weighted ? in_uniform(t, "class_w", 1, SHAPE(s->K), 0.5, 2.0) : NULL;
    float *loss = out_f(t, "loss", 1, SHAPE(1), 0, NULL);
    float *dl = out_f(t, "dlogits", 2, SHAPE(s->M, s->K), 0, NULL);
    float *probs = s->probs ? out_f(t, "probs", 2, SHAPE(s->M, s->K), 0, NULL) : NULL;
    if (!t->be || t->status != FL_OK) return;
    float l = t->be->softmax_ce(t->be, logits, labels, cw, s->M, s->K, dl, probs);
    t->be->upload(t->be, loss, &l, sizeof l);
}

static void case_softmax(ctx *t, const void *spec) {
    const int M = 7, K = 6;
    set_params(t, "{}");
    float *logits = in_normal(t, "logits", 2, SHAPE(M, K), 3.0);
    float *probs = out_f(t, "probs", 2, SHAPE(M, K), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->softmax(t->be, logits, probs, M, K);
}

/* ---- optimizers ---- */

typedef struct {
    float momentum;
    int nesterov;
} sgd_spec;

static void case_sgd(ctx *t, const void *spec) {
    const sgd_spec *s = spec;
    const int n = 301;
    const float lr = 0.1f, wd = 0.01f;
    set_params(t, "{\"lr\": %g, \"momentum\": %g, \"weight_decay\": %g, \"nesterov\": %d}",
               (double)lr, (double)s->momentum, (double)wd, s->nesterov);
    in_normal(t, "w0", 1, SHAPE(n), 1.0);
    float *g = in_normal(t, "g", 1, SHAPE(n), 1.0);
    if (s->momentum > 0) in_normal(t, "buf0", 1, SHAPE(n), 0.5);
    float *w = out_f(t, "w", 1, SHAPE(n), 0, "w0");
    float *buf = s->momentum > 0 ? out_f(t, "buf", 1, SHAPE(n), 0, "buf0") : NULL;
    if (!t->be || t->status != FL_OK) return;
    t->be->sgd_step(t->be, w, g, buf, n, lr, s->momentum, wd, s->nesterov);
}

static void case_adamw(ctx *t, const void *spec) {
    const int n = 301, step = 3;
    const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    set_params(t,
               "{\"lr\": %g, \"beta1\": %g, \"beta2\": %g, \"eps\": %g, \"weight_decay\": %g, "
               "\"step\": %d}",
               (double)lr, (double)b1, (double)b2, (double)eps, (double)wd, step);
    in_normal(t, "w0", 1, SHAPE(n), 1.0);
    float *g = in_normal(t, "g", 1, SHAPE(n), 1.0);
    in_normal(t, "m0", 1, SHAPE(n), 0.1);
    in_uniform(t, "v0", 1, SHAPE(n), 0.0, 0.01);
    float *w = out_f(t, "w", 1, SHAPE(n), 0, "w0");
    float *m = out_f(t, "m", 1, SHAPE(n), 0, "m0");
    float *v = out_f(t, "v", 1, SHAPE(n), 0, "v0");
    if (!t->be || t->status != FL_OK) return;
    t->be->adamw_step(t->be, w, g, m, v, n, lr, b1, b2, eps, wd, step);
}

/* ---- element-wise helpers and layout ---- */

#define NELT 1003

static void case_add(ctx *t, const void *spec) {
    set_params(t, "{}");
    float *a = in_normal(t, "a", 1, SHAPE(NELT), 1.0);
    float *b = in_normal(t, "b", 1, SHAPE(NELT), 1.0);
    float *y = out_f(t, "y", 1, SHAPE(NELT), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->add(t->be, a, b, y, NELT);
}

static void case_accumulate(ctx *t, const void *spec) {
    set_params(t, "{\"beta\": 0.5}");
    float *src = in_normal(t, "src", 1, SHAPE(NELT), 1.0);
    in_normal(t, "dst0", 1, SHAPE(NELT), 1.0);
    float *dst = out_f(t, "dst", 1, SHAPE(NELT), 0, "dst0");
    float *dst1 = out_f(t, "dst_beta1", 1, SHAPE(NELT), 0, "dst0");
    float *dst0 = out_f(t, "dst_beta0", 1, SHAPE(NELT), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->accumulate(t->be, dst, src, 0.5f, NELT);
    t->be->accumulate(t->be, dst1, src, 1.0f, NELT);
    t->be->accumulate(t->be, dst0, src, 0.0f, NELT);
}

/* A block of F = 4 columns out of rows of 9 into rows of 7 (the rest of dst is kept). */
static void case_copy_cols(ctx *t, const void *spec) {
    const int M = 5, src_ld = 9, dst_ld = 7, F = 4;
    set_params(t, "{\"F\": %d}", F);
    float *src = in_normal(t, "src", 2, SHAPE(M, src_ld), 1.0);
    in_normal(t, "dst0", 2, SHAPE(M, dst_ld), 1.0);
    float *dst = out_f(t, "dst", 2, SHAPE(M, dst_ld), 0, "dst0");
    float *dst0 = out_f(t, "dst_beta0", 2, SHAPE(M, dst_ld), 0, "dst0");
    if (!t->be || t->status != FL_OK) return;
    t->be->copy_cols(t->be, src, src_ld, dst, dst_ld, M, F, 1.0f);
    t->be->copy_cols(t->be, src, src_ld, dst0, dst_ld, M, F, 0.0f);
}

static void case_rowscale(ctx *t, const void *spec) {
    const int M = 6, F = 37;
    set_params(t, "{}");
    float *x = in_normal(t, "x", 2, SHAPE(M, F), 1.0);
    float *s = in_normal(t, "s", 1, SHAPE(M), 1.0);
    float *y = out_f(t, "y", 2, SHAPE(M, F), 0, NULL);
    float *yi = out_f(t, "y_inplace", 2, SHAPE(M, F), 0, "x");
    if (!t->be || t->status != FL_OK) return;
    t->be->rowscale(t->be, x, s, y, M, F);
    t->be->rowscale(t->be, yi, s, yi, M, F);
}

static void case_scale(ctx *t, const void *spec) {
    set_params(t, "{\"a\": -1.5}");
    in_normal(t, "x0", 1, SHAPE(NELT), 1.0);
    float *x = out_f(t, "x", 1, SHAPE(NELT), 0, "x0");
    if (!t->be || t->status != FL_OK) return;
    t->be->scale(t->be, x, -1.5f, NELT);
}

/* Longer than one of the CPU's chunks (4096) and than many GPU blocks. */
static void case_sumsq(ctx *t, const void *spec) {
    const int n = 5003;
    set_params(t, "{}");
    float *x = in_normal(t, "x", 1, SHAPE(n), 1.0);
    float *out = out_f(t, "sumsq", 1, SHAPE(1), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    float s = (float)t->be->sumsq(t->be, x, n);
    t->be->upload(t->be, out, &s, sizeof s);
}

static void case_sub(ctx *t, const void *spec) {
    set_params(t, "{}");
    float *a = in_normal(t, "a", 1, SHAPE(NELT), 1.0);
    float *b = in_normal(t, "b", 1, SHAPE(NELT), 1.0);
    float *y = out_f(t, "y", 1, SHAPE(NELT), 0, NULL);
    float *ya = out_f(t, "y_alias_a", 1, SHAPE(NELT), 0, "a");
    float *yb = out_f(t, "y_alias_b", 1, SHAPE(NELT), 0, "b");
    if (!t->be || t->status != FL_OK) return;
    t->be->sub(t->be, a, b, y, NELT);
    t->be->sub(t->be, ya, b, ya, NELT); /* y = a - b with y == a */
    t->be->sub(t->be, a, yb, yb, NELT); /* y = a - b with y == b */
}

static void case_axpy(ctx *t, const void *spec) {
    set_params(t, "{\"a\": 0.75}");
    float *x = in_normal(t, "x", 1, SHAPE(NELT), 1.0);
    in_normal(t, "y0", 1, SHAPE(NELT), 1.0);
    float *y = out_f(t, "y", 1, SHAPE(NELT), 0, "y0");
    if (!t->be || t->status != FL_OK) return;
    t->be->axpy(t->be, y, x, 0.75f, NELT);
}

static void case_layout(ctx *t, const void *spec) {
    const int N = 2, C = 3, H = 5, W = 7;
    set_params(t, "{}");
    float *x = in_normal(t, "x", 4, SHAPE(N, C, H, W), 1.0);
    float *nhwc = out_f(t, "nhwc", 4, SHAPE(N, H, W, C), 0, NULL);
    float *nchw = out_f(t, "nchw", 4, SHAPE(N, C, H, W), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    t->be->nchw_to_nhwc(t->be, x, nhwc, N, C, H, W);
    t->be->nhwc_to_nchw(t->be, nhwc, nchw, N, C, H, W);
}

/* copy, zero (of part of a buffer), and the transfers counter: one upload, one download, the
 * sums of sumsq and softmax_ce read back = 4, whatever the backend. */
static void case_memory(ctx *t, const void *spec) {
    const int n = 777, part = 300;
    set_params(t, "{\"zeroed\": %d, \"transfers\": 4}", part);
    float *x = in_normal(t, "x", 1, SHAPE(n), 1.0);
    float *copied = out_f(t, "copied", 1, SHAPE(n), 0, NULL);
    float *zeroed = out_f(t, "zeroed", 1, SHAPE(n), 0, "x");
    float *moved = out_f(t, "transfers", 1, SHAPE(1), 0, NULL);
    if (!t->be || t->status != FL_OK) return;
    fl_backend *be = t->be;
    be->copy(be, copied, x, (size_t)n * sizeof(float));
    be->zero(be, zeroed, (size_t)part * sizeof(float));
    float *host = malloc((size_t)n * sizeof *host);
    float *scratch = be->alloc(be, (size_t)(n + 4) * sizeof(float));
    if (!host || !scratch) {
        free(host);
        be->free(be, scratch);
        fail(t, FL_ENOMEM, "out of memory");
        return;
    }
    int32_t label = 1;
    uint64_t t0 = be->transfers;
    be->download(be, host, x, (size_t)n * sizeof(float));
    be->upload(be, scratch + n, &label, sizeof label);
    (void)be->sumsq(be, x, (size_t)n);
    (void)be->softmax_ce(be, x, (const int32_t *)(scratch + n), NULL, 1, 3, scratch, NULL);
    uint64_t delta = be->transfers - t0;
    free(host);
    be->free(be, scratch);
    float d = (float)delta;
    be->upload(be, moved, &d, sizeof d);
    if (delta != 4)
        fail(t, FL_EBACKEND,
             "the backend's transfers counter moved by %llu for 1 upload, 1 download and 2 "
             "scalars read back (expected 4)",
             (unsigned long long)delta);
}

/* ---- the list ---- */

static const conv_spec conv_3x3 = {2, 8, 9, 9, 12, 3, 3, 1, 1, 0, 0};
static const conv_spec conv_3x3_b1 = {2, 8, 9, 9, 12, 3, 3, 1, 1, 1, 1};
static const conv_spec conv_3x3_s2 = {2, 8, 9, 9, 8, 3, 3, 2, 1, 0, 0};
static const conv_spec conv_1x1 = {2, 16, 9, 9, 8, 1, 1, 2, 0, 0, 0};
static const conv_spec conv_1x1_b1 = {2, 16, 9, 9, 8, 1, 1, 2, 0, 1, 1};
static const conv_spec conv_7x7 = {2, 3, 20, 20, 8, 7, 7, 2, 3, 0, -1};
static const conv_spec conv_7x7_b1 = {2, 3, 20, 20, 8, 7, 7, 2, 3, 1, 1};
static const bn_spec bn_train = {2, 4, 5, 6, 1, 1};
static const bn_spec bn_eval = {2, 4, 5, 6, 0, 0};
static const gn_spec gn = {2, 3, 4, 8, 4, 1};
static const ln_spec ln = {6, 20, 0};
static const linear_spec lin_bias = {6, 20, 10, 1, 0};
static const linear_spec lin_nobias = {5, 12, 7, 0, 1};
static const int32_t labels_w[] = {0, 3, -1, 2, 4, -1, 1, 1};
static const int32_t labels_plain[] = {2, 0, 3, 1, 1, 2};
static const int32_t labels_none[] = {-1, -1, -1};
static const ce_spec ce_weighted = {8, 5, 1, 1, labels_w};
static const ce_spec ce_plain = {6, 4, 0, 0, labels_plain};
static const ce_spec ce_ignored = {3, 4, 1, 1, labels_none};
static const sgd_spec sgd_mom = {0.9f, 0};
static const sgd_spec sgd_nest = {0.9f, 1};
static const sgd_spec sgd_plain = {0.0f, 0};

static const struct {
    const char *name, *op;
    case_fn fn;
    const void *spec;
} cases[] = {
    {"conv3x3_s1_p1", "conv2d", case_conv, &conv_3x3},
    {"conv3x3_s1_p1_bias_beta1", "conv2d", case_conv, &conv_3x3_b1},
    {"conv3x3_s2_p1", "conv2d", case_conv, &conv_3x3_s2},
    {"conv1x1_s2", "conv2d", case_conv, &conv_1x1},
    {"conv1x1_s2_bias_beta1", "conv2d", case_conv, &conv_1x1_b1},
    {"conv7x7_s2_p3_nodx", "conv2d", case_conv, &conv_7x7},
    {"conv7x7_s2_p3_bias_beta1", "conv2d", case_conv, &conv_7x7_b1},
    {"batchnorm_train", "batchnorm", case_batchnorm, &bn_train},
    {"batchnorm_eval", "batchnorm", case_batchnorm, &bn_eval},
    {"groupnorm", "groupnorm", case_groupnorm, &gn},
    {"layernorm", "layernorm", case_layernorm, &ln},
    {"relu", "relu", case_relu, NULL},
    {"maxpool_k3_s2_p1", "maxpool", case_maxpool, NULL},
    {"gap", "gap", case_gap, NULL},
    {"linear_bias", "linear", case_linear, &lin_bias},
    {"linear_nobias_beta1", "linear", case_linear, &lin_nobias},
    {"dropout", "dropout", case_dropout, NULL},
    {"softmax_ce_weighted", "softmax_ce", case_softmax_ce, &ce_weighted},
    {"softmax_ce_plain", "softmax_ce", case_softmax_ce, &ce_plain},
    {"softmax_ce_all_ignored", "softmax_ce", case_softmax_ce, &ce_ignored},
    {"softmax", "softmax", case_softmax, NULL},
    {"sgd_momentum", "sgd", case_sgd, &sgd_mom},
    {"sgd_nesterov", "sgd", case_sgd, &sgd_nest},
    {"sgd_plain", "sgd", case_sgd, &sgd_plain},
    {"adamw", "adamw", case_adamw, NULL},
    {"add", "add", case_add, NULL},
    {"accumulate", "accumulate", case_accumulate, NULL},
    {"copy_cols", "copy_cols", case_copy_cols, NULL},
    {"rowscale", "rowscale", case_rowscale, NULL},
    {"scale", "scale", case_scale, NULL},
    {"sumsq", "sumsq", case_sumsq, NULL},
    {"sub", "sub", case_sub, NULL},
    {"axpy", "axpy", case_axpy, NULL},
    {"layout", "layout", case_layout, NULL},
    {"memory", "memory", case_memory, NULL},
};

#define N_CASES ((int)(sizeof cases / sizeof *cases))

int fl_opcheck_count(void) {
    return N_CASES;
}

const char *fl_opcheck_name(int i) {
    return i >= 0 && i < N_CASES ? cases[i].name : NULL;
}

fl_opcheck_array *fl_opcheck_find(fl_opcheck_case *c, const char *name) {
    for (int k = 0; k < c->n; k++)
        if (strcmp(c->a[k].name, name) == 0) return &c->a[k];
    return NULL;
}

void fl_opcheck_case_destroy(fl_opcheck_case *c) {
    if (!c) return;
    for (int k = 0; k < c->n; k++) {
        free(c->a[k].f);
        free(c->a[k].i);
    }
    c->n = 0;
}

fl_status fl_opcheck_case_init(fl_opcheck_case *c, int i, uint64_t seed, fl_err *err) {
    memset(c, 0, sizeof *c);
    if (i < 0 || i >= N_CASES) return fl_fail(err, FL_EINVAL, "opcheck: no case %d", i);
    c->name = cases[i].name;
    c->op = cases[i].op;
    c->index = i;
    ctx t = {.c = c, .status = FL_OK, .err = err};
    /* Each case draws from its own stream, so adding a case changes no other case's inputs. */
    fl_rng_seed(&t.rng, fl_mix64(seed, (uint64_t)i));
    cases[i].fn(&t, cases[i].spec);
    if (t.status != FL_OK) fl_opcheck_case_destroy(c);
    return t.status;
}

fl_status fl_opcheck_case_run(fl_opcheck_case *c, fl_backend *be, fl_err *err) {
    ctx t = {.c = c, .be = be, .status = FL_OK, .err = err};
    memset(c->dev, 0, sizeof c->dev);
    cases[c->index].fn(&t, cases[c->index].spec);
    if (t.status == FL_OK && t.next != c->n) fail(&t, FL_EINVAL, "arrays declared differently");
    for (int k = 0; k < c->n; k++) {
        if (!c->dev[k]) continue;
        fl_opcheck_array *a = &c->a[k];
        if (t.status == FL_OK && a->role == FL_OPCHECK_OUT)
            be->download(be, a->is_int ? (void *)a->i : (void *)a->f, c->dev[k], a->numel * 4);
        be->free(be, c->dev[k]);
        c->dev[k] = NULL;
    }
    return t.status;
}
