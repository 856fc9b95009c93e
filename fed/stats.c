/* stats.c - federated feature statistics (fed/stats.h): a site's count / sum / sum-of-squares
 * block and the server's means, deviations and variance ranking from the summed blocks. The
 * arithmetic mirrors pipeline/standardize.c's fl_standardizer_fit; no M-value transform here
 * (a site adds rows already transformed). */
#include "stats.h"

#include "../common/rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A variance below this fraction of the mean square is the float sums' rounding (cancellation
 * in sumsq - sum^2/n), not a spread: it counts as 0, as a constant feature has in the pooled
 * fit (so its deviation becomes 1 and it ties with the other constants). */
#define VAR_RESOLUTION 1e-6

void fl_stats_add_row(double *acc, const float *x, int F) {
    double *count = acc, *sum = acc + F, *sumsq = acc + 2 * (size_t)F;
    for (int j = 0; j < F; j++) {
        if (isnan(x[j])) continue;
        double v = x[j];
        count[j] += 1;
        sum[j] += v;
        sumsq[j] += v * v;
    }
}

void fl_stats_to_float(const double *acc, int F, float *out) {
    for (size_t i = 0; i < FL_STATS_LEN(F); i++) out[i] = (float)acc[i];
}

/* Means, sample deviations and variances (the ranking score: -1 below 2 values) of the F
 * features of a summed block. Returns 1 when some feature has 2 values. */
static int moments(const float *sum, int F, double *mean, double *sd, double *score) {
    int any = 0;
    for (int j = 0; j < F; j++) {
        double n = sum[j], s = sum[F + j], q = sum[2 * (size_t)F + j];
        mean[j] = n > 0 ? s / n : 0;
        double var = n > 1 ? (q - s * mean[j]) / (n - 1) : 0;
        if (var < VAR_RESOLUTION * (n > 0 ? q / n : 0)) var = 0;
        sd[j] = sqrt(var);
        score[j] = n > 1 ? var : -1.0; /* too few values: ranks last */
        any |= n > 1;
    }
    return any;
}

/* The result keeping the `keep` features order[0..keep) (all F in their order when order is
 * NULL). */
static fl_status result_of(int F, int keep, const int *order, const double *mean, const double *sd,
                           fl_stats_result *r, fl_err *err) {
    r->F = F;
    r->n = keep;
    r->index = malloc((size_t)keep * sizeof *r->index);
    r->mean = malloc((size_t)keep * sizeof *r->mean);
    r->std = malloc((size_t)keep * sizeof *r->std);
    if (!r->index || !r->mean || !r->std) {
        fl_stats_result_destroy(r);
        return fl_fail(err, FL_ENOMEM, "out of memory for %d features", keep);
    }
    for (int i = 0; i < keep; i++) {
        int j = order ? order[i] : i;
        r->index[i] = (uint32_t)j;
        r->mean[i] = (float)mean[j];
        r->std[i] = (float)(sd[j] > 1e-6 ? sd[j] : 1.0);
    }
    return FL_OK;
}

/* top_k < 0: every feature in its own order, no ranking (fl_stats_moments). */
static fl_status finish(const float *sum, int F, int top_k, fl_stats_result *r, fl_err *err) {
    memset(r, 0, sizeof *r);
    if (F < 1) return fl_fail(err, FL_EINVAL, "no features to standardize");
    int *rank = malloc((size_t)F * sizeof *rank);
    double *mean = malloc((size_t)F * sizeof *mean), *sd = malloc((size_t)F * sizeof *sd);
    double *score = malloc((size_t)F * sizeof *score);
    fl_status st = FL_OK;
    if (!rank || !mean || !sd || !score) {
        st = fl_fail(err, FL_ENOMEM, "out of memory for %d features", F);
    } else if (!moments(sum, F, mean, sd, score)) {
        st = fl_fail(err, FL_EINVAL, "fewer than 2 training patients have this modality");
    } else if (top_k < 0) {
        st = result_of(F, F, NULL, mean, sd, r, err);
    } else if ((st = fl_rank_desc(score, F, rank, err)) == FL_OK) {
        st = result_of(F, top_k == 0 || top_k > F ? F : top_k, rank, mean, sd, r, err);
    }
    free(rank);
    free(mean);
    free(sd);
    free(score);
    return st;
}

fl_status fl_stats_finish(const float *sum, int F, int top_k, fl_stats_result *r, fl_err *err) {
    return finish(sum, F, top_k < 0 ? 0 : top_k, r, err);
}

fl_status fl_stats_moments(const float *sum, int F, fl_stats_result *r, fl_err *err) {
    return finish(sum, F, -1, r, err);
}

void fl_stats_result_destroy(fl_stats_result *r) {
    free(r->index);
    free(r->mean);
    free(r->std);
    memset(r, 0, sizeof *r);
}
