/* umap_spectral.c - UMAP's spectral initialisation: the connected pieces of the fuzzy graph,
 * the smallest eigenvectors of each piece's normalised Laplacian (LAPACK on the dense matrix
 * for small pieces, thick-restarted Lanczos for large ones), and the placement of the pieces
 * around a layout of their centroids. Not a general eigensolver. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umap_impl.h"

#define DENSE_MAX 256       /* AUTO: LAPACK up to this many vertices, Lanczos (much faster) above */
#define LANCZOS_TOL 1e-6    /* residual |N y - theta y| of a converged Ritz pair */
#define LANCZOS_ACCEPT 1e-4 /* ... and the most a pair may keep when the budget runs out */

/* LAPACK (OpenBLAS ships it without a header), with gfortran's hidden lengths of the three
 * character arguments. */
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il,
                    const int *iu, const double *abstol, int *m, double *w, double *z,
                    const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t, size_t, size_t);

void fl_umap_graph_destroy(fl_umap_graph *g) {
    free(g->rowptr);
    free(g->col);
    free(g->val);
    memset(g, 0, sizeof *g);
}

/* Eigenpairs il..iu (1-based, ascending) of the symmetric n x n matrix A (column-major,
 * destroyed): w (iu - il + 1 values), z (n x that many, column-major). */
static fl_status sym_eig(double *A, int n, int il, int iu, double *w, double *z, fl_err *err) {
    int m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0, vl = 0, vu = 0, abstol = 0;
    int *isuppz = malloc(2 * (size_t)n * sizeof(int));
    if (!isuppz) return fl_fail(err, FL_ENOMEM, "out of memory for an eigensolver");
    dsyevr_("V", "I", "L", &n, A, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, &wq,
            &lwork, &iwq, &liwork, &info, 1, 1, 1);
    lwork = (int)wq;
    liwork = iwq;
    double *work = malloc((size_t)lwork * sizeof(double));
    int *iwork = malloc((size_t)liwork * sizeof(int));
    fl_status s = FL_OK;
    if (!work || !iwork) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for an eigensolver");
    } else {
        dsyevr_("V", "I", "L", &n, A, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, work,
                &lwork, iwork, &liwork, &info, 1, 1, 1);
        if (info != 0 || m != iu - il + 1)
            s = fl_fail(err, FL_EBACKEND, "LAPACK dsyevr failed on a %d x %d matrix (info %d)", n,
                        n, info);
    }
    free(isuppz);
    free(work);
    free(iwork);
    return s;
}

/* Makes each of the k columns of V (n x k, row-major) have its largest-magnitude entry
 * positive, as sklearn's _deterministic_vector_sign_flip. */
static void fix_signs(double *V, int n, int k) {
    for (int c = 0; c < k; c++) {
        int at = 0;
        for (int i = 1; i < n; i++)
            if (fabs(V[(size_t)i * k + c]) > fabs(V[(size_t)at * k + c])) at = i;
        if (V[(size_t)at * k + c] < 0)
            for (int i = 0; i < n; i++) V[(size_t)i * k + c] = -V[(size_t)i * k + c];
    }
}

/* dinv[i] = 1 / sqrt(degree i); v0 (may be NULL) = the unit trivial eigenvector D^1/2 1. */
static void degrees(const fl_umap_graph *g, double *dinv, double *v0) {
    double norm = 0;
    for (int i = 0; i < g->n; i++) {
        double d = 0;
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) d += g->val[e];
        dinv[i] = d > 0 ? 1.0 / sqrt(d) : 0;
        if (v0) v0[i] = sqrt(d);
        norm += d;
    }
    if (v0)
        for (int i = 0; i < g->n; i++) v0[i] /= sqrt(norm);
}

static fl_status dense_eigs(const fl_umap_graph *g, int k, const double *dinv, double *values,
                            double *vectors, fl_err *err) {
    int n = g->n;
    double *A = calloc((size_t)n * n, sizeof(double));
    double *z = malloc((size_t)n * k * sizeof(double));
    if (!A || !z) {
        free(A);
        free(z);
        return fl_fail(err, FL_ENOMEM, "out of memory for a %d x %d Laplacian", n, n);
    }
    for (int i = 0; i < n; i++) {
        A[(size_t)i * n + i] = 1;
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            A[(size_t)i * n + g->col[e]] -= g->val[e] * dinv[i] * dinv[g->col[e]];
    }
    fl_status s = sym_eig(A, n, 1, k, values, z, err);
    for (int i = 0; s == FL_OK && i < n; i++)
        for (int c = 0; c < k; c++) vectors[(size_t)i * k + c] = z[(size_t)c * n + i];
    free(A);
    free(z);
    return s;
}

