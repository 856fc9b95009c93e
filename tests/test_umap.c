/* test_umap.c - eval/umap: the exact kNN against a naive search, the curve fit against
 * umap-learn's numbers, the fuzzy graph's invariants, dense vs Lanczos eigenvectors, the
 * trustworthiness score on cases with known answers, UMAP's quality on clustered data (5
 * Gaussian blobs) and on a Swiss roll (against PCA), determinism for a seed, bad input, and
 * eval/plot.c's scatter charts (many groups, the legend outside in columns).
 * `test_umap --trust X.npy Y.npy K` is the helper of check_umap_trust.sh: it prints
 * fl_trustworthiness(X, Y, K) with 17 significant digits. */
#include <cairo.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "eval/plot.h"
#include "eval/umap.h"
#include "eval/umap_impl.h"
#include "harness.h"
#include "nn/npy.h"

/* n points in D dimensions: `blobs` Gaussian clusters (sd 1) around centres drawn with sd 10. */
static float *make_blobs(int n, int D, int blobs, uint64_t seed, int *label) {
    fl_rng r;
    fl_rng_seed(&r, seed);
    double *centre = malloc((size_t)blobs * D * sizeof(double));
    float *X = malloc((size_t)n * D * sizeof(float));
    for (int i = 0; i < blobs * D; i++) centre[i] = 10 * fl_rng_normal(&r);
    for (int i = 0; i < n; i++) {
        int c = i % blobs;
        if (label) label[i] = c;
        for (int d = 0; d < D; d++)
            X[(size_t)i * D + d] = (float)(centre[c * D + d] + fl_rng_normal(&r));
    }
    free(centre);
    return X;
}

/* A Swiss roll (t in [1.5 pi, 4.5 pi], height in [0, 40], tall enough that PCA folds it) rotated
 * into D dimensions by a random orthogonal matrix, with a little noise: a 2-d sheet rolled up,
 * which no projection unrolls. */
static float *make_swiss_roll(int n, int D, uint64_t seed) {
    fl_rng r;
    fl_rng_seed(&r, seed);
    double *B = malloc((size_t)D * D * sizeof(double)); /* rows: an orthonormal basis */
    for (int i = 0; i < D; i++) {
        double *v = B + (size_t)i * D;
        for (int d = 0; d < D; d++) v[d] = fl_rng_normal(&r);
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < i; j++) {
                double dot = 0;
                for (int d = 0; d < D; d++) dot += v[d] * B[(size_t)j * D + d];
                for (int d = 0; d < D; d++) v[d] -= dot * B[(size_t)j * D + d];
            }
        double norm = 0;
        for (int d = 0; d < D; d++) norm += v[d] * v[d];
        for (int d = 0; d < D; d++) v[d] /= sqrt(norm);
    }
    float *X = malloc((size_t)n * D * sizeof(float));
    for (int i = 0; i < n; i++) {
        double t = 1.5 * M_PI * (1 + 2 * fl_rng_uniform(&r)), h = 40 * fl_rng_uniform(&r);
        double p[3] = {t * cos(t), h, t * sin(t)};
        for (int d = 0; d < D; d++) {
            double v = 0.05 * fl_rng_normal(&r);
            for (int q = 0; q < 3; q++) v += p[q] * B[(size_t)q * D + d];
            X[(size_t)i * D + d] = (float)v;
        }
    }
    free(B);
    return X;
}

/* The projection of X (n x D, D <= 64) on its 2 leading principal axes (covariance
 * eigenvectors by power iteration with deflation) into Y (n x 2). */
static void pca2(const float *X, int n, int D, float *Y) {
    double mean[64] = {0}, C[64 * 64] = {0}, V[2][64];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) mean[d] += X[(size_t)i * D + d] / n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++)
                C[a * D + b] += (X[(size_t)i * D + a] - mean[a]) * (X[(size_t)i * D + b] - mean[b]);
    for (int q = 0; q < 2; q++) {
        double *v = V[q], w[64];
        for (int d = 0; d < D; d++) v[d] = 1.0 + d;
        for (int it = 0; it < 2000; it++) {
            double norm = 0;
            for (int a = 0; a < D; a++) {
                w[a] = 0;
                for (int b = 0; b < D; b++) w[a] += C[a * D + b] * v[b];
                norm += w[a] * w[a];
            }
            for (int d = 0; d < D; d++) v[d] = w[d] / sqrt(norm);
        }
        double lambda = 0; /* deflate: C -= lambda v v^T */
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++) lambda += v[a] * C[a * D + b] * v[b];
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++) C[a * D + b] -= lambda * v[a] * v[b];
    }
    for (int i = 0; i < n; i++)
        for (int q = 0; q < 2; q++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += (X[(size_t)i * D + d] - mean[d]) * V[q][d];
            Y[(size_t)i * 2 + q] = (float)s;
        }
}

