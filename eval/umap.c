/* umap.c - UMAP as umap-learn 0.5 computes it: the fuzzy simplicial set of an exact kNN, the
 * spectral initialisation (umap_spectral.c), and the single-threaded negative-sampling SGD with
 * its epochs_per_sample schedule. Not umap-learn's options beyond the basic ones: no
 * supervised UMAP, no densMAP, no other metrics, no transform. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/progress.h"
#include "umap.h"
#include "umap_impl.h"

#define SMOOTH_K_TOLERANCE 1e-5 /* umap-learn's constants */
#define MIN_K_DIST_SCALE 1e-3

void fl_umap_config_default(fl_umap_config *c) {
    *c = (fl_umap_config){
        .n_neighbors = 15,
        .n_components = 2,
        .min_dist = 0.1f,
        .spread = 1.0f,
        .learning_rate = 1.0f,
        .negative_sample_rate = 5,
        .seed = 1,
    };
}

/* ---- the layout's similarity curve ---- */

/* Sum of squared residuals of 1 / (1 + a x^(2b)) against y over m points; with J non-NULL
 * also J^T J (3 entries: aa, ab, bb) and J^T r (2). */
static double ab_fit(double a, double b, const double *x, const double *y, int m, double *JtJ,
                     double *Jtr) {
    double sse = 0;
    if (JtJ) {
        memset(JtJ, 0, 3 * sizeof(double));
        memset(Jtr, 0, 2 * sizeof(double));
    }
    for (int i = 0; i < m; i++) {
        double u = x[i] > 0 ? pow(x[i], 2 * b) : 0, f = 1 / (1 + a * u), r = f - y[i];
        sse += r * r;
        if (!JtJ) continue;
        double ja = -u * f * f, jb = x[i] > 0 ? -a * u * 2 * log(x[i]) * f * f : 0;
        JtJ[0] += ja * ja;
        JtJ[1] += ja * jb;
        JtJ[2] += jb * jb;
        Jtr[0] += ja * r;
        Jtr[1] += jb * r;
    }
    return sse;
}

fl_status fl_umap_find_ab(double spread, double min_dist, double *a, double *b, fl_err *err) {
    if (!(spread > 0) || !(min_dist >= 0) || min_dist > spread)
        return fl_fail(err, FL_EINVAL,
                       "UMAP needs spread > 0 and 0 <= min_dist <= spread, not %g "
                       "and %g",
                       spread, min_dist);
    enum { M = 300 };
    double x[M], y[M]; /* numpy's linspace(0, 3 spread, 300) and the target curve */
    for (int i = 0; i < M; i++) {
        x[i] = i == M - 1 ? 3 * spread : 3 * spread * i / (M - 1.0);
        y[i] = x[i] < min_dist ? 1.0 : exp(-(x[i] - min_dist) / spread);
    }
    /* Levenberg-Marquardt from (1, 1), as scipy's curve_fit */
    double pa = 1, pb = 1, lambda = 1e-3, JtJ[3], Jtr[2];
    double sse = ab_fit(pa, pb, x, y, M, JtJ, Jtr);
    for (int it = 0; it < 1000 && lambda < 1e12; it++) {
        double A00 = JtJ[0] * (1 + lambda), A11 = JtJ[2] * (1 + lambda), A01 = JtJ[1];
        double det = A00 * A11 - A01 * A01;
        double da = -(A11 * Jtr[0] - A01 * Jtr[1]) / det, db = -(A00 * Jtr[1] - A01 * Jtr[0]) / det;
        double na = pa + da, nb = pb + db,
               nsse = na > 0 && nb > 0 && isfinite(det) ? ab_fit(na, nb, x, y, M, NULL, NULL)
                                                        : INFINITY;
        if (!(nsse < sse)) {
            lambda *= 10;
            continue;
        }
        int done = fabs(da) <= 1e-13 * (1 + pa) && fabs(db) <= 1e-13 * (1 + pb);
        pa = na;
        pb = nb;
        lambda /= 10;
        sse = ab_fit(pa, pb, x, y, M, JtJ, Jtr);
        if (done) break;
    }
    if (!isfinite(pa) || !isfinite(pb) || !(pa > 0) || !(pb > 0))
        return fl_fail(err, FL_EINVAL, "UMAP's curve fit failed for spread %g, min_dist %g", spread,
                       min_dist);
    *a = pa;
    *b = pb;
    return FL_OK;
}