/* y = D^-1/2 W D^-1/2 x */
static void norm_matvec(const fl_umap_graph *g, const double *dinv, const double *x, double *y) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < g->n; i++) {
        double s = 0;
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            s += g->val[e] * dinv[g->col[e]] * x[g->col[e]];
        y[i] = dinv[i] * s;
    }
}

/* Makes w orthogonal to v0 and the m columns of Q (n x m, column-major), twice (classical
 * Gram-Schmidt needs the second pass); h (m) receives the coefficients; returns |w|. */
static double orthogonalize(const double *Q, int n, int m, const double *v0, double *w, double *h,
                            double *c) {
    memset(h, 0, (size_t)m * sizeof(double));
    for (int pass = 0; pass < 2; pass++) {
        double a = cblas_ddot(n, v0, 1, w, 1);
        cblas_daxpy(n, -a, v0, 1, w, 1);
        if (m == 0) continue;
        cblas_dgemv(CblasColMajor, CblasTrans, n, m, 1.0, Q, n, w, 1, 0.0, c, 1);
        cblas_dgemv(CblasColMajor, CblasNoTrans, n, m, -1.0, Q, n, c, 1, 1.0, w, 1);
        cblas_daxpy(m, 1.0, c, 1, h, 1);
    }
    return cblas_dnrm2(n, w, 1);
}

/* The nev largest eigenpairs of N = D^-1/2 W D^-1/2 on the complement of v0, by Lanczos with
 * full reorthogonalisation, restarted keeping half the Ritz vectors (thick restart). theta
 * (nev, descending) and Y (n x nev, column-major). */
static fl_status lanczos(const fl_umap_graph *g, const double *dinv, const double *v0, int nev,
                         double *theta, double *Y, fl_err *err) {
    int n = g->n, ncv = (int)sqrt((double)n);
    ncv = ncv < 32 ? 32 : ncv;
    ncv = ncv < 2 * nev + 1 ? 2 * nev + 1 : ncv;
    ncv = ncv > n - 1 ? n - 1 : ncv; /* the complement of v0 has n - 1 dimensions */
    int keep = ncv / 2 > nev ? ncv / 2 : nev;
    double *Q = malloc((size_t)n * (ncv + 1) * sizeof(double));
    double *H = calloc((size_t)ncv * ncv, sizeof(double));
    double *S = malloc((size_t)ncv * ncv * sizeof(double));
    double *th = malloc((size_t)ncv * sizeof(double));
    double *h = malloc((size_t)(ncv + 1) * sizeof(double));
    double *c = malloc((size_t)(ncv + 1) * sizeof(double));
    double *tmp = malloc((size_t)n * keep * sizeof(double));
    fl_status s = FL_OK;
    if (!Q || !H || !S || !th || !h || !c || !tmp) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for Lanczos on %d vertices", n);
        goto done;
    }
    fl_rng rng;
    fl_rng_seed(&rng, 0x5eed1a9c05ULL);
    for (int i = 0; i < n; i++) Q[i] = fl_rng_normal(&rng);
    double nq = orthogonalize(Q, n, 0, v0, Q, h, c);
    cblas_dscal(n, 1.0 / nq, Q, 1);
    long products = 0, budget = 5L * n > 2000 ? 5L * n : 2000;
    int l = 0;
    for (;;) {
        double beta = 0;
        for (int j = l; j < ncv; j++) {
            double *w = Q + (size_t)(j + 1) * n;
            norm_matvec(g, dinv, Q + (size_t)j * n, w);
            products++;
            beta = orthogonalize(Q, n, j + 1, v0, w, h, c);
            for (int i = 0; i <= j; i++) H[(size_t)j * ncv + i] = H[(size_t)i * ncv + j] = h[i];
            if (beta < 1e-10) { /* an invariant subspace: go on from a fresh direction */
                for (int i = 0; i < n; i++) w[i] = fl_rng_normal(&rng);
                double nw = orthogonalize(Q, n, j + 1, v0, w, h, c);
                if (nw > 0) cblas_dscal(n, 1.0 / nw, w, 1); /* 0: the space is exhausted */
                beta = 0;
            } else {
                cblas_dscal(n, 1.0 / beta, w, 1);
            }
        }
        double *Hc = malloc((size_t)ncv * ncv * sizeof(double));
        if (!Hc) {
            s = fl_fail(err, FL_ENOMEM, "out of memory for Lanczos on %d vertices", n);
            goto done;
        }
        memcpy(Hc, H, (size_t)ncv * ncv * sizeof(double));
        s = sym_eig(Hc, ncv, 1, ncv, th, S, err);
        free(Hc);
        if (s != FL_OK) goto done;
        double worst = 0; /* largest residual beta |s_last| of the nev wanted (largest) pairs */
        for (int i = ncv - nev; i < ncv; i++) {
            double r = fabs(beta * S[(size_t)i * ncv + ncv - 1]);
            worst = r > worst ? r : worst;
        }
        int full = ncv == n - 1, last = products >= budget;
        if (worst <= LANCZOS_TOL || full || last) {
            if (worst > LANCZOS_ACCEPT && !full) {
                s = fl_fail(err, FL_EBACKEND,
                            "Lanczos did not converge on %d vertices (residual %.2g after %ld "
                            "products)",
                            n, worst, products);
                goto done;
            }
            for (int q = 0; q < nev; q++) theta[q] = th[ncv - 1 - q];
            for (int q = 0; q < nev; q++)
                cblas_dgemv(CblasColMajor, CblasNoTrans, n, ncv, 1.0, Q, n,
                            S + (size_t)(ncv - 1 - q) * ncv, 1, 0.0, Y + (size_t)q * n, 1);
            break;
        }
        /* thick restart: the keep largest Ritz vectors, then the residual direction */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, keep, ncv, 1.0, Q, n,
                    S + (size_t)(ncv - keep) * ncv, ncv, 0.0, tmp, n);
        memcpy(Q, tmp, (size_t)n * keep * sizeof(double));
        memmove(Q + (size_t)keep * n, Q + (size_t)ncv * n, (size_t)n * sizeof(double));
        memset(H, 0, (size_t)ncv * ncv * sizeof(double));
        for (int i = 0; i < keep; i++) H[(size_t)i * ncv + i] = th[ncv - keep + i];
        l = keep;
    }
