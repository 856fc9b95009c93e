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

fl_status fl_stats_finish(const float *sum, int F, int top_k, fl_stats_result *r, fl_err *err) {
    memset(r, 0, sizeof *r);
    if (F < 1) return fl_fail(err, FL_EINVAL, "no features to standardize");
    int *rank = malloc((size_t)F * sizeof *rank);
    double *mean = malloc((size_t)F * sizeof *mean), *sd = malloc((size_t)F * sizeof *sd);
    double *score = malloc((size_t)F * sizeof *score);
    fl_status st = FL_OK;
    if (!rank || !mean || !sd || !score) {
        st = fl_fail(err, FL_ENOMEM, "out of memory for %d features", F);
        goto done;
    }
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
    if (!any) {
        st = fl_fail(err, FL_EINVAL, "fewer than 2 training patients have this modality");
        goto done;
    }
    if ((st = fl_rank_desc(score, F, rank, err)) != FL_OK) goto done;
    int keep = (top_k <= 0 || top_k > F) ? F : top_k;
    r->F = F;
    r->n = keep;
    r->index = malloc((size_t)keep * sizeof *r->index);
    r->mean = malloc((size_t)keep * sizeof *r->mean);
    r->std = malloc((size_t)keep * sizeof *r->std);
    if (!r->index || !r->mean || !r->std) {
        fl_stats_result_destroy(r);
        st = fl_fail(err, FL_ENOMEM, "out of memory for %d features", keep);
        goto done;
    }
    for (int i = 0; i < keep; i++) {
        int j = rank[i];
        r->index[i] = (uint32_t)j;
        r->mean[i] = (float)mean[j];
        r->std[i] = (float)(sd[j] > 1e-6 ? sd[j] : 1.0);
    }
done:
    free(rank);
    free(mean);
    free(sd);
    free(score);
    return st;
}

void fl_stats_result_destroy(fl_stats_result *r) {
    free(r->index);
    free(r->mean);
    free(r->std);
    memset(r, 0, sizeof *r);
}