/* ---- the fuzzy simplicial set ---- */

/* umap-learn's smooth_knn_dist with local_connectivity 1 and bandwidth 1. */
static void smooth_knn(const float *dist, int n, int k, double *sigma, double *rho) {
    double target = log2((double)k), mean_all = 0;
    for (size_t i = 0; i < (size_t)n * k; i++) mean_all += dist[i];
    mean_all /= (double)n * k;
    for (int i = 0; i < n; i++) {
        const float *d = dist + (size_t)i * k;
        rho[i] = 0;
        for (int j = 0; j < k; j++)
            if (d[j] > 0) {
                rho[i] = d[j]; /* the nearest non-zero distance */
                break;
            }
        double lo = 0, hi = INFINITY, mid = 1;
        for (int it = 0; it < 64; it++) {
            double psum = 0;
            for (int j = 1; j < k; j++) {
                double t = d[j] - rho[i];
                psum += t > 0 ? exp(-(t / mid)) : 1.0;
            }
            if (fabs(psum - target) < SMOOTH_K_TOLERANCE) break;
            if (psum > target) {
                hi = mid;
                mid = (lo + hi) / 2;
            } else {
                lo = mid;
                mid = isinf(hi) ? mid * 2 : (lo + hi) / 2;
            }
        }
        double mean_i = 0;
        for (int j = 0; j < k; j++) mean_i += d[j];
        mean_i /= k;
        double floor = MIN_K_DIST_SCALE * (rho[i] > 0 ? mean_i : mean_all);
        sigma[i] = mid < floor ? floor : mid;
    }
}

/* Empty CSR arrays for n rows and nnz entries. */
static fl_status graph_alloc(fl_umap_graph *g, int n, int64_t nnz, fl_err *err) {
    g->n = n;
    g->rowptr = calloc((size_t)n + 1, sizeof(int64_t));
    g->col = malloc((size_t)(nnz + 1) * sizeof(int32_t));
    g->val = malloc((size_t)(nnz + 1) * sizeof(float));
    if (g->rowptr && g->col && g->val) return FL_OK;
    fl_umap_graph_destroy(g);
    return fl_fail(err, FL_ENOMEM, "out of memory for a graph of %lld edges", (long long)nnz);
}