done:
    free(Q);
    free(H);
    free(S);
    free(th);
    free(h);
    free(c);
    free(tmp);
    return s;
}

fl_status fl_umap_laplacian_eigs(const fl_umap_graph *g, int k, fl_umap_eig_method method,
                                 double *values, double *vectors, fl_err *err) {
    int n = g->n;
    if (k < 1 || k >= n)
        return fl_fail(err, FL_EINVAL, "%d eigenvectors of a %d-vertex graph", k, n);
    double *dinv = malloc((size_t)n * sizeof(double));
    double *v0 = malloc((size_t)n * sizeof(double));
    double *theta = malloc((size_t)k * sizeof(double));
    double *Yc = malloc((size_t)n * k * sizeof(double));
    fl_status s = FL_OK;
    if (!dinv || !v0 || !theta || !Yc) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the Laplacian of %d vertices", n);
        goto done;
    }
    degrees(g, dinv, v0);
    if (method == FL_UMAP_EIG_DENSE || (method == FL_UMAP_EIG_AUTO && n <= DENSE_MAX)) {
        s = dense_eigs(g, k, dinv, values, vectors, err);
    } else if (k == 1 || (s = lanczos(g, dinv, v0, k - 1, theta, Yc, err)) == FL_OK) {
        values[0] = 0;
        for (int i = 0; i < n; i++) vectors[(size_t)i * k] = v0[i];
        for (int q = 1; q < k; q++) {
            values[q] = 1.0 - theta[q - 1];
            for (int i = 0; i < n; i++) vectors[(size_t)i * k + q] = Yc[(size_t)(q - 1) * n + i];
        }
    }
    if (s == FL_OK) fix_signs(vectors, n, k);
done:
    free(dinv);
    free(v0);
    free(theta);
    free(Yc);
    return s;
}

/* label[i] = the connected piece of vertex i (0, 1, ... in order of first vertex). Returns
 * the number of pieces, or -1 when out of memory. */
static int components(const fl_umap_graph *g, int *label) {
    int *queue = malloc((size_t)g->n * sizeof(int)), count = 0;
    if (!queue) return -1;
    for (int i = 0; i < g->n; i++) label[i] = -1;
    for (int i = 0; i < g->n; i++) {
        if (label[i] >= 0) continue;
        int head = 0, tail = 0;
        queue[tail++] = i;
        label[i] = count;
        while (head < tail) {
            int v = queue[head++];
            for (int64_t e = g->rowptr[v]; e < g->rowptr[v + 1]; e++)
                if (label[g->col[e]] < 0) {
                    label[g->col[e]] = count;
                    queue[tail++] = g->col[e];
                }
        }
        count++;
    }
    free(queue);
    return count;
}

