/* umap_impl.h - what eval/umap.c and eval/umap_spectral.c share (the fuzzy graph and the
 * spectral initialisation), visible to tests/test_umap.c. Internal to eval/. */
#ifndef FL_UMAP_IMPL_H
#define FL_UMAP_IMPL_H

#include <stdint.h>

#include "../common/rng.h"
#include "../common/status.h"

/* A symmetric sparse graph in CSR form, weights in (0, 1]. */
typedef struct {
    int n;
    int64_t *rowptr; /* n + 1 */
    int32_t *col;    /* rowptr[n], ascending within a row, no diagonal */
    float *val;      /* rowptr[n] */
} fl_umap_graph;

void fl_umap_graph_destroy(fl_umap_graph *g); /* frees the arrays; a zeroed graph is fine */

/* umap-learn's fuzzy_simplicial_set from a kNN (idx, dist: n x k, each point first in its own
 * row): per point rho = the nearest non-zero distance and sigma from a binary search for
 * sum_j exp(-(d_j - rho) / sigma) = log2(k) (smooth_knn_dist), memberships
 * exp(-(d - rho) / sigma), and the fuzzy union w + w' - w w' of both directions. sigma and rho
 * (n each) may be NULL. Returns FL_OK or FL_ENOMEM. */
fl_status fl_umap_fuzzy_graph(const int32_t *idx, const float *dist, int n, int k, fl_umap_graph *g,
                              double *sigma, double *rho, fl_err *err);

typedef enum { FL_UMAP_EIG_AUTO = 0, FL_UMAP_EIG_DENSE, FL_UMAP_EIG_LANCZOS } fl_umap_eig_method;

/* The k smallest eigenpairs of the normalised Laplacian I - D^-1/2 W D^-1/2 of the connected
 * graph g (k < n): values ascending (k), vectors (n x k, row-major, unit columns, each column's
 * largest entry made positive). DENSE: LAPACK dsyevr on the n x n matrix; LANCZOS: thick-
 * restarted Lanczos with full reorthogonalisation on D^-1/2 W D^-1/2, the trivial vector
 * D^1/2 1 deflated, to a residual of 1e-6; AUTO: dense up to 256 vertices. Returns FL_OK,
 * FL_EBACKEND (no convergence within 5n products, or LAPACK failed) or FL_ENOMEM. */
fl_status fl_umap_laplacian_eigs(const fl_umap_graph *g, int k, fl_umap_eig_method method,
                                 double *values, double *vectors, fl_err *err);

/* umap-learn's spectral_layout: Y (n x dim) = the Laplacian eigenvectors 2..dim+1 of g; a graph
 * in several pieces gets multi_component_layout (each piece's own spectral layout, scaled and
 * placed around a meta-layout of the pieces' centroids in X, n x D: their principal components
 * where umap-learn embeds them spectrally). Pieces too small for eigenvectors, and pieces whose
 * eigensolver fails (with a warning unless quiet), get uniform random positions from rng.
 * Returns FL_OK or FL_ENOMEM. */
fl_status fl_umap_spectral_init(const fl_umap_graph *g, const float *X, int D, int dim, fl_rng *rng,
                                int quiet, double *Y, fl_err *err);

#endif