fl_status fl_umap_fuzzy_graph(const int32_t *idx, const float *dist, int n, int k, fl_umap_graph *g,
                              double *sigma, double *rho, fl_err *err) {
    memset(g, 0, sizeof *g);
    double *sg = sigma ? sigma : malloc((size_t)n * sizeof(double));
    double *rh = rho ? rho : malloc((size_t)n * sizeof(double));
    fl_umap_graph R = {0}, T = {0};
    fl_status s = FL_OK;
    if (!sg || !rh) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the fuzzy graph of %d points", n);
        goto done;
    }
    smooth_knn(dist, n, k, sg, rh);
    /* R: the directed memberships, each row sorted by column */
    if ((s = graph_alloc(&R, n, (int64_t)n * k, err)) != FL_OK) goto done;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        R.rowptr[i] = at;
        for (int j = 0; j < k; j++) {
            int32_t c = idx[(size_t)i * k + j];
            double t = dist[(size_t)i * k + j] - rh[i];
            float v = c == i ? 0.0f : t <= 0 || sg[i] == 0 ? 1.0f : (float)exp(-(t / sg[i]));
            if (v == 0) continue;
            int64_t p = at++;
            for (; p > R.rowptr[i] && R.col[p - 1] > c; p--) {
                R.col[p] = R.col[p - 1];
                R.val[p] = R.val[p - 1];
            }
            R.col[p] = c;
            R.val[p] = v;
        }
    }
    R.rowptr[n] = at;
    /* T = R^T by counting; filling row by row keeps T's rows sorted */
    if ((s = graph_alloc(&T, n, at, err)) != FL_OK) goto done;
    for (int64_t e = 0; e < at; e++) T.rowptr[R.col[e] + 1]++;
    for (int i = 0; i < n; i++) T.rowptr[i + 1] += T.rowptr[i];
    int64_t *fill = malloc((size_t)n * sizeof(int64_t));
    if (!fill) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the fuzzy graph of %d points", n);
        goto done;
    }
    memcpy(fill, T.rowptr, (size_t)n * sizeof(int64_t));
    for (int i = 0; i < n; i++)
        for (int64_t e = R.rowptr[i]; e < R.rowptr[i + 1]; e++) {
            int64_t p = fill[R.col[e]]++;
            T.col[p] = i;
            T.val[p] = R.val[e];
        }
    free(fill);
    /* the fuzzy union R + R^T - R o R^T, row by row as a merge of R's and T's rows */
    if ((s = graph_alloc(g, n, 2 * at, err)) != FL_OK) goto done;
    int64_t out = 0;
    for (int i = 0; i < n; i++) {
        g->rowptr[i] = out;
        int64_t p = R.rowptr[i], pe = R.rowptr[i + 1], q = T.rowptr[i], qe = T.rowptr[i + 1];
        while (p < pe || q < qe) {
            int32_t cp = p < pe ? R.col[p] : INT32_MAX, cq = q < qe ? T.col[q] : INT32_MAX;
            float a = cp <= cq ? R.val[p] : 0.0f, b = cq <= cp ? T.val[q] : 0.0f;
            float v = a + b - a * b;
            if (v > 0) {
                g->col[out] = cp < cq ? cp : cq;
                g->val[out++] = v;
            }
            p += cp <= cq;
            q += cq <= cp;
        }
    }
    g->rowptr[n] = out;
done:
    fl_umap_graph_destroy(&R);
    fl_umap_graph_destroy(&T);
    if (!sigma) free(sg);
    if (!rho) free(rh);
    return s;
}

/* Drops the edges below max / n_epochs, which would be sampled less than once (in place). */
static void prune(fl_umap_graph *g, int n_epochs) {
    float top = 0;
    for (int64_t e = 0; e < g->rowptr[g->n]; e++) top = g->val[e] > top ? g->val[e] : top;
    float cut = top / (float)n_epochs;
    int64_t out = 0, start = 0;
    for (int i = 0; i < g->n; i++) {
        for (int64_t e = start; e < g->rowptr[i + 1]; e++)
            if (!(g->val[e] < cut)) {
                g->col[out] = g->col[e];
                g->val[out++] = g->val[e];
            }
        start = g->rowptr[i + 1];
        g->rowptr[i + 1] = out;
    }
}

/* ---- the layout ---- */

static float clip4(float v) {
    return v > 4.0f ? 4.0f : v < -4.0f ? -4.0f : v;
}