static double trust(const float *X, int D, const float *Y, int n) {
    fl_err err = {{0}};
    double t = -1;
    CHECK_OK(fl_trustworthiness(X, D, Y, 2, n, 10, 0, &t, &err), &err);
    return t;
}

static float *run_umap(const float *X, int n, int D, uint64_t seed) {
    fl_umap_config c;
    fl_umap_config_default(&c);
    c.seed = seed;
    c.quiet = 1;
    float *Y = malloc((size_t)n * 2 * sizeof(float));
    fl_err err = {{0}};
    CHECK_OK(fl_umap(&c, X, n, D, Y, &err), &err);
    return Y;
}

static void test_knn(void) {
    enum { N = 300, D = 7, K = 9 };
    float *X = make_blobs(N, D, 3, 11, NULL);
    memcpy(X + 5 * D, X + 4 * D, D * sizeof(float)); /* a duplicate: each stays first in its row */
    int32_t idx[N * K];
    float dist[N * K];
    fl_err err = {{0}};
    CHECK_OK(fl_knn_exact(X, N, D, K, 2, idx, dist, &err), &err);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        bad += idx[i * K] != i || dist[i * K] != 0;
        double prev = -1;
        for (int j = 1; j < K; j++) { /* naive: distance ascending, ties by index */
            int best = -1;
            double bd = INFINITY;
            for (int l = 0; l < N; l++) {
                if (l == i) continue;
                double d2 = 0;
                for (int d = 0; d < D; d++) {
                    double t = (double)X[i * D + d] - X[l * D + d];
                    d2 += t * t;
                }
                int used = 0;
                for (int q = 1; q < j; q++) used |= idx[i * K + q] == l;
                if (!used && (d2 < bd) && d2 >= prev) bd = d2, best = l;
            }
            prev = bd;
            bad += idx[i * K + j] != best || fabs(dist[i * K + j] - sqrt(bd)) > 1e-4 * sqrt(bd);
        }
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(idx[5 * K + 1], 4);
    CHECK(dist[5 * K + 1] == 0);
    CHECK(fl_knn_exact(X, N, D, N + 1, 0, idx, dist, &err) == FL_EINVAL);
    free(X);
}

static void test_find_ab(void) {
    /* umap-learn 0.5.12 find_ab_params (scipy curve_fit) */
    static const double cases[3][4] = {
        {1.0, 0.1, 1.5769434602697652, 0.8950608778515733},
        {1.0, 0.5, 0.5830300203414425, 1.3341669924314914},
        {2.0, 0.0, 0.6460466719525826, 0.7904944906889044},
    };
    fl_err err = {{0}};
    for (int i = 0; i < 3; i++) {
        double a = 0, b = 0;
        CHECK_OK(fl_umap_find_ab(cases[i][0], cases[i][1], &a, &b, &err), &err);
        CHECK_CLOSE(a, cases[i][2], 1e-6, 0);
        CHECK_CLOSE(b, cases[i][3], 1e-6, 0);
    }
    double a, b;
    CHECK(fl_umap_find_ab(0, 0.1, &a, &b, &err) == FL_EINVAL);
    CHECK(fl_umap_find_ab(1, 2, &a, &b, &err) == FL_EINVAL);
}