/* The subgraph of the m vertices members[] (local[v] = v's position there). */
static fl_status subgraph(const fl_umap_graph *g, const int *members, int m, const int *local,
                          fl_umap_graph *out, fl_err *err) {
    int64_t nnz = 0;
    for (int i = 0; i < m; i++) nnz += g->rowptr[members[i] + 1] - g->rowptr[members[i]];
    out->n = m;
    out->rowptr = malloc((size_t)(m + 1) * sizeof(int64_t));
    out->col = malloc((size_t)(nnz + 1) * sizeof(int32_t));
    out->val = malloc((size_t)(nnz + 1) * sizeof(float));
    if (!out->rowptr || !out->col || !out->val) {
        fl_umap_graph_destroy(out);
        return fl_fail(err, FL_ENOMEM, "out of memory for a piece of %d vertices", m);
    }
    int64_t at = 0;
    for (int i = 0; i < m; i++) {
        out->rowptr[i] = at;
        for (int64_t e = g->rowptr[members[i]]; e < g->rowptr[members[i] + 1]; e++) {
            out->col[at] = local[g->col[e]]; /* a piece's edges stay inside it */
            out->val[at++] = g->val[e];
        }
    }
    out->rowptr[m] = at;
    return FL_OK;
}

/* Eigenvectors 2..dim+1 of g (connected) into Y (g->n x dim, row-major) scaled so the largest
 * |coordinate| is `range`, plus centre; FL_EBACKEND when the solver failed. */
static fl_status piece_layout(const fl_umap_graph *g, int dim, double range, const double *centre,
                              double *Y, fl_err *err) {
    int n = g->n, k = dim + 1;
    double *values = malloc((size_t)k * sizeof(double));
    double *V = malloc((size_t)n * k * sizeof(double));
    fl_status s = FL_OK;
    if (!values || !V)
        s = fl_fail(err, FL_ENOMEM, "out of memory for the layout of %d vertices", n);
    if (s == FL_OK) s = fl_umap_laplacian_eigs(g, k, FL_UMAP_EIG_AUTO, values, V, err);
    if (s == FL_OK) {
        double big = 0;
        for (int i = 0; i < n; i++)
            for (int d = 0; d < dim; d++) big = fmax(big, fabs(V[(size_t)i * k + 1 + d]));
        double scale = big > 0 ? range / big : 0;
        for (int i = 0; i < n; i++)
            for (int d = 0; d < dim; d++)
                Y[(size_t)i * dim + d] = V[(size_t)i * k + 1 + d] * scale + centre[d];
    }
    free(values);
    free(V);
    return s;
}

static void uniform_layout(fl_rng *rng, int n, int dim, double range, const double *centre,
                           double *Y) {
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            Y[(size_t)i * dim + d] = centre[d] + range * (2 * fl_rng_uniform(rng) - 1);
}

/* Positions of the nc pieces (nc x dim) with the largest |coordinate| 1: umap-learn's unit
 * vectors +-e_i for few pieces, else the principal components of the pieces' centroids. */
static fl_status meta_layout(const float *X, int n, int D, const int *label, int nc, int dim,
                             double *M, fl_err *err) {
    memset(M, 0, (size_t)nc * dim * sizeof(double));
    if (nc <= 2 * dim) {
        int half = (nc + 1) / 2;
        for (int c = 0; c < nc; c++) M[(size_t)c * dim + c % half] = c < half ? 1 : -1;
        return FL_OK;
    }
    double *C = calloc((size_t)nc * D, sizeof(double));
    double *K = malloc((size_t)nc * nc * sizeof(double));
    double *w = malloc((size_t)dim * sizeof(double));
    double *z = malloc((size_t)nc * dim * sizeof(double));
    int *size = calloc((size_t)nc, sizeof(int));
    fl_status s = FL_OK;
    if (!C || !K || !w || !z || !size) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the layout of %d pieces", nc);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        size[label[i]]++;
        for (int d = 0; d < D; d++) C[(size_t)label[i] * D + d] += X[(size_t)i * D + d];
    }
    for (int d = 0; d < D; d++) {
        double mean = 0;
        for (int c = 0; c < nc; c++) mean += (C[(size_t)c * D + d] /= size[c]) / nc;
        for (int c = 0; c < nc; c++) C[(size_t)c * D + d] -= mean;
    }
    /* the Gram matrix's top eigenvectors times sqrt(eigenvalue) are the centroids' PCs */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, nc, nc, D, 1.0, C, D, C, D, 0.0, K, nc);
    if ((s = sym_eig(K, nc, nc - dim + 1, nc, w, z, err)) != FL_OK) goto done;
    double big = 0;
    for (int q = 0; q < dim; q++) { /* descending */
        int col = dim - 1 - q;
        double sv = w[col] > 0 ? sqrt(w[col]) : 0;
        for (int c = 0; c < nc; c++) {
            M[(size_t)c * dim + q] = z[(size_t)col * nc + c] * sv;
            big = fmax(big, fabs(M[(size_t)c * dim + q]));
        }
    }
    fix_signs(M, nc, dim);
    for (size_t i = 0; big > 0 && i < (size_t)nc * dim; i++) M[i] /= big;