/* umap-learn's optimize_layout_euclidean (move_other, gamma 1) on E (n x dim), one thread. */
static fl_status layout_sgd(const fl_umap_graph *g, int dim, int n_epochs, double a, double b,
                            const fl_umap_config *c, fl_rng *rng, float *E, fl_err *err) {
    int64_t m = g->rowptr[g->n];
    double *eps = malloc((size_t)(m + 1) * sizeof(double)); /* epochs per sample */
    double *next = malloc((size_t)(m + 1) * sizeof(double));
    double *eps_neg = malloc((size_t)(m + 1) * sizeof(double));
    double *next_neg = malloc((size_t)(m + 1) * sizeof(double));
    int32_t *head = malloc((size_t)(m + 1) * sizeof(int32_t));
    fl_status s = FL_OK;
    if (!eps || !next || !eps_neg || !next_neg || !head) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the layout of %lld edges", (long long)m);
        goto done;
    }
    float top = 0;
    for (int64_t e = 0; e < m; e++) top = g->val[e] > top ? g->val[e] : top;
    for (int i = 0; i < g->n; i++)
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            double samples = n_epochs * ((double)g->val[e] / top);
            eps[e] = next[e] = (double)n_epochs / samples;
            eps_neg[e] = next_neg[e] =
                eps[e] / (c->negative_sample_rate ? c->negative_sample_rate : 1);
            head[e] = i;
        }
    fl_progress prog;
    fl_progress_begin(&prog, "umap layout", n_epochs, c->quiet);
    /* single precision, like umap-learn's float32 layout (powf is twice as fast as pow) */
    const float fa = (float)a, fb = (float)b, attract = (float)(-2.0 * a * b),
                repel = (float)(2.0 * b);
    double alpha = c->learning_rate;
    uint64_t n = (uint64_t)g->n;
    for (int ep = 0; ep < n_epochs; ep++) {
        float step = (float)alpha;
        for (int64_t e = 0; e < m; e++) {
            if (next[e] > ep) continue;
            int j = head[e];
            float *cur = E + (size_t)j * dim, *oth = E + (size_t)g->col[e] * dim;
            float d2 = 0;
            for (int d = 0; d < dim; d++) d2 += (cur[d] - oth[d]) * (cur[d] - oth[d]);
            float coeff = 0;
            if (d2 > 0) {
                float pb = powf(d2, fb);
                coeff = attract * (pb / d2) / (fa * pb + 1.0f);
            }
            for (int d = 0; d < dim; d++) {
                float gd = clip4(coeff * (cur[d] - oth[d])) * step;
                cur[d] += gd;
                oth[d] -= gd;
            }
            next[e] += eps[e];
            int n_neg = c->negative_sample_rate ? (int)((ep - next_neg[e]) / eps_neg[e]) : 0;
            for (int p = 0; p < n_neg; p++) {
                uint64_t k = fl_rng_u64(rng) % n;
                oth = E + k * dim;
                d2 = 0;
                for (int d = 0; d < dim; d++) d2 += (cur[d] - oth[d]) * (cur[d] - oth[d]);
                if (d2 > 0)
                    coeff = repel / ((0.001f + d2) * (fa * powf(d2, fb) + 1.0f));
                else if ((uint64_t)j == k)
                    continue;
                else
                    coeff = 0;
                for (int d = 0; d < dim && coeff > 0; d++)
                    cur[d] += clip4(coeff * (cur[d] - oth[d])) * step;
            }
            next_neg[e] += n_neg * eps_neg[e];
        }
        alpha = c->learning_rate * (1.0 - (double)ep / n_epochs);
        fl_progress_update(&prog, ep + 1);
    }
    fl_progress_end(&prog, "%d epochs over %lld edges", n_epochs, (long long)m);
done:
    free(eps);
    free(next);
    free(eps_neg);
    free(next_neg);
    free(head);
    return s;
}

static fl_status check_config(const fl_umap_config *c, int n, int D, fl_err *err) {
    if (n < 1 || D < 1) return fl_fail(err, FL_EINVAL, "UMAP of %d points in %d dimensions", n, D);
    if (c->n_neighbors < 2) return fl_fail(err, FL_EINVAL, "UMAP needs n_neighbors >= 2");
    if (c->n_components < 1 || c->n_components > 100)
        return fl_fail(err, FL_EINVAL, "UMAP into %d dimensions (1 to 100)", c->n_components);
    if (c->n_epochs < 0 || !(c->learning_rate > 0) || c->negative_sample_rate < 0)
        return fl_fail(err, FL_EINVAL,
                       "UMAP needs n_epochs >= 0, a positive learning rate and "
                       "a non-negative negative sample rate");
    return FL_OK;
}