static void test_fuzzy_graph(void) {
    enum { N = 400, D = 5, K = 15 };
    float *X = make_blobs(N, D, 2, 5, NULL);
    int32_t *idx = malloc(N * K * sizeof(int32_t));
    float *dist = malloc(N * K * sizeof(float));
    double sigma[N], rho[N];
    fl_err err = {{0}};
    fl_umap_graph g;
    CHECK_OK(fl_knn_exact(X, N, D, K, 0, idx, dist, &err), &err);
    CHECK_OK(fl_umap_fuzzy_graph(idx, dist, N, K, &g, sigma, rho, &err), &err);
    int bad_sum = 0, bad_entry = 0, asym = 0;
    for (int i = 0; i < N; i++) {
        double psum = 0; /* smooth_knn_dist's target: sum exp(-(d - rho) / sigma) = log2 k */
        for (int j = 1; j < K; j++) {
            double t = dist[i * K + j] - rho[i];
            psum += t > 0 ? exp(-t / sigma[i]) : 1;
        }
        bad_sum += fabs(psum - log2(K)) > 1e-4;
        CHECK(rho[i] == dist[i * K + 1]);
        for (int64_t e = g.rowptr[i]; e < g.rowptr[i + 1]; e++) {
            int j = g.col[e];
            bad_entry += j == i || !(g.val[e] > 0 && g.val[e] <= 1) ||
                         (e > g.rowptr[i] && g.col[e - 1] >= j);
            int found = 0; /* the union is symmetric */
            for (int64_t f = g.rowptr[j]; f < g.rowptr[j + 1]; f++)
                found |= g.col[f] == i && g.val[f] == g.val[e];
            asym += !found;
        }
    }
    CHECK_EQ_INT(bad_sum, 0);
    CHECK_EQ_INT(bad_entry, 0);
    CHECK_EQ_INT(asym, 0);
    CHECK(g.rowptr[N] >= (int64_t)N * (K - 1)); /* every directed kNN edge is in the union */
    fl_umap_graph_destroy(&g);
    free(idx);
    free(dist);
    free(X);
}

/* Dense LAPACK and Lanczos agree on the smallest eigenpairs of a 1200-vertex graph. */
static void test_eigs(void) {
    enum { N = 1200, D = 10, K = 15, E = 4 };
    float *X = make_swiss_roll(N, D, 3);
    int32_t *idx = malloc(N * K * sizeof(int32_t));
    float *dist = malloc(N * K * sizeof(float));
    double *v1 = malloc(N * E * sizeof(double)), *v2 = malloc(N * E * sizeof(double));
    double l1[E], l2[E];
    fl_err err = {{0}};
    fl_umap_graph g;
    CHECK_OK(fl_knn_exact(X, N, D, K, 0, idx, dist, &err), &err);
    CHECK_OK(fl_umap_fuzzy_graph(idx, dist, N, K, &g, NULL, NULL, &err), &err);
    CHECK_OK(fl_umap_laplacian_eigs(&g, E, FL_UMAP_EIG_DENSE, l1, v1, &err), &err);
    CHECK_OK(fl_umap_laplacian_eigs(&g, E, FL_UMAP_EIG_LANCZOS, l2, v2, &err), &err);
    CHECK_CLOSE(l1[0], 0, 0, 1e-10);
    for (int q = 0; q < E; q++) {
        CHECK_CLOSE(l1[q], l2[q], 0, 1e-8);
        double dot = 0;
        for (int i = 0; i < N; i++) dot += v1[i * E + q] * v2[i * E + q];
        CHECK_CLOSE(dot, 1, 0, 1e-6);
    }
    CHECK(l1[1] > 1e-6 && l1[1] < l1[2]); /* connected, distinct */
    fl_umap_graph_destroy(&g);
    free(idx);
    free(dist);
    free(v1);
    free(v2);
    free(X);
}

