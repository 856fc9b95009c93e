/* umap.h - UMAP (McInnes, Healy & Melville 2018) for looking at patient embeddings: exact
 * Euclidean kNN, the fuzzy simplicial set, a spectral initialisation and umap-learn's
 * negative-sampling SGD layout; and trustworthiness, the score that says how well an embedding
 * keeps neighbourhoods. Not a manifold-learning library: Euclidean input only, no transform of
 * new points, no approximate neighbours (the kNN is quadratic, fine to some 20k points). */
#ifndef FL_UMAP_H
#define FL_UMAP_H

#include <stdint.h>

#include "../common/status.h"

typedef struct {
    int n_neighbors;          /* neighbourhood size, the point itself included (15) */
    int n_components;         /* output dimensions (2) */
    float min_dist;           /* how tightly points may pack in the layout (0.1) */
    float spread;             /* the scale of the layout's similarity curve (1.0) */
    int n_epochs;             /* 0: 500 up to 10000 points, 200 above (as umap-learn) */
    float learning_rate;      /* initial SGD step, decaying linearly towards 0 (1.0) */
    int negative_sample_rate; /* negative samples per positive sample (5) */
    int random_init;          /* 1: uniform in [-10, 10] instead of the spectral layout */
    uint64_t seed;            /* the same seed and input give the same layout (1) */
    int threads;              /* for the kNN; 0: the OpenMP/OpenBLAS default */
    int quiet;                /* 0: progress and notes on stderr */
} fl_umap_config;

void fl_umap_config_default(fl_umap_config *c);

/* Embeds the n points X (n x D, row-major) into Y (n x c->n_components, allocated by the
 * caller), umap-learn's algorithm step by step (see docs/explain.md for where it differs).
 * n_neighbors above n is lowered to n (so every point is a neighbour), like umap-learn; a
 * single point is placed at the origin. The SGD runs on one thread, so the layout depends on
 * the seed and the input only. Returns FL_OK, FL_EINVAL (n < 1, D < 1, a non-finite value,
 * an option out of range; the sentence says which) or FL_ENOMEM. */
fl_status fl_umap(const fl_umap_config *c, const float *X, int n, int D, float *Y, fl_err *err);

/* The a, b of the layout's similarity 1 / (1 + a d^(2b)) fitted by least squares (300 points
 * on [0, 3 spread]) to 1 for d < min_dist and exp(-(d - min_dist) / spread) beyond, as
 * umap-learn's find_ab_params (min_dist 0.1, spread 1 give a = 1.577, b = 0.895). Returns
 * FL_OK, or FL_EINVAL when spread <= 0, min_dist < 0 or the fit does not converge. */
fl_status fl_umap_find_ab(double spread, double min_dist, double *a, double *b, fl_err *err);

/* Exact k nearest neighbours (Euclidean) of each of the n points X (n x D) among them: idx
 * (n x k) and dist (n x k), ascending, each point itself first (distance 0, even when another
 * point coincides with it), ties by smaller index. k <= n. Blocked brute force with OpenBLAS
 * and OpenMP on `threads` threads (0: default). Returns FL_OK, FL_EINVAL or FL_ENOMEM. */
fl_status fl_knn_exact(const float *X, int n, int D, int k, int threads, int32_t *idx, float *dist,
                       fl_err *err);

/* Trustworthiness of the embedding Y (n x d) of X (n x D) for k neighbours, as
 * sklearn.manifold.trustworthiness(X, Y, n_neighbors=k) (Venna & Kaski 2001):
 *   T = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in N_k^Y(i)} max(0, r(i, j) - k)
 * where r(i, j) is j's rank among i's neighbours in X (1 = nearest). 1 means every embedded
 * neighbourhood holds only true neighbours. Distances in double; ties in X rank by index.
 * O(n^2 (D + k)) time, O(n k) memory. Returns FL_OK, or FL_EINVAL unless 1 <= k < n / 2
 * (sklearn's limit), FL_ENOMEM. */
fl_status fl_trustworthiness(const float *X, int D, const float *Y, int d, int n, int k,
                             int threads, double *t, fl_err *err);

#endif