fl_status fl_umap(const fl_umap_config *c, const float *X, int n, int D, float *Y, fl_err *err) {
    fl_status s = check_config(c, n, D, err);
    if (s != FL_OK) return s;
    for (size_t i = 0; i < (size_t)n * D; i++)
        if (!isfinite(X[i]))
            return fl_fail(err, FL_EINVAL, "UMAP input: point %zu has a non-finite value",
                           i / (size_t)D);
    double a, b;
    if ((s = fl_umap_find_ab(c->spread, c->min_dist, &a, &b, err)) != FL_OK) return s;
    int dim = c->n_components;
    if (n == 1) {
        memset(Y, 0, (size_t)dim * sizeof(float));
        return FL_OK;
    }
    /* as umap-learn: no more neighbours than n - 1 (but at least one besides the point) */
    int k = c->n_neighbors < n ? c->n_neighbors : n - 1 < 2 ? n : n - 1;
    if (k != c->n_neighbors && !c->quiet)
        fprintf(stderr, "umap: %d points; using %d neighbours instead of %d\n", n, k,
                c->n_neighbors);
    int n_epochs = c->n_epochs ? c->n_epochs : n <= 10000 ? 500 : 200;
    int32_t *idx = malloc((size_t)n * k * sizeof(int32_t));
    float *dist = malloc((size_t)n * k * sizeof(float)), *E = NULL;
    double *init = malloc((size_t)n * dim * sizeof(double));
    fl_umap_graph g = {0};
    if (!idx || !dist || !init) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the UMAP of %d points", n);
        goto done;
    }
    if ((s = fl_knn_exact(X, n, D, k, c->threads, idx, dist, err)) != FL_OK) goto done;
    if ((s = fl_umap_fuzzy_graph(idx, dist, n, k, &g, NULL, NULL, err)) != FL_OK) goto done;
    if (n_epochs > 10) prune(&g, n_epochs);
    if (!c->quiet)
        fprintf(stderr, "umap: %d points in %d dimensions, %d neighbours, %lld edges\n", n, D, k,
                (long long)g.rowptr[n]);
    fl_rng rng;
    fl_rng_seed(&rng, c->seed);
    if (!(E = malloc((size_t)n * dim * sizeof(float)))) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the UMAP of %d points", n);
        goto done;
    }
    if (c->random_init) {
        for (size_t i = 0; i < (size_t)n * dim; i++) E[i] = (float)(20 * fl_rng_uniform(&rng) - 10);
    } else {
        if ((s = fl_umap_spectral_init(&g, X, D, dim, &rng, c->quiet, init, err)) != FL_OK)
            goto done;
        double big = 0; /* noisy_scale_coords: largest |coordinate| 10, plus N(0, 1e-4) noise */
        for (size_t i = 0; i < (size_t)n * dim; i++) big = fmax(big, fabs(init[i]));
        double expand = big > 0 ? 10 / big : 1;
        for (size_t i = 0; i < (size_t)n * dim; i++)
            E[i] = (float)(init[i] * expand) + (float)(1e-4 * fl_rng_normal(&rng));
    }
    for (int d = 0; d < dim; d++) { /* each axis to [0, 10] */
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            lo = fminf(lo, E[(size_t)i * dim + d]);
            hi = fmaxf(hi, E[(size_t)i * dim + d]);
        }
        for (int i = 0; i < n; i++) {
            float *v = &E[(size_t)i * dim + d];
            *v = hi > lo ? 10.0f * (*v - lo) / (hi - lo) : 0.0f;
        }
    }
    if ((s = layout_sgd(&g, dim, n_epochs, a, b, c, &rng, E, err)) != FL_OK) goto done;
    memcpy(Y, E, (size_t)n * dim * sizeof(float));
done:
    free(idx);
    free(dist);
    free(init);
    free(E);
    fl_umap_graph_destroy(&g);
    return s;
}