static void test_trust_known(void) {
    enum { N = 200, D = 6 };
    float *X = make_blobs(N, D, 1, 9, NULL);
    float *Y = malloc(N * 2 * sizeof(float));
    fl_err err = {{0}};
    double t;
    /* X itself: every embedded neighbour is a true one */
    CHECK_OK(fl_trustworthiness(X, D, X, D, N, 10, 0, &t, &err), &err);
    CHECK_CLOSE(t, 1.0, 0, 1e-15);
    /* a similarity transform keeps all ranks */
    float line[N], moved[N];
    for (int i = 0; i < N; i++) line[i] = (float)((i * 37) % N), moved[i] = 1 - 3 * line[i];
    CHECK_OK(fl_trustworthiness(line, 1, moved, 1, N, 10, 0, &t, &err), &err);
    CHECK_CLOSE(t, 1.0, 0, 1e-15);
    /* noise has no structure: trustworthiness near 0.5 */
    fl_rng r;
    fl_rng_seed(&r, 4);
    for (int i = 0; i < N * 2; i++) Y[i] = (float)fl_rng_normal(&r);
    CHECK_OK(fl_trustworthiness(X, D, Y, 2, N, 10, 0, &t, &err), &err);
    CHECK(t > 0.4 && t < 0.6);
    CHECK(fl_trustworthiness(X, D, Y, 2, N, 100, 0, &t, &err) == FL_EINVAL);
    CHECK(fl_trustworthiness(X, D, Y, 2, N, 0, 0, &t, &err) == FL_EINVAL);
    free(X);
    free(Y);
}

static void test_blobs(void) {
    enum { N = 500, D = 30 };
    int label[N];
    float *X = make_blobs(N, D, 5, 21, label);
    float *Y = run_umap(X, N, D, 1);
    double t = trust(X, D, Y, N);
    printf("test_umap: 5 blobs, 500 points in 30-d: trustworthiness(k=10) %.4f\n", t);
    CHECK(t >= 0.9);
    /* clusters stay apart: every point's nearest embedded neighbour shares its blob */
    int32_t idx[N * 2];
    float dist[N * 2];
    fl_err err = {{0}};
    CHECK_OK(fl_knn_exact(Y, N, 2, 2, 0, idx, dist, &err), &err);
    int mixed = 0;
    for (int i = 0; i < N; i++) mixed += label[idx[i * 2 + 1]] != label[i];
    CHECK_EQ_INT(mixed, 0);
    free(X);
    free(Y);
}

static void test_swiss_roll(void) {
    enum { N = 1500, D = 10 };
    float *X = make_swiss_roll(N, D, 7);
    float *Y = run_umap(X, N, D, 1), *P = malloc(N * 2 * sizeof(float));
    pca2(X, N, D, P);
    double tu = trust(X, D, Y, N), tp = trust(X, D, P, N);
    printf("test_umap: Swiss roll, 1500 points in 10-d: trustworthiness(k=10) UMAP %.4f, PCA "
           "%.4f\n",
           tu, tp);
    CHECK(tu >= tp + 0.05);
    CHECK(tu >= 0.95);
    free(X);
    free(Y);
    free(P);
}

static void test_determinism(void) {
    enum { N = 300, D = 8 };
    float *X = make_blobs(N, D, 3, 8, NULL);
    float *a = run_umap(X, N, D, 42), *b = run_umap(X, N, D, 42), *c = run_umap(X, N, D, 43);
    CHECK(memcmp(a, b, N * 2 * sizeof(float)) == 0);
    CHECK(memcmp(a, c, N * 2 * sizeof(float)) != 0);
    free(X);
    free(a);
    free(b);
    free(c);
}

static void test_edge_cases(void) {
    fl_umap_config c;
    fl_umap_config_default(&c);
    c.quiet = 1;
    fl_err err = {{0}};
    float X[12] = {0, 0, 1, 0, 0, 1, 5, 5, 6, 5, 5, 6}, Y[12];
    for (int n = 1; n <= 6; n++) { /* fewer points than neighbours, even one */
        for (int i = 0; i < 12; i++) Y[i] = NAN;
        CHECK_OK(fl_umap(&c, X, n, 2, Y, &err), &err);
        int finite = 1;
        for (int i = 0; i < 2 * n; i++) finite &= isfinite(Y[i]);
        CHECK(finite);
    }
    c.random_init = 1;
    c.negative_sample_rate = 0; /* attraction only */
    CHECK_OK(fl_umap(&c, X, 6, 2, Y, &err), &err);
    c.random_init = 0;
    c.negative_sample_rate = 5;
    X[3] = NAN;
    CHECK(fl_umap(&c, X, 6, 2, Y, &err) == FL_EINVAL);
    CHECK_MSG(err, "point 1");
    X[3] = 0;
    c.n_neighbors = 1;
    CHECK(fl_umap(&c, X, 6, 2, Y, &err) == FL_EINVAL);
    c.n_neighbors = 15;
    c.min_dist = 3;
    CHECK(fl_umap(&c, X, 6, 2, Y, &err) == FL_EINVAL);
}