done:
    free(C);
    free(K);
    free(w);
    free(z);
    free(size);
    return s;
}

static void warn_random(int quiet, const fl_err *why) {
    if (!quiet)
        fprintf(stderr,
                "umap: warning: spectral initialisation failed (%s); falling back to random "
                "initialisation\n",
                why->msg);
}

fl_status fl_umap_spectral_init(const fl_umap_graph *g, const float *X, int D, int dim, fl_rng *rng,
                                int quiet, double *Y, fl_err *err) {
    int n = g->n;
    double zero[8] = {0}, *centre = dim <= 8 ? zero : calloc((size_t)dim, sizeof(double));
    int *label = malloc((size_t)n * sizeof(int)), *members = malloc((size_t)n * sizeof(int));
    int *local = malloc((size_t)n * sizeof(int));
    double *M = NULL, *piece = NULL;
    fl_umap_graph sub = {0};
    fl_err why;
    fl_status s = FL_OK;
    int nc = label ? components(g, label) : -1;
    if (!centre || !members || !local || nc < 0) {
        s = fl_fail(err, FL_ENOMEM, "out of memory for the spectral layout of %d points", n);
        goto done;
    }
    if (nc == 1) {
        if (n <= dim + 1) {
            uniform_layout(rng, n, dim, 10, centre, Y);
        } else if ((s = piece_layout(g, dim, 1, centre, Y, &why)) != FL_OK) {
            if (s == FL_ENOMEM) goto nomem;
            warn_random(quiet, &why);
            uniform_layout(rng, n, dim, 10, centre, Y);
        }
        s = FL_OK;
        goto done;
    }
    M = malloc((size_t)nc * dim * sizeof(double));
    piece = malloc((size_t)n * dim * sizeof(double));
    if (!M || !piece) goto nomem;
    if ((s = meta_layout(X, n, D, label, nc, dim, M, err)) != FL_OK) goto done;
    for (int c = 0; c < nc; c++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (label[i] == c) {
                local[i] = m;
                members[m++] = i;
            }
        double range = INFINITY; /* half the distance to the nearest other piece */
        for (int o = 0; o < nc; o++) {
            double d2 = 0;
            for (int d = 0; d < dim; d++) {
                double t = M[(size_t)c * dim + d] - M[(size_t)o * dim + d];
                d2 += t * t;
            }
            if (d2 > 0) range = fmin(range, sqrt(d2) / 2);
        }
        if (!isfinite(range)) range = 1;
        const double *at = M + (size_t)c * dim;
        if (m < 2 * dim || m <= dim + 1) {
            uniform_layout(rng, m, dim, range, at, piece);
        } else {
            if ((s = subgraph(g, members, m, local, &sub, err)) != FL_OK) goto done;
            s = piece_layout(&sub, dim, range, at, piece, &why);
            fl_umap_graph_destroy(&sub);
            if (s == FL_ENOMEM) goto nomem;
            if (s != FL_OK) {
                warn_random(quiet, &why);
                uniform_layout(rng, m, dim, range, at, piece);
            }
            s = FL_OK;
        }
        for (int i = 0; i < m; i++)
            memcpy(Y + (size_t)members[i] * dim, piece + (size_t)i * dim, dim * sizeof(double));
    }
    goto done;
nomem:
    s = fl_fail(err, FL_ENOMEM, "out of memory for the spectral layout of %d points", n);
done:
    if (centre != zero) free(centre);
    free(label);
    free(members);
    free(local);
    free(M);
    free(piece);
    return s;
}
