/* knn.c - exact Euclidean k nearest neighbours by blocked brute force (one GEMM per block of
 * query rows, then a bounded insertion per row), and sklearn's trustworthiness over the same
 * distance blocks. Not an index: every query costs O(n D), which is fine to some 20k points. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "umap.h"

/* Squared distances from a block of rows to every point, computed as |x|^2 + |y|^2 - 2 x.y in
 * double on centred data (centring keeps the cancellation error far below the distances). */
typedef struct {
    int n, D, rows; /* rows: query rows per block */
    double *Xc;     /* n x D, centred */
    double *norm2;  /* n, |Xc_i|^2 */
    double *G;      /* rows x n, the current block */
} dist_blocks;

static void blocks_destroy(dist_blocks *b) {
    free(b->Xc);
    free(b->norm2);
    free(b->G);
    memset(b, 0, sizeof *b);
}

static fl_status blocks_init(dist_blocks *b, const float *X, int n, int D, fl_err *err) {
    memset(b, 0, sizeof *b);
    b->n = n;
    b->D = D;
    /* about 32 MB of distances per block, between 1 and 512 rows */
    long rows = (4L << 20) / n;
    b->rows = rows < 1 ? 1 : rows > 512 ? 512 : rows > n ? n : (int)rows;
    b->Xc = malloc((size_t)n * D * sizeof(double));
    b->norm2 = malloc((size_t)n * sizeof(double));
    b->G = malloc((size_t)b->rows * n * sizeof(double));
    double *mean = calloc((size_t)D, sizeof(double));
    if (!b->Xc || !b->norm2 || !b->G || !mean) {
        free(mean);
        blocks_destroy(b);
        return fl_fail(err, FL_ENOMEM, "out of memory for the distances of %d points", n);
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) mean[d] += X[(size_t)i * D + d];
    for (int d = 0; d < D; d++) mean[d] /= n;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            double v = X[(size_t)i * D + d] - mean[d];
            b->Xc[(size_t)i * D + d] = v;
            s += v * v;
        }
        b->norm2[i] = s;
    }
    free(mean);
    return FL_OK;
}

/* b->G (rows x n) = squared distances of points [i0, i0 + rows) to all; the diagonal is 0. */
static void blocks_fill(dist_blocks *b, int i0, int rows, int nt) {
    int n = b->n;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, b->D, -2.0,
                b->Xc + (size_t)i0 * b->D, b->D, b->Xc, b->D, 0.0, b->G, n);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) {
        double *g = b->G + (size_t)r * n, ni = b->norm2[i0 + r];
        for (int j = 0; j < n; j++) {
            double v = g[j] + ni + b->norm2[j];
            g[j] = v > 0 ? v : 0;
        }
        g[i0 + r] = 0;
    }
}

static int thread_count(int threads) {
    if (threads > 0) openblas_set_num_threads(threads);
    return threads > 0 ? threads : omp_get_max_threads();
}

/* The k smallest of g[0..n) (self at index i first), ascending, ties by index, into idx/d2. */
static void select_row(const double *g, int n, int i, int k, int32_t *idx, double *d2) {
    int m = 0;
    for (int j = 0; j < n; j++) {
        double v = j == i ? -1.0 : g[j]; /* self sorts first even among duplicates */
        if (m == k && v >= d2[k - 1]) continue;
        int at = m < k ? m++ : k - 1;
        while (at > 0 && d2[at - 1] > v) { /* scanning j upwards keeps ties in index order */
            d2[at] = d2[at - 1];
            idx[at] = idx[at - 1];
            at--;
        }
        d2[at] = v;
        idx[at] = j;
    }
    d2[0] = 0;
}

fl_status fl_knn_exact(const float *X, int n, int D, int k, int threads, int32_t *idx, float *dist,
                       fl_err *err) {
    if (n < 1 || D < 1 || k < 1 || k > n)
        return fl_fail(err, FL_EINVAL, "kNN of %d points in %d dimensions with k = %d", n, D, k);
    dist_blocks b;
    fl_status s = blocks_init(&b, X, n, D, err);
    if (s != FL_OK) return s;
    int nt = thread_count(threads);
    double *d2 = malloc((size_t)b.rows * k * sizeof(double));
    if (!d2) {
        blocks_destroy(&b);
        return fl_fail(err, FL_ENOMEM, "out of memory for the kNN of %d points", n);
    }
    for (int i0 = 0; i0 < n; i0 += b.rows) {
        int rows = n - i0 < b.rows ? n - i0 : b.rows;
        blocks_fill(&b, i0, rows, nt);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int r = 0; r < rows; r++) {
            int i = i0 + r;
            double *dr = d2 + (size_t)r * k;
            select_row(b.G + (size_t)r * n, n, i, k, idx + (size_t)i * k, dr);
            for (int j = 0; j < k; j++) dist[(size_t)i * k + j] = (float)sqrt(dr[j]);
        }
    }
    free(d2);
    blocks_destroy(&b);
    return FL_OK;
}

fl_status fl_trustworthiness(const float *X, int D, const float *Y, int d, int n, int k,
                             int threads, double *t, fl_err *err) {
    if (k < 1 || !(k < n / 2.0) || D < 1 || d < 1)
        return fl_fail(err, FL_EINVAL,
                       "trustworthiness with %d neighbours of %d points: needs 1 <= k < n / 2", k,
                       n);
    int32_t *nbr = malloc((size_t)n * (k + 1) * sizeof(int32_t));
    float *nd = malloc((size_t)n * (k + 1) * sizeof(float));
    dist_blocks b = {0};
    fl_status s = FL_OK;
    if (!nbr || !nd) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the neighbours of %d points", n);
        goto done;
    }
    /* N_k^Y(i): the k nearest in the embedding, the point itself (first) left out */
    if ((s = fl_knn_exact(Y, n, d, k + 1, threads, nbr, nd, err)) != FL_OK) goto done;
    if ((s = blocks_init(&b, X, n, D, err)) != FL_OK) goto done;
    int nt = thread_count(threads);
    long long penalty = 0;
    for (int i0 = 0; i0 < n; i0 += b.rows) {
        int rows = n - i0 < b.rows ? n - i0 : b.rows;
        blocks_fill(&b, i0, rows, nt);
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : penalty)
        for (int r = 0; r < rows; r++) {
            int i = i0 + r;
            const double *g = b.G + (size_t)r * n;
            for (int q = 1; q <= k; q++) {
                int j = nbr[(size_t)i * (k + 1) + q];
                double dij = g[j];
                long rank = 1; /* j's rank among i's neighbours in X; i itself is not one */
                for (int l = 0; l < n; l++)
                    rank += l != i && (g[l] < dij || (g[l] == dij && l < j));
                if (rank > k) penalty += rank - k;
            }
        }
    }
    *t = 1.0 - (double)penalty * (2.0 / ((double)n * k * (2.0 * n - 3.0 * k - 1.0)));
done:
    blocks_destroy(&b);
    free(nbr);
    free(nd);
    return s;
}