/* A scatter of 36 groups (four marker shapes) with the legend outside in two columns; the PNG
 * reads back at its size. FL_KEEP_TEST_FILES=1 keeps it for a look. */
static void test_scatter(void) {
    enum { G = 36, PER = 20 };
    double x[G * PER], y[G * PER];
    fl_plot_series s[G];
    char names[G][24];
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < PER; i++) {
            double t = 2 * M_PI * (g + i / (double)PER) / G;
            x[g * PER + i] = (1 + 0.3 * (i % 3)) * cos(t);
            y[g * PER + i] = i == 5 ? NAN : (1 + 0.3 * (i % 3)) * sin(t);
        }
        snprintf(names[g], sizeof names[g], "site %02d", g);
        s[g] = (fl_plot_series){
            .name = names[g], .x = x + g * PER, .y = y + g * PER, .n = PER, .color = g};
    }
    fl_plot_spec spec = {.title = "scatter",
                         .xlabel = "UMAP 1",
                         .ylabel = "UMAP 2",
                         .width = 900,
                         .height = 600,
                         .legend = FL_LEGEND_OUTSIDE};
    fl_err err = {{0}};
    CHECK(fl_test_mkdtemp("fedlung-umap-") != NULL);
    const char *path = fl_test_path("scatter.png");
    CHECK_OK(fl_plot_scatter(path, &spec, s, G, &err), &err);
    cairo_surface_t *png = cairo_image_surface_create_from_png(path);
    CHECK(cairo_surface_status(png) == CAIRO_STATUS_SUCCESS);
    CHECK_EQ_INT(cairo_image_surface_get_width(png), 900);
    CHECK_EQ_INT(cairo_image_surface_get_height(png), 600);
    cairo_surface_destroy(png);
    spec.legend = FL_LEGEND_AUTO; /* inside, placed where the fewest points are */
    CHECK_OK(fl_plot_scatter(fl_test_path("scatter_auto.png"), &spec, s, 3, &err), &err);
    spec.width = 100;
    CHECK(fl_plot_scatter(fl_test_path("bad.png"), &spec, s, G, &err) == FL_EINVAL);
    CHECK(!fl_test_file_exists(fl_test_path("bad.png")));
    CHECK_EQ_INT(fl_test_count_tmp(), 0);
    if (!getenv("FL_KEEP_TEST_FILES"))
        fl_test_rmtree(fl_test_dir);
    else
        printf("test_umap: charts kept in %s\n", fl_test_dir);
}

/* --trust X.npy Y.npy K */
static int trust_tool(const char *xp, const char *yp, const char *ks) {
    float *X = NULL, *Y = NULL;
    int nx, ny;
    int64_t sx[4], sy[4];
    fl_err err = {{0}};
    double t = 0;
    fl_status s = fl_npy_read_f32(xp, &X, &nx, sx, &err);
    if (s == FL_OK) s = fl_npy_read_f32(yp, &Y, &ny, sy, &err);
    if (s == FL_OK && (nx != 2 || ny != 2 || sx[0] != sy[0]))
        s = fl_fail(&err, FL_ESHAPE, "X and Y must be 2-d with the same number of rows");
    if (s == FL_OK)
        s = fl_trustworthiness(X, (int)sx[1], Y, (int)sy[1], (int)sx[0], atoi(ks), 0, &t, &err);
    free(X);
    free(Y);
    if (s != FL_OK) {
        fprintf(stderr, "test_umap --trust: %s\n", err.msg);
        return 1;
    }
    printf("%.17g\n", t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--trust") == 0) return trust_tool(argv[2], argv[3], argv[4]);
    test_knn();
    test_find_ab();
    test_fuzzy_graph();
    test_eigs();
    test_trust_known();
    test_blobs();
    test_swiss_roll();
    test_determinism();
    test_edge_cases();
    test_scatter();
    /* cairo's and fontconfig's process-wide caches, so LeakSanitizer sees only ours. */
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini) fc_fini();
    return fl_test_summary("test_umap");
}
